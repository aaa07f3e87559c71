"""Separation quality: BSSEval v4 (museval) and SI-SDR / SI-SDR improvement.

Per track and source:

* SDR, SIR, SAR, ISR -- BSSEval v4 (Vincent, Gribonval & Févotte 2006, "Performance measurement
  in blind audio source separation"; Stöter, Liutkus & Ito 2018, "The 2018 signal separation
  evaluation campaign", museval) on 1-second frames (window = hop = 1 s), aggregated by the
  **median over frames** (frames where a reference is silent are NaN and skipped);
* SI-SDR (Le Roux et al. 2019) over the whole track, and SI-SDRi = SI-SDR(estimate) -
  SI-SDR(mixture as the estimate).

Over tracks: BSSEval metrics take the **median over tracks** (the SiSEC 2018 convention),
SI-SDR and SI-SDRi the **mean over tracks**. The "mean" row averages the per-source values.
All values are in dB; BSSEval gives +inf for a perfect estimate, stored capped at 200 dB.

Evaluation runs either at the **data's** sample rate (``rate="data"``, the default): the
mixture is separated as ``wb separate`` separates a file (resampled to the model's rate and
back, with the input's band above the model's Nyquist frequency shared out by
:class:`separation.highband.HighBandExtension`), so the score covers the whole band a user
gets; or at the **model's** rate (``rate="model"``: references resampled to it, the
band-limited score of the model alone).

The **oracle** ideal ratio mask (:func:`oracle_irm`) is scored the same way as a ceiling: the
best that a time-frequency mask of the mixture can do with this STFT (Vincent, Gribonval &
Plumbley 2007, "Oracle estimators for the benchmarking of source separation algorithms";
the ``IRM2`` of sigsep's oracle baselines).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from separation.data import StemsDataset
from separation.inference import check_shifts, separate_audio, separate_tensor
from separation.losses import si_sdr
from separation.postfilter import soft_mask
from wb.errors import WbError
from wb.progress import progress
from wb.runs import write_json

BSS_METRICS = ("SDR", "SIR", "SAR", "ISR")
SI_METRICS = ("SI-SDR", "SI-SDRi")
CAP_DB = 200.0
AGGREGATION = (
    "BSSEval v4 (museval) SDR/SIR/SAR/ISR: median over 1-second frames (window = hop = 1 s) "
    "per track, then median over tracks. SI-SDR and SI-SDRi (SI-SDR of the estimate minus "
    "SI-SDR of the mixture): whole track, then mean over tracks. 'mean' averages the "
    "per-source values. dB; +inf (perfect estimate) capped at 200 dB."
)


def _cap(value: float) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(max(-CAP_DB, min(CAP_DB, value)))


def bsseval(
    references: torch.Tensor,
    estimates: torch.Tensor,
    sample_rate: int,
    frames: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """BSSEval v4 framewise metrics with 1-second frames (``museval.evaluate``).

    Args:
        references: ``(n_sources, channels, samples)``.
        estimates: same shape.
        sample_rate: Hz (sets the 1 s window and hop).
        frames: when given, filled with the framewise values, ``metric -> (n_sources,
            frames)`` in dB (for museval's per-track JSON).

    Returns:
        ``{"SDR", "SIR", "SAR", "ISR"}`` -> ``(n_sources,)`` medians over frames (dB; NaN when
        every frame is undefined).
    """
    import warnings

    import museval

    ref = references.detach().cpu().double().permute(0, 2, 1).numpy()  # (S, T, C)
    est = estimates.detach().cpu().double().permute(0, 2, 1).numpy()
    sdr, isr, sir, sar = museval.evaluate(ref, est, win=int(sample_rate), hop=int(sample_rate))
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        for name, values in (("SDR", sdr), ("SIR", sir), ("SAR", sar), ("ISR", isr)):
            out[name] = np.nanmedian(np.asarray(values, dtype=np.float64), axis=1)
            if frames is not None:
                frames[name] = np.asarray(values, dtype=np.float64)
    return out


def oracle_irm(sources: torch.Tensor, sample_rate: int, window_seconds: float = 0.064):
    """Ideal ratio mask (power, alpha = 2) estimates from the true sources.

    Each source's mask is ``|S_j|^2 / sum_k |S_k|^2`` on a Hann STFT of about
    ``window_seconds`` (a power of two: 512 samples at 8 kHz, 1024 at 16 kHz) with a hop of a
    quarter window, applied to the mixture's STFT (the mixture being the sum of the sources).

    Args:
        sources: ``(n_sources, channels, samples)``.
        sample_rate: Hz (sets the window).
        window_seconds: STFT window length in seconds.

    Returns:
        ``(n_sources, channels, samples)`` float32 estimates.
    """
    src = sources.to(torch.float64)
    return soft_mask(src, src.sum(dim=0), sample_rate, 2.0, window_seconds).float()


def data_sample_rate(root: str | os.PathLike, split: str) -> int:
    """Sample rate (Hz) of the first track's ``mixture.wav`` in ``root/split``.

    Raises:
        WbError: no readable mixture in the split.
    """
    import soundfile as sf

    for track in sorted(p for p in (Path(root) / split).glob("*") if p.is_dir()):
        f = track / "mixture.wav"
        if f.is_file():
            try:
                return int(sf.info(str(f)).samplerate)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise WbError(f"{f}: unreadable ({exc})") from None
    raise WbError(f"{Path(root) / split}: no track with a mixture.wav")


def track_metrics(
    references: torch.Tensor,
    estimates: torch.Tensor,
    mixture: torch.Tensor,
    sample_rate: int,
    sources: Sequence[str],
    with_bsseval: bool = True,
    frames: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Metrics of one track.

    Args:
        references: ``(n_sources, channels, samples)``.
        estimates: same shape.
        mixture: ``(channels, samples)`` (the SI-SDRi baseline).
        sample_rate: Hz.
        sources: names of the sources, in order.
        with_bsseval: also compute SDR/SIR/SAR/ISR (slow: seconds per track-minute).

    Returns:
        ``{source: {"SI-SDR", "SI-SDRi"[, "SDR", "SIR", "SAR", "ISR"]}}`` in dB. None only
        where a metric is undefined because the **reference** is silent; a silent estimate of
        a non-silent reference scores the SI-SDR floor (-100 dB, see
        :func:`separation.losses.si_sdr`), so it lowers the aggregate instead of being skipped.

    Raises:
        WbError: ``references`` and ``estimates`` differ in shape, or the estimates hold NaN
            or infinite values (a broken model must not be scored by its valid tracks only).
    """
    if references.shape != estimates.shape:
        raise WbError(
            f"reference shape {tuple(references.shape)} != estimate shape {tuple(estimates.shape)}"
        )
    if not bool(torch.isfinite(estimates).all()):
        raise WbError("the estimates hold NaN or infinite values (the model output is broken)")
    scores = si_sdr(estimates, references)
    base = si_sdr(mixture.expand_as(references), references)
    out: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(sources):
        s, b = float(scores[k]), float(base[k])
        out[name] = {"SI-SDR": _cap(s), "SI-SDRi": _cap(s - b)}
    if with_bsseval:
        bss = bsseval(references, estimates, sample_rate, frames)
        for k, name in enumerate(sources):
            for metric in BSS_METRICS:
                out[name][metric] = _cap(float(bss[metric][k]))
    return out


def write_museval_json(
    path: str | os.PathLike, track: str, sources: Sequence[str], frames: Mapping[str, np.ndarray]
) -> Path:
    """One track's framewise BSSEval v4 scores as ``museval.eval_mus_track`` writes them
    (``museval.TrackStore``, 1 s windows and hops), atomically.

    Args:
        path: destination ``.json``.
        track: track name.
        sources: target names, in the order of the rows of ``frames``.
        frames: ``metric -> (n_sources, frames)`` in dB (:func:`bsseval`).
    """
    import museval

    from wb.runs import atomic_write_text

    store = museval.TrackStore(track_name=track, win=1.0, hop=1.0)
    for k, name in enumerate(sources):
        store.add_target(name, {m: frames[m][k].tolist() for m in BSS_METRICS})
    return atomic_write_text(path, store.json)


def aggregate(tracks: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> dict[str, Any]:
    """Aggregate per-track metrics (see the module doc for the rule).

    Args:
        tracks: ``[{"name": ..., "metrics": {source: {metric: dB or None}}}]``.
        sources: source names.

    Returns:
        ``{"sources": {source: {metric: dB}}, "mean": {metric: dB}}`` (None where no track
        has a defined value).
    """
    per_source: dict[str, dict[str, float | None]] = {}
    metrics = [
        m for m in (*BSS_METRICS, *SI_METRICS) if any(m in t["metrics"][sources[0]] for t in tracks)
    ]
    for name in sources:
        per_source[name] = {}
        for metric in metrics:
            values = [t["metrics"][name].get(metric) for t in tracks]
            values = [v for v in values if v is not None]
            if not values:
                per_source[name][metric] = None
            elif metric in BSS_METRICS:
                per_source[name][metric] = float(np.median(values))
            else:
                per_source[name][metric] = float(np.mean(values))
    mean: dict[str, float | None] = {}
    for metric in metrics:
        values = [per_source[n][metric] for n in sources if per_source[n][metric] is not None]
        mean[metric] = float(np.mean(values)) if values else None
    return {"sources": per_source, "mean": mean}


def format_table(summary: Mapping[str, Any]) -> str:
    """Per-source table (dB) of :func:`aggregate` output, with the aggregation rule below it.

    When ``summary`` holds an ``oracle`` aggregate, its SI-SDR is the last column ("IRM
    SI-SDR", the oracle ceiling)."""
    rows = {k: dict(v) for k, v in summary["sources"].items()}
    rows["mean"] = dict(summary["mean"])
    oracle = summary.get("oracle")
    if oracle:
        for name in rows:
            src = oracle["mean"] if name == "mean" else oracle["sources"][name]
            rows[name]["IRM SI-SDR"] = src.get("SI-SDR")
    metrics = list(next(iter(rows.values())).keys())
    width = max(8, *(len(n) for n in rows))
    cell = max(9, *(len(m) + 1 for m in metrics))
    lines = [f"{'source':<{width}}" + "".join(f"{m:>{cell}}" for m in metrics)]
    for name, values in rows.items():
        cells = "".join(
            f"{values[m]:>{cell}.2f}" if values[m] is not None else f"{'n/a':>{cell}}"
            for m in metrics
        )
        lines.append(f"{name:<{width}}{cells}")
    n = summary.get("n_tracks", "all")
    if "SDR" in metrics:
        lines.append(
            f"dB. SDR/SIR/SAR/ISR: BSSEval v4, median over 1 s frames, then median over {n} tracks."
        )
    lines.append(
        f"SI-SDR, SI-SDRi: whole track, then mean over {n} tracks. mean: average over sources."
    )
    if "sample_rate" in summary:
        how = "full band, as wb separate" if summary.get("rate") == "data" else "model rate"
        post = summary.get("postfilter", "none")
        post = "" if post == "none" else f", post-filter {post}"
        lines.append(f"Scored at {summary['sample_rate']} Hz ({how}{post}).")
    if oracle:
        lines.append("IRM SI-SDR: oracle ideal ratio mask (the ceiling of mask-based methods).")
    return "\n".join(lines)


def evaluate(
    model: nn.Module | str | os.PathLike,
    root: str | os.PathLike,
    split: str = "test",
    out: str | os.PathLike | None = None,
    sources: Sequence[str] | None = None,
    segment: float | None = None,
    overlap: float | None = None,
    device: str | torch.device = "cpu",
    max_tracks: int | None = None,
    with_bsseval: bool = True,
    cache_dir: str | os.PathLike | None = None,
    quiet: bool | None = None,
    print_table: bool = True,
    rate: str = "data",
    oracle: bool = True,
    title: str | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    museval_dir: str | os.PathLike | None = None,
    postfilter: str | None = None,
    shifts: int = 0,
) -> dict[str, Any]:
    """Separate every track of ``root/split`` and score it against its stems.

    Args:
        model: a :class:`~separation.separator.Separator`, a bare model, or anything
            :func:`separation.hub.load_separator` accepts (model file, training
            checkpoint, shipped or Demucs name).
        root: data set root (``<root>/<split>/<track>/{mixture,<source>...}.wav``).
        split: split to evaluate.
        out: ``metrics.json`` destination (written atomically); ``None``: not written.
        sources: subset of the model's sources to score (default all).
        segment: inference chunk length in seconds (default: the separator's).
        overlap: inference chunk overlap fraction (default: the separator's).
        device: where the model runs.
        max_tracks: score only the first ``max_tracks`` tracks (sorted by name).
        with_bsseval: compute BSSEval v4 (slow) besides SI-SDR.
        cache_dir: ``.npy`` cache of decoded audio (see :class:`separation.data.AudioCache`).
        quiet: no progress bars (``None`` follows ``WB_QUIET``).
        print_table: print the per-source table.
        rate: ``"data"`` (score at the data's rate, through the full ``wb separate`` path) or
            ``"model"`` (at the model's rate; see the module doc).
        oracle: also score the oracle ideal ratio mask (:func:`oracle_irm`) on the same
            tracks, at the same rate.
        title: a heading printed above the table.
        groups: stems summed into a reference source (:class:`separation.data.StemsDataset`).
        museval_dir: also write each track's framewise BSSEval v4 scores there as
            ``<track>.json``, in the format of ``museval.eval_mus_track`` (``TrackStore``).
        postfilter: override the separator's post-filter (:mod:`separation.postfilter`;
            ``None`` keeps the one stored with the model).
        shifts: Demucs' random-shift averaging, as ``wb separate --shifts``
            (:func:`separation.inference.separate_tensor`); 0 keeps the scores deterministic.

    Returns:
        The ``metrics.json`` content: ``aggregation``, ``sources``, ``mean``, ``tracks``,
        ``n_tracks``, ``split``, ``root``, ``sample_rate``, ``rate``, ``segment``,
        ``overlap``, ``postfilter``, ``shifts``, ``model`` and, with ``oracle``, ``oracle``
        (``{"sources", "mean"}``).

    Raises:
        WbError: unknown source names, rate or post-filter, ``shifts`` not an integer >= 0,
            ``max_tracks`` not an integer >= 1,
            data set errors (missing split or stem), model errors.
    """
    from separation.separator import Separator
    from wb.config import check_int

    shifts = check_shifts(shifts)
    if max_tracks is not None:
        max_tracks = check_int(max_tracks, "max_tracks", minimum=1)
    if isinstance(model, nn.Module):
        sep = Separator.from_model(model)
    elif isinstance(model, Separator):
        sep = model
    else:
        from separation.hub import load_separator

        sep = load_separator(model, device=device)
    sep = sep.with_chunking(segment, overlap).with_postfilter(postfilter)
    model = sep.model
    names = list(sep.sources)
    wanted = list(sources) if sources else names
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise WbError(f"unknown source(s) {', '.join(unknown)} (the model has {', '.join(names)})")
    if rate not in ("data", "model"):
        raise WbError(f"rate must be 'data' or 'model', got {rate!r}")
    eval_rate = data_sample_rate(root, split) if rate == "data" else sep.sample_rate
    dataset = StemsDataset(
        root, split, names, eval_rate, sep.audio_channels, mode="full", cache_dir=cache_dir,
        groups=groups,
    )  # fmt: skip
    count = len(dataset) if max_tracks is None else min(len(dataset), max_tracks)
    index = [names.index(s) for s in wanted]
    tracks, oracle_tracks = [], []
    for i in progress(range(count), desc="evaluating", total=count, unit="track", quiet=quiet):
        item = dataset[i]
        if rate == "model":
            est = separate_tensor(
                model, item["mixture"], segment=sep.segment, overlap=sep.overlap,
                device=device, quiet=True, postfilter=sep.postfilter, shifts=shifts,
            )  # fmt: skip
        else:
            est = separate_audio(
                model, item["mixture"], eval_rate, segment=sep.segment, overlap=sep.overlap,
                device=device, quiet=True, postfilter=sep.postfilter, shifts=shifts,
            )  # fmt: skip
        refs = item["sources"][index]
        frames: dict[str, np.ndarray] = {}
        metrics = track_metrics(refs, est[index], item["mixture"], eval_rate, wanted,
                                with_bsseval, frames)  # fmt: skip
        tracks.append({"name": item["name"], "metrics": metrics})
        if museval_dir is not None and frames:
            write_museval_json(Path(museval_dir) / f"{item['name']}.json", item["name"],
                               wanted, frames)  # fmt: skip
        if oracle:
            irm = oracle_irm(item["sources"], eval_rate)[index]
            scores = track_metrics(refs, irm, item["mixture"], eval_rate, wanted, False)
            oracle_tracks.append({"name": item["name"], "metrics": scores})
    summary = aggregate(tracks, wanted)
    result = {
        "aggregation": AGGREGATION,
        "split": split,
        "root": str(root),
        "n_tracks": len(tracks),
        "sample_rate": eval_rate,
        "rate": rate,
        "segment": sep.segment,
        "overlap": sep.overlap,
        "postfilter": sep.postfilter,
        "shifts": shifts,
        "model": {k: v for k, v in sep.origin.items() if k != "meta"},
        **summary,
        **({"oracle": aggregate(oracle_tracks, wanted)} if oracle else {}),
        "tracks": tracks,
    }
    if out is not None:
        write_json(Path(out), result)
    if print_table:
        if title:
            print(f"\n{title}", flush=True)
        print(format_table(result), flush=True)
    return result
