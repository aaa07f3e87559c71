"""The SATB recipe's stages, called in-process through ``main(argv)``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from recipes.satb_separation.__main__ import main
from separation.models import build
from wb.checkpoint import save_model

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None
    or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file(),
    reason="needs fluidsynth and fluid-soundfont-gm",
)
SOURCES = ["soprano", "alto", "tenor", "bass"]


def test_evaluate_root_keeps_the_conditions_metrics_files_apart(tmp_path, monkeypatch):
    """``evaluate --root`` writes the file of the condition the root belongs to, and a
    ``_<folder name>`` file for any other data set, never over the two conditions' files."""
    from separation.satb import root_suffix

    monkeypatch.chdir(tmp_path)
    cfg = {"data": {"root": "data/chorales_perf"}}
    unseen = "data/chorales_perf_unseen"
    assert root_suffix("data/chorales_perf", cfg, unseen) == ""
    assert root_suffix(str(tmp_path / "data/chorales_perf/"), cfg, unseen) == ""
    assert root_suffix("./data/chorales_perf_unseen", cfg, unseen) == "_unseen"
    assert root_suffix("data/chorales_bach10", cfg, unseen) == "_chorales_bach10"
    assert root_suffix("data/x/unseen", cfg, unseen) == "_unseen_root"  # not the condition's
    assert root_suffix("data/chorales_bach10", {}, None) == "_chorales_bach10"


