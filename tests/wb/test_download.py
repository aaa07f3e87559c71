"""wb.download: resumable verified downloads (local HTTP server) and safe extraction."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wb.download import DownloadError, UnsafeArchiveError, download, extract
from wb.errors import WbError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, position-dependent so misplaced bytes show


class _Server:
    """Serves ``files`` on 127.0.0.1 with Range support and scriptable misbehaviour."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, str]] = []
        self.truncate_next = 0  # number of upcoming responses cut off halfway
        self.ignore_range = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server API
                outer.requests.append({"path": self.path, **dict(self.headers)})
                data = outer.files.get(self.path.split("?")[0])
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not outer.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.truncate_next:
                    outer.truncate_next -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    s.files["/data.bin"] = PAYLOAD
    yield s
    s.close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_renames(server, tmp_path):
    dest = download(f"{server.url}/data.bin?download=1", tmp_path / "d" / "data.bin", SHA)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "d" / "data.bin.part").exists()
    n = len(server.requests)
    download(f"{server.url}/data.bin", dest, SHA)  # verified copy present: no request
    assert len(server.requests) == n


def test_download_resumes_from_part_file(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:300_000])  # an earlier, truncated run
    download(f"{server.url}/data.bin", dest, SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1]["Range"] == "bytes=300000-"


def test_download_retries_a_cut_connection_with_resume(server, tmp_path):
    server.truncate_next = 1
    dest = download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    assert "Range" not in server.requests[0]
    assert server.requests[1]["Range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_download_gives_up_but_keeps_part_for_later(server, tmp_path):
    server.truncate_next = 10
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA, retries=1)
    part = tmp_path / "data.bin.part"
    assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    server.truncate_next = 0
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_download_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 1000)
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_download_complete_part_answered_416(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    download(f"{server.url}/data.bin", tmp_path / "data.bin", SHA)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_download_bad_checksum_deletes(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="SHA-256 .* expected 0000"):
        download(f"{server.url}/data.bin", dest, "0" * 64)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    assert isinstance(DownloadError("x"), WbError)
    # a corrupt file already at dest is replaced by a fresh, verified download
    dest.write_bytes(b"corrupt")
    download(f"{server.url}/data.bin", dest, SHA)
    assert dest.read_bytes() == PAYLOAD


def test_download_md5_size_checks(server, tmp_path):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    out = download(f"{server.url}/data.bin", tmp_path / "a.bin", None, md5=md5, size=len(PAYLOAD))
    assert out.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="MD5"):
        download(f"{server.url}/data.bin", tmp_path / "b.bin", SHA, md5="f" * 32)
    with pytest.raises(DownloadError, match="size"):
        download(f"{server.url}/data.bin", tmp_path / "c.bin", SHA, size=5)


def test_download_without_checksum_is_never_used(server, tmp_path):
    """No SHA-256 and no MD5: the file is not put in place; the error gives its SHA-256, and
    passing that digest back finishes without downloading again."""
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match=f"no checksum is pinned.*SHA-256 is {SHA}") as err:
        download(f"{server.url}/data.bin", dest, None)
    assert "\n" not in str(err.value)
    assert not dest.exists() and (tmp_path / "a.bin.part").read_bytes() == PAYLOAD
    served = len(server.requests)
    assert download(f"{server.url}/data.bin", dest, SHA).read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    again = server.requests[served:]  # one ranged request, answered 416: nothing re-sent
    assert len(again) == 1 and again[0]["Range"] == f"bytes={len(PAYLOAD)}-"


def test_download_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.zip", tmp_path / "m.zip", SHA)
    with pytest.raises(DownloadError, match="failed after 1 attempts"):
        download("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", SHA, retries=0, timeout=2)


# --------------------------------------------------------------------------------------------
# extract


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".extract-" in p.name]


