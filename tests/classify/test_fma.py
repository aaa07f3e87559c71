"""FMA-small adapter on a fixture in the official layout: ``fma_metadata/tracks.csv`` with
its three header rows, ``fma_small/<NNN>/<NNNNNN>.mp3``, the official split with its own
validation part, and the clips without audio left out by list."""

from __future__ import annotations

import csv
import subprocess

import numpy as np
import pytest
import soundfile as sf

from classify.datasets import get_dataset
from classify.datasets.fma import NO_AUDIO
from wb.cli import main

GENRES = ["Electronic", "Folk", "Hip-Hop", "Rock"]


@pytest.fixture(scope="module")
def fma(tmp_path_factory):
    root = tmp_path_factory.mktemp("fma")
    (root / "fma_metadata").mkdir()
    rows, tid = [], 2
    for genre in GENRES:
        for split, n in (("training", 3), ("validation", 1), ("test", 1)):
            for _ in range(n):
                rows.append([tid, split, "small", genre, 100 + tid])
                tid += 1
    rows.append([NO_AUDIO[0], "training", "small", "Rock", 999])  # a known no-audio clip
    rows.append([5000, "training", "medium", "Rock", 998])  # another subset: ignored
    with open(root / "fma_metadata" / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "set", "set", "track", "artist"])
        w.writerow(["", "split", "subset", "genre_top", "id"])
        w.writerow(["track_id", "", "", "", ""])
        w.writerows(rows)
    wav = root / "tone.wav"
    t = np.arange(8000) / 8000
    for r in rows[:-2]:
        tid, genre = r[0], r[3]
        x = 0.3 * np.sin(2 * np.pi * 200 * (1 + GENRES.index(genre)) * t)
        sf.write(wav, x.astype(np.float32), 8000)
        dest = root / "fma_small" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3"
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(dest)], check=True)
    return root


def test_official_split_and_no_audio_list(fma):
    ds = get_dataset("fma", fma)  # alias
    assert ds.name == "fma_small" and ds.classes == GENRES and len(ds.clips) == 20
    assert f"{NO_AUDIO[0]:06d}" in ds.notes
    (split,) = ds.splits("official")
    assert (len(split.train), len(split.validate), len(split.test)) == (12, 4, 4)
    assert {ds.clips[i].fold for i in split.validate} == {"valid"}
    assert str(ds.clips[0].path).endswith("fma_small/000/000002.mp3")


def test_missing_clip_is_an_error(fma, tmp_path):
    import shutil

    copy = tmp_path / "fma"
    shutil.copytree(fma, copy)
    (copy / "fma_small" / "000" / "000003.mp3").unlink()
    with pytest.raises(Exception, match="1 of 20 audio files listed"):
        get_dataset("fma_small", copy)


def test_classify_end_to_end(fma, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["classify", "--dataset", "fma_small", "--data-dir", str(fma), "--epochs", "1",
            "--out", str(out), "--set", f"cache_dir={tmp_path / 'cache'}",
            "--set", "frontend.sample_rate=8000", "--set", "frontend.n_mels=32",
            "--set", "frontend.f_max=4000", "--set", "frontend.n_fft=256",
            "--set", "frontend.win_length=256", "--set", "frontend.hop_length=128",
            "--set", "data.seconds=0.5", "--set", "data.hop_seconds=0.25",
            "--set", "model.cnn.widths=[4]", "--set", "train.batch_size=4",
            "--set", "train.threads=1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert (out / "metrics.json").is_file() and (out / "report.html").is_file()
