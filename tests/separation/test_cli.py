"""`wb separate` in-process: files, formats, partial failures, atomicity, usage errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from separation import models
from separation.files import MARKER
from wb import audio
from wb.checkpoint import save_model
from wb.cli import main


def _write(path, sr, channels, seconds=1.3):
    rng = np.random.default_rng(0)
    sf.write(
        path, (0.1 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32), sr
    )
    return str(path)


def _run(capsys, *argv):
    code = main(["--quiet", "separate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _tree(folder, marker=False):
    """Paths under ``folder``; wb's marker files only with ``marker=True``."""
    paths = (p for p in folder.rglob("*") if marker or p.name != MARKER)
    return sorted(str(p.relative_to(folder)) for p in paths)


def test_writes_stems_in_input_format(tmp_path, capsys, model_file):
    a = _write(tmp_path / "song.wav", 44100, 2)
    b = _write(tmp_path / "voice.flac", 22050, 1)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, a, b, "--model", model_file, "--out", str(out))
    assert code == 0, err
    assert _tree(out) == [
        "song", "song/noise.wav", "song/tone.wav", "voice", "voice/noise.wav", "voice/tone.wav",
    ]  # fmt: skip
    for name, sr, ch, frames in (
        ("song", 44100, 2, int(44100 * 1.3)),
        ("voice", 22050, 1, int(22050 * 1.3)),
    ):
        for stem in ("tone", "noise"):
            info = audio.info(out / name / f"{stem}.wav")
            assert (info.sample_rate, info.channels, info.frames) == (sr, ch, frames)
    assert "song.wav ->" in stdout


def test_selected_stems_and_subtype(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    out = tmp_path / "out"
    code, _, err = _run(
        capsys, a, "--model", model_file, "--out", str(out), "--stems", "noise",
        "--bit-depth", "32f", "--segment", "0.25", "--overlap", "0.5",
    )  # fmt: skip
    assert code == 0, err
    assert _tree(out) == ["x", "x/noise.wav"]
    assert sf.info(str(out / "x" / "noise.wav")).subtype == "FLOAT"


def test_unknown_stem_is_usage_error(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    code, _, err = _run(
        capsys, a, "--model", model_file, "--stems", "bass", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "bass" in err and "tone, noise" in err
    assert not (tmp_path / "o").exists()


def test_bad_file_among_good_ones(tmp_path, capsys, model_file):
    good1 = _write(tmp_path / "one.wav", 8000, 1)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    good2 = _write(tmp_path / "two.wav", 16000, 2)
    out = tmp_path / "out"
    code, _, err = _run(capsys, good1, str(bad), good2, "--model", model_file, "--out", str(out))
    assert code == 1
    assert err.count("error:") == 1 and "bad.wav" in err and "Traceback" not in err
    assert _tree(out) == [
        "one", "one/noise.wav", "one/tone.wav", "two", "two/noise.wav", "two/tone.wav",
    ]  # fmt: skip


def test_write_failure_mid_track_leaves_nothing(tmp_path, capsys, model_file, monkeypatch):
    a = _write(tmp_path / "x.wav", 8000, 1, seconds=25.0)  # three 10 s blocks
    out = tmp_path / "out"
    real_write = sf.SoundFile.write
    calls = []

    def flaky_write(self, data):
        calls.append(len(data))
        if len(calls) == 3:  # the first stem's second block
            raise sf.LibsndfileError(0, "disk full")
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", flaky_write)
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(out))
    assert code == 1 and "could not write the stems" in err and len(calls) == 3
    assert _tree(out) == []  # no partial track folder, no temporary folder


def test_corrupt_samples_found_mid_stream_leave_nothing(tmp_path, capsys, model_file):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(8000 * 25)).astype(np.float32)
    x[-100] = np.nan  # in the last block: the first two are separated and written first
    bad = tmp_path / "bad.wav"
    sf.write(bad, x, 8000, subtype="FLOAT")
    good = _write(tmp_path / "good.wav", 8000, 1)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, str(bad), good, "--model", model_file, "--out", str(out))
    assert code == 1 and err.strip() == f"error: {bad}: contains NaN or Inf samples"
    assert _tree(out) == ["good", "good/noise.wav", "good/tone.wav"]


