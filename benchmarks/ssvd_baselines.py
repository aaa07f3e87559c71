"""Voice-to-MIDI baselines on the SSVD v2.0 sight-singing recordings, scored with mir_eval.

Systems: ``pyin`` (:func:`music.transcription.baselines.pyin_notes`: pYIN at 16 kHz, 10 ms hop,
change-point note segmentation) and ``basic-pitch`` (the published model, when the optional
``basic_pitch`` package imports). Each recording's notes are scored against its annotation
with :func:`music.transcription.metrics.score` (onset 50 ms, pitch 50 cents on the rounded
reference pitch, offset 20 % / 50 ms; RPA / RCA on a 10 ms grid against the sung pitch), and
the table shows the mean over recordings (:func:`~music.transcription.metrics.aggregate`).
``--part`` picks the fixed split of :mod:`music.transcription.ssvd` (valid: 15 recordings,
train: 52, all: 67).

``--systems oracle-timing,oracle-timing-bias,oracle-timing-file-bias`` measure the
reference itself: "systems" that copy each annotated note's onset and offset and take its
pitch from the audio (the median pYIN pitch over the note's voiced frames, rounded), as is,
plus the median annotation - pYIN offset over the *train* part's notes (``-bias``), or plus
each recording's own median offset (``-file-bias``, an oracle that reads the labels). Their
COnP F1 is what perfect timing with a pitch read from the audio reaches against these
labels (not a hard ceiling: a model may learn the annotators' habits); the offsets
themselves are printed.

``--tune`` re-runs the small grid that chose the segmentation defaults of
:mod:`music.transcription.baselines`, on the *train* part only (pYIN runs once per recording;
``--cache DIR`` keeps its f0 tracks for reuse), ranked by mean COnP F1.

    OMP_NUM_THREADS=1 python benchmarks/ssvd_baselines.py --part valid --systems pyin
    OMP_NUM_THREADS=1 python benchmarks/ssvd_baselines.py --tune --cache /tmp/pyin_cache
    OMP_NUM_THREADS=1 python benchmarks/ssvd_baselines.py --part all --cache /tmp/pyin_cache \
        --systems oracle-timing,oracle-timing-bias,oracle-timing-file-bias
    OMP_NUM_THREADS=1 python benchmarks/ssvd_baselines.py --part folder --root data/voices/test \
        --systems basic-pitch
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from music.transcription import baselines, metrics, ssvd
from music.transcription.notes import read_notes

#: The grid of --tune (segment_notes keyword arguments).
GRID = {
    "median_frames": (3, 5, 9),
    "split_semitones": (0.5, 0.6, 0.8, 1.0),
    "stay_frames": (3, 5, 8, 12),
    "min_duration": (0.04, 0.06, 0.1, 0.15),
}


def recordings(root: Path, part: str) -> list[tuple[str, Path, Path]]:
    """The recordings of one part of the split (``valid``, ``train`` or ``all``), or with
    ``part == "folder"`` every ``<id>.flac`` + ``<id>.txt`` of ``root`` (e.g. the synthetic
    test split ``data/voices/test``)."""
    if part == "folder":  # (no torch import: basic-pitch may live in its own environment)
        return [(a.stem, a, a.with_suffix(".txt")) for a in sorted(Path(root).glob("*.flac"))
                if a.with_suffix(".txt").is_file()]  # fmt: skip
    if part == "all":
        return ssvd.list_recordings(root)
    return ssvd.split(root)[part]


def duration(path: Path) -> float:
    """Audio duration in seconds (header only)."""
    import soundfile as sf

    return float(sf.info(str(path)).duration)


#: pYIN tracks computed in this process (the oracle systems read each recording several times).
_TRACKS: dict[Path, tuple[np.ndarray, np.ndarray]] = {}


def pyin_track(audio_path: Path, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """``pyin_f0`` of a recording (mono, resampled to 16 kHz), from this process's memory or
    from ``cache`` when there."""
    if audio_path in _TRACKS:
        return _TRACKS[audio_path]
    hit = cache / f"{audio_path.stem}.npz" if cache else None
    if hit is not None and hit.is_file():
        with np.load(hit) as z:
            return z["midi"], z["v"]
    from wb.audio import load

    audio, sr = load(audio_path, sample_rate=baselines.PYIN_SAMPLE_RATE, channels=1)
    midi, voiced = baselines.pyin_f0(audio[0].numpy(), sr)
    if hit is not None:
        hit.parent.mkdir(parents=True, exist_ok=True)
        np.savez(hit, midi=midi, v=voiced)
    _TRACKS[audio_path] = midi, voiced
    return midi, voiced


#: The systems that read the reference's timing (see the module docstring).
ORACLES = ("oracle-timing", "oracle-timing-bias", "oracle-timing-file-bias")


def sung_pitch(ref: np.ndarray, midi: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Median pYIN pitch (MIDI, fractional) over each reference note's voiced frames; NaN for
    a note with fewer than 3 voiced frames. ``ref`` is ``(n, 3)``; ``midi`` / ``voiced`` are
    :func:`~music.transcription.baselines.pyin_f0` tracks (frame ``i`` at ``i`` hops)."""
    t = np.arange(len(midi)) * baselines.PYIN_HOP_LENGTH / baselines.PYIN_SAMPLE_RATE
    out = np.full(len(ref), np.nan)
    for i, (on, off, _) in enumerate(ref):
        m = (t >= on) & (t < off) & voiced
        if m.sum() >= 3:
            out[i] = np.median(midi[m])
    return out


