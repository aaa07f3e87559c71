"""Synthetic spoken-word clips from the espeak-ng formant synthesiser, as extra training data.

A small speech set such as FSDD has few voices (six speakers); a model trained on five of
them learns their idiosyncrasies. Adding many synthetic voices saying the same words is the
remedy Lin et al. propose for keyword spotting with little data ("Training keyword spotters
with limited and synthesized speech data", ICASSP 2020; they used a neural TTS, this module
uses the espeak-ng formant synthesiser, github.com/espeak-ng/espeak-ng, which is an apt
package and runs offline). Voices are the product of espeak-ng's English accents and its voice
variants, with random pitch and speaking rate per rendition.

The output is a folder in the generic ``<class_name>/*.wav`` layout
(:mod:`classify.datasets.folder`), written at ``sample_rate`` Hz as 16-bit PCM with leading
and trailing silence trimmed (FSDD's recordings are trimmed too), plus ``synth.json`` with
the settings. Use it through the ``extra_train`` config key (:func:`classify.cv.run_cv`):
its clips join every training split and never the validation or test clips.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from wb import subproc
from wb.audio import check_sample_rate
from wb.errors import DependencyError, WbError
from wb.progress import progress
from wb.runs import temp_dir

#: English digit words, keyed by FSDD / AudioMNIST class name.
DIGIT_WORDS: dict[str, str] = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four",
    "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine",
}  # fmt: skip

MANIFEST = "synth.json"
ESPEAK_TIMEOUT = 60.0  # seconds one espeak-ng call may take (a digit takes milliseconds)
_VERSION = 1


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DependencyError(
            "espeak-ng not found: install it (Debian/Ubuntu: apt-get install espeak-ng)"
        )
    return exe


def _voice_table(exe: str, which: str) -> list[str]:
    """Voice files listed by ``espeak-ng --voices=<which>`` (column ``File``)."""
    proc = subproc.run([exe, f"--voices={which}"], ESPEAK_TIMEOUT, "espeak-ng")
    if proc.returncode != 0:
        raise WbError(f"espeak-ng --voices={which} failed: {proc.stderr.strip()[-200:]}")
    files = []
    for line in proc.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            files.append(cols[4])
    return files


def english_voices(exe: str | None = None) -> tuple[list[str], list[str]]:
    """espeak-ng's English accents and voice variants available on this machine.

    Returns:
        ``(accents, variants)``: accent voice names such as ``"en-us"`` (only espeak-ng's own
        ``gmw/`` voices; MBROLA voices need extra packages) and variant names such as ``"m3"``,
        both sorted.

    Raises:
        DependencyError: espeak-ng is not installed. WbError: it cannot list its voices.
    """
    exe = exe or _espeak()
    accents = sorted(
        f.split("/", 1)[1].lower() for f in _voice_table(exe, "en") if f.startswith("gmw/")
    )
    variants = sorted(f.split("/", 1)[1] for f in _voice_table(exe, "variant") if "/" in f)
    return accents, variants


def render(
    text: str,
    voice: str,
    pitch: int,
    speed: int,
    sample_rate: int,
    top_db: float = 40.0,
    exe: str | None = None,
) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return trimmed mono audio.

    Args:
        text: what to say.
        voice: espeak-ng voice, e.g. ``"en-us+m3"`` (accent + variant).
        pitch: espeak-ng pitch, 0-99 (50 is the voice's default).
        speed: speaking rate in words per minute (espeak-ng's ``-s``, 80-450).
        sample_rate: output rate in Hz (espeak-ng renders at 22,050 Hz; resampled with soxr).
        top_db: frames more than this many dB below the loudest 10 ms frame are trimmed from
            both ends.
        exe: path of espeak-ng (looked up when ``None``).

    Returns:
        float32 ``(samples,)`` in [-1, 1].

    Raises:
        DependencyError: espeak-ng missing. WbError: espeak-ng failed or produced silence.
    """
    import soxr

    exe = exe or _espeak()
    proc = subproc.run(
        [exe, "--stdout", "-v", voice, "-p", str(int(pitch)), "-s", str(int(speed)), text],
        ESPEAK_TIMEOUT, "espeak-ng", text=False,
    )  # fmt: skip
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise WbError(f"espeak-ng failed for voice {voice!r}: {msg[-1] if msg else 'no output'}")
    x, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    frame = max(1, sr // 100)
    n = len(x) // frame
    if n == 0 or not np.any(x):
        raise WbError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
    db = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(db >= db.max() - top_db)
    x = x[active[0] * frame : (active[-1] + 1) * frame]
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return np.clip(x, -1.0, 1.0)


def _plan(
    words: Mapping[str, str],
    per_class: int,
    seed: int,
    accents: Sequence[str],
    variants: Sequence[str],
    pitch: tuple[int, int],
    speed: tuple[int, int],
) -> list[dict]:
    """Deterministic list of renditions: class, word, voice, pitch, speed, file name."""
    rng = random.Random(seed)
    voices = [f"{a}+{v}" for a in accents for v in variants]
    items = []
    for cls, word in words.items():
        for k in range(per_class):
            voice = rng.choice(voices)
            p, s = rng.randint(*pitch), rng.randint(*speed)
            safe = re.sub(r"[^A-Za-z0-9]+", "-", voice)
            items.append(
                dict(cls=cls, word=word, voice=voice, pitch=p, speed=s,
                     file=f"{cls}/{safe}_p{p}_s{s}_{k:04d}.wav")
            )  # fmt: skip
    return items


def synthesize(
    out: str | os.PathLike,
    words: Mapping[str, str] = DIGIT_WORDS,
    per_class: int = 300,
    sample_rate: int = 8000,
    seed: int = 0,
    pitch: tuple[int, int] = (20, 80),
    speed: tuple[int, int] = (110, 210),
    accents: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    jobs: int = 0,
    quiet: bool | None = None,
) -> Path:
    """Write ``per_class`` synthetic renditions of each word to ``out/<class>/*.wav``.

    Each rendition draws a voice (an English accent x a voice variant), a pitch and a speaking
    rate uniformly at random (seeded, so the same arguments give the same files). The folder
    is built next to ``out`` and renamed into place at the end; re-running with the same
    settings on a finished folder does nothing.

    Args:
        out: destination folder (must not exist, unless it is a finished run with the same
            settings).
        words: class name -> text to speak.
        per_class: renditions per class.
        sample_rate: output rate in Hz.
        seed: random seed of the voice, pitch and rate draws.
        pitch: inclusive range of espeak-ng pitch (0-99).
        speed: inclusive range of speaking rate in words per minute.
        accents, variants: restrict the voices (default: all English accents and variants
            of :func:`english_voices`).
        jobs: espeak-ng processes run at once (0: one per CPU core); the files do not depend
            on it.
        quiet: hide the progress bar (``None``: follow ``WB_QUIET``).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        DependencyError: espeak-ng missing. WbError: ``out`` exists with other content or
            settings, an unknown voice, a bad range, count or rate, or espeak-ng failing.
    """
    out = Path(out)
    if per_class < 1 or not words:
        raise WbError(
            f"synthesize: need at least one word and per_class >= 1 "
            f"(got {len(words)} word(s), per_class={per_class})"
        )
    check_sample_rate(sample_rate, "synthesize")
    for name, (lo, hi), (low, high) in (("pitch", pitch, (0, 99)), ("speed", speed, (80, 450))):
        if not low <= lo <= hi <= high:
            raise WbError(f"synthesize: {name} range {lo}-{hi} outside {low}-{high}")
    exe = _espeak()
    all_accents, all_variants = english_voices(exe)
    accents = sorted(accents) if accents else all_accents
    variants = sorted(variants) if variants else all_variants
    unknown = sorted(set(accents) - set(all_accents)) + sorted(set(variants) - set(all_variants))
    if unknown:
        raise WbError(f"synthesize: espeak-ng has no voice(s) {', '.join(unknown)}")
    settings = dict(
        version=_VERSION, words=dict(words), per_class=int(per_class),
        sample_rate=int(sample_rate), seed=int(seed), pitch=list(pitch), speed=list(speed),
        accents=list(accents), variants=list(variants),
    )  # fmt: skip
    if out.exists():
        try:
            done = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            done = None
        if done is not None and {k: done.get(k) for k in settings} == settings:
            return out
        raise WbError(
            f"{out} exists and is not a synthesis with these settings; choose another folder"
        )
    items = _plan(words, per_class, seed, accents, variants, tuple(pitch), tuple(speed))
    tmp = temp_dir(out, "partial")
    try:
        for cls in words:
            (tmp / cls).mkdir()

        def one(it: dict) -> None:
            x = render(it["word"], it["voice"], it["pitch"], it["speed"], sample_rate, exe=exe)
            sf.write(tmp / it["file"], x, sample_rate, subtype="PCM_16")

        pool = ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1)
        try:
            bar = progress(pool.map(one, items), desc="espeak-ng", total=len(items),
                           unit="clip", quiet=quiet)  # fmt: skip
            for _ in bar:
                pass
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a failure stops the rest
        manifest = {**settings, "clips": len(items), "espeak_ng": _version(exe)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _version(exe: str) -> str:
    out = subproc.run([exe, "--version"], ESPEAK_TIMEOUT, "espeak-ng").stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"
