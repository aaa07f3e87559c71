"""Chorale rendering speed: pieces per second of ``music.chorales.prepare_chorales``.

Usage::

    python benchmarks/chorale_render_speed.py --limit 40 --jobs 2 --sample-rate 16000

Renders the first ``--limit`` works (1 rendition, default settings) into a fresh temporary
folder (or ``--root``), after warming the music21 parse cache so that only rendering is
timed, then runs again to time the "nothing to do" check (reading back and hashing every
file). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from music import chorale_corpus, chorales  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=40, help="first N works (default 40)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    ap.add_argument("--sample-rate", type=int, default=16000, help="Hz")
    ap.add_argument("--renditions", type=int, default=1)
    ap.add_argument("--root", default=None, help="keep the output here (default: temporary)")
    ap.add_argument("--cache-dir", default=None, help="music21 parse cache root")
    args = ap.parse_args(argv)

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="wb-chorales-"))
    if root.exists() and any(root.iterdir()):
        print(f"error: {root} is not empty (a benchmark needs a fresh folder)", file=sys.stderr)
        return 1
    cfg = chorales.ChoraleConfig.from_kwargs(sample_rate=args.sample_rate, cache_dir=args.cache_dir)
    paths = chorale_corpus.corpus_works()
    heldout = chorale_corpus.read_heldout(chorales.resolve_heldout(cfg.heldout))
    t = time.perf_counter()
    chorale_corpus.load_works(
        [*list(paths)[: args.limit], *heldout], paths, args.cache_dir, jobs=args.jobs, quiet=True
    )
    parse_s = time.perf_counter() - t

    kwargs = {
        "limit": args.limit,
        "jobs": args.jobs,
        "sample_rate": args.sample_rate,
        "renditions": args.renditions,
        "cache_dir": args.cache_dir,
        "quiet": True,
        "log": lambda msg: None,
    }
    try:
        first = chorales.prepare_chorales(root, **kwargs)
        t = time.perf_counter()
        second = chorales.prepare_chorales(root, **kwargs)
        check_s = time.perf_counter() - t
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)

    n = len(first.rendered)
    rows = [
        ("works (first N)", f"{args.limit}"),
        ("pieces rendered", f"{n}"),
        ("audio rendered", f"{first.audio_seconds / 60:.1f} min"),
        ("sample rate", f"{args.sample_rate} Hz"),
        ("jobs", f"{args.jobs} (CPU count {os.cpu_count()})"),
        ("corpus parse (cache warm-up)", f"{parse_s:.1f} s"),
        ("render wall time", f"{first.seconds:.1f} s"),
        ("pieces / s", f"{first.pieces_per_second:.2f}"),
        ("audio s / wall s", f"{first.audio_seconds / max(first.seconds, 1e-9):.1f}"),
        ("rerun (verify, nothing to do)", f"{check_s:.1f} s, rendered {len(second.rendered)}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'chorale render speed':<{width}} | value")
    print(f"{'-' * width}-|-{'-' * 24}")
    for k, v in rows:
        print(f"{k:<{width}} | {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
