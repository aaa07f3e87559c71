"""``python -m recipes.music_separation``: synthetic songs end to end (prepare, train,
evaluate with museval JSON, export), profiles, and the MUSDB18-HQ split on a fixture in the
real layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recipes.music_separation.__main__ import main
from separation.music import musdb_validation_tracks, split_musdb_hq


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    data, run = root / "songs", root / "run"
    common = ["--quick", "-q", "--set", f"data.root={data}"]
    assert main(["prepare", *common]) == 0
    assert main(["train", *common, "--run", str(run)]) == 0
    return data, run, common


def test_synthetic_songs_are_labelled_and_exact_sums(quick):
    data, _, _ = quick
    assert "pipeline test set" in (data / "SYNTHETIC.txt").read_text()
    tracks = sorted((data / "train").iterdir())
    assert len(tracks) == 8 and len(list((data / "test").iterdir())) == 2
    stems = [sf.read(tracks[0] / f"{s}.wav")[0] for s in ("vocals", "drums", "bass", "other")]
    mix, sr = sf.read(tracks[0] / "mixture.wav")
    assert sr == 8000 and np.abs(mix - np.sum(stems, axis=0)).max() < 1e-6
    assert all(np.sqrt(np.mean(x**2)) > 1e-3 for x in stems)  # every stem sounds
    assert json.loads((tracks[0] / "meta.json").read_text())["synthetic"] is True
    # train and test works never overlap
    names = {p.name for p in (data / "train").iterdir()} | {
        p.name for p in (data / "valid").iterdir()
    }
    assert not names & {p.name for p in (data / "test").iterdir()}


def test_evaluate_writes_museval_json_and_the_anchor_table(quick, capsys):
    data, run, common = quick
    assert main(["evaluate", *common, "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| Open-Unmix (Stöter et al. 2019) | 6.32 |" in out
    assert "SYNTHETIC songs: not comparable" in out
    files = sorted((run / "museval" / "test").glob("*.json"))
    assert len(files) == 2
    targets = [t["name"] for t in json.loads(files[0].read_text())["targets"]]
    assert targets == ["vocals", "drums", "bass", "other"]
    metrics = json.loads((run / "metrics_test.json").read_text())
    assert metrics["n_tracks"] == 2 and "SDR" in metrics["sources"]["vocals"]
    assert (run / "report.html").is_file()
    assert main(["export", *common, "--run", str(run)]) == 0
    assert (run / "model.pt").is_file()


def test_vocals_profile_resolves_groups(quick, tmp_path, capsys):
    from separation.music import resolve
    from wb.recipe import StageContext

    data, _, _ = quick
    import recipes.music_separation.__main__ as recipe

    conf = Path(recipe.__file__).with_name("conf.yml")
    ctx = StageContext({}, conf, ("profile=vocals",), quick=True)
    cfg = resolve(ctx)
    assert cfg["model"]["sources"] == ["vocals", "accompaniment"]
    assert cfg["data"]["groups"] == {"accompaniment": ["drums", "bass", "other"]}
    assert "profiles" not in cfg and "musdb" not in cfg
    ctx = StageContext({}, conf, ("profile=karaoke",), quick=True)
    with pytest.raises(Exception, match="profile 'karaoke' unknown"):
        resolve(ctx)


def _hq(root, names, seconds=0.05):
    for name in names:
        d = root / name
        d.mkdir(parents=True)
        for s in ("mixture", "vocals", "drums", "bass", "other"):
            sf.write(d / f"{s}.wav", np.zeros((int(44100 * seconds), 2), np.float32), 44100)


def test_musdb18hq_official_split_as_links(tmp_path):
    valid = musdb_validation_tracks()
    assert len(valid) == 14 and "Actions - One Minute Smile" in valid
    src = tmp_path / "MUSDB18HQ"
    _hq(src / "train", [*valid, "A Classic Education - NightOwl", "ANiMAL - Clinic A"])
    _hq(src / "test", ["Al James - Schoolboy Facination"])
    counts = split_musdb_hq(src, tmp_path / "split")
    assert counts == {"train": 2, "valid": 14, "test": 1}
    link = tmp_path / "split" / "valid" / "Actions - One Minute Smile"
    assert link.is_symlink() and (link / "vocals.wav").is_file()
    assert split_musdb_hq(src, tmp_path / "split") == counts  # idempotent
    (src / "train" / "ANiMAL - Clinic A" / "bass.wav").unlink()
    with pytest.raises(Exception, match="missing bass.wav"):
        split_musdb_hq(src, tmp_path / "split2")


def test_musdb18_stem_mp4_decoded_into_the_split(tmp_path):
    """MUSDB18's ``.stem.mp4`` (5 AAC streams: mixture, drums, bass, other, vocals), written
    here by stempeg, read back through musdb into WAV stems with the official split."""
    import stempeg

    from separation.music import decode_musdb

    rng = np.random.default_rng(0)
    names = {"train": ["Actions - One Minute Smile", "ANiMAL - Clinic A"],
             "test": ["Al James - Schoolboy Facination"]}  # fmt: skip
    for subset, tracks in names.items():
        (tmp_path / "musdb" / subset).mkdir(parents=True)
        for name in tracks:
            x = (rng.standard_normal((5, 22050, 2)) * 0.05).astype(np.float32)
            path = tmp_path / "musdb" / subset / f"{name}.stem.mp4"
            writer = stempeg.StreamsWriter(codec="aac", bitrate=128000)
            stempeg.write_stems(str(path), x, sample_rate=44100, writer=writer)
    counts = decode_musdb(tmp_path / "musdb", tmp_path / "out", quiet=True)
    assert counts == {"train": 1, "valid": 1, "test": 1}
    track = tmp_path / "out" / "valid" / "Actions - One Minute Smile"
    info = sf.info(str(track / "vocals.wav"))
    assert info.samplerate == 44100 and info.channels == 2 and info.frames >= 22050
    assert sorted(p.name for p in track.iterdir()) == [
        "bass.wav", "drums.wav", "mixture.wav", "other.wav", "vocals.wav",
    ]  # fmt: skip


def test_musdb_previews_download_from_a_local_server(tmp_path, monkeypatch, capsys):
    """``prepare --source musdb18 --download``: the archive from 127.0.0.1, refused without
    its SHA-256 (which the error gives), then verified, unpacked and decoded."""
    import hashlib
    import http.server
    import threading
    import zipfile
    from functools import partial

    import stempeg

    import separation.music

    top = tmp_path / "pack" / "MUSDB18-7-STEMS"
    for subset, name in (
        ("train", "ANiMAL - Clinic A"),
        ("test", "Al James - Schoolboy Facination"),
    ):
        (top / subset).mkdir(parents=True)
        x = (np.random.default_rng(1).standard_normal((5, 22050, 2)) * 0.05).astype(np.float32)
        writer = stempeg.StreamsWriter(codec="aac", bitrate=128000)
        stempeg.write_stems(
            str(top / subset / f"{name}.stem.mp4"), x, sample_rate=44100, writer=writer
        )
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "MUSDB18-7-STEMS.zip", "w") as zf:
        for f in sorted(top.rglob("*.mp4")):
            zf.write(f, f.relative_to(tmp_path / "pack").as_posix())
    digest = hashlib.sha256((served / "MUSDB18-7-STEMS.zip").read_bytes()).hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/MUSDB18-7-STEMS.zip"
    monkeypatch.setattr(separation.music, "musdb_preview_url", lambda: url)
    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path / "cache"))
    args = ["prepare", "-q", "--source", "musdb18", "--download", "--musdb", str(tmp_path / "m"),
            "--root", str(tmp_path / "out")]  # fmt: skip
    try:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and digest in err and not (tmp_path / "m").exists()
        assert main([*args, "--sha256", "0" * 64]) == 1
        assert "mismatch" in capsys.readouterr().err.lower()
        assert main([*args, "--sha256", digest]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "{'train': 1, 'test': 1}" in capsys.readouterr().out
    assert (tmp_path / "out" / "test" / "Al James - Schoolboy Facination" / "vocals.wav").is_file()


@pytest.mark.parametrize("arch", ["convtasnet", "hdemucs"])
def test_other_architectures_train(quick, tmp_path, arch):
    data, _, common = quick
    run = tmp_path / arch
    args = ["train", *common, "--run", str(run), "--set", f"arch={arch}", "--set",
            "train.epochs=1", "--set", "train.samples_per_epoch=8"]  # fmt: skip
    assert main(args) == 0
    saved = (run / "config.yml").read_text()
    assert f"name: {arch}" in saved and "architectures" not in saved