def test_extract_zip_and_tar_with_strip(tmp_path):
    z = _zip(tmp_path / "a.zip", {"repo-abc/recordings/0_x_0.wav": b"1", "repo-abc/README": b"2"})
    out = extract(z, tmp_path / "zipped", strip_top=True)
    assert (out / "recordings" / "0_x_0.wav").read_bytes() == b"1"
    assert (out / "README").read_bytes() == b"2"
    files = {"top/a/b.txt": b"hello", "top/c.txt": b"world"}
    infos = [tarfile.TarInfo("top"), *(tarfile.TarInfo(n) for n in files)]
    infos[0].type = tarfile.DIRTYPE
    t = _tar(tmp_path / "b.tar.gz", infos, files)
    out = extract(t, tmp_path / "tarred")
    assert (out / "top" / "a" / "b.txt").read_bytes() == b"hello"
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("name", ["../x", "ok/../../x", "/etc/x", "C:/x"])
def test_extract_rejects_escaping_paths(tmp_path, name):
    z = _zip(tmp_path / "evil.zip", {"fine.txt": b"ok", name: b"pwned"})
    with pytest.raises(UnsafeArchiveError):
        extract(z, tmp_path / "out")
    t = _tar(tmp_path / "evil.tar.gz", [tarfile.TarInfo("fine.txt"), tarfile.TarInfo(name)],
             {"fine.txt": b"ok", name: b"pwned"})  # fmt: skip
    with pytest.raises(UnsafeArchiveError):
        extract(t, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()
    assert not _leftovers(tmp_path)


def test_extract_rejects_links_and_devices(tmp_path):
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE):
        link = tarfile.TarInfo("data/thing")
        link.type = kind
        link.linkname = "/etc/passwd"
        t = _tar(tmp_path / f"t{kind!r}.tar.gz", [link])
        with pytest.raises(UnsafeArchiveError, match="link|device"):
            extract(t, tmp_path / "out")
    zpath = tmp_path / "link.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        extract(zpath, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_extract_is_all_or_nothing(tmp_path):
    z = _zip(tmp_path / "c.zip", {"a.txt": b"A" * 1000, "b.txt": b"B" * 1000})
    raw = bytearray(z.read_bytes())
    pos = raw.rfind(b"B" * 1000)  # corrupt the second member's data: CRC fails mid-extract
    raw[pos + 10] ^= 0xFF
    z.write_bytes(bytes(raw))
    with pytest.raises(WbError, match="extraction failed"):
        extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)
    good = _zip(tmp_path / "g.zip", {"a.txt": b"A"})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(WbError, match="not empty"):
        extract(good, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert (extract(good, tmp_path / "empty") / "a.txt").read_bytes() == b"A"
    (tmp_path / "trunc.tar.gz").write_bytes(_tar(tmp_path / "t.tar.gz", []).read_bytes()[:10])
    with pytest.raises(WbError):
        extract(tmp_path / "trunc.tar.gz", tmp_path / "out2")
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(WbError, match="not a zip or tar"):
        extract(tmp_path / "plain.txt", tmp_path / "out3")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_extract_refuses_archives_beyond_the_size_cap(tmp_path):
    """A zip bomb (tiny archive, huge declared content) is refused before anything is written;
    so is any archive over an absolute cap. Both for zip and tar."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(4):  # 4 x 64 MiB of zeros deflate to about 250 KiB
            zf.writestr(f"zeros{k}.bin", bytes(64 << 20))
    assert bomb.stat().st_size < (1 << 20)
    with pytest.raises(UnsafeArchiveError, match="more than the .*-byte cap; refused"):
        extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)
    info = tarfile.TarInfo("a/big.bin")
    tar = _tar(tmp_path / "big.tar.gz", [info], {"a/big.bin": bytes(4096)})
    with pytest.raises(UnsafeArchiveError, match="cap"):
        extract(tar, tmp_path / "out2", max_bytes=1000)
    assert not (tmp_path / "out2").exists() and not _leftovers(tmp_path)
    assert (extract(tar, tmp_path / "ok", max_bytes=4096) / "a/big.bin").stat().st_size == 4096