def train_bias(root: Path, cache: Path | None) -> float:
    """Median (annotated - sung pYIN) pitch in semitones over the notes of the train part."""
    diffs = []
    for _, audio, txt in ssvd.split(root)["train"]:
        ref = read_notes(txt)
        diffs.append(ref[:, 2] - sung_pitch(ref, *pyin_track(audio, cache)))
    d = np.concatenate(diffs)
    return float(np.median(d[np.isfinite(d)]))


def oracle_notes(system: str, ref: np.ndarray, sung: np.ndarray, bias: float) -> np.ndarray:
    """Reference timing with the rounded sung pitch (+ ``bias``, or + the recording's own
    median offset for ``oracle-timing-file-bias``); notes without a pitch are left out."""
    keep = np.isfinite(sung)
    if system == "oracle-timing-file-bias":
        bias = float(np.median(ref[keep, 2] - sung[keep])) if keep.any() else 0.0
    elif system == "oracle-timing":
        bias = 0.0
    out = ref[keep].copy()
    out[:, 2] = np.rint(sung[keep] + bias)
    return out


def print_offsets(recs: list[tuple[str, Path, Path]], cache: Path | None) -> None:
    """Print how far the annotated pitches lie from the sung (pYIN) pitch."""
    per_file, within, n_notes = [], [], 0
    for _, audio, txt in recs:
        ref = read_notes(txt)
        d = ref[:, 2] - sung_pitch(ref, *pyin_track(audio, cache))
        n_notes += len(d)
        d = d[np.isfinite(d)]
        if len(d):
            per_file.append(np.median(d))
            within.extend(np.abs(d - np.median(d)))
    if not per_file:
        print("annotated - sung pitch: no note with enough voiced frames")
        return
    q1, q3 = np.percentile(per_file, [25, 75])
    print(
        f"annotated - sung pitch (pYIN), semitones: per-recording median "
        f"{np.median(per_file):+.3f} "
        f"(quartiles {q1:+.3f}, {q3:+.3f}; {np.sum(np.abs(per_file) > 0.75)} of {len(per_file)} "
        f"recordings beyond 0.75); within a recording, median |deviation| "
        f"{np.median(within):.3f}, 90th percentile {np.percentile(within, 90):.3f}; "
        f"{len(within)} of {n_notes} notes have >= 3 voiced pYIN frames (the others are left "
        f"out of the oracles)"
    )


def transcribe(system: str, audio_path: Path, cache: Path | None) -> np.ndarray:
    """Notes of one recording by one system (not the oracles)."""
    if system == "pyin":
        return baselines.segment_notes(*pyin_track(audio_path, cache))
    if system == "basic-pitch":
        return baselines.basic_pitch_notes(audio_path)
    raise SystemExit(f"error: unknown system {system!r} (pyin, basic-pitch)")


