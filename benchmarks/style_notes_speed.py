"""Note extraction speed of the corpus_style renderer: music21's ``stripTies`` against
``music.styles.tied_notes``, per style.

Usage::

    python benchmarks/style_notes_speed.py --per-style 14 --styles string_quartet,monteverdi

For ``--per-style`` works drawn at random (seeded) from each style, every part of the parsed
score is read twice: with ``part.flatten().stripTies().notes`` (what ``_parts`` read before)
and with ``tied_notes(part.flatten())``. Parsing is done (and cached) before either is timed.
Prints one table: works, seconds for each method, and how many works' note lists differ
(expected: 0).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from music import styles  # noqa: E402


def _strip_ties(part) -> list[tuple[int, float, float]]:
    out = []
    for n in part.flatten().stripTies().notes:
        if n.quarterLength > 0:
            out.extend((int(p.midi), float(n.offset), float(n.quarterLength)) for p in n.pitches)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-style", type=int, default=10, help="works per style (default 10)")
    ap.add_argument("--styles", default=",".join(styles.STYLES), help="comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    rows = []
    for style in args.styles.split(","):
        works = styles.candidates(style)
        sample = rng.sample(works, min(args.per_style, len(works)))
        t_old = t_new = 0.0
        differ = 0
        for _group, _work, path, opus in sample:
            score = styles._score(path, opus)
            if score is None:
                continue
            parts = score.parts if hasattr(score, "parts") and len(score.parts) else [score]
            for part in parts:
                t = time.perf_counter()
                old = _strip_ties(part)
                t_old += time.perf_counter() - t
                t = time.perf_counter()
                new = styles.tied_notes(part.flatten())
                t_new += time.perf_counter() - t
                differ += old != new
        rows.append((style, len(sample), t_old, t_new, differ))
    print("| style | works | stripTies (s) | tied_notes (s) | speed-up | parts that differ |")
    print("|---|---:|---:|---:|---:|---:|")
    for style, n, a, b, d in rows:
        print(f"| {style} | {n} | {a:.1f} | {b:.2f} | {a / max(b, 1e-9):.0f}x | {d} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
