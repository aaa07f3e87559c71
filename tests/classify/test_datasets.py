"""Dataset adapters: official layouts, protocols, folds, groups, validation splits, registry.

Every adapter is exercised on a tiny fixture written in its official layout; FSDD is also
checked on the real recordings in ../shared/data (skipped when absent).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from classify.datasets import (
    DATASETS,
    Clip,
    ClipDataset,
    DatasetNotFound,
    Split,
    get_dataset,
    straddling_groups,
    stratified_group_kfold,
    train_validation,
    validation_split,
)
from classify.datasets import audiomnist as am
from classify.datasets.coral import parse_name
from wb.errors import ConfigError, WbError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FSDD_REAL = SHARED / "fsdd"
SPLITS_JSON = SHARED / "audiomnist_splits.json"


def _wav(path: Path, seconds: float = 0.02, sr: int = 8000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-0.1, 0.1, int(sr * seconds)).astype(np.float32)
    sf.write(path, x, sr, subtype="PCM_16")
    return path


def _assert_partition(ds: ClipDataset, splits: list[Split], grouped: bool = True) -> None:
    """Every split: disjoint parts covering all clips; groups whole when promised."""
    for s in splits:
        parts = [set(s.train), set(s.test), set(s.validate)]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert set().union(*parts) == set(range(len(ds.clips))), s.name
        if grouped:
            assert not straddling_groups(ds, s), s.name


def _assert_tests_cover_once(ds: ClipDataset, splits: list[Split]) -> None:
    """k-fold protocols: every clip is tested exactly once across the splits."""
    counts = np.zeros(len(ds.clips), dtype=int)
    for s in splits:
        counts[list(s.test)] += 1
    assert (counts == 1).all()


# --------------------------------------------------------------------------------------------
# ESC-50


def _esc50(root: Path, n_classes: int = 4, per_fold: int = 2) -> Path:
    rows = []
    esc10_targets = {0, 2}
    for target in range(n_classes):
        for fold in range(1, 6):
            src = f"{1000 + 10 * target + fold}"  # one Freesound source per class and fold
            for take in range(per_fold):
                name = f"{fold}-{src}-{'AB'[take]}-{target}.wav"
                _wav(root / "audio" / name, seed=len(rows))
                rows.append([name, fold, target, f"class{target:02d}", target in esc10_targets,
                             src, "AB"[take]])  # fmt: skip
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        w.writerows(rows)
    return root


def test_esc50_official_folds(tmp_path):
    root = _esc50(tmp_path / "ESC-50-master")
    ds = get_dataset("esc50", root)
    assert ds.classes == ["class00", "class01", "class02", "class03"]
    assert ds.sample_rate == 44100 and ds.clip_seconds == 5.0 and len(ds) == 40
    splits = ds.splits()
    assert [s.name for s in splits] == [f"fold{k}" for k in range(1, 6)]
    _assert_partition(ds, splits)
    _assert_tests_cover_once(ds, splits)
    for k, s in enumerate(splits, 1):
        assert {ds.clips[i].fold for i in s.test} == {str(k)}
        assert all(ds.clips[i].path.name.startswith(f"{k}-") for i in s.test)
    assert ds.splits("official") == splits
    # data_dir may also be the folder the archive was unzipped into
    assert len(get_dataset("esc50", tmp_path)) == 40


def test_esc50_esc10_subset(tmp_path):
    ds = get_dataset("esc50", _esc50(tmp_path / "esc"), esc10=True)
    assert ds.name == "esc10" and ds.classes == ["class00", "class02"]
    assert sorted(set(ds.labels.tolist())) == [0, 1] and len(ds) == 20
    _assert_partition(ds, ds.splits())


def test_esc50_missing_or_incomplete(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"meta/esc50.csv.*--download"):
        get_dataset("esc50", tmp_path / "nothing")
    root = _esc50(tmp_path / "esc")
    next((root / "audio").iterdir()).unlink()
    with pytest.raises(DatasetNotFound, match="1 of 40 audio files .* missing"):
        get_dataset("esc50", root)


# --------------------------------------------------------------------------------------------
# UrbanSound8K


def _us8k(root: Path) -> Path:
    rows = []
    names = ["air_conditioner", "car_horn", "dog_bark"]
    for fold in range(1, 11):
        for cid, cname in enumerate(names):
            fsid = 100 * fold + cid
            for k in range(2 if cid == 0 else 1):
                name = f"{fsid}-{cid}-0-{k}.wav"
                _wav(root / "audio" / f"fold{fold}" / name, seed=len(rows))
                rows.append([name, fsid, 0.0, 4.0, 1, fold, cid, cname])
    (root / "metadata").mkdir(parents=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID",
                    "class"])  # fmt: skip
        w.writerows(rows)
    return root


def test_urbansound8k_official_folds(tmp_path):
    ds = get_dataset("us8k", _us8k(tmp_path / "UrbanSound8K"))
    assert ds.name == "urbansound8k" and ds.classes == ["air_conditioner", "car_horn", "dog_bark"]
    assert ds.clip_seconds == 4.0 and len(ds) == 40
    splits = ds.splits()
    assert [s.name for s in splits] == [f"fold{k}" for k in range(1, 11)]
    _assert_partition(ds, splits)
    _assert_tests_cover_once(ds, splits)
    for k, s in enumerate(splits, 1):
        assert all(ds.clips[i].path.parent.name == f"fold{k}" for i in s.test)
        assert {ds.clips[i].fold for i in s.test} == {f"fold{k}"}
    assert all(c.group.isdigit() for c in ds.clips)


def test_urbansound8k_missing(tmp_path):
    (tmp_path / "us" / "audio").mkdir(parents=True)
    with pytest.raises(DatasetNotFound, match="metadata/UrbanSound8K.csv"):
        get_dataset("urbansound8k", tmp_path / "us")


# --------------------------------------------------------------------------------------------
# AudioMNIST


def _splits_dict() -> dict:
    if SPLITS_JSON.is_file():
        return json.loads(SPLITS_JSON.read_text())
    # Structure-only stand-in when the shared file is absent: 60 speakers in 5 groups of 12.
    g = [list(range(1 + 12 * k, 13 + 12 * k)) for k in range(5)]
    sub = [[2, 7, 12, 23, 25, 26], [28, 36, 37, 38, 41, 43], [44, 45, 47, 48, 50, 52],
           [53, 56, 57, 58, 59, 60]]  # fmt: skip
    return {
        "digit": {"test": g, "validate": g[-1:] + g[:-1]},
        "gender": {
            "train": [sub[(k + 2) % 4] + sub[(k + 3) % 4] for k in range(4)],
            "validate": [sub[(k + 1) % 4] for k in range(4)],
            "test": [sub[k] for k in range(4)],
        },
    }


FEMALE = {12, 26, 28, 36, 43, 47, 52, 56, 57, 58, 59, 60}


def _audiomnist(root: Path, with_meta: bool = True) -> Path:
    proto = _wav(root / "proto.wav")
    for spk in range(1, 61):
        for digit in (0, 1):
            for take in (0, 1):
                p = root / "data" / f"{spk:02d}" / f"{digit}_{spk:02d}_{take}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(proto, p)
    proto.unlink()
    if with_meta:
        meta = {
            f"{s:02d}": {"gender": "female" if s in FEMALE else "male", "age": "30"}
            for s in range(1, 61)
        }
        (root / "data" / "audioMNIST_meta.txt").write_text(json.dumps(meta, indent=4))
    return root


@pytest.fixture(scope="module")
def audiomnist_root(tmp_path_factory):
    root = _audiomnist(tmp_path_factory.mktemp("am") / "AudioMNIST")
    (root.parent / "splits.json").write_text(json.dumps(_splits_dict()))
    return root


def test_audiomnist_digit_paper_splits(audiomnist_root):
    sj = audiomnist_root.parent / "splits.json"
    ds = get_dataset("audiomnist", audiomnist_root, splits_file=sj)
    ref = _splits_dict()["digit"]
    assert ds.classes == [str(d) for d in range(10)] and len(ds) == 240
    assert ds.sample_rate == 8000 and ds.clip_seconds == 1.0 and ds.protocols == ("digit",)
    splits = ds.splits()
    assert len(splits) == 5
    _assert_partition(ds, splits)
    _assert_tests_cover_once(ds, splits)
    for k, s in enumerate(splits):
        spk = lambda idx: {int(ds.clips[i].group) for i in idx}  # noqa: E731
        assert spk(s.test) == set(ref["test"][k]) and spk(s.validate) == set(ref["validate"][k])
        assert len(spk(s.train)) == 36 and not spk(s.train) & (spk(s.test) | spk(s.validate))
        assert {ds.clips[i].fold for i in s.test} == {str(k + 1)}
        tr, va = train_validation(ds, s)
        assert tr == list(s.train) and va == list(s.validate)


def test_audiomnist_gender_task(audiomnist_root):
    sj = audiomnist_root.parent / "splits.json"
    ds = get_dataset("audiomnist", audiomnist_root, task="gender", splits_file=sj)
    ref = _splits_dict()["gender"]
    speakers = {s for p in ref.values() if isinstance(p, list) for ss in p for s in ss}
    assert ds.classes == ["male", "female"] and len(ds) == 4 * len(speakers) == 96
    for c in ds.clips:
        assert ds.classes[c.label] == ("female" if int(c.group) in FEMALE else "male")
    splits = ds.splits("gender")
    assert len(splits) == 4
    _assert_partition(ds, splits)
    for k, s in enumerate(splits):
        assert {int(ds.clips[i].group) for i in s.test} == set(ref["test"][k])
        assert {int(ds.clips[i].group) for i in s.train} == set(ref["train"][k])
    with pytest.raises(WbError, match="task=gender"):
        get_dataset("audiomnist", audiomnist_root, splits_file=sj).splits("gender")


def test_audiomnist_gender_needs_meta(tmp_path):
    root = _audiomnist(tmp_path / "am", with_meta=False)
    (tmp_path / "s.json").write_text(json.dumps(_splits_dict()))
    with pytest.raises(DatasetNotFound, match="audioMNIST_meta.txt"):
        get_dataset("audiomnist", root, task="gender", splits_file=tmp_path / "s.json")
    with pytest.raises(ConfigError, match="unknown task"):
        get_dataset("audiomnist", root, task="age", splits_file=tmp_path / "s.json")


def test_audiomnist_splits_sources(tmp_path, monkeypatch):
    """Splits come from an explicit file, $WB_AUDIOMNIST_SPLITS, the dataset folder, the shared
    folder, or the repository's own audiomnist/train/splits.py (parsed as data, not run)."""
    ref = _splits_dict()
    lines = []
    for task in ("digit", "gender"):
        parts = [
            f'"{part}": [' + ", ".join(f"set({ss})" for ss in lists) + "]"
            for part, lists in ref[task].items()
            if isinstance(lists, list)
        ]
        lines.append(f'"{task}": {{' + ", ".join(parts) + "}")
    py = tmp_path / "repo" / "audiomnist" / "train" / "splits.py"
    py.parent.mkdir(parents=True)
    py.write_text("import os  # never executed\nsplits={" + ", ".join(lines) + "}\n")
    monkeypatch.setattr(am, "_candidates", lambda root: [root / am.SPLITS_NAME])
    got = am.load_splits(tmp_path / "repo")
    assert got["digit"]["test"] == [sorted(s) for s in ref["digit"]["test"]]
    assert got["gender"]["train"] == [sorted(s) for s in ref["gender"]["train"]]
    # a JSON file in the dataset folder wins over splits.py
    (tmp_path / "repo" / am.SPLITS_NAME).write_text(json.dumps({**ref, "digit": {
        "test": ref["digit"]["validate"], "validate": ref["digit"]["test"]}}))  # fmt: skip
    assert am.load_splits(tmp_path / "repo")["digit"]["test"][0] == sorted(
        ref["digit"]["validate"][0]
    )
    with pytest.raises(WbError, match="splits_file"):
        am.load_splits(tmp_path / "empty")
    with pytest.raises(WbError, match="not found"):
        am.load_splits(tmp_path, tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"digit": {}}')
    with pytest.raises(WbError, match="expected splits"):
        am.load_splits(tmp_path, tmp_path / "bad.json")
    monkeypatch.undo()
    monkeypatch.setenv("WB_AUDIOMNIST_SPLITS", str(tmp_path / "bad.json"))
    assert am._candidates(tmp_path)[0] == tmp_path / "bad.json"


