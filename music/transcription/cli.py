"""``wb transcribe``: solo voice recordings to MIDI and CSV note lists."""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np

from wb.errors import WbError

#: Velocity written for every note (the models do not estimate loudness).
VELOCITY = 80
#: Sources of ``--separate`` (the shipped SATB separator's stems), in MIDI track order.
VOICES = ("soprano", "alto", "tenor", "bass")


def _outputs(path: Path, out: Path, plot: bool, separate: bool, report: bool) -> list[Path]:
    name = path.stem
    files = [out / f"{name}.mid"]
    files += [out / f"{name}.{v}.csv" for v in VOICES] if separate else [out / f"{name}.csv"]
    if plot:
        files.append(out / f"{name}.png")
    if report:
        files.append(out / f"{name}.synth.wav")
    return files


def _mark(out: Path, name: str, source: Path, description: str, separate: bool) -> None:
    """Record an input, its model and whether it was separated in the folder's marker (read
    by the report page); written after the input's files."""
    import json

    from music.transcription.report import MARKER
    from wb.runs import atomic_write_text

    marker = out / MARKER
    try:
        info = json.loads(marker.read_text()) if marker.is_file() else {}
        inputs = dict(info.get("inputs") or {})
    except (OSError, ValueError, AttributeError):
        inputs = {}
    inputs[name] = {"path": str(source.resolve()), "model": description, "separate": separate}
    atomic_write_text(marker, json.dumps({"inputs": inputs}, indent=1))


class _System:
    """What ``--model`` names: ``array(audio_1d, sample_rate)`` and ``file(path)`` give notes.

    The encoder-decoder streams files (:func:`~music.transcription.inference.transcribe_file`:
    memory does not grow with the length, a progress bar in seconds); pYIN reads the whole
    file (a baseline). ``beam`` prefixes (1: greedy) and the GNMT ``length_penalty`` exponent
    (``None``: 1.0, the value the recipe's ``evaluate`` scores) apply to the seq2seq decoder.

    Raises:
        WbError: a missing model file, ``--decoder`` / ``--beam`` that the model cannot use, or
            a length penalty without a beam search.
    """

    def __init__(
        self,
        model: str,
        decoder: str | None = None,
        beam: int = 1,
        length_penalty: float | None = None,
    ) -> None:
        from music.transcription import stages
        from music.transcription.inference import load_transcriber

        if length_penalty is not None and beam == 1:
            raise WbError("--length-penalty applies to the beam search: add --beam 2 or more")
        self.net = None
        if model == "pyin":
            self.description = "pYIN baseline"
            if decoder or beam != 1:
                raise WbError("--decoder and --beam apply to a model file, not to --model pyin")
            return
        if model == "shipped":
            path = stages.shipped_model(stages.SHIPPED)
        else:
            path = Path(model).expanduser()
            if not path.is_file():
                raise WbError(f"{path}: no such model file (or use --model shipped / pyin)")
        self.net, info = load_transcriber(path)
        recorded = (info.get("meta") or {}).get("decoder") or "seq2seq"
        self.decoder = decoder or ("seq2seq" if beam > 1 else recorded)
        if beam > 1 and self.decoder != "seq2seq":
            raise WbError(f"--beam {beam} searches the seq2seq decoder; drop --decoder frames")
        self.beam = beam
        self.length_penalty = 1.0 if length_penalty is None else length_penalty
        search = f", beam {beam}, length penalty {self.length_penalty:g}" if beam > 1 else ""
        self.description = f"{path.name}, {self.decoder} decoder{search}"

    def array(self, x: np.ndarray, sr: int) -> np.ndarray:
        """Notes of mono audio ``(samples,)`` at ``sr`` Hz."""
        import torch

        from music.transcription.baselines import pyin_notes
        from music.transcription.inference import transcribe_array
        from wb.audio import resample

        if self.net is None:
            return pyin_notes(x, sr)
        if sr != self.net.sample_rate:
            x = resample(torch.from_numpy(x)[None], sr, self.net.sample_rate)[0].numpy()
        return transcribe_array(self.net, x, self.decoder, beam=self.beam,
                                length_penalty=self.length_penalty)  # fmt: skip

    def file(self, path: Path, scanned: tuple[float, float]) -> np.ndarray:
        """Notes of an audio file (downmixed to mono); ``scanned``: its
        :func:`~music.transcription.inference.scan` (duration, peak)."""
        from music.transcription.inference import transcribe_file
        from wb import audio as wb_audio
        from wb.progress import progress

        if self.net is None:
            x, sr = wb_audio.load(path, channels=1)
            return self.array(x[0].numpy(), sr)
        with progress(total=round(scanned[0], 1), desc=path.name, unit="s") as bar:

            def advance(done: float) -> None:
                bar.update(round(done, 1) - bar.n)

            notes, _ = transcribe_file(self.net, path, self.decoder, on_window=advance,
                                       scanned=scanned, beam=self.beam,
                                       length_penalty=self.length_penalty)  # fmt: skip
            return notes


