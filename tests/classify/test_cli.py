"""``wb classify`` end to end on generated audio, in-process through ``wb.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wb.audio import save
from wb.cli import main

SR = 8000
CLASSES = {"low": 300.0, "mid": 900.0, "high": 2000.0}
TINY = [
    "+dataset_options.folds=2",
    "frontend.sample_rate=8000",
    "frontend.n_fft=128",
    "frontend.n_mels=16",
    "data.seconds=0.3",
    "data.eval_crop=sliding",
    "model.cnn.widths=[4]",
    "train.batch_size=4",
    "train.threads=1",
    "augment.gain.p=0.5",
]


def _train_argv(data: Path, out: Path, cache: Path, *sets: str) -> list[str]:
    """``wb classify`` on the fixture folder with the TINY settings and ``--set`` ``sets``."""
    argv = ["classify", "--dataset", "folder", "--data-dir", str(data), "--model", "cnn",
            "--epochs", "1", "--out", str(out), "--set", f"cache_dir={cache}"]  # fmt: skip
    for item in [*TINY, *sets]:
        argv += ["--set", item]
    return argv


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 1-epoch, 2-fold run on a generated ``class/file.wav`` folder."""
    root = tmp_path_factory.mktemp("cls")
    data = root / "data"
    rng = np.random.default_rng(0)
    for name, freq in CLASSES.items():
        for k in range(6):
            n = int(SR * rng.uniform(0.2, 0.5))
            t = np.arange(n) / SR
            wave = 0.4 * np.sin(2 * np.pi * freq * (1 + 0.03 * k) * t)
            save(data / name / f"{name}_{k}.wav", wave + 0.02 * rng.standard_normal(n), SR)
    out = root / "run"
    code = main(_train_argv(data, out, root / "cache"))
    return code, out, data


def test_metrics_json_has_exactly_the_schema(run) -> None:
    code, out, _ = run
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m) == ["dataset", "model", "folds", "mean", "std"]
    assert m["dataset"] == "folder" and m["model"] == "cnn"
    assert isinstance(m["folds"], list) and len(m["folds"]) == 2
    for f in m["folds"]:
        assert list(f) == ["fold", "accuracy", "macro_f1", "n_test"]
        assert isinstance(f["fold"], str) and isinstance(f["n_test"], int)
        assert isinstance(f["accuracy"], float) and isinstance(f["macro_f1"], float)
        assert 0.0 <= f["accuracy"] <= 1.0 and 0.0 <= f["macro_f1"] <= 1.0
    assert sum(f["n_test"] for f in m["folds"]) == 18
    for part in ("mean", "std"):
        assert list(m[part]) == ["accuracy", "macro_f1"]
        assert all(isinstance(v, float) for v in m[part].values())
    accs = [f["accuracy"] for f in m["folds"]]
    assert m["mean"]["accuracy"] == pytest.approx(np.mean(accs))
    assert m["std"]["accuracy"] == pytest.approx(np.std(accs))


def test_run_folder_contents(run) -> None:
    _, out, _ = run
    for name in ("config.yml", "details.json", "model.pt", "confusion_all.png",
                 "confusion_all.csv", "confusion_fold1.png", "confusion_fold2.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    details = json.loads((out / "details.json").read_text())
    fold = details["folds"][0]
    assert set(fold["per_class"]) == set(CLASSES)
    assert {"precision", "recall", "f1", "support"} <= set(fold["per_class"]["low"])
    assert {"loss_gap", "acc_gap", "train_acc", "val_acc"} <= set(fold["gap_at_best_epoch"])
    assert len(fold["confusion"]) == 3
    cfg = (out / "config.yml").read_text()
    assert "widths:\n    - 4" in cfg or "widths: [4]" in cfg


def test_predict_prints_top_k(run, capsys) -> None:
    _, out, data = run
    wav = data / "mid" / "mid_0.wav"
    long = out.parent / "long.wav"
    t = np.arange(3 * SR) / SR
    save(long, 0.4 * np.sin(2 * np.pi * 300.0 * t), SR)  # longer than the 0.3 s input
    capsys.readouterr()
    code = main(["classify", "predict", str(wav), str(long), "--checkpoint",
                 str(out / "model.pt"), "--top-k", "2"])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0].startswith(str(wav))
    assert "windows" in lines[3]  # the long file is cut into sliding windows
    probs = []
    for line in (lines[1], lines[2]):
        rank, name, p = line.split()
        assert rank in ("1.", "2.") and name in CLASSES
        probs.append(float(p))
    assert probs[0] >= probs[1] and 0.0 <= probs[1] <= 1.0


@pytest.mark.parametrize(
    "argv,code,needle",
    [
        (["classify", "--dataset", "nope"], 1, "unknown dataset"),
        (["classify"], 2, "missing --dataset"),
        (["classify", "--dataset", "folder", "--set", "train.bogus=1"], 1, "unknown key"),
        (["classify", "predict", "x.wav", "--checkpoint", "missing.pt"], 1, "no such model"),
        (["classify", "--dataset", "folder", "--model", "resnet"], 2, "resnet"),
    ],
)
def test_bad_input_gives_one_error_line(argv, code, needle, capsys, tmp_path) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0]


