"""``wb transcribe`` in-process: outputs, the pYIN and model paths, --separate, --report,
and refusals (existing outputs, name collisions, a missing model)."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from music.transcription import stages
from music.transcription.model import Transcriber
from music.transcription.report import MARKER
from music.transcription.train import CLASS_REF
from wb.checkpoint import save_model
from wb.cli import main

TINY = dict(d_model=32, ff=64, n_heads=2, encoder_layers=1, decoder_layers=1,
            conv_channels=(4, 4, 4), window=2.0, max_tokens=32)  # fmt: skip
NOTES = ((0.2, 0.7, 57), (0.8, 1.4, 62), (1.5, 2.1, 60))


def sung(path, sr=22050, notes=NOTES):
    """A harmonic tone sequence (a crude sung line) written to ``path``."""
    t = np.arange(int(sr * (notes[-1][1] + 0.3))) / sr
    x = np.zeros_like(t)
    for on, off, p in notes:
        f = 440 * 2 ** ((p - 69) / 12)
        env = np.clip(np.minimum(t - on, off - t) / 0.02, 0, 1)
        x += env * sum(np.sin(2 * np.pi * k * f * t) / k for k in (1, 2, 3))
    sf.write(path, (0.3 * x).astype(np.float32), sr)
    return str(path)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = Transcriber(**TINY)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, CLASS_REF, TINY, model.state_dict(), {"window": 2.0})
    return str(path)


def run(capsys, *argv):
    code = main(["--quiet", "transcribe", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_pyin_writes_midi_and_csv_with_the_sung_notes(tmp_path, capsys):
    src = sung(tmp_path / "line.wav")
    code, _, err = run(capsys, src, "--out", str(tmp_path / "out"), "--model", "pyin", "--plot")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [MARKER, "line.csv", "line.mid", "line.png"]
    csv = (tmp_path / "out" / "line.csv").read_text().splitlines()
    assert csv[0] == "onset_s,offset_s,midi_pitch,velocity"
    rows = np.array([[float(v) for v in line.split(",")] for line in csv[1:]])
    assert rows[:, 2].tolist() == [57, 62, 60]
    np.testing.assert_allclose(rows[:, 0], [n[0] for n in NOTES], atol=0.05)
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "out" / "line.mid"))
    assert [n.pitch for n in pm.instruments[0].notes] == [57, 62, 60]


def test_model_file_path_and_report(tmp_path, capsys, model_file):
    a, b = sung(tmp_path / "a.wav"), sung(tmp_path / "b.flac", sr=16000)
    out = tmp_path / "out"
    code, _, err = run(capsys, a, b, "--out", str(out), "--model", model_file, "--report")
    assert code == 0, err
    for name in ("a", "b"):
        for ext in (".mid", ".csv", ".png", ".synth.wav"):
            assert (out / f"{name}{ext}").is_file()
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["inputs"]) == {"a", "b"}
    html = (out / "report.html").read_text()
    assert "Transcription: out" in html and "transcription (FluidSynth)" in html
    assert main(["--quiet", "report", str(out)]) == 0  # wb report knows the folder


def test_refuses_existing_outputs_and_collisions(tmp_path, capsys):
    src = sung(tmp_path / "line.wav")
    out = tmp_path / "out"
    assert run(capsys, src, "--out", str(out), "--model", "pyin")[0] == 0
    before = (out / "line.csv").read_bytes()
    code, _, err = run(capsys, src, "--out", str(out), "--model", "pyin")
    assert code == 1 and "exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "line.csv").read_bytes() == before
    assert run(capsys, src, "--out", str(out), "--model", "pyin", "--overwrite")[0] == 0
    # a folder where an output file goes: refused before any file is replaced
    (out / "line.csv").write_text("the earlier csv")
    (out / "line.mid").unlink()
    (out / "line.mid").mkdir()
    code, _, err = run(capsys, src, "--out", str(out), "--model", "pyin", "--overwrite")
    assert code == 1 and "is a folder" in err and len(err.strip().splitlines()) == 1
    assert (out / "line.csv").read_text() == "the earlier csv"
    (tmp_path / "sub").mkdir()
    other = sung(tmp_path / "sub" / "line.flac")
    code, _, err = run(capsys, src, other, "--out", str(tmp_path / "o2"), "--model", "pyin")
    assert code == 1 and "would both write line.mid" in err
    assert not (tmp_path / "o2").exists()


def test_missing_models_are_one_line_errors(tmp_path, capsys, monkeypatch):
    src = sung(tmp_path / "line.wav")
    monkeypatch.setattr(stages, "SHIPPED", tmp_path / "nothing.pt")
    code, _, err = run(capsys, src, "--out", str(tmp_path / "out"))
    assert code == 1 and "shipped voice2midi model is not installed" in err
    code, _, err = run(capsys, src, "--out", str(tmp_path / "out"), "--model", "x/none.pt")
    assert code == 1 and "no such model file" in err
    assert not (tmp_path / "out").exists()


def test_separate_writes_one_track_per_voice(tmp_path, capsys):
    sr = 16000
    t = np.arange(int(sr * 2.0)) / sr
    chord = sum(np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in (72, 67, 60, 48))
    sf.write(tmp_path / "chorale.wav", (0.2 * chord).astype(np.float32), sr)
    out = tmp_path / "out"
    code, _, err = run(capsys, str(tmp_path / "chorale.wav"), "--out", str(out), "--model",
                       "pyin", "--separate")  # fmt: skip
    assert code == 0, err
    pm = pretty_midi.PrettyMIDI(str(out / "chorale.mid"))
    assert [i.name for i in pm.instruments] == ["soprano", "alto", "tenor", "bass"]
    for voice in ("soprano", "alto", "tenor", "bass"):
        lines = (out / f"chorale.{voice}.csv").read_text().splitlines()
        assert lines[0].startswith("onset_s")


def test_missing_input_silent_input_and_collisions_with_inputs(tmp_path, capsys):
    code, _, err = run(capsys, str(tmp_path / "nope.wav"), "--out", str(tmp_path / "out"),
                       "--model", "pyin")  # fmt: skip
    assert code == 1 and "nope.wav" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, dtype=np.float32), 16000)
    code, _, err = run(capsys, str(tmp_path / "quiet.wav"), "--out", str(tmp_path / "out"),
                       "--model", "pyin")  # fmt: skip
    assert code == 0, err
    assert (
        tmp_path / "out" / "quiet.csv"
    ).read_text().strip() == "onset_s,offset_s,midi_pitch,velocity"
    a = sung(tmp_path / "a.wav")
    b = sung(tmp_path / "a.synth.wav")  # what --report would write for a.wav
    before = (tmp_path / "a.synth.wav").read_bytes()
    code, _, err = run(capsys, a, b, "--out", str(tmp_path), "--model", "pyin", "--report",
                       "--overwrite")  # fmt: skip
    assert code == 1 and "would overwrite an input" in err
    assert (tmp_path / "a.synth.wav").read_bytes() == before
    assert not (tmp_path / "a.mid").exists()


def test_report_in_a_separated_track_folder_is_the_transcription_page(tmp_path, capsys):
    folder = tmp_path / "separated" / "song"
    folder.mkdir(parents=True)
    (folder / ".wb-separate.json").write_text(json.dumps({"files": [], "input": "x"}))
    src = sung(folder / "soprano.wav")
    code, _, err = run(capsys, src, "--out", str(folder), "--model", "pyin", "--report")
    assert code == 0, err
    assert "Transcription: song" in (folder / "report.html").read_text()


def test_shipped_model_is_checked_against_its_manifest(tmp_path, capsys, model_file, monkeypatch):
    dest = stages.install(model_file, tmp_path / "pretrained" / "voice2midi.pt")
    assert stages.shipped_model(dest) == dest
    monkeypatch.setattr(stages, "SHIPPED", dest)
    src = sung(tmp_path / "line.wav")
    assert run(capsys, src, "--out", str(tmp_path / "ok"))[0] == 0
    data = bytearray(dest.read_bytes())
    data[-10] ^= 0xFF
    dest.write_bytes(bytes(data))
    code, _, err = run(capsys, src, "--out", str(tmp_path / "bad"))
    assert code == 1 and "SHA-256 differs" in err
    assert not (tmp_path / "bad").exists()


def test_decoder_choice(tmp_path, capsys, model_file, monkeypatch):
    src = sung(tmp_path / "line.wav")
    code, _, err = run(capsys, src, "--out", str(tmp_path / "a"), "--model", model_file,
                       "--decoder", "frames")  # fmt: skip
    assert code == 0 and "frames decoder" in err
    code, _, err = run(capsys, src, "--out", str(tmp_path / "b"), "--model", "pyin",
                       "--decoder", "frames")  # fmt: skip
    assert code == 1 and "--decoder and --beam apply to a model file" in err
    calls = []
    search = Transcriber.beam_search

    def spy(self, memory, beam=4, **kw):
        calls.append((beam, kw.get("length_penalty")))
        return search(self, memory, beam, **kw)

    monkeypatch.setattr(Transcriber, "beam_search", spy)
    frames_model = tmp_path / "frames.pt"  # a model file whose recorded decoder is frames
    save_model(frames_model, CLASS_REF, TINY, Transcriber(**TINY).state_dict(),
               {"window": 2.0, "decoder": "frames"})  # fmt: skip
    code, _, err = run(capsys, src, "--out", str(tmp_path / "c"), "--model", str(frames_model),
                       "--beam", "3")  # fmt: skip
    assert code == 0 and "seq2seq decoder, beam 3, length penalty 1" in err  # implies seq2seq
    assert calls and set(calls) == {(3, 1.0)}  # the penalty the recipe's evaluate scored
    calls.clear()
    code, _, err = run(capsys, src, "--out", str(tmp_path / "c2"), "--model", model_file,
                       "--beam", "2", "--length-penalty", "0.5")  # fmt: skip
    assert code == 0 and calls and set(calls) == {(2, 0.5)}
    assert (tmp_path / "c" / "line.mid").is_file()
    code, _, err = run(capsys, src, "--out", str(tmp_path / "d"), "--model", model_file,
                       "--decoder", "frames", "--beam", "2")  # fmt: skip
    assert code == 1 and "drop --decoder frames" in err and "Traceback" not in err
    code, _, err = run(capsys, src, "--out", str(tmp_path / "d"), "--model", model_file,
                       "--beam", "0")  # fmt: skip
    assert code == 2 and "--beam" in err and "Traceback" not in err
    code, _, err = run(capsys, src, "--out", str(tmp_path / "d"), "--model", model_file,
                       "--beam", "2", "--length-penalty", "-1")  # fmt: skip
    assert code == 2 and "--length-penalty" in err and "Traceback" not in err
    for extra in (("--model", model_file), ("--model", "pyin")):  # no beam: nothing to penalise
        code, _, err = run(capsys, src, "--out", str(tmp_path / "d"), *extra,
                           "--length-penalty", "0.5")  # fmt: skip
        assert code == 1 and "--length-penalty applies to the beam search" in err
    assert not (tmp_path / "d").exists()
