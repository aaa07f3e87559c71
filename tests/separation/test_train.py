"""Training: loss goes down, checkpoints and logs exist, resume continues, export round-trips."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import yaml

from separation.export import export, model_from_checkpoint
from separation.hub import load_separator
from separation.train import init_weights, resolve_model, train, train_settings
from wb.errors import ConfigError, WbError

from .conftest import tiny_config


def _epoch_rows(run, version, key="train/loss_epoch"):
    with open(run / "csv" / f"version_{version}" / "metrics.csv") as fh:
        return [r for r in csv.DictReader(fh) if r.get(key)]


def test_tiny_model_learns(trained_run):
    run, result = trained_run
    assert (run / "checkpoints" / "best.ckpt").is_file() and (
        run / "checkpoints" / "last.ckpt"
    ).is_file()
    assert result["epochs"] == 2 and result["best_sisdr"] is not None
    cfg = yaml.safe_load((run / "config.yml").read_text())
    assert cfg["model"]["segment"] == 0.5 and cfg["train"]["loss"] == "l1"
    assert cfg["model"]["sources"] == ["tone", "noise"] and cfg["model"]["sample_rate"] == 8000
    rows = _epoch_rows(run, 0)
    losses = [float(r["train/loss_epoch"]) for r in rows]
    assert len(losses) == 2 and losses[1] < losses[0]
    val = _epoch_rows(run, 0, "val/si_sdr")
    assert len(val) == 2 and all(
        math.isfinite(float(r[f"val/si_sdr/{s}"])) for r in val for s in ("tone", "noise")
    )
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))


def test_resume_continues_epoch_counter(trained_run, stems_root, tmp_path):
    run, _ = trained_run
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(run, resumed)
    before = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    result = train(tiny_config(stems_root, epochs=3), resumed, resume=True)
    after = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert result["epochs"] == 3
    assert after["epoch"] == before["epoch"] + 1
    assert after["global_step"] == before["global_step"] + 4  # 16 samples / batch 4
    rows = _epoch_rows(resumed, 1)  # a resumed run logs into a new version folder
    assert [int(r["epoch"]) for r in rows] == [2]
    assert _epoch_rows(resumed, 0)  # the first run's log is kept


def test_run_folder_guards(trained_run, stems_root, tmp_path):
    run, _ = trained_run
    with pytest.raises(WbError, match="already holds checkpoints"):
        train(tiny_config(stems_root), run)
    with pytest.raises(WbError, match="no checkpoint to resume"):
        train(tiny_config(stems_root), tmp_path / "fresh", resume=True)
    with pytest.raises(ConfigError, match="unknown key"):
        train_settings({"train": {"max_epoch": 3}})
    settings = train_settings({})
    # sources default to the stems of the first training track (sorted)
    data = {"root": str(stems_root), "sample_rate": 8000}
    setup = resolve_model({"data": data, "model": {"name": "hdemucs"}}, settings)
    assert setup["sources"] == ["noise", "tone"] and setup["audio_channels"] == 1
    with pytest.raises(ConfigError, match="must equal train.segment"):
        model = {"name": "hdemucs", "sources": ["a"], "segment": 9}
        resolve_model({"data": data, "model": model}, settings)


def test_export_roundtrip_bit_identical(trained_run, tmp_path):
    run, _ = trained_run
    ckpt = run / "checkpoints" / "best.ckpt"
    reference, _ = model_from_checkpoint(ckpt)
    path = export(ckpt, tmp_path / "model.pt", metrics={"SI-SDR": 1.0},
                  inference={"overlap": 0.5, "postfilter": "mask:2"})  # fmt: skip
    raw = torch.load(path, weights_only=True)
    assert raw["class"] == "separation.models:convtasnet"
    meta = raw["meta"]
    assert meta["sources"] == ["tone", "noise"] and meta["sample_rate"] == 8000
    assert meta["segment"] == 0.5 and meta["overlap"] == 0.5 and meta["metrics"] == {"SI-SDR": 1.0}
    assert meta["config"]["model"]["name"] == "convtasnet" and "torch" in raw["versions"]
    loaded = load_separator(path)
    assert loaded.overlap == 0.5 and loaded.segment == 0.5 and loaded.origin["kind"] == "file"
    assert meta["postfilter"] == "mask:2" and loaded.postfilter == "mask:2"
    assert loaded.sources == ("tone", "noise") and loaded.sample_rate == 8000
    x = torch.randn(2, 1, 4000)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), reference(x))
    half = export(ckpt, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < path.stat().st_size
    assert load_separator(half).postfilter == "none"  # no inference group: nothing refines
    with pytest.raises(WbError, match="postfilter"):
        export(ckpt, tmp_path / "bad.pt", inference={"postfilter": "wiener"})
    assert not (tmp_path / "bad.pt").exists()
    # settings `wb separate` would refuse are refused before the file is written
    for bad in ({"segment": -3}, {"overlap": float("nan")}, {"overlap": 1.0}):
        with pytest.raises(WbError, match="inference settings"):
            export(ckpt, tmp_path / "bad.pt", inference=bad)
        assert not (tmp_path / "bad.pt").exists()
    with torch.no_grad():
        assert torch.allclose(load_separator(half).model(x), reference(x), atol=1e-2)
    # a training checkpoint is accepted directly too
    with torch.no_grad():
        assert torch.equal(load_separator(ckpt).model(x), reference(x))


def test_export_run_never_writes_over_the_run(trained_run, tmp_path):
    from separation.stages import export_run

    run, _ = trained_run
    ckpt = run / "checkpoints" / "best.ckpt"
    before = ckpt.read_bytes()
    cfg = yaml.safe_load((run / "config.yml").read_text())
    for out in (ckpt, run / "checkpoints" / "last.ckpt", run / "config.yml", run):
        with pytest.raises(WbError, match="would overwrite|is a folder"):
            export_run({"run": str(run), "out": str(out), "half": False}, cfg, "model.pt")
    assert ckpt.read_bytes() == before
    out = export_run({"run": str(run), "out": str(tmp_path / "m.pt"), "half": False}, cfg, "x.pt")
    assert load_separator(out).sources == ("tone", "noise")


def test_time_stop_then_resume_equals_uninterrupted_run(trained_run, stems_root, tmp_path):
    """time_limit_minutes stops at an epoch end; resuming gives the uninterrupted run's weights."""
    run, _ = trained_run  # 2 epochs in one go
    stopped = train(tiny_config(stems_root, time_limit_minutes=1e-9), tmp_path)
    assert stopped["epochs"] == 1  # stopped at the end of epoch 1, not mid-epoch
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == 4  # a complete epoch (16 / batch 4)
    assert train(tiny_config(stems_root), tmp_path, resume=True)["epochs"] == 2
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    reference = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == reference["global_step"] == 8
    for name, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name


