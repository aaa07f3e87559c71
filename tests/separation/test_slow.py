"""Slow end-to-end checks (``pytest -m slow``): a small HTDemucs trained, exported, applied."""

from __future__ import annotations

import pytest
import torch

from separation.export import export
from separation.hub import load_separator
from separation.inference import separate_tensor
from separation.train import train
from wb import audio
from wb.cli import main

from .conftest import SOURCES, SR, tiny_config

pytestmark = pytest.mark.slow


def test_htdemucs_train_export_separate(stems_root, tmp_path):
    cfg = tiny_config(stems_root, epochs=2, samples_per_epoch=8, lr=1e-3)
    cfg["model"] = {
        "name": "htdemucs", "sources": SOURCES, "channels": 8, "depth": 2, "nfft": 256,
        "t_layers": 1,
    }  # fmt: skip
    result = train(cfg, tmp_path / "run")
    assert result["epochs"] == 2
    path = export(result["best"], tmp_path / "ht.pt", half=True)
    model = load_separator(path).model
    x = torch.randn(1, 3 * SR) * 0.1
    out = separate_tensor(model, x, quiet=True)  # through demucs.apply.apply_model
    assert out.shape == (2, 1, 3 * SR) and torch.isfinite(out).all()
    song = tmp_path / "song.wav"
    audio.save(song, torch.randn(2, 44100) * 0.1, 44100)
    assert (
        main(["--quiet", "separate", str(song), "--model", str(path), "--out", str(tmp_path)]) == 0
    )
    assert audio.info(tmp_path / "song" / "tone.wav").channels == 2