@pytest.mark.skipif(not SPLITS_JSON.is_file(), reason="shared AudioMNIST splits file absent")
def test_audiomnist_finds_shared_splits_by_default(monkeypatch):
    monkeypatch.delenv("WB_AUDIOMNIST_SPLITS", raising=False)
    got = am.load_splits(Path("/nonexistent"))
    assert got["digit"]["test"][0] == sorted(
        json.loads(SPLITS_JSON.read_text())["digit"]["test"][0]
    )


# --------------------------------------------------------------------------------------------
# FSDD


def _fsdd(root: Path) -> Path:
    proto = _wav(root / "proto.wav")
    for spk in ("alice", "bob", "carol"):
        for digit in range(10):
            for take in range(7):
                p = root / "recordings" / f"{digit}_{spk}_{take}.wav"
                p.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(proto, p)
    proto.unlink()
    (root / "recordings" / "README.txt").write_text("not audio")
    return root


def test_fsdd_fixture_protocols(tmp_path):
    ds = get_dataset("fsdd", _fsdd(tmp_path / "fsdd"))
    assert len(ds) == 210 and ds.default_protocol == "official"
    (off,) = ds.splits()
    _assert_partition(ds, [off], grouped=False)
    assert len(off.test) == 3 * 10 * 5
    assert all(int(ds.clips[i].path.stem.split("_")[2]) < 5 for i in off.test)
    loso = ds.splits("loso")
    assert [s.name for s in loso] == ["speaker=alice", "speaker=bob", "speaker=carol"]
    _assert_partition(ds, loso)
    _assert_tests_cover_once(ds, loso)
    with pytest.raises(WbError, match="unknown protocol 'folds'"):
        ds.splits("folds")


