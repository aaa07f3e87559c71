"""Metrics by hand, samplers, validation carving, and exact resume of a fold's training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classify.datasets.base import Clip, ClipDataset, Split
from classify.metrics import (
    confusion_matrix,
    mean_std,
    plot_confusion,
    plot_curves,
    scores,
    write_confusion_csv,
)
from classify.system import average_windows, soft_cross_entropy
from classify.train import TrainConfig, _carve_validation, lone_last_batch, train_fold
from wb.errors import ConfigError, WbError

SR = 8000


def test_scores_by_hand() -> None:
    # rows = true class, columns = predicted
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    s = scores(cm)
    assert s["accuracy"] == pytest.approx(12 / 16)
    p = [5 / 7, 3 / 4, 4 / 5]
    r = [5 / 6, 3 / 6, 4 / 4]
    f1 = [2 * a * b / (a + b) for a, b in zip(p, r, strict=True)]
    assert s["precision"] == pytest.approx(p) and s["recall"] == pytest.approx(r)
    assert s["f1"] == pytest.approx(f1)
    assert s["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert s["support"] == [6, 6, 4]
    # a class absent from the test set and never predicted does not count in macro-F1
    cm4 = np.zeros((4, 4), dtype=int)
    cm4[:3, :3] = cm
    assert scores(cm4)["macro_f1"] == pytest.approx(s["macro_f1"])
    # a class never predicted has precision 0 (not NaN)
    assert scores(np.array([[2, 0], [1, 0]]))["precision"] == [2 / 3, 0.0]


def test_confusion_matrix_and_aggregation(tmp_path: Path) -> None:
    cm = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    with pytest.raises(WbError):
        confusion_matrix([0, 5], [0, 1], 3)
    assert mean_std([0.9, 0.8, 1.0]) == pytest.approx((0.9, np.std([0.9, 0.8, 1.0])))
    write_confusion_csv(tmp_path / "cm.csv", cm, ["a", "b", "c"])
    assert (tmp_path / "cm.csv").read_text().splitlines()[1] == "a,1,1,0"
    plot_confusion(tmp_path / "cm.png", cm, ["a", "b", "c"])
    plot_curves(tmp_path / "c.png", [{"epoch": 0, "train_loss": 1.0, "val_loss": 1.2}])
    assert (tmp_path / "cm.png").stat().st_size > 1000 and (tmp_path / "c.png").is_file()


def test_window_averaging_and_soft_loss() -> None:
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    out = average_windows(logits, torch.tensor([0, 0, 1]), 2)
    assert out.tolist() == [[2.0, 0.0], [0.0, 2.0]]
    y = torch.tensor([0, 1])
    hard = torch.nn.functional.one_hot(y, 2).float()
    assert soft_cross_entropy(out, hard) == pytest.approx(
        torch.nn.functional.cross_entropy(out, y).item()
    )


def test_train_config_validation() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"schedule": "step"}).optim()
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"monitor": "test_acc"})


# --------------------------------------------------------------------------- tiny fold


def _tiny_dataset(n_per_class: int = 8) -> tuple[ClipDataset, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    clips, audio = [], []
    t = np.arange(int(0.25 * SR)) / SR
    for label, freq in enumerate((400.0, 1200.0, 2400.0)):
        for k in range(n_per_class):
            wave = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * k) * t) + 0.05 * rng.standard_normal(
                len(t)
            )
            audio.append(wave.astype(np.float32))
            spk = f"s{k % 4}"
            clips.append(Clip(Path(f"{label}_{k}.wav"), label, str(1 + k % 2), spk))
    ds = ClipDataset("tiny", ["low", "mid", "high"], clips, SR, 0.25)
    return ds, audio


def _tiny_cfg(epochs: int) -> dict:
    return {
        "data": {"seconds": 0.25},
        "frontend": {"sample_rate": SR, "n_fft": 128, "hop_length": 64, "n_mels": 16,
                     "normalize": True},
        "augment": {"gain": {"p": 0.5}, "spec_augment": {"p": 0.5, "time_mask": 4,
                                                           "freq_mask": 4}},
        "model": {"name": "cnn", "widths": [4], "dropout": 0.2},
        "train": {"epochs": epochs, "batch_size": 4, "lr": 3e-3, "schedule": "constant",
                  "warmup_epochs": 0, "patience": 0, "val_fraction": 0.25, "seed": 1,
                  "keep_checkpoints": True, "threads": 1},
    }  # fmt: skip


def test_validation_is_carved_from_training_only() -> None:
    ds, _ = _tiny_dataset()
    split = ds.splits()[0]
    tcfg = TrainConfig.from_dict({"val_fraction": 0.25})
    train, val = _carve_validation(ds, split, tcfg)
    assert val and not set(val) & set(split.test) and not set(train) & set(val)
    assert set(train) | set(val) == set(split.train)
    # the tiny folds share speakers with the test fold -> per-clip validation groups
    grouped = Split("g", tuple(i for i in range(24) if ds.clips[i].group != "s0"),
                    tuple(i for i in range(24) if ds.clips[i].group == "s0"))  # fmt: skip
    train, val = _carve_validation(ds, grouped, tcfg)
    # a group-disjoint test fold -> validation keeps speakers whole
    groups_val = {ds.clips[i].group for i in val}
    assert not groups_val & {ds.clips[i].group for i in train}


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_fold_training_resumes_exactly(tmp_path: Path) -> None:
    ds, audio = _tiny_dataset()
    split = ds.splits()[0]
    say = lambda msg: None  # noqa: E731
    straight = train_fold(ds, audio, split, _tiny_cfg(2), tmp_path / "a", say=say)
    assert straight.epochs_run == 2 and len(straight.test_labels) == len(split.test)
    assert np.asarray(straight.test_logits).shape == (len(split.test), 3)
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "loss_gap", "acc_gap"):
        assert np.isfinite(straight.gap[key])
    assert json.loads((tmp_path / "a" / "result.json").read_text())["name"] == split.name
    assert Path(straight.model_path).is_file()

    train_fold(ds, audio, split, _tiny_cfg(1), tmp_path / "b", say=say)
    (tmp_path / "b" / "result.json").unlink()  # as if interrupted after epoch 1
    lines: list[str] = []
    resumed = train_fold(ds, audio, split, _tiny_cfg(2), tmp_path / "b", resume=True,
                         say=lines.append)  # fmt: skip
    assert any("resuming" in line for line in lines) and resumed.epochs_run == 2
    a = _state(tmp_path / "a" / "checkpoints" / "last.ckpt")
    b = _state(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a finished fold is reused, not retrained
    again = train_fold(ds, audio, split, _tiny_cfg(2), tmp_path / "b", resume=True, say=say)
    assert np.allclose(again.test_logits, resumed.test_logits)


def test_init_from_starts_at_the_given_weights(tmp_path: Path) -> None:
    """``train.init_from`` (the spine's warm start) copies a finished fold's weights before
    training: with a vanishing lr the new fold's weights are the old fold's (batch-norm
    statistics aside, which one more epoch updates); a cold start's are not."""
    from wb.checkpoint import read_model

    ds, audio = _tiny_dataset()
    split = ds.splits()[0]
    say = lambda msg: None  # noqa: E731
    first = train_fold(ds, audio, split, _tiny_cfg(1), tmp_path / "a", say=say)
    cfg = _tiny_cfg(1)
    cfg["train"].update(init_from=first.model_path, lr=1e-12)
    warm = train_fold(ds, audio, split, cfg, tmp_path / "b", say=say)
    cold = train_fold(ds, audio, split, {**cfg, "train": {**cfg["train"], "init_from": None}},
                      tmp_path / "c", say=say)  # fmt: skip
    ref, w, c = (read_model(r.model_path)["state_dict"] for r in (first, warm, cold))
    weights = [k for k in ref if k.endswith("weight") and ref[k].ndim > 1]
    assert weights
    assert all(torch.allclose(w[k], ref[k], atol=1e-6) for k in weights)
    assert not all(torch.allclose(c[k], ref[k], atol=1e-6) for k in weights)


def test_chunk_accuracy_counts_windows_on_their_own():
    """Track accuracy averages window logits; chunk accuracy scores every window alone."""
    import numpy as np
    import torch

    from classify.frontends import LengthPolicy
    from classify.train import EvalClips, predict_logits

    class Sign(torch.nn.Module):
        """Class 1 when the window's mean is positive, with confidence |mean|."""

        def forward(self, x):
            m = x.mean(-1)
            return torch.stack([-m, m], dim=-1)

    # clip 0 (label 1): windows +1, +1, -0.5 -> track right, chunks 2/3
    # clip 1 (label 0): windows +0.1, -1, -1 -> track right, chunks 2/3
    clips = [np.repeat([1.0, 1.0, -0.5], 4).astype(np.float32),
             np.repeat([0.1, -1.0, -1.0], 4).astype(np.float32)]  # fmt: skip
    policy = LengthPolicy(seconds=4, eval_crop="sliding", hop_seconds=4)
    ds = EvalClips(clips, [0, 1], [1, 0], n_samples=4, policy=policy, hop=4)
    chunks = {}
    logits = predict_logits(Sign(), ds, batch_size=2, device="cpu", chunks=chunks)
    assert (logits.argmax(-1) == [1, 0]).all()
    assert chunks == {"correct": 4, "total": 6}


def test_a_lone_last_training_batch_is_dropped():
    # 417 clips in batches of 16 leave one clip last: batch norm cannot train on it
    assert lone_last_batch(417, 16) and not lone_last_batch(416, 16)
    assert not lone_last_batch(418, 16) and not lone_last_batch(1, 16)
    assert not lone_last_batch(17, 1)
    from torch import nn

    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4).train()(torch.zeros(1, 4))


def test_the_data_module_serves_validation_batches():
    import pytorch_lightning as pl

    from classify.train import ClipDataModule

    # its own val_dataloader, not Lightning's placeholder: validation runs and picks checkpoints
    assert ClipDataModule.val_dataloader is not pl.LightningDataModule.val_dataloader
    assert ClipDataModule(None, None, TrainConfig()).val_dataloader() == []
