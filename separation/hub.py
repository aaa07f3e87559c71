"""The model hub: shipped models (manifest with SHA-256), pretrained Demucs names, and
:func:`load_separator`, which resolves any model reference to a
:class:`~separation.separator.Separator`.

:func:`load_separator` resolves, in order: a path to a model file (or a Lightning ``.ckpt``
of a :class:`~separation.system.SeparationSystem`), a shipped model listed in
``separation/pretrained/manifest.json`` (sha256 verified on load; default ``satb``), or a
pretrained Demucs name such as ``htdemucs`` (weights in the torch hub cache, checked against
the SHA-256 prefix Demucs publishes before they are unpickled).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import torch
from torch import nn

from separation import models
from separation.export import model_from_checkpoint
from separation.separator import Separator
from wb.checkpoint import load_model
from wb.errors import WbError
from wb.progress import quiet_default
from wb.runs import atomic_write, file_digest, write_json

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "wb-pretrained/1"
DEFAULT_MODEL = "satb"
_MODEL_SUFFIXES = (".pt", ".pth", ".th", ".ckpt")


# -- shipped models ---------------------------------------------------------------------------
def read_manifest(folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The shipped-model manifest (``{"format", "default", "models": {name: entry}}``).

    Raises:
        WbError: unreadable manifest.
    """
    path = Path(folder or PRETRAINED_DIR) / MANIFEST
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "default": DEFAULT_MODEL, "models": {}}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise WbError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise WbError(f"{path}: not a model manifest (no 'models' mapping)")
    return data


def install_pretrained(
    model_file: str | os.PathLike,
    name: str = DEFAULT_MODEL,
    description: str = "",
    folder: str | os.PathLike | None = None,
) -> Path:
    """Copy an exported model file into the shipped-model folder and list it in the manifest.

    Args:
        model_file: a file written by :func:`export`.
        name: the name ``wb separate --model`` will accept (``satb`` is the default model).
        description: one line for the manifest.
        folder: the shipped-model folder (default ``separation/pretrained``).

    Returns:
        The installed file's path.

    Raises:
        WbError: not a model file (see :func:`wb.checkpoint.read_model`).
    """
    from wb.checkpoint import read_model

    data = read_model(model_file)
    folder = Path(folder or PRETRAINED_DIR)
    dest = folder / f"{name}.pt"
    if Path(model_file).resolve() != dest.resolve():
        atomic_write(dest, lambda tmp: shutil.copyfile(model_file, tmp))
    manifest = read_manifest(folder)
    meta = data.get("meta", {})
    manifest["models"][name] = {
        "file": dest.name,
        "sha256": file_digest(dest),
        "bytes": dest.stat().st_size,
        "sources": meta.get("sources"),
        "sample_rate": meta.get("sample_rate"),
        "audio_channels": meta.get("audio_channels"),
        "description": description,
    }
    write_json(folder / MANIFEST, manifest)
    return dest


def _not_installed(name: str, path: Path) -> WbError:
    return WbError(
        f"shipped model {name!r} is not installed ({path} is missing); train and export one "
        "(python -m recipes.satb_separation train, then export) or pass --model with a model "
        "file, a training checkpoint or a Demucs name such as htdemucs"
    )


def _load_shipped(name: str, folder: Path) -> Separator:
    entry = read_manifest(folder)["models"].get(name)
    if entry is None:
        raise _not_installed(name, folder / f"{name}.pt")
    path = folder / entry["file"]
    if not path.is_file():
        raise _not_installed(name, path)
    digest = file_digest(path)
    if entry.get("sha256") != digest:
        raise WbError(
            f"{path}: checksum mismatch (manifest sha256 {str(entry.get('sha256'))[:12]}..., file "
            f"{digest[:12]}...); the file is corrupt or was replaced: reinstall it"
        )
    return _load_file(path)


# -- pretrained Demucs ------------------------------------------------------------------------
def demucs_names() -> list[str]:
    """Names of the pretrained Demucs models the installed demucs package knows."""
    from demucs.pretrained import REMOTE_ROOT

    return sorted(p.stem for p in Path(REMOTE_ROOT).glob("*.yaml"))


#: Environment variable: base URL of a mirror of Demucs' weights (same layout as
#: ``demucs.pretrained.ROOT_URL``), used instead of it for downloads.
DEMUCS_URL_ENV = "WB_DEMUCS_URL"


def _remote_urls() -> dict[str, str]:
    """Demucs' remote manifest (``remote/files.txt``): signature -> URL, on the mirror of
    ``$WB_DEMUCS_URL`` when set."""
    from demucs.pretrained import REMOTE_ROOT, ROOT_URL, _parse_remote_files

    urls = _parse_remote_files(Path(REMOTE_ROOT) / "files.txt")
    mirror = os.environ.get(DEMUCS_URL_ENV)
    if mirror:
        base = mirror.rstrip("/") + "/"
        urls = {k: base + v[len(ROOT_URL) :] if v.startswith(ROOT_URL) else v
                for k, v in urls.items()}  # fmt: skip
    return urls