@pytest.mark.skipif(not (FSDD_REAL / "recordings").is_dir(), reason="shared FSDD data absent")
def test_fsdd_real_official_and_loso():
    ds = get_dataset("fsdd", FSDD_REAL)
    assert len(ds) == 3000 and ds.sample_rate == 8000
    (off,) = ds.splits("official")
    assert (len(off.test), len(off.train)) == (300, 2700)
    _assert_partition(ds, [off], grouped=False)
    assert ds.class_counts(off.test) == {str(d): 30 for d in range(10)}
    loso = ds.splits("loso")
    assert len(loso) == 6
    assert {s.name for s in loso} == {
        f"speaker={s}" for s in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    }
    _assert_partition(ds, loso)
    _assert_tests_cover_once(ds, loso)
    assert all(len({ds.clips[i].group for i in s.test}) == 1 for s in loso)
    assert all(len(s.test) == 500 for s in loso)


# --------------------------------------------------------------------------------------------
# Coral reef soundscapes


def _coral(root: Path) -> list[str]:
    names = []
    for cls in "HDR":
        for dep in range(4):
            for minute in range(3):
                site, hhmm = f"Ba{'NF'[dep % 2]}{10 + dep}", f"{5 + dep:02d}{30 + dep}"
                if cls == "R":  # newer convention: class letter first
                    n = f"R.{site}.{hhmm}.80532277{dep}.180828.{1 + minute}.{20 + minute}.wav"
                else:  # older convention: class letter after the start time
                    n = f"{site}.{hhmm}{cls}.80532277{dep}.180907.{1 + minute}.{20 + minute}.wav"
                _wav(root / "audio_dir" / n, seed=len(names))
                names.append(n)
    return names