def test_rerun_replaces_folder_and_never_touches_inputs(tmp_path, capsys, model_file):
    out = tmp_path / "out"
    a = _write(tmp_path / "x.wav", 8000, 1)
    assert _run(capsys, a, "--model", model_file, "--out", str(out))[0] == 0
    marker = [f"x/{MARKER}"]
    assert _tree(out, marker=True) == ["x", *marker, "x/noise.wav", "x/tone.wav"]
    (out / "x" / "tone.wav").write_bytes(b"old")  # an earlier wb output is replaced
    assert _run(capsys, a, "--model", model_file, "--out", str(out))[0] == 0
    assert _tree(out, marker=True) == ["x", *marker, "x/noise.wav", "x/tone.wav"]
    assert sf.info(str(out / "x" / "tone.wav")).frames > 0
    # an input inside the folder that would be replaced is refused, and left intact
    inner = _write(out / "x" / "x.wav", 8000, 1)
    before = (out / "x" / "x.wav").read_bytes()
    code, _, err = _run(capsys, inner, "--model", model_file, "--out", str(out))
    assert code == 1 and "contains the input" in err
    assert (out / "x" / "x.wav").read_bytes() == before


@pytest.mark.parametrize("extra", ["notes.txt", "stale.wav", "sub/", "no-marker"])
def test_never_replaces_a_folder_wb_did_not_write(tmp_path, capsys, model_file, extra):
    # `wb separate data/chorales.wav --out data` must not wipe data/chorales/
    data = tmp_path / "data"
    data.mkdir()
    a = _write(data / "chorales.wav", 8000, 1)
    assert _run(capsys, a, "--model", model_file, "--out", str(data))[0] == 0
    folder = data / "chorales"
    if extra == "no-marker":
        (folder / MARKER).unlink()
    elif extra.endswith("/"):
        (folder / extra).mkdir()
    else:
        (folder / extra).write_text("keep me")
    before = _tree(folder, marker=True)
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(data))
    assert code == 1 and "pick another --out" in err and len(err.strip().splitlines()) == 1
    assert _tree(folder, marker=True) == before and (data / "chorales.wav").is_file()


def test_empty_existing_folder_is_used(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    (tmp_path / "out" / "x").mkdir(parents=True)
    assert _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "out"))[0] == 0
    assert (tmp_path / "out" / "x" / "tone.wav").is_file()


def test_device_and_model_errors(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    if not torch.cuda.is_available():
        code, _, err = _run(capsys, a, "--model", model_file, "--device", "cuda")
        assert code == 1 and "CUDA" in err
    code, _, err = _run(capsys, a, "--model", "no-such-model")
    assert code == 1 and err.startswith("error: unknown model") and err.count("\n") == 1
    code, _, err = _run(capsys, a, "--model", model_file, "--overlap", "1.5")
    assert code == 2


def test_segment_longer_than_htdemucs_training_is_usage_error(tmp_path, capsys):
    kwargs = {"segment": 0.5, "channels": 8, "depth": 2, "nfft": 256, "t_layers": 1}
    model = models.build("htdemucs", ["a", "b"], 8000, 1, **kwargs)
    path = save_model(
        tmp_path / "ht.pt",
        models.class_ref("htdemucs"),
        {"sources": ["a", "b"], "sample_rate": 8000, "audio_channels": 1, **kwargs},
        model.state_dict(),
        meta={"segment": 0.5},
    )
    a = _write(tmp_path / "x.wav", 8000, 1)
    code, _, err = _run(capsys, a, "--model", str(path), "--segment", "2", "--out", str(tmp_path))
    assert code == 2 and "training segment 0.5 s" in err
    code, _, err = _run(capsys, a, "--model", str(path), "--out", str(tmp_path / "o"))
    assert code == 0, err


def test_streamed_files_equal_in_memory_separation_and_clip_loud_stems(tmp_path):
    from separation.files import separate_file
    from separation.inference import separate_audio
    from separation.separator import Separator

    from .conftest import GainModel

    model = GainModel((30.0, 0.5))  # the first stem goes past full scale
    sep = Separator.from_model(model)
    path = _write(tmp_path / "in.wav", 44100, 2, seconds=23.0)  # 3 blocks of 10 s
    x, _ = audio.load(path)
    folder = separate_file(sep, path, tmp_path / "out", ["s0", "s1"], subtype="FLOAT")
    ref = separate_audio(model, x, 44100, quiet=True)
    s0, sr0 = sf.read(folder / "s0.wav", dtype="float32", always_2d=True)
    s1, _ = sf.read(folder / "s1.wav", dtype="float32", always_2d=True)
    assert sr0 == 44100 and s0.shape == s1.shape == (x.shape[1], 2)
    assert np.allclose(s1.T, ref[1].numpy(), atol=1e-6)  # FLOAT: exact, no clipping
    assert np.allclose(s0.T, ref[0].numpy(), atol=1e-6)
    with pytest.warns(UserWarning, match="s0.wav: peak .* exceeds 1.0; clipping"):
        pcm = separate_file(sep, path, tmp_path / "pcm", ["s0"], subtype="PCM_16")
    y, _ = sf.read(pcm / "s0.wav", dtype="int16")
    # our fast float -> PCM_16 conversion gives the integers libsndfile itself writes
    sf.write(tmp_path / "ref.wav", np.clip(s0, -1, 1), 44100, subtype="PCM_16")
    assert np.array_equal(y, sf.read(tmp_path / "ref.wav", dtype="int16")[0])


def test_model_errors_are_reported_as_such(tmp_path, capsys, model_file, monkeypatch):
    from separation.inference import StreamSeparator

    def broken(self, block):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(StreamSeparator, "push", broken)
    a = _write(tmp_path / "x.wav", 8000, 1)
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "out"))
    assert code == 1 and "RuntimeError: CUDA out of memory" in err
    assert "could not write" not in err and _tree(tmp_path / "out") == []


