"""GTZAN adapter on a fixture in the official layout (``<genre>/<genre>.000NN.au``): the
fault-filtered split from the package lists, the 10-fold protocol, the known-corrupt
``jazz.00054``, and ``wb classify --dataset gtzan --protocol filtered`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from classify.datasets import get_dataset
from classify.datasets.gtzan import GENRES, filtered_lists
from wb.cli import main

SR = 22050


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory):
    """``genres/``: per genre the first 2 excerpts of each filtered list (as .au, 1 s tones
    whose pitch depends on the genre) plus a corrupt jazz.00054.au."""
    root = tmp_path_factory.mktemp("gtzan") / "genres"
    lists = filtered_lists()
    t = np.arange(SR) / SR
    for k, genre in enumerate(GENRES):
        (root / genre).mkdir(parents=True)
        for part in ("train", "valid", "test"):
            for name in [n for n in lists[part] if n.startswith(genre + ".")][:2]:
                x = 0.3 * np.sin(2 * np.pi * 110 * 2 ** (k / 4) * t)
                sf.write(root / genre / f"{name}.au", x.astype(np.float32), SR, format="AU")
    (root / "jazz" / "jazz.00054.au").write_bytes(b"not audio at all")
    return root


def test_filtered_split_and_corrupt_file(gtzan):
    ds = get_dataset("gtzan", gtzan)
    assert ds.classes == list(GENRES) and len(ds.clips) == 60
    assert "jazz.00054" in ds.notes
    (split,) = ds.splits("filtered")
    assert (len(split.train), len(split.validate), len(split.test)) == (20, 20, 20)
    lists = filtered_lists()
    assert {ds.clips[i].path.stem for i in split.test} <= set(lists["test"])
    assert {ds.clips[i].path.stem for i in split.validate} <= set(lists["valid"])
    assert len(lists["train"]) == 443 and len(lists["valid"]) == 197 and len(lists["test"]) == 290
    folds = ds.splits("10fold")
    assert len(folds) == 10
    tested = sorted(i for s in folds for i in s.test)
    assert tested == list(range(60))  # every excerpt tested exactly once


def test_wrong_layout_is_one_line(tmp_path, capsys):
    (tmp_path / "blues").mkdir()
    code = main(["classify", "--dataset", "gtzan", "--data-dir", str(tmp_path), "--epochs", "1",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "10 genre folders" in err


def test_classify_filtered_end_to_end(gtzan, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["classify", "--dataset", "gtzan", "--protocol", "filtered", "--data-dir", str(gtzan),
            "--epochs", "1", "--out", str(out), "--set", f"cache_dir={tmp_path / 'cache'}",
            "--set", "frontend.sample_rate=8000", "--set", "frontend.n_mels=32",
            "--set", "frontend.f_max=4000", "--set", "frontend.n_fft=256",
            "--set", "frontend.win_length=256", "--set", "frontend.hop_length=128",
            "--set", "data.seconds=0.5", "--set", "data.hop_seconds=0.25",
            "--set", "model.cnn.widths=[4]", "--set", "train.batch_size=8",
            "--set", "train.threads=1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "gtzan" and [f["fold"] for f in metrics["folds"]] == ["filtered"]
    assert metrics["folds"][0]["n_test"] == 20
    details = json.loads((out / "details.json").read_text())
    assert 0.0 <= details["folds"][0]["chunk_accuracy"] <= 1.0  # 3 windows per 1 s clip
    assert "chunk accuracy" in (out / "report.html").read_text()