def test_bad_fold_and_data_dir(run, capsys) -> None:
    _, out, data = run
    argv = ["classify", "--dataset", "folder", "--data-dir", str(data), "--folds", "7",
            "--out", str(out.parent / "x"), "--set", "+dataset_options.folds=2"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown fold" in err[0]
    missing = ["classify", "--dataset", "folder", "--data-dir", str(Path(out) / "nothing")]
    assert main(missing) == 1
    assert capsys.readouterr().err.startswith("error:")


def test_table_and_recipe_entry_point(run, capsys) -> None:
    from classify.recipe import stages
    from wb.recipe import run_recipe

    def recipe_main(dataset: str, argv: list[str]) -> int:
        return run_recipe(f"python -m recipes.{dataset}", "conf.yml", stages(dataset), argv)

    _, out, _ = run
    capsys.readouterr()
    assert recipe_main("fsdd", ["table", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | dataset | protocol | model")
    assert lines[2].startswith(f"| {out.resolve().name} | folder | folds | cnn |")
    assert recipe_main("fsdd", ["fly"]) == 2
    assert "No such command 'fly'" in capsys.readouterr().err
    assert recipe_main("fsdd", ["table", "--help"]) == 0  # reaches wb classify table
    assert "--per-fold" in capsys.readouterr().out


def test_per_fold_table(run, capsys) -> None:
    _, out, _ = run
    m = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["classify", "table", "--per-fold", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [f["fold"] for f in m["folds"]]
    assert lines[0] == "| run | " + " | ".join(names) + " | mean |"
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[0] == out.resolve().name
    assert [float(c) for c in cells[1:-1]] == [round(100 * f["accuracy"], 1) for f in m["folds"]]
    assert float(cells[-1]) == round(100 * m["mean"]["accuracy"], 2)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_failed_fresh_run_leaves_no_folder_behind(run, capsys, tmp_path) -> None:
    """A setting that fails once the data opens (an ``extra_train`` folder that is not there)
    creates no run folder, so the corrected command runs in the same ``--out``."""
    _, out, data = run
    fresh = tmp_path / "fresh"
    argv = _train_argv(data, fresh, out.parent / "cache", f"extra_train={tmp_path / 'nothing'}")
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert err.count("error:") == 1 and last.startswith("error: extra_train")
    assert not fresh.exists()


def test_synth_speech_refuses_an_unsupported_rate(tmp_path, capsys) -> None:
    out = tmp_path / "ss"
    assert main(["classify", "synth-speech", "--out", str(out), "--per-class", "1",
                 "--sample-rate", "1"]) == 1  # fmt: skip
    assert "sample rate 1 Hz is outside" in capsys.readouterr().err
    assert not out.exists()


def test_finished_runs_are_never_destroyed(run, capsys, tmp_path) -> None:
    """A non-empty --out without --resume is refused; --resume with other settings names the
    keys that differ; ensemble refuses an --out that is one of its inputs. The run folder is
    byte-for-byte intact after each refusal."""
    code, out, data = run
    assert code == 0
    before = _tree(out)
    argv = _train_argv(data, out, out.parent / "cache")
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty; pass --resume" in err
    assert _tree(out) == before
    changed = [*argv, "--resume", "--set", "train.lr=0.5", "--set", "frontend.n_mels=20"]
    assert main(changed) == 1
    err = capsys.readouterr().err
    assert "frontend.n_mels, train.lr differ" in err and err.count("\n") == 1
    assert _tree(out) == before
    assert main(["classify", "ensemble", str(out), str(out), "--out", str(out)]) == 1
    assert "is (inside) the input run" in capsys.readouterr().err
    assert _tree(out) == before
    other = out.parent / "someone-elses"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    assert main(["classify", "ensemble", str(out), str(out), "--out", str(other)]) == 1
    assert "not empty and not an earlier ensemble" in capsys.readouterr().err
    assert (other / "metrics.json").read_text() == "{}"
    # the same settings resume: finished folds are reused, nothing is retrained
    assert main([*argv, "--resume", "--set", "train.threads=2"]) == 0
    after = _tree(out)
    assert after["metrics.json"] == before["metrics.json"]
    assert after["config.yml"] == before["config.yml"]


def test_predictions_and_report(run, capsys) -> None:
    import csv

    from classify.metrics import confusion_matrix

    code, out, data = run
    assert code == 0
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 and {r["path"] for r in rows} == {str(p) for p in data.rglob("*.wav")}
    details = json.loads((out / "details.json").read_text())
    classes = details["classes"]
    cm = confusion_matrix([classes.index(r["label"]) for r in rows],
                          [classes.index(r["predicted"]) for r in rows], len(classes))  # fmt: skip
    assert cm.tolist() == details["pooled"]["confusion"]
    for r in rows:
        assert 0 < float(r["p_label"]) <= float(r["p_predicted"]) <= 1
    html = (out / "report.html").read_text()
    wrong = sum(r["label"] != r["predicted"] for r in rows)
    assert html.count("<audio") == min(8, wrong)
    assert "Confusion matrix" in html and "overfitting %" in html and "Training curves" in html
    for f in json.loads((out / "metrics.json").read_text())["folds"]:
        assert f"<td>{f['fold']}</td><td>{100 * f['accuracy']:.2f} %</td>" in html
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").read_text() == html
    capsys.readouterr()
