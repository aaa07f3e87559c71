"""Crafted model files and archives, each through a real ``wb`` process."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from tests import badaudio
from wb.checkpoint import save_model

from .conftest import assert_one_line_error, wb


@pytest.fixture()
def evil_model(tmp_path):
    """A model file whose class is a callable that writes any file it is given."""
    victim = tmp_path / "victim.txt"
    path = save_model(
        tmp_path / "evil.pt", "wb.runs:atomic_write_text", {"path": str(victim), "text": "x"}, {}
    )
    return path, victim


def test_crafted_model_file_is_refused_by_separate(tmp_path, evil_model):
    path, victim = evil_model
    song = badaudio.make(tmp_path, "rate_44101")
    proc = wb("separate", str(song), "--model", str(path), "--out", str(tmp_path / "o"),
              cwd=tmp_path)  # fmt: skip
    assert "'wb.runs:atomic_write_text' is not an allowed model" in assert_one_line_error(proc)
    assert not victim.exists() and not (tmp_path / "o").exists()


def test_crafted_model_file_is_refused_by_predict(tmp_path, evil_model):
    path, victim = evil_model
    clip = badaudio.make(tmp_path, "eight_channels")
    proc = wb("classify", "predict", str(clip), "--checkpoint", str(path), cwd=tmp_path)
    assert "'wb.runs:atomic_write_text' is not an allowed model" in assert_one_line_error(proc)
    assert not victim.exists()


def _zip(path, members: dict[str, bytes], deflate: bool = False):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["traversal", "absolute", "bomb"])
def test_crafted_dataset_archive_is_refused(tmp_path, kind):
    """``wb classify --download`` of a checksum-valid but hostile archive: refused with one
    line, nothing written outside or inside the dataset folder."""
    if kind == "traversal":
        archive, digest = _zip(tmp_path / "a.zip", {"fsdd/../../escaped.txt": b"x"})
    elif kind == "absolute":
        archive, digest = _zip(tmp_path / "a.zip", {str(tmp_path / "abs.txt"): b"x"})
    else:
        members = {f"fsdd/recordings/{k}.wav": bytes(64 << 20) for k in range(4)}
        archive, digest = _zip(tmp_path / "a.zip", members, deflate=True)
    data = tmp_path / "work" / "fsdd"
    proc = wb(
        "classify", "--dataset", "fsdd", "--data-dir", str(data), "--download",
        "--set", f"+dataset_options.url={archive.as_uri()}", "--sha256", digest,
        "--out", str(tmp_path / "run"), cwd=tmp_path,
        env_extra={"WB_CACHE_DIR": str(tmp_path / "c")},
    )  # fmt: skip
    line = assert_one_line_error(proc)
    assert "escapes" in line or "absolute" in line or "cap" in line, line
    assert not data.exists() and not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "abs.txt").exists()
    assert not list((tmp_path / "work").glob(".*extract*"))


def test_malformed_training_checkpoint_is_one_foreseen_line(tmp_path):
    """A ``.ckpt`` whose hyper-parameters lack keys is refused by name, not by a KeyError."""
    import torch

    ckpt = tmp_path / "c.ckpt"
    torch.save({"hyper_parameters": {"model_name": "htdemucs"}, "state_dict": {}}, ckpt)
    song = badaudio.make(tmp_path, "rate_44101")
    proc = wb("separate", str(song), "--model", str(ckpt), "--out", str(tmp_path / "o"),
              cwd=tmp_path)  # fmt: skip
    line = assert_one_line_error(proc)
    assert "not a separation training checkpoint (bad or missing sources" in line
    assert not (tmp_path / "o").exists()
