"""Weight averaging of training runs (the ``average`` stage of the separation recipes)."""

from __future__ import annotations

import shutil

import pytest
import torch

from separation.export import export, model_from_checkpoint
from separation.hub import load_separator
from separation.stages import average_runs
from separation.train import train
from wb.errors import WbError

from .conftest import tiny_config


@pytest.fixture(scope="module")
def sibling(trained_run, stems_root, tmp_path_factory):
    """A second run warm-started from the first run's best weights with another seed."""
    run, _ = trained_run
    other = tmp_path_factory.mktemp("sibling")
    init = str(run / "checkpoints" / "best.ckpt")
    train(tiny_config(stems_root, init_from=init, seed=7, epochs=1), other)
    return other


def _state(folder):
    return torch.load(folder / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]


def test_average_is_the_elementwise_mean_and_a_usable_run(
    trained_run, sibling, stems_root, tmp_path
):
    run, _ = trained_run
    out = average_runs([run, sibling], tmp_path / "soup")
    a, b, avg = _state(run), _state(sibling), _state(out)
    assert set(avg) == set(a)
    differ = 0
    for key, value in avg.items():
        if value.is_floating_point():
            assert torch.allclose(value, (a[key] + b[key]) / 2, rtol=0, atol=1e-7), key
            differ += not torch.equal(a[key], b[key])
    assert differ > 0  # the sibling moved, so the average is neither member
    summary = (out / "average.json").read_text()
    assert str(run) in summary and str(sibling) in summary and "best_val_sisdr" in summary
    assert (out / "config.yml").read_text() == (run / "config.yml").read_text()
    # the new run loads, exports and separates like a trained one
    model, info = model_from_checkpoint(out / "checkpoints" / "best.ckpt")
    assert info["hyper_parameters"]["model_name"] == "convtasnet"
    path = export(out / "checkpoints" / "best.ckpt", tmp_path / "soup.pt")
    x = torch.randn(1, 1, 4000)
    with torch.no_grad():
        assert torch.equal(load_separator(path).model(x), model(x))
    assert torch.load(path, weights_only=True)["meta"]["checkpoint"]["averaged_from"] == [
        str(run / "checkpoints" / "best.ckpt"),
        str(sibling / "checkpoints" / "best.ckpt"),
    ]
    # an existing empty folder is taken; the folder gets mkdir's permissions, not mkdtemp's
    (tmp_path / "empty").mkdir()
    (tmp_path / "plain").mkdir()
    made = average_runs([run, sibling], tmp_path / "empty")
    assert made.stat().st_mode == (tmp_path / "plain").stat().st_mode
    # the averaged run is a starting point (init_from), not a run to train on or resume
    with pytest.raises(WbError, match="already holds checkpoints"):
        train(tiny_config(stems_root), out)
    with pytest.raises(WbError, match="averaged run: warm-start from it"):
        train(tiny_config(stems_root), out, resume=True)
    assert torch.equal(_state(out)[next(iter(a))], avg[next(iter(a))])
    # a run averaged with a copy of itself is itself
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    same = average_runs([run, twin], tmp_path / "same")
    for key, value in _state(same).items():
        assert torch.equal(value, a[key]), key


def test_average_refusals_leave_nothing_behind(trained_run, sibling, tmp_path, monkeypatch):
    run, _ = trained_run
    with pytest.raises(WbError, match="at least two"):
        average_runs([run], tmp_path / "one")
    with pytest.raises(WbError, match="twice"):
        average_runs([run, run], tmp_path / "twice")
    with pytest.raises(WbError, match="no checkpoints/best.ckpt"):
        average_runs([run, tmp_path], tmp_path / "missing")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("a run")
    with pytest.raises(WbError, match="not empty"):
        average_runs([run, sibling], taken)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    other = tmp_path / "other"
    shutil.copytree(sibling, other)
    data = torch.load(other / "checkpoints" / "best.ckpt", weights_only=True)
    data["hyper_parameters"]["model_kwargs"]["n_filters"] = 24
    torch.save(data, other / "checkpoints" / "best.ckpt")
    with pytest.raises(WbError, match="model_kwargs"):
        average_runs([run, other], tmp_path / "mixed")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        average_runs([run, sibling], tmp_path / "interrupted")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"taken", "other"}  # no run folder, no temporary folder


def test_average_stage_usage_error(capsys):
    from recipes.satb_separation.__main__ import main

    assert main(["average", "--run", "runs/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--runs" in err[0]
