"""Choose the note segmentation of the voice2midi frame head on data the model may see.

The frame head gives per 20 ms frame a pitch class ("no note" included) and an onset
probability; :func:`music.transcription.inference.frames_to_notes` turns that into notes.
This benchmark runs the model once per recording (its frame logits are kept), then scores a
grid of segmentation settings with mir_eval (mean over files of COnPOff / COnP / COn F1,
:mod:`music.transcription.metrics`) on two *tuning* sets:

- ``ssvd-train``: the 52 SSVD training recordings (real singers; the model trained on them,
  so its figures there are optimistic); with ``--ssvd-dev N``, ``ssvd-dev`` instead: the
  ``N`` recordings that ``data.ssvd_dev: N`` held out of training (:func:`ssvd.split`), so
  real singing the model never heard;
- ``synthetic-valid``: the 40 synthetic validation lines (works the model never heard).

SSVD *validation* is never read here: the defaults are chosen on the two tuning sets, then
``python -m recipes.voice2midi evaluate`` scores them once. Rows are sorted by the mean COnP
F1 of the two sets; ``(default)`` marks the current defaults of ``frames_to_notes``.

    python benchmarks/frame_decoding.py                      # the shipped model, 2 threads
    python benchmarks/frame_decoding.py --model runs/voice2midi/main3/voice2midi_best.pt
    python benchmarks/frame_decoding.py --model runs/voice2midi/ft7/voice2midi_best.pt --ssvd-dev 10
"""

from __future__ import annotations

import argparse
import inspect
import itertools
from functools import partial
from pathlib import Path

import numpy as np
import torch

from music.transcription import metrics, ssvd
from music.transcription.data import find_pairs
from music.transcription.inference import (
    clip_notes,
    frames_to_notes,
    load_transcriber,
    transcribe_array,
)
from music.transcription.notes import read_notes
from music.transcription.stages import shipped_model
from wb import audio as wb_audio
from wb.progress import progress

#: The grid (frames_to_notes keyword arguments).
GRID = {
    "stable_frames": (8, 12, 20),
    "onset_threshold": (0.4, 0.5, 0.6),
    "voicing_threshold": (0.5, 0.6, 0.7, 0.8),
    "min_duration": (0.1, 0.15, 0.2),
    "max_gap": (0, 2),
    "median_frames": (3, 5),
    "skip_frames": (0, 2),
}


def _keep(kept: list, logits: np.ndarray) -> np.ndarray:
    """A ``frame_decoder`` that keeps the logits and returns no notes."""
    kept.append(logits)
    return np.zeros((0, 3))


def frame_logits(model, pairs: list[tuple[str, Path, Path]], desc: str) -> list:
    """``[(logits (frames, n_pitches + 2), reference notes (n, 3), duration_s)]`` per
    recording."""
    out = []
    for _, audio_path, notes_path in progress(pairs, desc=desc, unit="file"):
        x = wb_audio.load(audio_path, sample_rate=model.sample_rate, channels=1)[0][0].numpy()
        kept: list[np.ndarray] = []
        transcribe_array(model, x, "frames", frame_decoder=partial(_keep, kept))
        out.append((kept[0] if kept else None, read_notes(notes_path), len(x) / model.sample_rate))
    return out


def score(items: list, frame_seconds: float, min_pitch: int, **kwargs) -> tuple[float, ...]:
    """Mean COnPOff, COnP and COn F1 over ``items`` decoded with ``kwargs``."""
    per = []
    for logits, ref, duration in items:
        est = np.zeros((0, 3)) if logits is None else frames_to_notes(
            logits, frame_seconds, min_pitch, **kwargs)  # fmt: skip
        est = clip_notes(est, duration)  # as transcribe_blocks does
        per.append(metrics.note_scores(ref, est))
    agg = metrics.aggregate(per)
    return agg["conpoff_f"], agg["conp_f"], agg["con_f"]


def main() -> None:
    """Parse arguments, collect frame logits, print the ranked table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model file (default: the shipped model)")
    ap.add_argument("--ssvd", default=str(ssvd.DEFAULT_ROOT), help="SSVD train_valid folder")
    ap.add_argument(
        "--ssvd-dev", type=int, default=0,
        help="tune on the N-recording SSVD dev part (data.ssvd_dev) instead of SSVD train",
    )  # fmt: skip
    ap.add_argument("--synthetic", default="data/voices", help="synthetic lines root")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=15, help="rows to print")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_transcriber(args.model or shipped_model())
    part = "dev" if args.ssvd_dev else "train"
    real = f"ssvd-{part}"
    sets = {
        real: frame_logits(model, ssvd.split(args.ssvd, dev=args.ssvd_dev)[part], real),
        "synthetic-valid": frame_logits(
            model, find_pairs(Path(args.synthetic) / "valid"), "synthetic-valid"
        ),
    }
    defaults = {
        k: v.default for k, v in inspect.signature(frames_to_notes).parameters.items() if k in GRID
    }
    decode = partial(score, frame_seconds=model.frame_seconds, min_pitch=model.vocab.min_pitch)
    rows = []
    for values in itertools.product(*GRID.values()):
        kwargs = dict(zip(GRID, values, strict=True))
        scores = {name: decode(items, **kwargs) for name, items in sets.items()}
        mean_conp = float(np.mean([s[1] for s in scores.values()]))
        rows.append((mean_conp, kwargs, scores))
    rows.sort(key=lambda r: -r[0])
    shown = rows[: args.top] + [r for r in rows[args.top :] if r[1] == defaults]
    head = " ".join(f"{k:>17}" for k in GRID)
    print(f"{head} | {real + ' COnPOff/COnP/COn':>28} | {'synthetic-valid':>20}")
    for _, kwargs, scores in shown:
        cells = " ".join(f"{kwargs[k]:>17}" for k in GRID)
        s = " | ".join("  " + " / ".join(f"{v:.3f}" for v in scores[n]) for n in sets)
        mark = "  (default)" if kwargs == defaults else ""
        print(f"{cells} | {s}{mark}")


if __name__ == "__main__":
    main()
