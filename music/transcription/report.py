"""The report page of a ``wb transcribe`` output folder (``wb transcribe --report``,
``wb report DIR``): per input, the piano roll over its spectrogram, the input and a FluidSynth
rendering of the transcribed MIDI as synced players (solo / mute to compare them), and the
note counts."""

from __future__ import annotations

import json
from pathlib import Path

from wb.errors import WbError
from wb.report import PLAYABLE, Figure, Page, Section, Table, Text, Tracks, file_track, png_data_uri

#: The marker ``wb transcribe`` writes into its output folder: inputs, model, files.
MARKER = ".wb-transcribe.json"
#: General MIDI program of the rendering (53: Voice Oohs).
RENDER_PROGRAM = 53


def render_notes(mid: Path, dest: Path, sample_rate: int = 22050) -> Path:
    """Render a transcription's MIDI file with FluidSynth (FluidR3, program 53) to ``dest``
    (mono float WAV, written atomically).

    Raises:
        DependencyError: FluidSynth or the sound font is missing. WbError: the render failed.
    """
    import tempfile

    import pretty_midi
    import soundfile as sf

    from music.synth import render_midi
    from wb.runs import atomic_write

    pm = pretty_midi.PrettyMIDI(str(mid))
    for inst in pm.instruments:
        inst.program = RENDER_PROGRAM
    end = pm.get_end_time()
    with tempfile.TemporaryDirectory(prefix="wb-render-") as tmp:
        pm.write(str(Path(tmp) / "x.mid"))
        x = render_midi(Path(tmp) / "x.mid", Path(tmp) / "x.wav", sample_rate, reverb=False)
    x = x[: int((end + 0.5) * sample_rate)]
    return atomic_write(dest, lambda t: sf.write(t, x, sample_rate, format="WAV", subtype="FLOAT"))


def transcription_page(folder: Path) -> Page | None:
    """The page of a ``wb transcribe`` output folder, or ``None`` without its marker.

    Raises:
        WbError: an unreadable marker, or a file it lists is missing.
    """
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
        inputs = {str(k): dict(v) for k, v in info["inputs"].items()}
        models = sorted({str(v["model"]) for v in inputs.values()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise WbError(f"{marker}: unreadable wb transcribe marker") from None
    from music.transcription.cli import VOICES

    sections = []
    for name, entry in inputs.items():
        source = str(entry.get("path"))
        items: list = []
        voices = VOICES if entry.get("separate") else ("",)
        csvs = [folder / (f"{name}.{v}.csv" if v else f"{name}.csv") for v in voices]
        mid, png, synth = (folder / f"{name}{ext}" for ext in (".mid", ".png", ".synth.wav"))
        missing = [f.name for f in (mid, *csvs) if not f.is_file()]
        if missing:
            raise WbError(f"{folder}: {', '.join(missing)} listed in {MARKER} is missing")
        if png.is_file():
            items.append(Figure(png_data_uri(png.read_bytes()), "notes over the spectrogram"))
        tracks = []
        if Path(source).is_file() and Path(source).suffix.lower() in PLAYABLE:
            tracks.append(file_track(source, folder, "input", note=source))
        else:
            items.append(Text(f"The input {source} is missing or not browser-playable."))
        if synth.is_file():
            tracks.append(file_track(synth, folder, "transcription (FluidSynth)"))
        if tracks:
            items.append(Tracks(tracks, synced=True))
        rows = []
        for csv in csvs:
            lines = [ln.split(",") for ln in csv.read_text().splitlines()[1:] if ln.strip()]
            pitches = [int(float(x[2])) for x in lines]
            voice = csv.name[len(name) + 1 : -len(".csv")] or "voice"
            span = f"{min(pitches)}-{max(pitches)}" if pitches else "-"
            sounding = sum(float(x[1]) - float(x[0]) for x in lines)
            rows.append([voice, str(len(lines)), span, f"{sounding:.1f}"])
        items.append(Table(["voice", "notes", "MIDI range", "sounding (s)"], rows))
        sections.append(Section(name, items))
    subtitle = f"wb transcribe with {', '.join(models)}: {len(inputs)} input(s)"
    return Page(f"Transcription: {Path(folder).name}", subtitle, sections, kind="transcription")