def test_stems_are_full_band_unless_asked_not_to(tmp_path, capsys, model_file):
    """An 8 kHz model on a 44.1 kHz input: the stems carry the input's band above 4 kHz and
    sum to the input there; --no-high-band leaves it out."""
    src = _write(tmp_path / "noise.wav", 44100, 1, seconds=2.0)
    x, _ = sf.read(src, dtype="float64")

    def high(y: np.ndarray) -> float:  # energy above 5 kHz
        spec = np.fft.rfft(y)
        return float(np.sum(np.abs(spec[np.fft.rfftfreq(len(y), 1 / 44100) > 5000]) ** 2))

    for flag, out in (("--high-band", "full"), ("--no-high-band", "low")):
        code, _, err = _run(capsys, src, "--model", model_file, "--out", str(tmp_path / out),
                            flag, "--bit-depth", "32f")  # fmt: skip
        assert code == 0, err
    full = sum(sf.read(tmp_path / "full" / "noise" / f"{s}.wav")[0] for s in ("tone", "noise"))
    low = sum(sf.read(tmp_path / "low" / "noise" / f"{s}.wav")[0] for s in ("tone", "noise"))
    assert high(low) < 1e-4 * high(x)
    assert abs(high(full) / high(x) - 1.0) < 0.01


def test_two_stems_is_the_stem_and_the_sum_of_the_others(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    code, stdout, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "all"),
                             "--bit-depth", "32f")  # fmt: skip
    assert code == 0, err
    code, stdout, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "two"),
                             "--bit-depth", "32f", "--two-stems", "tone")  # fmt: skip
    assert code == 0, err
    assert "(tone, no_tone)" in stdout
    assert _tree(tmp_path / "two") == ["x", "x/no_tone.wav", "x/tone.wav"]
    tone, _ = sf.read(tmp_path / "two" / "x" / "tone.wav")
    rest, _ = sf.read(tmp_path / "two" / "x" / "no_tone.wav")
    np.testing.assert_allclose(tone, sf.read(tmp_path / "all" / "x" / "tone.wav")[0], atol=1e-6)
    np.testing.assert_allclose(rest, sf.read(tmp_path / "all" / "x" / "noise.wav")[0], atol=1e-6)
    code, _, err = _run(capsys, a, "--model", model_file, "--two-stems", "vocals",
                        "--out", str(tmp_path / "bad"))  # fmt: skip
    assert code == 2 and "--two-stems" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("fmt", "depth", "subtype"),
    [("flac", "24", "PCM_24"), ("flac", "16", "PCM_16"), ("mp3", "16", "MPEG_LAYER_III"),
     ("wav", "24", "PCM_24")],
)  # fmt: skip
def test_output_formats(tmp_path, capsys, model_file, fmt, depth, subtype):
    a = _write(tmp_path / "x.wav", 16000, 2, seconds=2.0)
    out = tmp_path / "out"
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(out), "--format", fmt,
                        "--bit-depth", depth)  # fmt: skip
    assert code == 0, err
    info = sf.info(str(out / "x" / f"tone.{fmt}"))
    assert info.subtype == subtype and info.samplerate == 16000 and info.channels == 2
    # mp3 encoders add padding frames; lossless formats keep the length exactly
    assert abs(info.frames - 32000) <= (2500 if fmt == "mp3" else 0)
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(out), "--format", fmt,
                        "--bit-depth", depth)  # fmt: skip
    assert code == 0, err  # a folder of earlier .flac/.mp3 stems is wb's own: replaced