def test_init_from_starts_at_the_given_weights(trained_run, stems_root, tmp_path, capsys):
    from separation import models

    run, _ = trained_run
    ckpt = run / "checkpoints" / "best.ckpt"
    reference, data = model_from_checkpoint(ckpt)
    exported = export(ckpt, tmp_path / "model.pt")
    hp = data["hyper_parameters"]
    args = (hp["model_name"], hp["sources"], hp["sample_rate"], hp["audio_channels"])
    x = torch.randn(1, 1, 4000)
    seed = int(hp["config"]["train"]["seed"])
    for source in (exported, ckpt):  # a model file and a Lightning checkpoint
        fresh = models.build(*args, **dict(hp["model_kwargs"])).eval()
        init_weights(fresh, source, seed=seed + 1)
        assert capsys.readouterr().err == ""  # another seed: new examples
        init_weights(fresh, source, seed=seed)  # the same seed would replay the examples
        assert "replays its training examples" in capsys.readouterr().err
        with torch.no_grad():
            assert torch.equal(fresh(x), reference(x))
    other = models.build(*args, **{**dict(hp["model_kwargs"]), "n_filters": 24}).eval()
    with pytest.raises(WbError, match="do not fit the configured model"):
        init_weights(other, exported)
    for source in (exported, ckpt):  # same shapes, other sample rate / source order
        fresh = models.build(*args, **dict(hp["model_kwargs"]))
        with pytest.raises(WbError, match="init_from has sample_rate 8000"):
            init_weights(fresh, source, {"sample_rate": 16000})
        with pytest.raises(WbError, match="init_from has sources"):
            init_weights(fresh, source, {"sources": ["noise", "tone"]})
        init_weights(fresh, source, {"sources": ("tone", "noise"), "audio_channels": 1})
    with pytest.raises(WbError, match="no such init_from"):
        init_weights(other, tmp_path / "missing.pt")
    # a run started from the weights with lr 0 keeps them exactly: they were loaded, then
    # left alone (fresh optimizer; not a resume, so a new run folder is fine)
    result = train(
        tiny_config(stems_root, init_from=str(exported), lr=0.0, epochs=1), tmp_path / "warm"
    )
    state = torch.load(result["last"], weights_only=True)["state_dict"]
    for k, v in reference.state_dict().items():
        assert torch.equal(state["model." + k], v), k
    assert "replays its training examples" in capsys.readouterr().err  # the same seed
