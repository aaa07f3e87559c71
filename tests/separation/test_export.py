"""Model resolution: shipped models with checksums, Demucs names offline, unknown names."""

from __future__ import annotations

import json

import pytest
import torch

from separation import hub as ex
from separation import models
from wb.checkpoint import save_model
from wb.errors import WbError
from wb.runs import file_digest

from .conftest import TINY_TASNET


@pytest.fixture()
def model_file(tmp_path):
    kwargs = {k: v for k, v in TINY_TASNET.items() if k != "name"}
    model = models.build("convtasnet", ["a", "b"], 8000, 1, **kwargs)
    return save_model(
        tmp_path / "tiny.pt",
        models.class_ref("convtasnet"),
        {"sources": ["a", "b"], "sample_rate": 8000, "audio_channels": 1, **kwargs},
        model.state_dict(),
        meta={"sources": ["a", "b"], "sample_rate": 8000, "segment": 0.5, "overlap": 0.25},
    )


def test_shipped_model_checksum_verified(tmp_path, model_file):
    folder = tmp_path / "pretrained"
    installed = ex.install_pretrained(model_file, "satb", "test model", folder=folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["models"]["satb"]["sha256"] == file_digest(installed)
    sep = ex.load_separator(None, pretrained_dir=folder)  # default name: satb
    assert sep.sources == ("a", "b") and sep.origin["kind"] == "shipped"
    assert sep.segment == 0.5 and sep.overlap == 0.25
    installed.write_bytes(installed.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(WbError, match="checksum mismatch"):
        ex.load_separator("satb", pretrained_dir=folder)


def test_missing_shipped_model_says_how_to_get_one(tmp_path):
    with pytest.raises(WbError, match="not installed") as err:
        ex.load_separator("satb", pretrained_dir=tmp_path)
    assert "--model" in str(err.value) and "\n" not in str(err.value)


def test_unknown_and_missing_paths(tmp_path):
    with pytest.raises(WbError, match="unknown model 'nope'") as err:
        ex.load_separator("nope", pretrained_dir=tmp_path)
    assert "htdemucs" in str(err.value)
    with pytest.raises(WbError, match="no such model file"):
        ex.load_separator(str(tmp_path / "missing.pt"))


def test_demucs_name_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(ex, "_online", lambda *a, **k: False)
    with pytest.raises(WbError) as err:
        ex.load_separator("htdemucs", pretrained_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "hub" / "checkpoints") in msg and ".th" in msg


def test_demucs_download_failure_is_caught(tmp_path, monkeypatch):
    def fail(url, dst, hash_prefix=None, progress=True):
        raise RuntimeError("connection refused")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(ex, "_online", lambda *a, **k: True)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    with pytest.raises(WbError, match="connection refused"):
        ex.load_separator("htdemucs", pretrained_dir=tmp_path)


def test_cached_demucs_weights_are_checked_before_unpickling(tmp_path, monkeypatch):
    """A cached weight file whose SHA-256 does not start with the prefix published in its name
    is refused before demucs unpickles it; a matching one passes the check."""
    import hashlib

    import demucs.repo

    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    files = ex._demucs_files("htdemucs")
    for _, path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not the published weights")
    unpickled = []
    monkeypatch.setattr(demucs.repo.RemoteRepo, "get_model", lambda *a: unpickled.append(a))
    with pytest.raises(WbError, match="does not match the published prefix") as err:
        ex.load_separator("htdemucs", pretrained_dir=tmp_path)
    assert not unpickled and "\n" not in str(err.value)
    good = tmp_path / "x.th"
    good.write_bytes(b"weights")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    named = good.rename(tmp_path / f"955717e8-{digest[:8]}.th")
    ex.verify_demucs_file(named)  # no error
