"""Render one planned rendition to stems, mixture, MIDI and ``meta.json`` (FluidSynth), and
verify a rendered piece."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from music.chorale_corpus import (
    VOICES,
)
from music.chorales.config import GENERATOR_VERSION, STEMS, ChoraleConfig, piece_id
from music.chorales.performance import apply_room, expression_curve, pitch_bend_curve
from music.chorales.plan import plan_rendition
from music.synth import (
    GM_NAMES,
    render_midi,
    write_midi,
)
from wb.errors import WbError
from wb.runs import file_digest


# -------------------------------------------------------------------------------- rendering
def _combined_checksum(files: Mapping[str, str]) -> str:
    text = "".join(f"{name}:{files[name]}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def expected_files() -> list[str]:
    """Files of a finished piece folder besides ``meta.json``."""
    return [f"{s}.wav" for s in STEMS] + [f"{v}.mid" for v in VOICES]


def render_rendition(
    work: Mapping[str, Any],
    config: ChoraleConfig,
    rendition: int,
    split: str,
    out_dir: str | os.PathLike,
) -> dict[str, Any]:
    """Render one rendition into ``out_dir`` (an empty folder) and write its meta.json last.

    Steps: :func:`plan_rendition`; per voice, the MIDI file (``<voice>.mid``) and a
    FluidSynth render at ``sample_rate`` (mono, trimmed/padded to ``duration``); per-part
    gains; one scale factor so the loudest of mixture and stems peaks at ``peak``; stems
    written, the mixture written as their exact sum.

    Args:
        work: extracted work (status ``ok``).
        config: settings.
        rendition: rendition index.
        split: ``"train"``, ``"valid"`` or ``"test"`` (recorded in meta.json).
        out_dir: destination folder (created).

    Returns:
        The meta.json content.

    Raises:
        DependencyError: FluidSynth or the sound font missing.
        WbError: FluidSynth failure or silent output.
    """
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_rendition(work, config, rendition)
    sr = int(config.sample_rate)
    n = int(math.ceil(plan.duration * sr))
    stems = np.zeros((len(VOICES), n), dtype=np.float64)
    for i, v in enumerate(VOICES):
        bends: list[tuple[float, int]] = []
        ccs: list[tuple[float, int, int]] = []
        if plan.expression and plan.notes[v]:
            expr = plan.expression[v]
            bends = pitch_bend_curve(plan.notes[v], expr, plan.duration)
            ccs = [
                (t, 11, val)
                for t, val in expression_curve(expr, plan.duration, config.expression_floor)
            ]
        midi = write_midi(
            plan.notes[v], out / f"{v}.mid", plan.programs[v], plan.bpm, name=v,
            pitch_bends=bends, control_changes=ccs,
        )  # fmt: skip
        if not plan.notes[v]:
            continue
        tmp_wav = out / f".{v}.render.wav"
        try:
            audio = render_midi(
                midi, tmp_wav, sr,
                plan.soundfonts[v] if plan.soundfonts else config.soundfont,
                config.synth_gain, config.reverb,
                config.fluidsynth,
            )  # fmt: skip
        finally:
            tmp_wav.unlink(missing_ok=True)
        m = min(n, audio.shape[0])
        stems[i, :m] = audio[:m] * 10.0 ** (plan.gains_db[v] / 20.0)
    if plan.room is not None:
        stems = apply_room(stems, sr, plan.room, VOICES)
    peak = max(float(np.abs(stems).max()), float(np.abs(stems.sum(axis=0)).max()))
    if peak <= 0:
        raise WbError(f"{plan.work}: FluidSynth rendered silence for rendition {rendition}")
    scale = config.peak / peak
    scaled = stems * scale
    if config.subtype == "PCM_16":
        q = np.clip(np.round(scaled * 32768.0), -32768, 32767).astype(np.int32)
        mix = q.sum(axis=0)
        if np.abs(mix).max() > 32767:  # impossible for peak <= 0.99; guard anyway
            raise WbError(f"{plan.work}: quantised mixture would clip")
        arrays = {"mixture": mix.astype(np.int16)}
        arrays.update({v: q[i].astype(np.int16) for i, v in enumerate(VOICES)})
    else:
        f32 = scaled.astype(np.float32)
        mix32 = f32[0].copy()
        for i in range(1, len(VOICES)):
            mix32 = mix32 + f32[i]
        arrays = {"mixture": mix32}
        arrays.update({v: f32[i] for i, v in enumerate(VOICES)})
    for stem, arr in arrays.items():
        sf.write(str(out / f"{stem}.wav"), arr, sr, subtype=config.subtype)
    files = {name: file_digest(out / name) for name in expected_files()}
    source = work.get("source", "")
    meta = {
        "piece": piece_id(plan.work, rendition),
        "work": plan.work,
        "rendition": int(rendition),
        "split": split,
        "source": source,
        "source_corpus": "music21.corpus.getComposer('bach')",
        "part_names": dict(work.get("part_names", {})),
        "seed": plan.seed,
        "global_seed": int(config.seed),
        "sample_rate": sr,
        "frames": n,
        "duration": n / sr,
        "bpm": plan.bpm,
        "transposition": plan.transposition,
        "transposition_in_range": plan.in_range,
        "programs": plan.programs,
        **({"soundfonts": plan.soundfonts} if plan.soundfonts else {}),
        **(
            {"expression": {v: dataclasses.asdict(e) for v, e in plan.expression.items()}}
            if plan.expression
            else {}
        ),
        **({"room": dataclasses.asdict(plan.room)} if plan.room else {}),
        "program_names": {v: GM_NAMES.get(p, f"program {p}") for v, p in plan.programs.items()},
        "gains_db": plan.gains_db,
        "scale": scale,
        "notes": {v: len(plan.notes[v]) for v in VOICES},
        "augmentation": {
            "timbre": config.timbre,
            "tempo_range": list(config.tempo),
            "humanize": config.humanize,
            "onset_jitter": config.onset_jitter if config.humanize else 0.0,
            "velocity": config.velocity,
            "velocity_jitter": config.velocity_jitter if config.humanize else 0,
            "breaths": config.breaths,
            "breath_beats": config.breath_beats,
            "breath_count": plan.breaths,
            "drop_fraction": config.drop_fraction,
            "dropped_notes": plan.dropped,
            "reverb": config.reverb,
            "max_seconds": config.max_seconds,
        },
        "config": config.render_dict(),
        "generator_version": GENERATOR_VERSION,
        "files": files,
        "checksum": _combined_checksum(files),
    }
    from wb.runs import write_json

    write_json(out / "meta.json", meta)
    return meta


def verify_piece(
    piece_dir: str | os.PathLike,
    config: ChoraleConfig,
    work: str,
    rendition: int,
    split: str,
) -> str | None:
    """Check a rendered piece folder against the current settings.

    Returns:
        ``None`` when complete and valid, else why not: missing folder or file, unreadable
        meta.json or WAV, settings or generator version differing from ``config``, wrong
        sample rate / channels / length, or a file whose sha256 differs from meta.json.
    """
    import soundfile as sf

    d = Path(piece_dir)
    if not d.is_dir():
        return "missing"
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "meta.json missing or unreadable"
    if not isinstance(meta, dict):
        return "meta.json unreadable"
    if meta.get("generator_version") != GENERATOR_VERSION:
        return "made by another generator version"
    if meta.get("config") != config.render_dict():
        return "settings changed"
    if (meta.get("work"), meta.get("rendition"), meta.get("split")) != (work, rendition, split):
        return "meta.json names another piece"
    files = meta.get("files") or {}
    for name in expected_files():
        p = d / name
        if not p.is_file():
            return f"{name} missing"
        if name.endswith(".wav"):
            try:
                info = sf.info(str(p))
            except (sf.LibsndfileError, RuntimeError):
                return f"{name} unreadable"
            if (info.samplerate, info.channels, info.frames) != (
                config.sample_rate,
                1,
                meta.get("frames"),
            ):
                return f"{name} has the wrong format or length"
        if file_digest(p) != files.get(name):
            return f"{name} checksum mismatch"
    return None