def test_bad_format_and_template_are_usage_errors(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    for args, needle in [
        (["--format", "flac", "--bit-depth", "32f"], "flac files take 16, 24"),
        (["--format", "mp3", "--bit-depth", "24"], "MP3 has no bit depth"),
        (["--filename", "{track}_{stem}.{ext}"], "needs a relative folder"),
        (["--filename", "{track}/{stem}/{foo}.{ext}"], "unknown field"),
        (["--filename", "{track}/mix.{ext}"], "{stem}"),
        (["--filename", "../{track}/{stem}.{ext}"], "relative folder"),
        (["--filename", "{stem}/{track}.{ext}"], "{stem}"),
        (["--two-stems", "tone", "--stems", "noise"], "mutually exclusive"),
    ]:
        code, _, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "o"), *args)
        assert code == 2 and needle in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "o").exists()


def test_filename_template_separates_inputs_of_the_same_name(tmp_path, capsys, model_file):
    ins = []
    for d in ("songA", "songB"):
        (tmp_path / d).mkdir()
        ins.append(_write(tmp_path / d / "mixture.wav", 8000, 1))
    out = tmp_path / "out"
    code, _, err = _run(capsys, *ins, "--model", model_file, "--out", str(out))
    assert code == 1 and "already used by" in err and "{parent}" in err
    code, stdout, err = _run(capsys, *ins, "--model", model_file, "--out", str(tmp_path / "t"),
                             "--filename", "{parent}/{track}/{stem}_{trackext}.{ext}")  # fmt: skip
    assert code == 0, err
    assert _tree(tmp_path / "t") == [
        "songA", "songA/mixture", "songA/mixture/noise_wav.wav", "songA/mixture/tone_wav.wav",
        "songB", "songB/mixture", "songB/mixture/noise_wav.wav", "songB/mixture/tone_wav.wav",
    ]  # fmt: skip


def test_jobs_give_the_same_files(tmp_path, capsys, model_file):
    ins = [_write(tmp_path / f"in{k}.wav", 8000, 1, seconds=1.0 + 0.3 * k) for k in range(3)]
    code, out1, err = _run(capsys, *ins, "--model", model_file, "--out", str(tmp_path / "j1"))
    assert code == 0, err
    code, out2, err = _run(capsys, *ins, "--model", model_file, "--out", str(tmp_path / "j3"),
                           "--jobs", "3")  # fmt: skip
    assert code == 0, err
    assert out2.count(" -> ") == 3
    assert _tree(tmp_path / "j1") == _tree(tmp_path / "j3")
    for rel in _tree(tmp_path / "j1"):
        if rel.endswith(".wav"):
            assert (tmp_path / "j1" / rel).read_bytes() == (tmp_path / "j3" / rel).read_bytes()


def test_shifts_run_and_are_averaged(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "s"),
                        "--shifts", "2", "--bit-depth", "32f")  # fmt: skip
    assert code == 0, err
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "p"),
                        "--bit-depth", "32f")  # fmt: skip
    shifted = sf.read(tmp_path / "s" / "x" / "tone.wav")[0]
    plain = sf.read(tmp_path / "p" / "x" / "tone.wav")[0]
    assert shifted.shape == plain.shape and np.abs(shifted - plain).max() > 1e-5


def test_postfilter_makes_the_stems_sum_to_the_input(tmp_path, capsys, model_file):
    a = _write(tmp_path / "x.wav", 8000, 1)
    x = sf.read(a)[0]
    sums = {}
    for post in ("none", "consistency", "mask:2"):
        code, _, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / post),
                            "--postfilter", post, "--bit-depth", "32f")  # fmt: skip
        assert code == 0, err
        sums[post] = sum(sf.read(tmp_path / post / "x" / f"{s}.wav")[0] for s in ("tone", "noise"))
    assert np.abs(sums["none"] - x).max() > 1e-2  # an untrained model's stems do not add up
    assert np.abs(sums["consistency"] - x).max() < 1e-4
    assert np.abs(sums["mask:2"] - x).max() < 1e-3
    code, _, err = _run(capsys, a, "--model", model_file, "--out", str(tmp_path / "bad"),
                        "--postfilter", "wiener")  # fmt: skip
    assert code == 2 and "postfilter" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