def _plot(dest: Path, path: Path, notes: dict[str, np.ndarray]) -> None:
    """Piano roll of ``notes`` over the log-frequency spectrogram of ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wb import audio as wb_audio
    from wb.report import log_spectrogram
    from wb.runs import atomic_write

    info, blocks = wb_audio.read_blocks(path)
    n_fft = 1 << int(np.ceil(np.log2(0.09 * info.sample_rate)))  # ~90 ms: resolves low notes
    db, freqs, duration = log_spectrogram(blocks, info.sample_rate, info.frames, n_fft, fmin=50.0)
    midi = 69 + 12 * np.log2(freqs / 440.0)
    fig, ax = plt.subplots(figsize=(min(40, 4 + duration / 3), 5), dpi=100)
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
              extent=(0, duration, midi[0], midi[-1]))  # fmt: skip
    colors = ("#4dd0e1", "#aed581", "#ffb74d", "#f06292")
    for (name, ns), color in zip(notes.items(), colors, strict=False):
        for k, (on, off, p) in enumerate(ns):
            label = name if k == 0 and len(notes) > 1 else None
            box = plt.Rectangle((on, p - 0.45), off - on, 0.9, facecolor="none", label=label,
                                edgecolor=color, linewidth=1.2)  # fmt: skip
            ax.add_patch(box)
    all_p = np.concatenate([n[:, 2] for n in notes.values() if len(n)] or [np.array([48, 72])])
    ax.set_ylim(max(midi[0], all_p.min() - 12), min(midi[-1], all_p.max() + 24))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(path.name)
    if len(notes) > 1:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    atomic_write(dest, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


@click.command("transcribe")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=str),
              help="Output folder: <name>.mid and <name>.csv per input.")  # fmt: skip
@click.option("--model", default="shipped", show_default=True,
              help="'shipped' (the trained encoder-decoder), a model file, or 'pyin'.")  # fmt: skip
@click.option("--decoder", type=click.Choice(["seq2seq", "frames"]), default=None,
              help="The model's event decoder (seq2seq) or its frame head (frames); default: "
              "the one recorded in the model file.")  # fmt: skip
@click.option("--beam", type=click.IntRange(min=1), default=1, show_default=True,
              help="Beam-search prefixes per window for the seq2seq decoder (1: greedy); "
              "above 1 implies --decoder seq2seq.")  # fmt: skip
@click.option("--length-penalty", type=click.FloatRange(min=0.0), default=None,
              help="GNMT length-penalty exponent of the beam search (only with --beam above 1); "
              "default 1.0, the value the recipe's evaluate scores, chosen on synthetic "
              "validation.")  # fmt: skip
@click.option("--plot", is_flag=True, help="Also write <name>.png: piano roll over spectrogram.")
@click.option("--separate", "separate", is_flag=True,
              help="Separate the four voices of a chorale first (wb separate's SATB model), "
              "transcribe each, and write one four-track MIDI file.")  # fmt: skip
@click.option("--separator", default=None, help="Separation model for --separate (default satb).")
@click.option("--report", is_flag=True,
              help="Also write report.html: piano roll, the input and a FluidSynth rendering "
              "of the MIDI as synced players (implies --plot).")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace output files that already exist.")
def transcribe(
    inputs: tuple[str, ...],
    out: str,
    model: str,
    decoder: str | None,
    beam: int,
    length_penalty: float | None,
    plot: bool,
    separate: bool,
    separator: str | None,
    report: bool,
    overwrite: bool,
) -> None:
    """Transcribe solo voice recordings to MIDI (.mid) and note lists (.csv).

    The model reads ONE voice (monophonic singing or a solo instrument). Polyphonic input
    (a choir, a chorale) should first go through `wb separate`, or use --separate, which
    separates the soprano, alto, tenor and bass and writes a four-track MIDI file plus one
    CSV per voice. CSV columns: onset_s, offset_s, midi_pitch, velocity.

    \b
    wb transcribe voice.wav --out midi/
    wb transcribe a.flac b.wav --out midi/ --plot
    wb transcribe chorale.wav --out midi/ --separate
    """
    from music.transcription.inference import scan
    from wb import audio as wb_audio
    from wb.progress import progress

    plot = plot or report
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise WbError(f"--out {out_dir}: exists and is not a folder")
    paths = [Path(p) for p in inputs]
    names: dict[str, Path] = {}
    scanned = {}
    for p in paths:  # checks first: every input decodes (kept: length, peak), names
        scanned[p] = scan(p)
        if p.stem in names and names[p.stem].resolve() != p.resolve():
            raise WbError(f"{p} and {names[p.stem]} would both write {p.stem}.mid; rename one")
        names[p.stem] = p
    outputs = [f for p in names.values() for f in _outputs(p, out_dir, plot, separate, report)]
    if report:
        from wb.report import REPORT_NAME

        outputs.append(out_dir / REPORT_NAME)
    for f in outputs:  # never an input, never an existing file without --overwrite
        if any(f.exists() and os.path.samefile(f, p) for p in paths):
            raise WbError(f"{f}: the output would overwrite an input")
        if f.is_dir():  # --overwrite replaces files, never a folder
            raise WbError(f"{f}: is a folder where an output file goes; move it away")
        if f.exists() and not overwrite:
            raise WbError(f"{f} exists; pass --overwrite to replace it")
    if report:  # FluidSynth and its sound font, before anything is written
        from music.synth import DEFAULT_SOUNDFONT, check_soundfont, find_fluidsynth

        find_fluidsynth()
        check_soundfont(DEFAULT_SOUNDFONT)
    system = _System(model, decoder, beam, length_penalty)
    sep = None
    if separate:
        from separation.hub import load_separator

        sep = load_separator(separator)
        missing = [v for v in VOICES if v not in sep.sources]
        if missing:
            raise WbError(f"--separate needs a model with {', '.join(VOICES)} stems")
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in progress(list(names.values()), desc="transcribing", unit="file"):
        if sep is None:
            tracks = {"voice": system.file(p, scanned[p])}
        else:
            from separation.inference import separate_audio

            x, sr = wb_audio.load(p, sample_rate=sep.sample_rate, channels=sep.audio_channels)
            stems = separate_audio(sep.model, x, sr, list(VOICES), segment=sep.segment,
                                   overlap=sep.overlap, postfilter=sep.postfilter)  # fmt: skip
            tracks = {v: system.array(stems[i].mean(0).numpy(), sr) for i, v in enumerate(VOICES)}
        _write_outputs(out_dir, p, tracks, plot, report, separate)
        _mark(out_dir, p.stem, p, system.description, separate)
        n = sum(len(t) for t in tracks.values())
        mid = out_dir / f"{p.stem}.mid"
        click.echo(f"{p}: {n} notes -> {mid} ({system.description})", err=True)
    if report:
        from music.transcription.report import transcription_page
        from wb.report import write_page

        click.echo(f"report: {write_page(transcription_page(out_dir), out_dir)}", err=True)


def _write_outputs(
    out: Path, path: Path, tracks: dict[str, np.ndarray], plot: bool, report: bool, separate: bool
) -> None:
    """Write one input's files into a scratch folder inside ``out``, then move them into
    place together (a failure leaves none of them)."""
    import shutil
    import tempfile

    from music.transcription.notes import write_csv, write_midi

    scratch = Path(tempfile.mkdtemp(prefix=".wb-transcribe-", dir=out))
    try:
        name = path.stem
        for v, notes in tracks.items():
            csv = scratch / (f"{name}.{v}.csv" if separate else f"{name}.csv")
            write_csv(csv, notes, np.full(len(notes), VELOCITY))
        write_midi(scratch / f"{name}.mid", tracks if separate else tracks["voice"])
        if plot:
            _plot(scratch / f"{name}.png", path, tracks)
        if report:
            from music.transcription.report import render_notes

            render_notes(scratch / f"{name}.mid", scratch / f"{name}.synth.wav")
        for f in sorted(scratch.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["VELOCITY", "VOICES", "transcribe"]
