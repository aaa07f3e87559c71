"""Render the whole data set: selection, splits, parallel resumable rendering, manifest
(:func:`prepare_chorales`)."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from music.chorale_corpus import (
    assign_splits,
    corpus_works,
    load_works,
    mp_context,
    normalize_name,
    read_heldout,
)
from music.chorales.config import GENERATOR_VERSION, SPLITS, ChoraleConfig, Log, _is_int, piece_id
from music.chorales.render import render_rendition, verify_piece
from music.synth import (
    check_soundfont,
    find_fluidsynth,
)
from wb.errors import ConfigError, WbError


# ----------------------------------------------------------------------------- orchestration
@dataclass
class PrepareSummary:
    """What :func:`prepare_chorales` did.

    Attributes:
        root: output root.
        rendered: piece ids rendered by this run.
        already: pieces found complete and kept.
        rerendered: ``{piece id: reason}`` for pieces replaced because they were broken or
            stale (a subset of ``rendered``).
        failed: ``{piece id: error}``.
        skipped: ``{work: reason}`` for works among those considered that are not usable.
        pulled: ``{work: held-out work}`` pulled into test by the same-tune rule.
        counts: pieces per split in the manifest.
        seconds: wall time in seconds.
        audio_seconds: seconds of audio rendered by this run.
    """

    root: Path
    rendered: list[str] = field(default_factory=list)
    already: int = 0
    rerendered: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    pulled: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def pieces_per_second(self) -> float:
        """Rendered pieces per wall-clock second of this run."""
        return len(self.rendered) / self.seconds if self.seconds > 0 else 0.0


_SELECTION_KEYS = ("root", "limit", "pieces", "splits", "jobs", "quiet")


def _as_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [x.strip() for x in value.split(",")]
    elif isinstance(value, Iterable):
        items = [str(x).strip() for x in value]
    else:
        raise ConfigError(f"{what}={value!r} must be a comma-separated string or a list")
    items = [x for x in items if x]
    if not items:
        raise ConfigError(f"{what} is empty")
    return items


def check_prepare_kwargs(kwargs: Mapping[str, Any]) -> tuple[ChoraleConfig, dict[str, Any]]:
    """Validate :func:`prepare_chorales` keyword arguments without doing any work.

    Args:
        kwargs: ``root``, ``limit``, ``pieces``, ``splits``, ``jobs``, ``quiet`` and
            :class:`ChoraleConfig` fields (the recipe's ``data:`` group).

    Returns:
        ``(config, selection)`` with selection keys normalised.

    Raises:
        ConfigError: missing ``root``, unknown key or invalid value.
    """
    sel = {k: kwargs.get(k) for k in _SELECTION_KEYS}
    config = ChoraleConfig.from_kwargs(**{k: v for k, v in kwargs.items() if k not in sel})
    if not sel["root"] or not isinstance(sel["root"], str | os.PathLike):
        raise ConfigError("root (the output folder) must be given")
    if sel["limit"] is not None and (not _is_int(sel["limit"]) or sel["limit"] < 1):
        raise ConfigError(f"limit={sel['limit']!r} must be a positive integer")
    if sel["jobs"] is not None and (not _is_int(sel["jobs"]) or sel["jobs"] < 1):
        raise ConfigError(f"jobs={sel['jobs']!r} must be a positive integer")
    pieces = _as_list(sel["pieces"], "pieces")
    sel["pieces"] = [normalize_name(p) for p in pieces] if pieces else None
    splits = _as_list(sel["splits"], "splits")
    if splits:
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise ConfigError(
                f"splits: unknown split(s) {', '.join(bad)} (use {', '.join(SPLITS)})"
            )
    sel["splits"] = tuple(s for s in SPLITS if not splits or s in splits)
    sel["jobs"] = int(sel["jobs"] or os.cpu_count() or 1)
    return config, sel


def check_prepare(kwargs: Mapping[str, Any]) -> tuple[ChoraleConfig, dict[str, Any]]:
    """:func:`check_prepare_kwargs` plus the checks that look at this machine: the FluidSynth
    binary, every sound font, the held-out list, and that every named piece and held-out work
    is in the music21 corpus. Run it before writing anything.

    Args:
        kwargs: as :func:`check_prepare_kwargs`.

    Returns:
        ``(config, selection)`` as :func:`check_prepare_kwargs`.

    Raises:
        ConfigError: as :func:`check_prepare_kwargs`; a missing held-out list; a piece or
            held-out work that is not in the corpus.
        DependencyError: FluidSynth or a sound font missing (names the Debian package).
    """
    return _preflight(kwargs)[:2]


def _preflight(kwargs: Mapping[str, Any]) -> tuple:
    """The checks of :func:`check_prepare`; returns ``(config, selection, corpus paths,
    held-out list path, held-out works, works considered)`` for :func:`prepare_chorales`."""
    cfg, sel = check_prepare_kwargs(kwargs)
    find_fluidsynth(cfg.fluidsynth)
    for sf in cfg.soundfonts or [cfg.soundfont]:
        check_soundfont(sf)
    heldout_path = resolve_heldout(cfg.heldout).resolve()
    heldout = read_heldout(heldout_path)
    paths = corpus_works()
    candidates = _candidates(paths, sel)
    missing = [h for h in heldout if h not in paths]
    if missing:
        raise ConfigError(f"{heldout_path}: not in the music21 Bach corpus: {', '.join(missing)}")
    return cfg, sel, paths, heldout_path, heldout, candidates


def default_kwargs() -> dict[str, Any]:
    """:func:`prepare_chorales` keyword arguments with their defaults (``root`` is ``None``):
    the :class:`ChoraleConfig` defaults plus ``limit``, ``pieces``, ``splits``, ``jobs``."""
    return {
        "root": None,
        **ChoraleConfig().to_dict(),
        "limit": None,
        "pieces": None,
        "splits": None,
        "jobs": None,
    }


def resolve_heldout(path: str | os.PathLike) -> Path:
    """A held-out list path: as given (``~`` expanded, relative to the working directory),
    else relative to the project root (the folder holding ``music/``)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    alt = Path(__file__).resolve().parents[2] / p
    return alt if alt.exists() else p


def _scan_pieces(root: Path) -> list[tuple[str, Path]]:
    out = []
    for split in SPLITS:
        d = root / split
        if d.is_dir():
            out.extend((split, p) for p in sorted(d.iterdir()) if p.is_dir() and "__r" in p.name)
    return out


def _work_of(piece_dir: Path) -> str:
    try:
        meta = json.loads((piece_dir / "meta.json").read_text(encoding="utf-8"))
        if isinstance(meta, dict) and isinstance(meta.get("work"), str):
            return meta["work"]
    except (OSError, ValueError):
        pass
    return "bach/" + piece_dir.name.rsplit("__r", 1)[0]


def _clean_tmp(tmp_root: Path) -> None:
    if not tmp_root.is_dir():
        return
    for p in tmp_root.iterdir():
        try:
            pid = int(p.name.split(".")[-2])
            os.kill(pid, 0)
            continue  # its process is alive
        except (ValueError, IndexError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        shutil.rmtree(p, ignore_errors=True)


def _render_job(job: tuple[dict[str, Any], ChoraleConfig, int, str, str]) -> tuple[str, Any]:
    """Worker: render into a private temporary folder, then move it into place."""
    work, config, rendition, split, root = job
    pid = piece_id(work["name"], rendition)
    tmp_root = Path(root) / ".tmp"
    tmp = tmp_root / f"{pid}.{uuid.uuid4().hex[:8]}.{os.getpid()}.d"
    final = Path(root) / split / pid
    try:
        tmp.mkdir(parents=True)
        meta = render_rendition(work, config, rendition, split, tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            old = tmp_root / f"{pid}.old{uuid.uuid4().hex[:8]}.{os.getpid()}.d"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        return pid, {"duration": meta["duration"]}
    except Exception as exc:  # noqa: BLE001 - reported per piece, the run goes on
        shutil.rmtree(tmp, ignore_errors=True)
        msg = " ".join(str(exc).split())[:300]
        return pid, f"{type(exc).__name__}: {msg}" if not isinstance(exc, WbError) else msg


def _default_log(msg: str) -> None:
    print(msg, flush=True)


def _candidates(paths: Mapping[str, Any], sel: Mapping[str, Any]) -> list[str]:
    """The works considered: ``pieces`` when given (checked), else the first ``limit``.

    Raises:
        ConfigError: a piece that is not in the corpus.
    """
    if sel["pieces"]:
        unknown = [p for p in sel["pieces"] if p not in paths]
        if unknown:
            raise ConfigError(f"pieces: not in the music21 Bach corpus: {', '.join(unknown)}")
        return list(dict.fromkeys(sel["pieces"]))
    return list(paths)[: sel["limit"]] if sel["limit"] else list(paths)


def _remove_moved(existing: list[tuple[str, Path]], split_of: Mapping[str, str]) -> int:
    """Delete rendered pieces whose work now belongs to another split (a held-out work must
    never linger in train or valid); returns how many."""
    removed = 0
    for split, p in existing:
        w = _work_of(p)
        if w in split_of and split_of[w] != split:
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    return removed


def _todo(selected, split_of, cfg: ChoraleConfig, out: Path, summary) -> list[tuple[str, int]]:
    """``(work, rendition)`` pairs to render: missing, stale or corrupt ones (counted in
    ``summary.already`` / ``summary.rerendered``)."""
    todo: list[tuple[str, int]] = []
    for w in selected:
        for k in range(cfg.renditions):
            reason = verify_piece(out / split_of[w] / piece_id(w, k), cfg, w, k, split_of[w])
            if reason is None:
                summary.already += 1
            else:
                todo.append((w, k))
                if reason != "missing":
                    summary.rerendered[piece_id(w, k)] = reason
    return todo


def prepare_chorales(
    root: str | os.PathLike,
    *,
    limit: int | None = None,
    pieces: str | Sequence[str] | None = None,
    splits: str | Sequence[str] | None = None,
    jobs: int | None = None,
    quiet: bool | None = None,
    log: Log | None = None,
    **config: Any,
) -> PrepareSummary:
    """Render the chorale data set into ``root`` (resumable, parallel, atomic per piece).

    Works considered: ``pieces`` if given, else the first ``limit`` corpus names in sorted
    order, else all. Unusable works are skipped and counted; works are split
    (:func:`music.chorale_corpus.assign_splits`) and only those in ``splits`` rendered.
    A piece that is already complete and valid (:func:`verify_piece`) is kept; a missing,
    half-written, corrupt or stale one is rendered again in a temporary folder under
    ``root/.tmp`` and renamed into place. Folders of works whose split changed are removed,
    so a held-out work can never linger in train or valid. ``root/manifest.json`` is
    rewritten at the end.

    Args:
        root: output folder.
        limit: only the first ``limit`` works (sorted corpus names).
        pieces: explicit corpus names (``bach/bwv255``, ``bwv255``), list or comma string.
        splits: render only these splits (list or comma string of train, valid, test).
        jobs: worker processes (default: CPU count); 1 renders in this process.
        quiet: no progress bars when True (default: ``WB_QUIET``).
        log: receives one-line progress messages (default: print to stdout).
        **config: :class:`ChoraleConfig` fields.

    Returns:
        A :class:`PrepareSummary`.

    Raises:
        ConfigError: invalid settings, unknown piece names, missing held-out list.
        DependencyError: FluidSynth or the sound font missing (names the Debian package).
        WbError: some pieces failed to render (the others are kept; the message says which).
    """
    t0 = time.perf_counter()
    say = log or _default_log
    cfg, sel, paths, heldout_path, heldout, candidates = _preflight(
        {**config, "root": root, "limit": limit, "pieces": pieces, "splits": splits,
         "jobs": jobs, "quiet": quiet}
    )  # fmt: skip
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    existing = _scan_pieces(out)
    existing_works = {_work_of(p) for _, p in existing}
    to_load = [*candidates, *heldout, *(w for w in existing_works if w in paths)]
    works = load_works(to_load, paths, cfg.cache_dir, jobs=sel["jobs"], quiet=sel["quiet"])
    split_of, pulled_all = assign_splits(works, heldout, cfg.valid_fraction)
    summary = PrepareSummary(root=out)
    summary.skipped = {w: works[w]["reason"] for w in candidates if works[w]["status"] != "ok"}
    considered = set(candidates)
    considered_pulled = {w: h for w, h in pulled_all.items() if w in considered}
    summary.pulled = considered_pulled
    usable = [w for w in candidates if works[w]["status"] == "ok"]
    reasons = Counter(summary.skipped.values())
    say(
        f"corpus: {len(candidates)} works considered, {len(usable)} usable, "
        f"{len(summary.skipped)} skipped"
        + (" (" + "; ".join(f"{n}x {r}" for r, n in reasons.most_common()) + ")" if reasons else "")
    )
    say(
        f"held-out: {len(heldout)} works listed in {heldout_path}; the same-tune rule pulled "
        f"{len(considered_pulled)} more of the considered works into test"
    )
    removed = _remove_moved(existing, split_of)
    if removed:
        say(f"removed {removed} piece folders whose split changed")
    selected = [w for w in usable if split_of[w] in sel["splits"]]
    if len(selected) < len(usable):
        other = Counter(split_of[w] for w in usable if split_of[w] not in sel["splits"])
        say(
            f"not rendering {len(usable) - len(selected)} works of other splits ("
            + ", ".join(f"{n} {s}" for s, n in sorted(other.items()))
            + f"); rendering splits: {', '.join(sel['splits'])}"
        )
    todo = _todo(selected, split_of, cfg, out, summary)
    if not todo:
        say(f"nothing to do: {summary.already} pieces already rendered in {out}")
    else:
        extra = f", {summary.already} already rendered" if summary.already else ""
        if summary.rerendered:
            extra += f", {len(summary.rerendered)} to redo: " + "; ".join(
                f"{p} ({r})" for p, r in list(summary.rerendered.items())[:5]
            )
            extra += " ..." if len(summary.rerendered) > 5 else ""
        workers = 1 if len(todo) == 1 else min(sel["jobs"], len(todo))
        say(f"rendering {len(todo)} pieces with {workers} process(es){extra}")
        _clean_tmp(out / ".tmp")
        _run_jobs(todo, works, split_of, cfg, out, sel["jobs"], sel["quiet"], summary)
        if _empty(out / ".tmp"):
            shutil.rmtree(out / ".tmp", ignore_errors=True)
    manifest = write_manifest(out, cfg, heldout_path, works, pulled_all, summary.skipped)
    summary.counts = manifest["counts"]
    summary.seconds = time.perf_counter() - t0
    if summary.rendered:
        say(
            f"rendered {len(summary.rendered)} pieces ({summary.audio_seconds / 60:.1f} min of "
            f"audio) in {summary.seconds:.1f} s: {summary.pieces_per_second:.2f} pieces/s"
        )
    if summary.failed:
        first = next(iter(summary.failed.items()))
        raise WbError(
            f"{len(summary.failed)} of {len(todo)} pieces failed to render "
            f"(first: {first[0]}: {first[1]}); rerun to retry them"
        )
    return summary


def _empty(d: Path) -> bool:
    return d.is_dir() and not any(d.iterdir())


def _run_jobs(
    todo: Sequence[tuple[str, int]],
    works: Mapping[str, Mapping[str, Any]],
    split_of: Mapping[str, str],
    cfg: ChoraleConfig,
    out: Path,
    jobs: int,
    quiet: bool | None,
    summary: PrepareSummary,
) -> None:
    from wb.progress import progress

    args = [(dict(works[w]), cfg, k, split_of[w], str(out)) for w, k in todo]
    bar = progress(total=len(args), desc="rendering chorales", unit="piece", quiet=quiet)

    def record(result: tuple[str, Any]) -> None:
        pid, res = result
        if isinstance(res, dict):
            summary.rendered.append(pid)
            summary.audio_seconds += float(res["duration"])
        else:
            summary.failed[pid] = res
        bar.update(1)

    try:
        if jobs <= 1 or len(args) == 1:
            for a in args:
                record(_render_job(a))
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            workers = min(jobs, len(args))
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp_context()) as pool:
                futures = [pool.submit(_render_job, a) for a in args]
                for fut in as_completed(futures):
                    record(fut.result())
    finally:
        bar.close()


def write_manifest(
    root: Path,
    cfg: ChoraleConfig,
    heldout_path: Path,
    works: Mapping[str, Mapping[str, Any]],
    pulled: Mapping[str, str],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """Write ``root/manifest.json`` listing every valid piece folder under ``root``.

    A piece is listed when its meta.json matches the current settings (its checksum, the
    sha256 over its stem WAVs, MIDI files and their names, is taken from meta.json). Skip
    reasons and same-tune pulls from earlier runs are kept and merged with this run's.

    Returns:
        The manifest: ``config``, ``heldout``, ``counts`` (pieces per split),
        ``skipped`` (``count``, ``by_reason``, ``works``), ``test_same_tune``
        (``{work: held-out work}``) and ``pieces`` (``id``, ``work``, ``rendition``,
        ``split``, ``path``, ``duration`` in seconds, ``checksum``).
    """
    from wb.runs import write_json

    mpath = root / "manifest.json"
    try:
        old = json.loads(mpath.read_text(encoding="utf-8"))
        old = old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        old = {}
    old_skipped = (old.get("skipped") or {}).get("works") or {}
    all_skipped = {**old_skipped, **skipped}
    all_pulled = {**(old.get("test_same_tune") or {}), **pulled}
    render_cfg = cfg.render_dict()
    entries = []
    for split, p in _scan_pieces(root):
        try:
            meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or meta.get("config") != render_cfg:
            continue
        if meta.get("split") != split or meta.get("piece") != p.name:
            continue
        entries.append(
            {
                "id": p.name,
                "work": meta["work"],
                "rendition": meta["rendition"],
                "split": split,
                "path": f"{split}/{p.name}",
                "duration": meta["duration"],
                "checksum": meta["checksum"],
            }
        )
    counts = {s: sum(1 for e in entries if e["split"] == s) for s in SPLITS}
    manifest = {
        "generator": "music.chorales",
        "generator_version": GENERATOR_VERSION,
        "sample_rate": cfg.sample_rate,
        "config": cfg.to_dict(),
        "heldout": {"path": str(heldout_path), "works": read_heldout(heldout_path)},
        "same_tune_rule": (
            "soprano pitch sequences without repeated notes, transposition-aligned; same tune "
            "when 2*LCS/(len_a+len_b) >= 0.8, or LCS/min_len >= 0.95 with min_len >= 16 and "
            ">= 0.6*max_len (music.chorale_corpus)"
        ),
        "counts": counts,
        "skipped": {
            "count": len(all_skipped),
            "by_reason": dict(Counter(all_skipped.values()).most_common()),
            "works": dict(sorted(all_skipped.items())),
        },
        "test_same_tune": dict(sorted(all_pulled.items())),
        "pieces": entries,
    }
    write_json(mpath, manifest)
    return manifest
