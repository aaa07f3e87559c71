"""``kill -9`` (a real SIGKILL) in the middle of ``wb separate`` and of training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tests import badaudio

from .conftest import env, wb


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wb.cli", *args], cwd=cwd, env=env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
        assert time.time() - t0 < timeout, "condition never met"
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_kill_during_separate_leaves_no_partial_output(tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, badaudio.sine(44100, 240.0, channels=2).T, 44100, subtype="PCM_16")
    out = tmp_path / "out"
    proc = _start("separate", str(song), "--out", str(out), cwd=tmp_path)

    def writing() -> bool:  # stems are being appended in the temporary folder
        return any(p.stat().st_size > 1 << 20 for p in out.glob(".song.tmp-*/*.wav"))

    _wait_for(writing, proc)
    _kill(proc)
    assert not (out / "song").exists()  # nothing final was written
    assert list(out.glob(".song.tmp-*"))  # the killed run's scratch folder, not output
    proc = wb("separate", str(song), "--out", str(out), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["song"]  # scratch of the killed run gone
    for stem in ("soprano", "alto", "tenor", "bass"):
        info = sf.info(str(out / "song" / f"{stem}.wav"))
        assert (info.frames, info.samplerate, info.channels) == (240 * 44100, 44100, 2)


def test_kill_during_training_then_resume_continues_from_last_ckpt(tmp_path):
    rng = np.random.default_rng(0)
    for name, freq in {"low": 300.0, "mid": 900.0, "high": 2000.0}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(8):
            t = np.arange(2400) / 8000
            x = 0.4 * np.sin(2 * np.pi * freq * (1 + 0.02 * k) * t) + 0.02 * rng.standard_normal(
                2400
            )
            sf.write(tmp_path / "data" / name / f"{k}.wav", x.astype(np.float32), 8000)
    epochs = 30
    argv = [
        "classify", "--dataset", "folder", "--data-dir", str(tmp_path / "data"), "--model", "cnn",
        "--epochs", str(epochs), "--folds", "1", "--out", str(tmp_path / "run"),
        "--set", "+dataset_options.folds=2", "--set", "frontend.n_fft=128",
        "--set", "frontend.n_mels=16", "--set", "model.cnn.widths=[4]",
        "--set", "train.batch_size=4", "--set", "train.patience=0",
        "--set", "train.keep_checkpoints=true", "--set", f"cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    proc = _start(*argv, cwd=tmp_path)
    ckpt_dir = tmp_path / "run" / "folds"
    _wait_for(lambda: any(ckpt_dir.glob("*/checkpoints/last.ckpt")), proc)
    _kill(proc)
    last = next(ckpt_dir.glob("*/checkpoints/last.ckpt"))
    state = torch.load(last, map_location="cpu", weights_only=True)
    done_epochs, step = int(state["epoch"]) + 1, int(state["global_step"])
    assert 1 <= done_epochs < epochs and step > 0
    assert not (tmp_path / "run" / "metrics.json").exists()

    again = wb(*argv, "--resume", cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {last}" in again.stderr
    lines = [ln for ln in again.stderr.splitlines() if "] epoch " in ln]
    assert lines[0].split("] epoch ")[1].startswith(f"{done_epochs + 1}/{epochs} ")
    assert len(lines) == epochs - done_epochs  # the epochs before the kill are not rerun
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert int(final["epoch"]) == epochs - 1
    assert int(final["global_step"]) == step // done_epochs * epochs  # the step count continued
    assert (tmp_path / "run" / "metrics.json").is_file()
