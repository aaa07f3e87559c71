"""The report page of a ``wb separate`` track folder (``wb report DIR``, ``wb separate
--report``): the input mixture and every stem with a player, a spectrogram and a playhead;
the stems play in sync with solo and mute; with a reference folder, the per-stem metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from separation.files import MARKER
from wb.errors import WbError
from wb.report import PLAYABLE, Page, Section, Table, Text, Tracks, file_track, fmt


def reference_table(
    folder: Path, stems: list[str], reference: str | os.PathLike, mixture: str | None
) -> Table:
    """Per-stem SDR / SIR / SAR / ISR (BSSEval v4, median over 1 s frames) and SI-SDR /
    SI-SDRi (whole track) of the stems in ``folder`` against ``reference/<stem>.wav``.

    The SI-SDRi baseline is ``reference/mixture.wav``, else the separated input ``mixture``,
    else the sum of the references. References are resampled and channel-matched to the
    stems; all signals are cut to the shortest.

    Raises:
        WbError: ``reference`` is not a folder or lacks one of the stems; AudioError:
            unreadable audio.
    """
    import torch

    from separation.evaluate import track_metrics
    from wb import audio

    ref_dir = Path(reference)
    if not ref_dir.is_dir():
        raise WbError(f"--reference {reference}: not a folder")
    missing = [s for s in stems if not (ref_dir / f"{s}.wav").is_file()]
    if missing:
        raise WbError(
            f"--reference {reference}: no {', '.join(f'{s}.wav' for s in missing)} "
            "(the folder must hold one <stem>.wav per separated stem)"
        )
    est = [audio.load(folder / f"{s}.wav") for s in stems]
    sr, channels = est[0][1], est[0][0].shape[0]
    refs = [audio.load(ref_dir / f"{s}.wav", sample_rate=sr, channels=channels)[0] for s in stems]
    if (ref_dir / "mixture.wav").is_file():
        mix = audio.load(ref_dir / "mixture.wav", sample_rate=sr, channels=channels)[0]
    elif mixture and Path(mixture).is_file():
        mix = audio.load(mixture, sample_rate=sr, channels=channels)[0]
    else:
        mix = torch.stack(refs).sum(0)
    n = min(mix.shape[-1], *(r.shape[-1] for r in refs), *(e[0].shape[-1] for e in est))
    references = torch.stack([r[:, :n] for r in refs])
    estimates = torch.stack([e[0][:, :n] for e in est])
    scores = track_metrics(references, estimates, mix[:, :n], sr, stems)
    metrics = list(next(iter(scores.values())).keys())
    rows = [[s, *(fmt(scores[s].get(m)) for m in metrics)] for s in stems]
    means = []
    for m in metrics:
        vals = [scores[s][m] for s in stems if scores[s].get(m) is not None]
        means.append(fmt(sum(vals) / len(vals) if vals else None))
    rows.append(["mean", *means])
    caption = (
        f"dB, against {ref_dir}; SDR/SIR/SAR/ISR: BSSEval v4 (museval), median over 1 s frames; "
        f"SI-SDR, SI-SDRi: whole track; {n / sr:.1f} s at {sr} Hz"
    )
    return Table(["stem", *metrics], rows, caption)


def separation_page(folder: Path, reference: str | os.PathLike | None = None):
    """The page of a ``wb separate`` track folder, or ``None`` when ``folder`` has no
    ``.wb-separate.json`` marker.

    Args:
        folder: ``<out>/<track>`` written by ``wb separate``.
        reference: folder of reference stems (``<stem>.wav``) for the metrics table.

    Raises:
        WbError: a stem listed in the marker is missing; a bad reference folder.
    """
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
        files = [str(f) for f in info["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise WbError(f"{marker}: unreadable wb separate marker") from None
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise WbError(f"{folder}: stems listed in {MARKER} are missing: {', '.join(missing)}")
    stems = [Path(f).stem for f in files]
    source = info.get("input")
    sections = []
    mix_items: list[Any] = []
    if source and Path(source).is_file() and Path(source).suffix.lower() in PLAYABLE:
        mix_items.append(Tracks([file_track(source, folder, "mixture", note=str(source))]))
    else:
        why = "not found" if not (source and Path(source).is_file()) else "not browser-playable"
        mix_items.append(Text(f"The input {source or '(unknown)'} is {why}; only the stems play."))
    sections.append(Section("Mixture (the input)", mix_items))
    sections.append(
        Section("Stems", [Tracks([file_track(folder / f, folder) for f in files], synced=True)])
    )
    if reference is not None:
        table = reference_table(folder, stems, reference, source)
        sections.append(Section("Metrics against the reference stems", [table]))
    subtitle = f"wb separate of {source}: {', '.join(stems)}"
    return Page(f"Separation: {folder.name}", subtitle, sections, kind="separation")
