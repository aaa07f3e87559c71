"""Resumable, verified downloads and safe archive extraction for dataset adapters.

:func:`download` fetches a URL into ``dest`` through ``dest.part``: an interrupted transfer is
resumed with an HTTP ``Range`` request, the finished file is checked against its SHA-256 (and
MD5 / size when those are what the host publishes) and only then renamed into place; a
mismatch deletes the download and raises, and a file with no checksum to check is never used.
:func:`extract` unpacks zip and tar(.gz/.bz2/.xz) archives after rejecting absolute paths,
``..`` traversal, links, device files and archives that unpack beyond a size cap, into a
temporary sibling folder that is renamed into place only once complete, so a dataset folder is
never half-extracted. Only the standard library (urllib) is used.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from wb.errors import WbError
from wb.progress import progress as _progress
from wb.runs import file_digest, temp_dir

CHUNK = 1 << 20
USER_AGENT = "wb-dataset-download/1.0"


class DownloadError(WbError):
    """A download failed, was incomplete, or did not match its checksum."""


class UnsafeArchiveError(WbError):
    """An archive member would escape the target folder or is not a plain file/folder."""


def _verify(path: Path, url: str, sha256: str | None, md5: str | None, size: int | None) -> None:
    """Raise DownloadError (after deleting ``path``) when a given check fails."""
    problems = []
    if size is not None and path.stat().st_size != size:
        problems.append(f"size {path.stat().st_size} bytes, expected {size}")
    if sha256 is not None:
        got = file_digest(path, "sha256")
        if got.lower() != sha256.lower():
            problems.append(f"SHA-256 {got}, expected {sha256.lower()}")
    if md5 is not None:
        got = file_digest(path, "md5")
        if got.lower() != md5.lower():
            problems.append(f"MD5 {got}, expected {md5.lower()}")
    if problems:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch ({'; '.join(problems)}); deleted {path}")


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None


def _fetch_once(url: str, part: Path, timeout: float, quiet: bool) -> None:
    """One transfer attempt into ``part``, resuming from its current size when possible."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have and not url.startswith("file:"):
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: .part is already complete
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    with resp:
        status = getattr(resp, "status", None) or 200
        length = resp.headers.get("Content-Length")
        if status == 206:
            if _content_range_start(resp.headers.get("Content-Range")) != have:
                part.unlink(missing_ok=True)
                raise http.client.HTTPException("server resumed at the wrong offset")
            mode, start = "ab", have
        else:  # server ignored the range (or there was none): start over
            mode, start = "wb", 0
        total = start + int(length) if length is not None else None
        name = url.rsplit("/", 1)[-1].split("?", 1)[0] or "download"
        bar = _progress(desc=f"downloading {name}", total=total, unit="B", quiet=quiet)
        bar.unit_scale = True
        bar.update(start)
        written = start
        try:
            with open(part, mode) as f:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    if total is not None and written < total:
        raise http.client.IncompleteRead(b"", total - written)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    progress: bool = True,
    *,
    md5: str | None = None,
    size: int | None = None,
    retries: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` with resume, progress bar and checksum verification.

    Data goes to ``dest + ".part"``; an existing ``.part`` (from an interrupted run) is resumed
    with a ``Range: bytes=<size>-`` request (a server answering 200 restarts it). Connection
    errors and short reads are retried ``retries`` times, each resuming. The finished file is
    verified, then renamed onto ``dest``. An existing ``dest`` that passes the checks is kept
    without downloading; one that fails them is deleted and downloaded again.

    Args:
        url: ``http(s)://`` or ``file://`` address.
        dest: destination file; parent folders are created.
        sha256: expected SHA-256 hex digest. With neither ``sha256`` nor ``md5`` nothing can
            be trusted: the transfer is kept as ``dest.part`` and :class:`DownloadError` gives
            its SHA-256, to be checked against the publisher and passed back.
        progress: show a byte progress bar (also silenced by ``WB_QUIET``).
        md5: expected MD5 hex digest, for hosts that publish only that (e.g. Zenodo).
        size: expected size in bytes.
        retries: extra attempts after a connection error or short read.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: HTTP error, repeated connection failures, a checksum/size mismatch
            (the bad file is deleted first), or no checksum to verify against.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    quiet = None if progress else True
    if dest.exists() and (sha256 is not None or md5 is not None):
        try:
            _verify(dest, url, sha256, md5, size)
            return dest
        except DownloadError:
            pass  # corrupt or stale: _verify deleted it; fetch again
    last: Exception | None = None
    for _ in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, quiet)
            last = None
            break
        except (OSError, http.client.HTTPException) as exc:  # URLError, resets, timeouts
            last = exc
    if last is not None:
        raise DownloadError(
            f"{url}: download failed after {retries + 1} attempts ({last}); run again to resume "
            f"from {part}"
        )
    if not part.exists():
        raise DownloadError(f"{url}: nothing was downloaded")
    if sha256 is None and md5 is None:
        raise DownloadError(
            f"{url}: no checksum is pinned for this file, so it was not used; its SHA-256 is "
            f"{file_digest(part)}: check that against the publisher, then pass it as --sha256 "
            f"(the download is kept in {part})"
        )
    _verify(part, url, sha256, md5, size)
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Extraction


def _safe_relpath(name: str, archive: Path) -> PurePosixPath | None:
    """Normalised relative member path; ``None`` for the archive root itself.

    Raises:
        UnsafeArchiveError: absolute path, drive letter, or ``..`` component.
    """
    raw = name.replace("\\", "/")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or "\x00" in raw:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the target folder (..)")
    return PurePosixPath(*parts) if parts else None


def _members(archive: Path):
    """Open an archive and return ``(handle, [(relpath, is_dir, opener, size)])``, all members
    checked."""
    if zipfile.is_zipfile(archive):
        zf = zipfile.ZipFile(archive)
        try:
            return zf, _zip_members(zf, archive)
        except BaseException:
            zf.close()
            raise
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 - handed to the caller, closed there
    except (tarfile.TarError, OSError):
        raise WbError(f"{archive}: not a zip or tar archive") from None
    try:
        return tf, _tar_members(tf, archive)
    except BaseException:
        tf.close()
        raise


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> list:
    out = []
    for info in zf.infolist():
        rel = _safe_relpath(info.filename, archive)
        ftype = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded
        if ftype == stat.S_IFLNK:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symlink")
        if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} is not a regular file or folder"
            )
        if rel is not None:
            out.append((rel, info.is_dir(), lambda info=info: zf.open(info), info.file_size))
    return out


def _tar_members(tf: tarfile.TarFile, archive: Path) -> list:
    out = []
    for m in tf.getmembers():
        rel = _safe_relpath(m.name, archive)
        if m.issym() or m.islnk():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a link")
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or special file")
        if rel is not None:
            out.append((rel, m.isdir(), lambda m=m: tf.extractfile(m), m.size))
    return out


def _common_top(members: list[tuple[PurePosixPath, bool, object, int]]) -> str | None:
    tops = {rel.parts[0] for rel, *_ in members}
    if len(tops) != 1:
        return None
    top = next(iter(tops))
    nested = any(len(rel.parts) > 1 for rel, *_ in members)
    is_dir = any(rel.parts == (top,) and d for rel, d, *_ in members)
    return top if nested or is_dir else None


#: Largest total size (bytes) an archive may unpack to, and largest unpacked/packed ratio:
#: audio datasets compress little (WAV about 1.1x), a zip bomb by thousands.
#: The ratio cap applies only above :data:`RATIO_FLOOR` bytes (small text files compress more).
MAX_EXTRACT_BYTES = 64 << 30
MAX_EXTRACT_RATIO = 20.0
RATIO_FLOOR = 64 << 20


class _Budget:
    """Counts bytes actually written during extraction (member headers may lie)."""

    def __init__(self, archive: Path, limit: int) -> None:
        self.archive, self.limit, self.used = archive, limit, 0

    def copy(self, src, dst) -> None:
        while chunk := src.read(CHUNK):
            self.used += len(chunk)
            if self.used > self.limit:
                raise UnsafeArchiveError(
                    f"{self.archive}: unpacks to more than {self.limit} bytes; refused"
                )
            dst.write(chunk)


def extract(
    archive: str | os.PathLike,
    dest_dir: str | os.PathLike,
    strip_top: bool = False,
    max_bytes: int | None = None,
    max_ratio: float | None = None,
) -> Path:
    """Safely unpack a zip or tar(.gz/.bz2/.xz) archive into ``dest_dir``, all or nothing.

    Every member is checked before anything is written: absolute paths, ``..`` components,
    symbolic and hard links, and device/FIFO members are rejected, and so is an archive whose
    members declare more than the size cap (zip bomb). The cap is also enforced on the bytes
    actually written, since declared sizes can lie. Files are written into a
    temporary sibling folder (``.<name>.extract-*``) that is renamed to ``dest_dir`` only when
    extraction completed; on any error it is removed and ``dest_dir`` is left untouched.

    Args:
        archive: the archive file.
        dest_dir: folder to create; it must not exist or be empty.
        strip_top: when every member lies under one top-level folder (as in GitHub
            ``<repo>-<ref>/`` archives), put that folder's contents directly in ``dest_dir``.
        max_bytes: cap on the unpacked size in bytes (default :data:`MAX_EXTRACT_BYTES`).
        max_ratio: cap on unpacked size / archive size (default :data:`MAX_EXTRACT_RATIO`),
            never below :data:`RATIO_FLOOR` bytes; the smaller of the two caps applies.

    Returns:
        ``dest_dir`` as a :class:`~pathlib.Path`.

    Raises:
        UnsafeArchiveError: a member that is unsafe as described above, or an archive that
            unpacks to more than the cap.
        WbError: not an archive, corrupt data, or ``dest_dir`` exists and is not empty.
    """
    archive, dest = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise WbError(f"{archive}: archive not found")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise WbError(f"{dest}: already exists and is not empty; refusing to extract over it")
    try:
        handle, members = _members(archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise WbError(f"{archive}: unreadable archive ({exc})") from None
    limit = min(
        MAX_EXTRACT_BYTES if max_bytes is None else int(max_bytes),
        max(
            RATIO_FLOOR,
            int((MAX_EXTRACT_RATIO if max_ratio is None else max_ratio) * archive.stat().st_size),
        ),
    )
    declared = sum(size for _, _, _, size in members)
    if declared > limit:
        handle.close()
        raise UnsafeArchiveError(
            f"{archive}: declares {declared} unpacked bytes, more than the {limit}-byte cap; "
            "refused"
        )
    budget = _Budget(archive, limit)
    tmp = temp_dir(dest, "extract")
    try:
        with handle:
            top = _common_top(members) if strip_top else None
            for rel, is_dir, opener, _ in members:
                if top is not None:
                    if rel.parts == (top,):
                        continue
                    rel = PurePosixPath(*rel.parts[1:])
                target = tmp.joinpath(*rel.parts)
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = opener()
                if src is None:
                    raise WbError(f"{archive}: cannot read member {rel}")
                with src, open(target, "wb") as out:
                    budget.copy(src, out)
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise WbError(f"{archive}: extraction failed ({exc})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