def _demucs_files(name: str) -> list[tuple[str, Path]]:
    """``(url, torch hub cache path)`` of every weight file of a Demucs bag."""
    import yaml
    from demucs.pretrained import REMOTE_ROOT

    urls = _remote_urls()
    bag = yaml.safe_load((Path(REMOTE_ROOT) / f"{name}.yaml").read_text())
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    out = []
    for sig in bag["models"]:
        url = urls.get(sig, f"{sig}.th")  # unknown signature: reported as missing
        out.append((url, cache / url.rsplit("/", 1)[-1]))
    return out


def _online(urls: list[str]) -> bool:
    """True when the hosts of ``urls`` resolve (a name lookup, no connection)."""
    import urllib.parse

    hosts = {urllib.parse.urlparse(u).hostname for u in urls} - {None}
    for host in sorted(hosts):
        try:
            socket.getaddrinfo(host, 443)
            return True
        except OSError:
            continue
    return False


def _published_prefix(path: Path) -> str:
    """The SHA-256 prefix Demucs publishes in a weight file's name (``<sig>-<sha256[:8]>.th``,
    the torch hub convention)."""
    m = re.search(r"-([a-f0-9]{8,64})\.[a-z]+$", path.name)
    if m is None:
        raise WbError(f"{path}: Demucs weight file name carries no SHA-256 prefix")
    return m.group(1)


def verify_demucs_file(path: Path) -> None:
    """Check a Demucs weight file against the SHA-256 prefix published in its name, before
    it is unpickled (Demucs files hold pickled classes, so they cannot load with
    ``weights_only=True``).

    Demucs publishes only the first 8 hex digits of each SHA-256 (``remote/files.txt``);
    this is the check ``torch.hub`` makes at download time, repeated on every load so that a
    corrupt or replaced cached file is refused too. 32 bits catch corruption and accidental
    replacement, not a deliberate forgery (a matching prefix costs about 2^32 hashes): the
    full digests are not published.

    Raises:
        WbError: the file's SHA-256 does not start with the published prefix.
    """
    prefix, digest = _published_prefix(path), file_digest(path)
    if not digest.startswith(prefix):
        raise WbError(
            f"{path}: SHA-256 {digest[:16]}... does not match the published prefix {prefix}; "
            "the file is corrupt or was replaced: delete it and fetch it again"
        )


def _load_demucs(name: str) -> nn.Module:
    files = _demucs_files(name)
    missing = [(url, path) for url, path in files if not path.is_file()]
    if missing and not _online([url for url, _ in missing]):
        where = Path(torch.hub.get_dir()) / "checkpoints"
        urls = " ".join(url for url, _ in missing)
        raise WbError(
            f"pretrained Demucs model {name!r} is not cached and there is no network: "
            f"download {urls} into {where}/ (or into a folder given as --repo DIR)"
        )
    for url, path in missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # torch.hub checks the published SHA-256 prefix before moving the file in place
            torch.hub.download_url_to_file(
                url, str(path), _published_prefix(path), progress=not quiet_default()
            )
        except Exception as exc:  # noqa: BLE001 - network and hash errors of many kinds
            reason = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise WbError(f"{url}: download failed ({reason})") from None
    for _, path in files:
        verify_demucs_file(path)
    try:
        # Every weight file is now in the torch hub cache and verified: load through demucs'
        # legacy repo, which reads the cache without touching the network.
        from demucs.pretrained import REMOTE_ROOT
        from demucs.repo import AnyModelRepo, BagOnlyRepo, RemoteRepo

        repo = RemoteRepo(_remote_urls())
        model = AnyModelRepo(repo, BagOnlyRepo(Path(REMOTE_ROOT), repo)).get_model(name)
    except Exception as exc:  # noqa: BLE001 - unpickling failures of many kinds
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise WbError(f"pretrained Demucs model {name!r} could not be loaded ({reason})") from None
    model.eval()
    return model