def evaluate(args: argparse.Namespace) -> None:
    """Print the table of the chosen systems on the chosen part."""
    recs = recordings(Path(args.root), args.part)
    audio_s = sum(duration(a) for _, a, _ in recs)
    what = args.root if args.part == "folder" else f"SSVD {args.part}"
    print(f"{what}: {len(recs)} recordings, {audio_s / 60:.1f} min of audio")
    rows = {}
    systems = args.systems.split(",")
    if any(s in ORACLES for s in systems):
        if args.part == "folder":
            raise SystemExit("error: the oracle systems need an SSVD part (train, valid, all)")
        print_offsets(recs, args.cache)
        bias = 0.0
        if "oracle-timing-bias" in systems:
            bias = train_bias(Path(args.root), args.cache)
            print(f"oracle-timing-bias adds the train notes' median offset, {bias:+.3f} semitones")
    for system in systems:
        if system == "basic-pitch" and not baselines.basic_pitch_available():
            print("basic-pitch: not installed, skipped (pip install basic-pitch)")
            continue
        t0, per_file = time.perf_counter(), []
        for rid, audio, txt in recs:
            ref = read_notes(txt)
            if system in ORACLES:
                est = oracle_notes(
                    system, ref, sung_pitch(ref, *pyin_track(audio, args.cache)), bias
                )
            else:
                est = transcribe(system, audio, args.cache)
            s = metrics.score(ref, est)
            per_file.append(s)
            if args.per_file:
                print(f"  {system} {rid}: " + " ".join(f"{k}={s[k]:.3f}" for k in args.keys))
        secs = time.perf_counter() - t0
        rows[system] = metrics.aggregate(per_file)
        note = " (pYIN f0 read from --cache: time excludes pYIN)"
        note = note if system == "pyin" and args.cache else ""
        print(f"{system}: {secs:.1f} s for {audio_s:.0f} s of audio (x{audio_s / secs:.1f}){note}")
    print(metrics.format_table(rows))


def tune(args: argparse.Namespace) -> None:
    """Grid-search the pYIN segmentation on the train part; print the best settings."""
    recs = ssvd.split(Path(args.root))["train"]
    t0 = time.perf_counter()
    data = [(read_notes(txt), *pyin_track(audio, args.cache)) for _, audio, txt in recs]
    print(f"pYIN on {len(recs)} train recordings: {time.perf_counter() - t0:.1f} s")
    results = []
    for values in itertools.product(*GRID.values()):
        kw = dict(zip(GRID, values, strict=True))
        scores = [
            metrics.note_scores(ref, baselines.segment_notes(m, v, **kw)) for ref, m, v in data
        ]
        agg = metrics.aggregate(scores)
        results.append((agg["conp_f"], agg["conpoff_f"], agg["con_f"], kw))
    results.sort(key=lambda r: r[:3], reverse=True)
    print("COnP F1  COnPOff F1  COn F1  settings")
    for conp, conpoff, con, kw in results[: args.top]:
        print(f"{conp:7.3f}  {conpoff:10.3f}  {con:6.3f}  {kw}")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the evaluation or the tuning grid."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(ssvd.DEFAULT_ROOT), help="SSVD train_valid folder")
    parts = ("valid", "train", "all", "folder")
    help_part = "folder: every recording of --root (<id>.flac + <id>.txt)"
    parser.add_argument("--part", choices=parts, default="valid", help=help_part)
    help_systems = "comma-separated: pyin, basic-pitch, " + ", ".join(ORACLES)
    parser.add_argument("--systems", default="pyin", help=help_systems)
    parser.add_argument("--cache", type=Path, default=None, help="folder for pYIN f0 tracks")
    parser.add_argument("--per-file", action="store_true", help="print each recording's scores")
    parser.add_argument("--tune", action="store_true", help="grid-search pyin on the train part")
    parser.add_argument("--top", type=int, default=10, help="--tune: settings shown")
    args = parser.parse_args(argv)
    args.keys = tuple(metrics.TABLE_COLUMNS)
    tune(args) if args.tune else evaluate(args)


if __name__ == "__main__":
    main()