def test_coral_name_conventions():
    assert parse_name("H.BaN12.0529.805322778.180907.1.24.wav") == (
        "healthy", "H.BaN12.0529.805322778.180907")  # fmt: skip
    assert parse_name("BoF5.0940D.1677983769.180831.2.30.wav") == (
        "degraded", "BoF5.0940D.1677983769.180831")  # fmt: skip
    assert parse_name("R.SaF2.0534.805322778.180828.2.24.wav")[0] == "restored"
    assert parse_name("recording_001.wav") is None


def test_coral_grouped_folds(tmp_path):
    root = tmp_path / "unzipped"
    _coral(root / "Reef-acoustics-and-AI")  # the archive's top folder is found
    ds = get_dataset("coral", root, folds=4)
    assert ds.classes == ["healthy", "degraded", "restored"] and len(ds) == 36
    assert ds.sample_rate == 16000 and ds.clip_seconds == 60.0
    assert len(set(ds.groups)) == 12  # deployments, not minutes
    splits = ds.splits()
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3", "fold4"]
    _assert_partition(ds, splits)
    _assert_tests_cover_once(ds, splits)
    for s in splits:  # stratified: one deployment of every class per fold
        assert ds.class_counts(s.test) == {"healthy": 3, "degraded": 3, "restored": 3}
    again = get_dataset("coral", root, folds=4)
    assert [c.fold for c in again.clips] == [c.fold for c in ds.clips]


