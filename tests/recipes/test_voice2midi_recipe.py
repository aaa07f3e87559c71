"""``python -m recipes.voice2midi``: synthetic lines end to end (prepare, train, export,
evaluate with the side-by-side table), without the real SSVD data (CI has none)."""

from __future__ import annotations

import json

import pytest

from music.transcription.inference import load_transcriber
from music.transcription.model import Transcriber
from recipes.voice2midi.__main__ import main


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("voice2midi")
    data, run = root / "voices", root / "run"
    common = ["--quick", "-q", "--set", f"data.synthetic={data}", "--set", "data.ssvd=null",
              "--set", "data.ssvd_weight=0.0", "--set", "data.jobs=1"]  # fmt: skip
    assert main(["prepare", *common]) == 0
    assert main(["train", *common, "--run", str(run)]) == 0
    return data, run, common


def test_prepare_train_export(quick):
    data, run, common = quick
    assert len(list((data / "train").glob("*.flac"))) == 6
    assert (run / "config.yml").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert main(["export", *common, "--run", str(run)]) == 0
    model, info = load_transcriber(run / "voice2midi.pt")
    assert model.vocab.window == 4.0 and info["meta"]["window"] == 4.0
    assert (run / "voice2midi.pt").stat().st_size < 20 * 2**20
    best = run / "checkpoints" / "best.ckpt"
    before = best.read_bytes()
    argv = ["export", *common, "--run", str(run), "--checkpoint", "last", "--out", str(best)]
    assert main(argv) == 1  # never over the run's own checkpoint
    assert best.read_bytes() == before


def test_evaluate_prints_the_side_by_side_table(quick, capsys, monkeypatch):
    _, run, common = quick
    calls = []
    search = Transcriber.beam_search

    def spy(self, memory, beam=4, **kw):
        calls.append((beam, kw.get("length_penalty")))
        return search(self, memory, beam, **kw)

    monkeypatch.setattr(Transcriber, "beam_search", spy)
    argv = ["evaluate", *common, "--run", str(run), "--sets", "synthetic-test",
            "--systems", "seq2seq,seq2seq-beam,frames,pyin"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "synthetic-test (2 files" in out
    for system in ("seq2seq", "seq2seq-beam", "frames", "pyin"):
        assert any(line.startswith(system) for line in out.splitlines())
    metrics = json.loads((run / "metrics.json").read_text())
    for system in ("seq2seq", "seq2seq-beam", "frames", "pyin"):
        scores = metrics["synthetic-test"]["systems"][system]
        assert scores["files"] == 2
        keys = ("conpoff_f", "conp_f", "con_f", "raw_pitch_accuracy", "raw_chroma_accuracy")
        assert all(0.0 <= scores[k] <= 1.0 for k in keys)
    assert calls and set(calls) == {(4, 1.0)}  # seq2seq-beam: conf.yml's beam and penalty
    assert main(["evaluate", *common, "--run", str(run), "--systems", "nope"]) == 1
    bad = ["--set", "evaluate.beam=0", "--sets", "synthetic-test", "--systems", "seq2seq-beam"]
    assert main(["evaluate", *common, "--run", str(run), *bad]) == 1
    assert "evaluate.beam >= 1" in capsys.readouterr().err
    assert main(["evaluate", *common, "--run", str(run), "--systems", "pyin"]) == 1
    assert "data.ssvd is not set" in capsys.readouterr().err


def test_select_conp_chooses_the_checkpoint_on_note_f1(quick, tmp_path):
    import csv

    import torch

    _, _, common = quick
    run = tmp_path / "run-conp"
    argv = ["train", *common, "--run", str(run), "--set", "train.select=conp",
            "--set", "train.epochs=2"]  # fmt: skip
    assert main(argv) == 0
    with open(next((run / "csv").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    conp = [float(r["val/conp"]) for r in rows if r.get("val/conp")]
    assert len(conp) == 2 and all(0.0 <= c <= 1.0 for c in conp)
    assert {"val/conpoff", "val/con"} <= set(rows[0])
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    chosen = [v for k, v in state["callbacks"].items() if "val/conp" in k]
    assert chosen and float(chosen[0]["best_model_score"]) == pytest.approx(max(conp))
    assert main(["train", *common, "--run", str(tmp_path / "bad"),
                 "--set", "train.select=nope"]) == 1  # fmt: skip


def test_note_metrics_averages_the_frame_heads_f1(monkeypatch):
    import numpy as np

    from music.transcription import inference, train
    from music.transcription.data import Recording

    notes = np.array([[0.0, 0.5, 60.0], [0.6, 1.0, 62.0]])
    recs = [Recording("a", np.zeros(16000, np.float32), notes),
            Recording("b", np.ones(16000, np.float32), notes)]  # fmt: skip
    # the stubbed transcriber: every note right on "a", one wrong pitch on "b"
    answers = {0.0: notes, 1.0: np.array([[0.0, 0.5, 60.0], [0.6, 1.0, 64.0]])}
    monkeypatch.setattr(
        inference, "transcribe_array", lambda model, audio, method: answers[float(audio[0])]
    )
    out = train.note_metrics(None, recs)
    assert out["conp"] == pytest.approx((1.0 + 0.5) / 2)
    assert out["con"] == pytest.approx(1.0)
    with pytest.raises(Exception, match="no recordings"):
        train.note_metrics(None, [])


def test_prepare_names_a_setting_that_is_not_an_integer(tmp_path, capsys):
    root = tmp_path / "voices"
    argv = ["prepare", "-q", "--set", f"data.synthetic={root}", "--set", "data.n_train=abc"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.n_train must be an integer, got 'abc'" in err
    assert not root.exists()
