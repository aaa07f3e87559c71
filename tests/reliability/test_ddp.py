"""Distributed training (Lightning DDP over gloo) with 2 CPU processes, as real processes:
Lightning starts rank 1 by re-running the command, so it cannot run inside pytest."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf
import yaml

from tests.separation.conftest import tiny_config, write_stems

from .conftest import env, wb


def test_separation_ddp_on_two_cpu_processes(tmp_path):
    """The SATB recipe's train stage with --devices 2: both ranks train, draw distinct
    segments, and end with the same weights (:class:`wb.training.trainer.RanksAgree`)."""
    root = write_stems(tmp_path / "stems", {"train": 3, "valid": 1})
    cfg = tiny_config(root, epochs=2, samples_per_epoch=8, accelerator="cpu", threads=1)
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "recipes.satb_separation", "train", "--config",
         str(tmp_path / "cfg.yml"), "--run", str(tmp_path / "run"), "--devices", "2", "--quiet"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 DDP ranks agree" in proc.stdout + proc.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_ddp_training_on_two_cpu_processes(tmp_path):
    """``train.devices=2`` on the CPU: Lightning re-runs the command as rank 1 (DDP over gloo)
    after rank 0 created the run folder; both ranks train and rank 0 writes the results."""
    rng = np.random.default_rng(0)
    for name, freq in {"low": 300.0, "high": 2000.0}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(6):
            t = np.arange(2400) / 8000
            x = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(2400)
            sf.write(tmp_path / "data" / name / f"{k}.wav", x.astype(np.float32), 8000)
    proc = wb(
        "classify", "--dataset", "folder", "--data-dir", str(tmp_path / "data"), "--model", "cnn",
        "--epochs", "2", "--folds", "1", "--out", str(tmp_path / "run"),
        "--set", "+dataset_options.folds=2", "--set", "frontend.n_fft=128",
        "--set", "frontend.n_mels=16", "--set", "model.cnn.widths=[4]",
        "--set", "train.batch_size=2", "--set", "train.devices=2",
        "--set", "train.accelerator=cpu", "--set", f"cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 DDP ranks agree" in proc.stdout + proc.stderr
    details = json.loads((tmp_path / "run" / "details.json").read_text())
    assert details["folds"][0]["epochs_run"] == 2