def test_evaluate_writes_each_root_to_its_own_metrics_file(tmp_path, monkeypatch):
    """The stage passes those names to the evaluator: the two conditions without ``--root``,
    a suffixed file with it, ``--out`` as given; a config whose ``unseen:`` group has no root
    still scores a ``--root``."""
    import separation.evaluate
    import separation.hub

    calls = []
    fake = SimpleNamespace(origin={"kind": "file"})  # a separator loaded from no path
    monkeypatch.setattr(separation.hub, "load_separator", lambda *a, **k: fake)
    monkeypatch.setattr(separation.evaluate, "evaluate",
                        lambda sep, root, **kw: calls.append((str(root), kw["out"])))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for root in ("d/in", "d/unseen_font"):
        (tmp_path / root / "test").mkdir(parents=True)
    roots = ["--set", "data.root=d/in", "--set", "unseen.root=d/unseen_font", "--quiet"]
    assert main(["evaluate", *roots]) == 0
    assert calls == [("d/in", "out/evaluate/satb_test.json"),
                     ("d/unseen_font", "out/evaluate/satb_test_unseen.json")]  # fmt: skip
    calls.clear()
    for root in ("d/in", "d/unseen_font", "d/bach10"):
        assert main(["evaluate", *roots, "--root", root]) == 0
    assert [out for _, out in calls] == [
        "out/evaluate/satb_test.json", "out/evaluate/satb_test_unseen.json",
        "out/evaluate/satb_test_bach10.json"]  # fmt: skip
    calls.clear()
    argv = ["evaluate", "--set", "unseen.root=null", "--quiet", "--root", "d/bach10"]
    assert main([*argv, "--out", "m.json"]) == 0 and main(argv) == 0
    assert [out for _, out in calls] == ["m.json", "out/evaluate/satb_test_bach10.json"]
    # --out never replaces the model scored, nor a run's checkpoints or config
    calls.clear()
    (tmp_path / "model.pt").write_bytes(b"model")
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    (tmp_path / "r" / "config.yml").write_text("data: {root: d/in}\n")
    (tmp_path / "r" / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    for source, out in ((["--model", "model.pt"], "model.pt"),
                        (["--run", "r"], "r/checkpoints/best.ckpt"),
                        (["--run", "r"], "r/config.yml")):  # fmt: skip
        assert main([*argv, *source, "--out", out]) == 1
    assert calls == [] and (tmp_path / "model.pt").read_bytes() == b"model"
    assert (tmp_path / "r" / "checkpoints" / "best.ckpt").read_bytes() == b"weights"
    # a model named, not given as a path, is protected through the file it was loaded from
    shipped = SimpleNamespace(origin={"kind": "shipped", "path": str(tmp_path / "model.pt")})
    monkeypatch.setattr(separation.hub, "load_separator", lambda *a, **k: shipped)
    assert main([*argv, "--model", "satb", "--out", "model.pt"]) == 1 and calls == []
    # without --out a run's own condition writes its usual metrics file
    assert main(["evaluate", "--quiet", "--run", "r", "--root", "d/in"]) == 0
    assert calls == [("d/in", "r/metrics_test.json")]


def test_usage_and_input_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--resume"]) == 1
    assert capsys.readouterr().err.strip() == "error: --resume needs --run <run folder>"
    assert main(["evaluate", "--model", str(tmp_path / "missing.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing.pt" in err[0]
    assert main(["no-such-stage"]) == 2
    assert main(["train", "--set", "train.no_such_key=1", "--run", str(tmp_path / "r")]) == 1
    assert "unknown key" in capsys.readouterr().err


@needs_fluidsynth
def test_demo_renders_separates_and_scores(tmp_path, capsys):
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("# test list\nbach/bwv255\n")
    model = build("htdemucs", SOURCES, 8000, 1, channels=8, depth=2, t_layers=1, segment=2.0)
    meta = {"sources": SOURCES, "sample_rate": 8000, "audio_channels": 1, "segment": 2.0}
    kwargs = {"sources": SOURCES, "sample_rate": 8000, "audio_channels": 1, "channels": 8,
              "depth": 2, "t_layers": 1, "segment": 2.0}  # fmt: skip
    model_file = save_model(tmp_path / "m.pt", "separation.models:htdemucs", kwargs,
                            model.state_dict(), meta)  # fmt: skip
    out = tmp_path / "demo"
    argv = ["demo", "--quiet", "--out", str(out), "--model", str(model_file)]
    argv += ["--pieces", "bach/bwv255", "--set", f"heldout={heldout}", "--set", "max_seconds=4"]
    argv += ["--set", "sample_rate=8000", "--set", f"cache_dir={tmp_path / 'cache'}"]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "SI-SDR" in printed and "median over 1 s frames" in printed
    assert "in-domain" in printed and "unseen sound font" in printed and "IRM SI-SDR" in printed
    for key, font in (("in_domain", "fluidr3"), ("unseen", "csound")):
        track = out / key / "data" / "test" / "bwv255__r0"
        written = sorted(p.name for p in (out / key / "separated" / "bwv255__r0").glob("*.wav"))
        assert written == sorted(f"{s}.wav" for s in SOURCES)
        assert (track / "mixture.wav").is_file()
        assert (out / key / "inputs" / "bwv255__r0.wav").is_file()
        meta = json.loads((track / "meta.json").read_text())
        assert (font == "csound") == (set(meta["soundfonts"].values()) == {"csound"})
        metrics = json.loads((out / key / "metrics.json").read_text())
        assert set(metrics["sources"]) == set(SOURCES) and metrics["n_tracks"] == 1
        assert {"SDR", "SIR", "SAR", "SI-SDR", "SI-SDRi"} <= set(metrics["mean"])
        # the oracle mask is a ceiling an untrained model does not reach
        assert metrics["oracle"]["mean"]["SI-SDR"] > metrics["mean"]["SI-SDR"] + 5


@needs_fluidsynth
def test_prepare_unseen_overlay_yields_to_options_and_set(tmp_path):
    """--unseen renders with the unseen: group's sound font; --root, --renditions, --splits
    and --set still win over the overlay."""
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("bach/bwv255\n")
    root = tmp_path / "u"
    argv = ["prepare", "--unseen", "--quiet", "--root", str(root), "--pieces", "bach/bwv255",
            "--renditions", "1", "--splits", "test", "--set", f"heldout={heldout}",
            "--set", "max_seconds=3", "--set", "sample_rate=8000",
            "--set", f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    assert main(argv) == 0
    meta = json.loads((root / "test" / "bwv255__r0" / "meta.json").read_text())
    assert set(meta["soundfonts"].values()) == {"csound"}
    assert meta["sample_rate"] == 8000 and not (root / "test" / "bwv255__r1").exists()


@pytest.mark.slow
@needs_fluidsynth
def test_quick_profile_end_to_end(tmp_path):
    root = tmp_path / "data"
    run = tmp_path / "run"
    common = ["--quick", "--quiet"]
    assert main(["prepare", *common, "--root", str(root)]) == 0
    assert main(["train", *common, "--root", str(root), "--run", str(run)]) == 0
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "config.yml").is_file()
    assert main(["evaluate", *common, "--run", str(run), "--root", str(root),
                 "--split", "valid", "--no-bsseval"]) == 0  # fmt: skip
    assert main(["export", *common, "--run", str(run)]) == 0
    assert (run / "satb.pt").is_file()


def test_former_train_key_names_in_files_and_overrides(tmp_path):
    """A config (or a run folder saved before the spine) with ``max_epochs``/``clip_grad`` and
    ``--set train.max_epochs=...`` still train and resume; the saved config has today's names."""
    from tests.separation.conftest import tiny_config, write_stems

    root = write_stems(tmp_path / "stems", {"train": 2, "valid": 1})
    cfg = tiny_config(root, samples_per_epoch=8, threads=1)
    cfg["train"].pop("epochs")
    cfg["train"].update(max_epochs=5, clip_grad=1.0)
    (tmp_path / "old.yml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    argv = ["train", "--config", str(tmp_path / "old.yml"), "--run", str(run), "--quiet"]
    assert main([*argv, "--set", "train.max_epochs=1"]) == 0
    saved = yaml.safe_load((run / "config.yml").read_text())["train"]
    assert saved["epochs"] == 1 and saved["grad_clip"] == 1.0 and "max_epochs" not in saved
    assert main(["train", "--resume", "--run", str(run), "--set", "train.max_epochs=2",
                 "--quiet"]) == 0  # fmt: skip
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1  # the second epoch (0-based) ran after the resume