def test_coral_metadata_csv_and_group_regex(tmp_path):
    names = _coral(tmp_path / "c")
    with open(tmp_path / "c" / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "habitat", "site"])
        for n in names:
            w.writerow([n, "reefA" if n.startswith("R.") else "reefB", n.split(".")[1][:3]])
    ds = get_dataset("coral", tmp_path / "c", folds=2)
    assert ds.classes == ["reefa", "reefb"]
    _assert_partition(ds, ds.splits())
    site = r"^(?:[HDR]\.)?([A-Za-z]+\d+)"
    ds2 = get_dataset("coral", tmp_path / "c", folds=3, group_regex=site)
    assert set(ds2.groups) == {"BaN10", "BaF11", "BaN12", "BaF13"}
    _assert_partition(ds2, ds2.splits())


def test_coral_unparsable_names(tmp_path):
    _wav(tmp_path / "c" / "audio_dir" / "H.BaN12.0529.805322778.180907.1.24.wav")
    _wav(tmp_path / "c" / "audio_dir" / "mystery.wav")
    with pytest.raises(DatasetNotFound, match="mystery.wav.*metadata CSV"):
        get_dataset("coral", tmp_path / "c")
    with pytest.raises(DatasetNotFound, match="audio_dir.*--download"):
        get_dataset("coral", tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# Generic folder


def _folder(root: Path) -> Path:
    k = 0
    for cls, exts in (("cat", (".wav", ".flac")), ("dog", (".wav",)), ("owl", (".ogg",))):
        for spk in ("ann", "ben", "cid", "dee", "eve", "fay"):
            for take in range(2):
                ext = exts[take % len(exts)]
                p = root / cls / f"{spk}_{take}{ext}"
                p.parent.mkdir(parents=True, exist_ok=True)
                x = np.random.default_rng(k).uniform(-0.1, 0.1, 160).astype(np.float32)
                sf.write(p, x, 8000)
                k += 1
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no audio here")
    (root / ".hidden").mkdir()
    _wav(root / ".hidden" / "x.wav")
    return root


def test_folder_stratified_group_kfold(tmp_path):
    root = _folder(tmp_path / "f")
    ds = get_dataset("folder", root, folds=3, group_regex=r"^([a-z]+)_")
    assert ds.classes == ["cat", "dog", "owl"] and len(ds) == 36
    assert set(ds.groups) == {"ann", "ben", "cid", "dee", "eve", "fay"}
    splits = ds.splits()
    assert len(splits) == 3
    _assert_partition(ds, splits)
    _assert_tests_cover_once(ds, splits)
    for s in splits:
        assert all(v > 0 for v in ds.class_counts(s.test).values())
    # default: each file its own group, still stratified and deterministic
    d1, d2 = get_dataset("folder", root), get_dataset("folder", root)
    assert len(set(d1.groups)) == 36 and [c.fold for c in d1.clips] == [c.fold for c in d2.clips]
    assert all(v == 2 or v == 3 for s in d1.splits() for v in d1.class_counts(s.test).values())
    ds_seed = get_dataset("folder", root, seed=1)
    assert [c.fold for c in ds_seed.clips] != [c.fold for c in d1.clips]


def test_folder_errors(tmp_path):
    root = _folder(tmp_path / "f")
    with pytest.raises(ConfigError, match="does not match"):
        get_dataset("folder", root, group_regex=r"^zzz")
    with pytest.raises(ConfigError, match="invalid"):
        get_dataset("folder", root, group_regex=r"([")
    with pytest.raises(WbError, match="only 6 groups"):
        get_dataset("folder", root, folds=7, group_regex=r"^([a-z]+)_")
    (tmp_path / "one" / "a").mkdir(parents=True)
    _wav(tmp_path / "one" / "a" / "x.wav")
    with pytest.raises(DatasetNotFound, match="at least 2 class"):
        get_dataset("folder", tmp_path / "one")
    with pytest.raises(ConfigError, match="needs a data_dir"):
        get_dataset("folder")


# --------------------------------------------------------------------------------------------
# Registry, options, shared helpers


def test_registry_and_options(tmp_path, monkeypatch):
    assert set(DATASETS) == {
        "esc50", "urbansound8k", "audiomnist", "fsdd", "coral", "gtzan", "fma_small", "folder",
    }  # fmt: skip
    with pytest.raises(WbError, match=r"unknown dataset 'mtat' \(known: esc50, urbansound8k"):
        get_dataset("mtat")
    root = _fsdd(tmp_path / "fsdd")
    with pytest.raises(ConfigError, match="unknown option.*esc10.*accepted"):
        get_dataset("fsdd", root, esc10=True)
    ds = get_dataset("FSDD", root, sample_rate=16000, clip_seconds=0.75)
    assert (ds.sample_rate, ds.clip_seconds) == (16000, 0.75)
    monkeypatch.setenv("WB_DATA_DIR", str(tmp_path / "dataroot"))
    with pytest.raises(DatasetNotFound, match=str(tmp_path / "dataroot" / "fsdd")):
        get_dataset("fsdd")


def test_download_true_fetches_and_extracts(tmp_path, monkeypatch):
    """get_dataset(download=True) with a file:// mirror of the official archive layout."""
    monkeypatch.setenv("WB_CACHE_DIR", str(tmp_path / "cache"))
    src = _fsdd(tmp_path / "src" / "free-spoken-digit-dataset-abc")
    archive = tmp_path / "fsdd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src.parent).as_posix())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "data" / "fsdd"
    with pytest.raises(WbError, match="checksum mismatch"):
        get_dataset("fsdd", dest, download=True, url=archive.as_uri(), sha256="0" * 64)
    assert not dest.exists()
    ds = get_dataset("fsdd", dest, download=True, url=archive.as_uri(), sha256=digest)
    assert len(ds) == 210 and (dest / "recordings").is_dir()
    assert not list((tmp_path / "cache" / "downloads" / "fsdd").iterdir())  # archive removed
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["fsdd"]
    # already there: no download needed even with download=True and a bogus URL
    assert len(get_dataset("fsdd", dest, download=True, url="http://127.0.0.1:9/x.zip")) == 210


def test_hand_built_dataset_uses_fold_tags():
    clips = [Clip(Path(f"{i}.wav"), i % 2, str(1 + i % 3), f"g{i // 2}") for i in range(12)]
    ds = ClipDataset("toy", ["a", "b"], clips, 16000, 1.0)
    assert ds.protocols == ("folds",)
    splits = ds.splits()
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3"]
    _assert_partition(ds, splits, grouped=False)
    with pytest.raises(WbError, match="label 5 outside"):
        ClipDataset("bad", ["a"], [Clip(Path("x.wav"), 5, "1", "g")], 16000, 1.0)


def _toy(n_groups: int, per_group: int, n_classes: int, seed: int = 0) -> ClipDataset:
    rng = np.random.default_rng(seed)
    clips = []
    for g in range(n_groups):
        for j in range(per_group):
            clips.append(Clip(Path(f"{g}_{j}.wav"), int(rng.integers(n_classes)), "1", f"g{g}"))
    return ClipDataset("toy", [str(c) for c in range(n_classes)], clips, 8000, 1.0)


@pytest.mark.parametrize(
    "n_groups,per_group,fraction", [(40, 5, 0.1), (6, 50, 0.2), (200, 1, 0.25)]
)
def test_validation_split_groups_never_straddle(n_groups, per_group, fraction):
    ds = _toy(n_groups, per_group, 4)
    train = list(range(0, len(ds), 1))
    tr, va = validation_split(ds, train, fraction, seed=3)
    assert sorted(tr + va) == train and not set(tr) & set(va) and tr and va
    assert not {ds.clips[i].group for i in tr} & {ds.clips[i].group for i in va}
    assert abs(len(va) - fraction * len(train)) <= per_group + 0.05 * len(train)
    assert validation_split(ds, train, fraction, seed=3) == (tr, va)  # deterministic
    if per_group == 1:  # free to stratify exactly (up to rounding)
        full = ds.class_counts(train)
        for name, v in ds.class_counts(va).items():
            assert abs(v - fraction * full[name]) <= 1


def test_validation_split_edge_cases():
    ds = _toy(1, 10, 2)
    assert validation_split(ds, range(10), 0.0) == (list(range(10)), [])
    with pytest.raises(WbError, match="one group"):
        validation_split(ds, range(10), 0.1)
    with pytest.raises(WbError, match=r"\[0, 1\)"):
        validation_split(ds, range(10), 1.0)
    two = _toy(2, 10, 2)
    tr, va = validation_split(two, range(20), 0.01)  # overshoot: still one group each side
    assert len(tr) == 10 and len(va) == 10


def test_stratified_group_kfold_properties():
    ds = _toy(30, 4, 3, seed=1)
    f = stratified_group_kfold(ds.labels, ds.groups, 5, seed=0)
    assert set(f.tolist()) == set(range(5))
    for g in set(ds.groups):
        assert len({int(f[i]) for i, c in enumerate(ds.clips) if c.group == g}) == 1
    assert (f == stratified_group_kfold(ds.labels, ds.groups, 5, seed=0)).all()
    with pytest.raises(WbError, match="at least 2"):
        stratified_group_kfold(ds.labels, ds.groups, 1)
