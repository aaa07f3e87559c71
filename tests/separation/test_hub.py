"""Pretrained Demucs by name: download from a server on 127.0.0.1 (demucs' remote manifest,
on a mirror), the SHA-256 prefix check, the torch hub cache, offline use, ``--repo``, and
``wb separate`` equal to ``demucs.apply.apply_model``."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from separation import models
from separation.hub import DEMUCS_URL_ENV, load_separator
from wb.cli import main
from wb.errors import WbError

SR = 8000
SIG = "0a1b2c3d"


def _weights() -> tuple[torch.nn.Module, bytes]:
    """A tiny HTDemucs and its bytes in Demucs' own format (``demucs.states``)."""
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model = models.build("htdemucs", ["vocals", "drums", "bass", "other"], SR, 2, segment=0.5,
                         depth=2, t_layers=1, channels=8, nfft=256)  # fmt: skip
    buf = io.BytesIO()
    torch.save(serialize_model(model, OmegaConf.create({}), half=False), buf)
    return model.eval(), buf.getvalue()


@pytest.fixture(scope="module")
def tiny():
    model, data = _weights()
    return model, data, f"{SIG}-{hashlib.sha256(data).hexdigest()[:8]}.th"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Server:
    """``python -m http.server`` on 127.0.0.1 in a thread, serving ``root``."""

    def __init__(self, root: Path):
        handler = partial(_Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def remote(tmp_path, monkeypatch, tiny):
    """Demucs' remote manifest listing a ``tinybag`` whose weights a local server holds."""
    import demucs.pretrained

    _, data, fname = tiny
    manifest = tmp_path / "remote"
    manifest.mkdir()
    (manifest / "files.txt").write_text(f"# test\nroot: tiny/\n{fname}\n")
    (manifest / "tinybag.yaml").write_text(f"models: ['{SIG}']\n")
    served = tmp_path / "served" / "tiny"
    served.mkdir(parents=True)
    (served / fname).write_bytes(data)
    monkeypatch.setattr(demucs.pretrained, "REMOTE_ROOT", manifest)
    hub = tmp_path / "hub"
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    server = _Server(tmp_path / "served")
    monkeypatch.setenv(DEMUCS_URL_ENV, server.url)
    yield {"cache": hub / "checkpoints" / fname, "served": served / fname, "server": server}
    server.stop()
    torch.hub.set_dir(old)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(1, 2, SR // 2, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-6)


def test_download_check_cache_then_offline(remote, tiny):
    model, _, _ = tiny
    sep = load_separator("tinybag")
    assert remote["cache"].is_file() and list(sep.sources) == ["vocals", "drums", "bass", "other"]
    assert _same(sep.model.models[0], model)
    remote["server"].stop()  # no server any more: the cache serves
    assert _same(load_separator("tinybag").model.models[0], model)
    # a corrupted cached file is refused before it is unpickled
    data = bytearray(remote["cache"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    remote["cache"].write_bytes(bytes(data))
    with pytest.raises(WbError, match="does not match the published prefix"):
        load_separator("tinybag")


def test_corrupt_download_leaves_nothing(remote):
    data = bytearray(remote["served"].read_bytes())
    data[100] ^= 0xFF
    remote["served"].write_bytes(bytes(data))
    with pytest.raises(WbError, match="download failed"):
        load_separator("tinybag")
    folder = remote["cache"].parent
    assert not (folder.exists() and any(folder.iterdir()))  # no partial download either


def test_offline_without_cache_is_one_line(remote, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(DEMUCS_URL_ENV, "http://wb-no-such-host.invalid/")
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros((SR, 2), np.float32), SR)
    code = main(
        ["--quiet", "separate", str(wav), "--model", "tinybag", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no network" in err
    assert remote["cache"].name in err and str(remote["cache"].parent) in err
    assert not (tmp_path / "o").exists()


def test_repo_folder(tmp_path, tiny, capsys):
    model, data, fname = tiny
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / fname).write_bytes(data)
    (repo / "mybag.yaml").write_text(f"models: ['{SIG}']\n")
    assert _same(load_separator("mybag", repo=repo).model.models[0], model)
    assert _same(load_separator(SIG, repo=repo).model, model)  # a single signature
    with pytest.raises(WbError, match="no model 'other'"):
        load_separator("other", repo=repo)
    (repo / fname).rename(repo / f"{SIG}.th")  # no checksum in the name: refused
    with pytest.raises(WbError, match="SHA-256 prefix"):
        load_separator("mybag", repo=repo)
    code = main(["separate", str(tmp_path / "x.wav"), "--repo", str(repo)])
    assert code == 2 and "--repo needs --model" in capsys.readouterr().err


def test_wb_separate_equals_apply_model(tmp_path, tiny, capsys):
    """``wb separate --model NAME --repo DIR`` writes what ``demucs.apply.apply_model``
    returns for the same input and settings (split, overlap 0.25, no shifts)."""
    from demucs.apply import apply_model

    model, data, fname = tiny
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / fname).write_bytes(data)
    (repo / "mybag.yaml").write_text(f"models: ['{SIG}']\n")
    x = (np.random.default_rng(0).standard_normal((2, 3 * SR + 123)) * 0.1).astype(np.float32)
    sf.write(tmp_path / "song.wav", x.T, SR, subtype="FLOAT")
    code = main(["--quiet", "separate", str(tmp_path / "song.wav"), "--model", "mybag", "--repo",
                 str(repo), "--out", str(tmp_path / "out"), "--bit-depth", "32f"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with torch.no_grad():
        ref = apply_model(model, torch.from_numpy(x)[None], shifts=0, split=True, overlap=0.25,
                          progress=False)[0]  # fmt: skip
    for k, stem in enumerate(["vocals", "drums", "bass", "other"]):
        ours, _ = sf.read(tmp_path / "out" / "song" / f"{stem}.wav", dtype="float32")
        assert np.abs(ours.T - ref[k].numpy()).max() < 1e-4, stem