def _load_demucs_local(name: str, repo: str | os.PathLike) -> nn.Module:
    """A Demucs model or bag from a local folder in Demucs' layout (``--repo``): weight
    files ``<sig>-<sha256[:8]>.th`` and bags ``<name>.yaml`` (``models: [sig, ...]``).

    Every weight file used is checked against the SHA-256 prefix in its name before it is
    unpickled (:func:`verify_demucs_file`); a file without one is refused.

    Raises:
        WbError: not a folder, ``name`` not in it, a missing or unverifiable weight file, or
            a file demucs cannot load.
    """
    import yaml

    folder = Path(repo)
    if not folder.is_dir():
        raise WbError(f"--repo {repo}: not a folder")
    weights = {f.stem.split("-", 1)[0]: f for f in sorted(folder.glob("*.th"))}
    bag = folder / f"{name}.yaml"
    if bag.is_file():
        try:
            sigs = [str(sig) for sig in yaml.safe_load(bag.read_text())["models"]]
        except (ValueError, KeyError, TypeError, yaml.YAMLError):
            raise WbError(f"{bag}: not a Demucs bag (no 'models' list)") from None
    elif name in weights:
        sigs = [name]
    else:
        here = sorted({*weights, *(p.stem for p in folder.glob("*.yaml"))}) or ["nothing"]
        raise WbError(
            f"--repo {repo}: no model {name!r} (no {name}.yaml, no {name}-<sha256[:8]>.th); "
            f"it holds {', '.join(here)}"
        )
    for sig in sigs:
        if sig not in weights:
            raise WbError(f"--repo {repo}: {name} needs {sig}-<sha256[:8]>.th, which is missing")
        verify_demucs_file(weights[sig])
    try:
        from demucs.repo import AnyModelRepo, BagOnlyRepo, LocalRepo

        local = LocalRepo(folder)
        model = AnyModelRepo(local, BagOnlyRepo(folder, local)).get_model(name)
    except Exception as exc:  # noqa: BLE001 - unpickling failures of many kinds
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise WbError(f"--repo {repo}: model {name!r} could not be loaded ({reason})") from None
    model.eval()
    return model


# -- resolution -------------------------------------------------------------------------------
def _load_file(path: Path) -> Separator:
    if path.suffix == ".ckpt":
        model, info = model_from_checkpoint(path)
        hp = info["hyper_parameters"]
        inference = dict((hp.get("config") or {}).get("inference") or {})
        return Separator.from_model(
            model, inference.get("segment"), inference.get("overlap"),
            {"kind": "checkpoint", "path": str(path), "name": hp["model_name"]},
            inference.get("postfilter"),
        )  # fmt: skip
    model, data = load_model(path, models.BUILDERS)
    meta = data.get("meta", {})
    origin = {"kind": "file", "path": str(path), "name": meta.get("name"), "meta": meta}
    try:
        return Separator.from_model(
            model, meta.get("segment"), meta.get("overlap"), origin, meta.get("postfilter")
        )
    except WbError as exc:
        raise WbError(f"{path}: {exc}") from None


def load_separator(
    name_or_path: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    pretrained_dir: str | os.PathLike | None = None,
    repo: str | os.PathLike | None = None,
) -> Separator:
    """Load a separation model as a :class:`~separation.separator.Separator`.

    Args:
        name_or_path: a model file from :func:`export`, a Lightning ``.ckpt`` of a training
            run, a shipped model name from ``separation/pretrained/manifest.json``
            (default ``satb``), or a pretrained Demucs name (``htdemucs``, ``htdemucs_ft``,
            ``mdx_extra``, ...; weights from the torch hub cache, downloaded when online).
        device: where to put the model.
        pretrained_dir: the shipped-model folder (default ``separation/pretrained``).
        repo: a local folder of Demucs weights and bags (``--repo``); ``name_or_path`` is
            then looked up there only (see :func:`_load_demucs_local`).

    Returns:
        The separator: model in eval mode (forward ``(batch, channels, samples) -> (batch,
        n_sources, channels, samples)``, or a Demucs ``BagOfModels``: use
        :func:`separation.inference.separate_tensor`), sources, sample rate, channels, the
        chunking stored with the model, and where it came from.

    Raises:
        WbError: unknown name (the message lists the choices), shipped model not installed,
            checksum mismatch, unreadable file, Demucs weights unavailable offline.
    """
    folder = Path(pretrained_dir or PRETRAINED_DIR)
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    path = Path(name).expanduser()
    if repo is not None:
        model = _load_demucs_local(name, repo)
        sep = Separator.from_model(model, origin={"kind": "demucs", "name": name,
                                                  "repo": str(repo)})  # fmt: skip
    elif path.is_file():
        sep = _load_file(path)
    elif path.suffix in _MODEL_SUFFIXES or os.sep in name:
        raise WbError(f"{path}: no such model file")
    elif name in read_manifest(folder)["models"] or name == DEFAULT_MODEL:
        sep = _load_shipped(name, folder)
        sep = dataclasses.replace(sep, origin={**sep.origin, "kind": "shipped", "name": name})
    elif name in demucs_names():
        sep = Separator.from_model(_load_demucs(name), origin={"kind": "demucs", "name": name})
    else:
        shipped = sorted(read_manifest(folder)["models"]) or ["none installed"]
        raise WbError(
            f"unknown model {name!r}: not a file, not a shipped model ({', '.join(shipped)}), "
            f"not a pretrained Demucs name ({', '.join(demucs_names())})"
        )
    return sep.to(device)
