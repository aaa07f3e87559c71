"""Inference settings compared on the SATB validation sets: how to choose a model's
``postfilter``, chunk ``overlap`` and ``shifts``.

Scores one SATB model (a model file, a run's checkpoint or a shipped name) on the validation
split of the training data (in-domain) and of the unseen-sound-font data, once per setting
of the grid post-filter (:mod:`separation.postfilter`) x overlap x shifts, through the
``wb separate`` path at the data's rate (:func:`separation.evaluate.evaluate`, SI-SDR only).
The setting with the best mean SI-SDR over both conditions is the one to store with the model
(``inference`` in the recipe's ``conf.yml``; shifts are a ``wb separate`` option). Choose on
``valid``; score the choice once on ``test``. Shifts draw random delays; each condition's
pass is seeded with ``--seed``, so a rerun gives the same rows.

    python benchmarks/satb_postfilter.py --model satb
    python benchmarks/satb_postfilter.py --model runs/satb_separation/perf3/checkpoints/best.ckpt \\
        --postfilters none,consistency,mask:0.75,mask,mask:2
    python benchmarks/satb_postfilter.py --model satb --postfilters mask --overlaps 0.25,0.5 \\
        --shifts 0,2

The table gives, per setting and condition, the mean SI-SDR over the four voices (mean over
tracks) and its SI-SDRi, and per voice the SI-SDR; dB; and the seconds each setting took
(both conditions), the price of overlap and shifts.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOICES = ("soprano", "alto", "tenor", "bass")


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns the exit code (1 with a one-line error on bad input)."""
    sys.path.insert(0, str(ROOT))
    from separation.evaluate import evaluate
    from separation.hub import load_separator
    from separation.inference import check_shifts
    from separation.postfilter import PostFilter
    from wb.errors import WbError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="satb", help="model file, checkpoint or name")
    parser.add_argument("--root", default="data/chorales_perf", help="in-domain data root")
    parser.add_argument("--unseen-root", default="data/chorales_perf_unseen")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--postfilters", default="none,consistency,mask:0.5,mask:0.75,mask,mask:2")
    parser.add_argument(
        "--overlaps", default=None, help="overlap fractions, e.g. 0.25,0.5 (default: the model's)"
    )
    parser.add_argument("--shifts", default="0", help="shift counts, e.g. 0,1,2 (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shifts' random delays")
    parser.add_argument("--max-tracks", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        posts = [str(PostFilter.parse(p)) for p in args.postfilters.split(",") if p.strip()]
        posts = list(dict.fromkeys(posts))  # mask and mask:1 are one post-filter
        if not posts:
            raise WbError("--postfilters names no post-filter")
        overlaps = [None] if args.overlaps is None else _numbers(args.overlaps, float, "--overlaps")
        shifts = [check_shifts(k) for k in _numbers(args.shifts, int, "--shifts")]
        separator = load_separator(args.model)
        for overlap in overlaps:  # refused here, not after minutes of the grid
            separator.with_chunking(None, overlap)
        conditions = [("in-domain", args.root), ("unseen", args.unseen_root)]
        for _, root in conditions:
            if not (Path(root) / args.split).is_dir():
                hint = "python -m recipes.satb_separation prepare [--unseen] --splits valid,test"
                raise WbError(f"{root}/{args.split} is not rendered ({hint})")
        rows = []
        for post, overlap, shift in itertools.product(posts, overlaps, shifts):
            start = time.perf_counter()
            cells = []
            for _, root in conditions:
                random.seed(args.seed)  # the shifts' delays (separation.inference._engine)
                r = evaluate(
                    separator, root, args.split, postfilter=post, overlap=overlap, shifts=shift,
                    with_bsseval=False, oracle=False, quiet=True, print_table=False,
                    max_tracks=args.max_tracks,
                )  # fmt: skip
                cells.append(r)
            label = f"{post}, overlap {cells[0]['overlap']:g}, shifts {shift}"
            rows.append((label, cells, time.perf_counter() - start))
            print(f"{label}: done in {rows[-1][2]:.0f} s", file=sys.stderr, flush=True)
    except WbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = [c for c, _ in conditions]
    head = "| setting | " + " | ".join(
        f"{c} mean SI-SDR / SI-SDRi | {c} S / A / T / B SI-SDR" for c in names
    )
    print(f"model {args.model}, split {args.split}, "
          f"{rows[0][1][0]['n_tracks']} + {rows[0][1][1]['n_tracks']} tracks, dB")  # fmt: skip
    print(head + " | both, mean SI-SDR | seconds |")
    print("|---" * (2 * len(names) + 3) + "|")
    for label, cells, seconds in rows:
        parts = []
        for r in cells:
            parts.append(f"{r['mean']['SI-SDR']:.2f} / {r['mean']['SI-SDRi']:.2f}")
            parts.append(" / ".join(f"{r['sources'][v]['SI-SDR']:.2f}" for v in VOICES))
        both = sum(r["mean"]["SI-SDR"] for r in cells) / len(cells)
        print(f"| {label} | " + " | ".join(parts) + f" | {both:.3f} | {seconds:.0f} |")
    best = max(rows, key=lambda row: sum(r["mean"]["SI-SDR"] for r in row[1]))
    print(f"best: {best[0]}")
    return 0


def _numbers(text: str, kind, flag: str) -> list:
    """``"0.25,0.5"`` -> ``[0.25, 0.5]`` (duplicates dropped).

    Raises:
        WbError: an item that ``kind`` cannot parse, or none at all.
    """
    from wb.errors import WbError

    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WbError(f"{flag} {text!r}: give comma-separated numbers") from None
    if not values:
        raise WbError(f"{flag} names no value")
    return list(dict.fromkeys(values))


if __name__ == "__main__":
    raise SystemExit(main())
