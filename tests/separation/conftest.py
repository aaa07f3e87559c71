"""Shared fixtures: a generated stems data set, tiny model configs, an identity model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

SR = 8000
SOURCES = ["tone", "noise"]
TINY_TASNET = {
    "name": "convtasnet",
    "n_filters": 32,
    "bn_chan": 16,
    "hid_chan": 32,
    "skip_chan": 16,
    "n_blocks": 3,
    "n_repeats": 1,
    "kernel_size": 16,
    "stride": 8,
}


def write_stems(root: Path, splits: dict[str, int], seconds: float = 2.0, seed: int = 0) -> Path:
    """``root/<split>/t<k>/{mixture,tone,noise}.wav``: a sine and white noise; mixture = sum."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    for split, count in splits.items():
        for k in range(count):
            folder = root / split / f"t{k}"
            folder.mkdir(parents=True, exist_ok=True)
            tone = (0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)).astype(np.float32)
            noise = (0.1 * rng.standard_normal(n)).astype(np.float32)
            sf.write(folder / "tone.wav", tone, SR, subtype="FLOAT")
            sf.write(folder / "noise.wav", noise, SR, subtype="FLOAT")
            sf.write(folder / "mixture.wav", tone + noise, SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="session")
def stems_root(tmp_path_factory) -> Path:
    return write_stems(tmp_path_factory.mktemp("stems"), {"train": 4, "valid": 2, "test": 2})


def tiny_config(root: Path, **train) -> dict:
    return {
        "data": {"root": str(root), "sample_rate": SR},
        "model": {**TINY_TASNET, "sources": SOURCES, "audio_channels": 1},
        "train": {
            "segment": 0.5,
            "batch_size": 4,
            "samples_per_epoch": 16,
            "valid_segments_per_track": 2,
            "epochs": 2,
            "lr": 5e-3,
            **train,
        },
    }


class GainModel(nn.Module):
    """Returns ``gain[s] * mixture`` for every source ``s`` (identity with gains of 1).

    Records the input lengths it sees, to check chunking.
    """

    def __init__(self, gains=(1.0, 1.0), samplerate=SR, channels=1, segment=0.5) -> None:
        super().__init__()
        self.register_buffer("gains", torch.tensor(gains, dtype=torch.float32))
        self.sources = [f"s{k}" for k in range(len(gains))]
        self.samplerate = samplerate
        self.audio_channels = channels
        self.segment = segment
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[-1])
        return self.gains[None, :, None, None] * x[:, None]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, stems_root):
    """A tiny Conv-TasNet trained for 2 epochs (shared by training/export/CLI tests)."""
    from separation.train import train

    run = tmp_path_factory.mktemp("run")
    result = train(tiny_config(stems_root), run)
    return run, result


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> str:
    """A tiny untrained Conv-TasNet model file (sources tone, noise; 8 kHz mono)."""
    from separation import models
    from wb.checkpoint import save_model

    kwargs = {k: v for k, v in TINY_TASNET.items() if k != "name"}
    torch.manual_seed(0)
    model = models.build("convtasnet", ["tone", "noise"], 8000, 1, **kwargs)
    return str(
        save_model(
            tmp_path_factory.mktemp("model") / "tiny.pt",
            models.class_ref("convtasnet"),
            {"sources": ["tone", "noise"], "sample_rate": 8000, "audio_channels": 1, **kwargs},
            model.state_dict(),
            meta={"sources": ["tone", "noise"], "sample_rate": 8000, "segment": 0.5},
        )
    )
