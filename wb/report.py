"""Self-contained HTML reports: ``wb report PATH`` and the automatic reports of ``wb separate
--report``, ``wb classify`` and recipe ``evaluate`` stages.

A report is one ``report.html`` written atomically into the folder it describes. Images
(spectrograms, plots) are inlined as PNG data URIs; audio is either a file beside the report,
referenced by a relative URL (stems, the separated input), or a short clip inlined as a WAV
data URI (classification clips). The page needs no server and no network: a jinja2 template
(``wb/templates/report.html.j2``) and a few lines of plain JavaScript that move a playhead over
each spectrogram as its audio plays, seek on click, and play a group of stems in sync with
solo and mute.

What a folder holds decides its kind. The packages above ``wb`` register page builders under
the entry-point group :data:`REPORT_GROUP` (``setup.cfg``); each is called with the folder and
returns a :class:`Page`, or ``None`` when the folder is not of its kind. The generic
:func:`run_page` (a run folder with ``config.yml``: resolved config, training curves from the
Lightning CSV logs, every ``metrics*.json`` as a table) is tried last.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wb.errors import WbError

#: Entry-point group of page builders ``(folder: Path, **options) -> Page | None``.
REPORT_GROUP = "wb.reports"

#: File name of every report.
REPORT_NAME = "report.html"

#: Audio file types that browsers play (Chromium, Firefox): referenced, not converted.
PLAYABLE = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".webm", ".aac"}


# --------------------------------------------------------------------------- page model


@dataclass
class Track:
    """One audio row: a player, its spectrogram and a playhead.

    Attributes:
        name: label (a stem name, a clip's file name).
        src: URL of the audio, relative to the report, or a ``data:`` URI.
        image: spectrogram PNG as a ``data:`` URI (:func:`spectrogram_png`).
        duration: seconds (the playhead's scale before the browser knows the duration).
        fmax: Hz at the top of the spectrogram.
        note: a line under the name (e.g. true and predicted class).
    """

    name: str
    src: str
    image: str
    duration: float
    fmax: float
    note: str = ""


@dataclass
class Tracks:
    """Rows of audio. With ``synced``, they are the stems of one mixture: playing, pausing or
    seeking one does the same to all, and each row has solo and mute buttons.

    Attributes:
        tracks: the rows, in order.
        synced: play as a group (stems) rather than one at a time.
    """

    tracks: list[Track]
    synced: bool = False
    kind: str = field(default="tracks", init=False)


@dataclass
class Table:
    """A table of strings (already formatted numbers).

    Attributes:
        columns: header cells.
        rows: body rows, each as long as ``columns``.
        caption: a line under the table (units, aggregation rule).
    """

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    kind: str = field(default="table", init=False)


@dataclass
class Figure:
    """An image (a ``data:`` URI) with a caption."""

    src: str
    caption: str = ""
    kind: str = field(default="figure", init=False)


@dataclass
class Text:
    """A paragraph, or preformatted text (``pre=True``: configs, logs)."""

    text: str
    pre: bool = False
    kind: str = field(default="text", init=False)


@dataclass
class Section:
    """A titled part of a page holding :class:`Tracks`, :class:`Table`, :class:`Figure` or
    :class:`Text` items in order."""

    title: str
    items: list[Any]


@dataclass
class Page:
    """A whole report: title, one line under it, sections."""

    title: str
    subtitle: str
    sections: list[Section]
    kind: str = "report"


# --------------------------------------------------------------------------- images and audio


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_data_uri(fig) -> str:
    """A matplotlib figure as a PNG ``data:`` URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return png_data_uri(buf.getvalue())


def wav_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    """A short clip as a 16-bit PCM WAV ``data:`` URI.

    Args:
        audio: ``(samples,)`` or ``(channels, samples)`` float in [-1, 1] (clipped).
        sample_rate: Hz.
    """
    import soundfile as sf

    x = np.asarray(audio, dtype=np.float32)
    x = x.T if x.ndim == 2 else x
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def relative_url(target: str | os.PathLike, start: str | os.PathLike) -> str:
    """URL of ``target`` relative to the folder ``start`` (percent-encoded, ``/``-separated),
    so the page keeps working when the folders around it are moved together."""
    rel = os.path.relpath(Path(target).resolve(), Path(start).resolve())
    return urllib.parse.quote(Path(rel).as_posix())


class _Spectrogram:
    """Streaming power spectrogram pooled to a bounded number of columns.

    Frames of ``n_fft`` samples (Hann window) every ``n_fft // 4`` samples; each output
    column is the mean power of ``pool`` consecutive frames, so an hour of audio and a second
    of audio both give at most about ``max_columns`` columns with bounded memory.
    """

    def __init__(self, sample_rate: int, total_samples: int, n_fft: int, max_columns: int):
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.window = np.hanning(n_fft).astype(np.float32)
        frames = max(1, math.ceil(max(total_samples - n_fft, 0) / self.hop) + 1)
        self.pool = max(1, math.ceil(frames / max_columns))
        self.buf = np.zeros(0, np.float32)
        self.pending: list[np.ndarray] = []
        self.columns: list[np.ndarray] = []
        self.samples = 0

    def push(self, mono: np.ndarray) -> None:
        self.samples += len(mono)
        self.buf = np.concatenate([self.buf, mono.astype(np.float32)])
        if len(self.buf) < self.n_fft:
            return
        n = (len(self.buf) - self.n_fft) // self.hop + 1
        frames = np.lib.stride_tricks.sliding_window_view(self.buf, self.n_fft)[:: self.hop][:n]
        power = np.abs(np.fft.rfft(frames * self.window, axis=-1)) ** 2
        self.pending.extend(power.astype(np.float32))
        self.buf = self.buf[n * self.hop :]
        while len(self.pending) >= self.pool:
            self.columns.append(np.mean(self.pending[: self.pool], axis=0))
            del self.pending[: self.pool]

    def finish(self) -> np.ndarray:
        """``(n_fft // 2 + 1, columns)`` power."""
        if len(self.buf) and (self.samples < self.n_fft or len(self.buf) > self.n_fft - self.hop):
            frame = np.zeros(self.n_fft, np.float32)
            frame[: min(len(self.buf), self.n_fft)] = self.buf[: self.n_fft]
            self.pending.append(np.abs(np.fft.rfft(frame * self.window)) ** 2)
        if self.pending:
            self.columns.append(np.mean(self.pending, axis=0))
        if not self.columns:
            self.columns.append(np.zeros(self.n_fft // 2 + 1, np.float32))
        return np.stack(self.columns, axis=1)


def log_spectrogram(
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    total_samples: int,
    n_fft: int = 2048,
    max_columns: int = 1200,
    rows: int = 192,
    fmin: float = 30.0,
    top_db: float = 80.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A log-frequency power spectrogram of streamed audio, in dB, for display.

    Frames of ``n_fft`` samples (Hann window, hop ``n_fft // 4``); each column is the mean
    power of consecutive frames so that there are at most about ``max_columns`` columns;
    power is interpolated onto ``rows`` log-spaced frequencies from ``fmin`` to the Nyquist
    frequency and clipped to ``top_db`` below the loudest cell.

    Args:
        blocks: audio blocks ``(channels, samples)`` or ``(samples,)``, downmixed to mono.
        sample_rate: Hz.
        total_samples: expected length in samples (sets the pooling; an estimate is fine).
        n_fft: FFT size in samples.
        max_columns: bound on the number of columns.
        rows: number of frequencies.
        fmin: lowest frequency, Hz.
        top_db: dynamic range kept, dB.

    Returns:
        ``(dB (rows, columns), frequencies in Hz (rows,), duration in seconds)``.
    """
    spec = _Spectrogram(sample_rate, total_samples, n_fft, max_columns)
    for block in blocks:
        block = np.asarray(block)
        spec.push(block.mean(axis=0) if block.ndim == 2 else block)
    power = spec.finish()
    nyquist = sample_rate / 2
    freqs = np.geomspace(min(fmin, nyquist / 2), nyquist, rows)
    pos = freqs / nyquist * (power.shape[0] - 1)
    lo = np.floor(pos).astype(int).clip(0, power.shape[0] - 1)
    hi = np.minimum(lo + 1, power.shape[0] - 1)
    frac = (pos - lo)[:, None]
    image = power[lo] * (1 - frac) + power[hi] * frac
    db = 10 * np.log10(np.maximum(image, 1e-12))
    return np.maximum(db, db.max() - top_db), freqs, spec.samples / sample_rate


def spectrogram_png(
    blocks: Iterable[np.ndarray], sample_rate: int, total_samples: int, **options: Any
) -> tuple[str, float, float]:
    """:func:`log_spectrogram` as an image without axes (the playhead's x is then exactly
    time / duration): colour map ``magma``, low frequencies at the bottom.

    Returns:
        ``(PNG data URI, duration in seconds, top frequency in Hz)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    db, freqs, duration = log_spectrogram(blocks, sample_rate, total_samples, **options)
    buf = io.BytesIO()
    plt.imsave(buf, db, cmap="magma", origin="lower", format="png")
    return png_data_uri(buf.getvalue()), duration, float(freqs[-1])


def display_n_fft(sample_rate: int, seconds: float = 0.032) -> int:
    """The FFT size of the report's spectrograms: the power of two nearest ``seconds`` (32 ms:
    256 at 8 kHz, 512 at 16 kHz, 1024 at 44.1 kHz, 2048 at 48 kHz)."""
    return int(2 ** round(math.log2(max(16.0, seconds * sample_rate))))


def file_track(path: str | os.PathLike, report_dir: str | os.PathLike, name: str = "",
               note: str = "") -> Track:  # fmt: skip
    """A :class:`Track` for an audio file that the page references by a relative URL.

    The spectrogram streams the file (:func:`wb.audio.read_blocks`), so memory stays bounded
    for long recordings.

    Raises:
        AudioError: the file cannot be read.
    """
    from wb import audio

    hdr = audio.info(path)
    _, blocks = audio.read_blocks(path, 1 << 18)
    try:
        image, duration, fmax = spectrogram_png(
            blocks, hdr.sample_rate, hdr.frames, n_fft=display_n_fft(hdr.sample_rate)
        )
    finally:
        close = getattr(blocks, "close", None)
        if close:
            close()
    return Track(name or Path(path).stem, relative_url(path, report_dir), image, duration, fmax,
                 note)  # fmt: skip


def clip_track(audio: np.ndarray, sample_rate: int, name: str, note: str = "") -> Track:
    """A :class:`Track` for a short in-memory clip ``(samples,)`` or ``(channels, samples)``,
    inlined as a WAV data URI."""
    x = np.asarray(audio, dtype=np.float32)
    n_fft = display_n_fft(sample_rate)
    image, duration, fmax = spectrogram_png([x], sample_rate, x.shape[-1], n_fft=n_fft)
    return Track(name, wav_data_uri(x, sample_rate), image, duration, fmax, note)


# --------------------------------------------------------------------------- tables and curves


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: numbers with ``digits`` decimals, ``None``/NaN as ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def source_table(summary: Mapping[str, Any], caption: str = "") -> Table:
    """Per-source table of a separation summary ``{"sources": {name: {metric: dB}}, "mean":
    {metric: dB}}`` (``separation.evaluate.aggregate``), oracle SI-SDR added when present."""
    rows = {k: dict(v) for k, v in summary["sources"].items()}
    rows["mean"] = dict(summary.get("mean") or {})
    oracle = summary.get("oracle")
    if oracle:
        for name in rows:
            src = oracle["mean"] if name == "mean" else oracle["sources"].get(name, {})
            rows[name]["IRM SI-SDR"] = src.get("SI-SDR")
    metrics = list(dict.fromkeys(m for v in rows.values() for m in v))
    body = [[name, *(fmt(v.get(m)) for m in metrics)] for name, v in rows.items()]
    return Table(["source", *metrics], body, caption)


def flat_table(data: Mapping[str, Any], limit: int = 80) -> Table:
    """Scalar leaves of nested JSON as ``key.path | value`` rows (lists of scalars joined)."""
    rows: list[list[str]] = []

    def walk(prefix: str, value: Any) -> None:
        if len(rows) >= limit:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value) and value:
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, list):
            text = ", ".join(fmt(v, 4) for v in value[:16]) + (" ..." if len(value) > 16 else "")
            rows.append([prefix, text])
        else:
            rows.append([prefix, fmt(value, 4)])

    walk("", data)
    caption = f"first {limit} values" if len(rows) >= limit else ""
    return Table(["key", "value"], rows, caption)


def read_csv_logs(run: Path) -> list[dict[str, float]]:
    """Rows of Lightning's ``csv/version_*/metrics.csv`` (or ``logs/...``) under ``run``, in
    version order (resumed runs append versions); empty cells dropped."""
    import csv

    rows: list[dict[str, float]] = []
    files = sorted(
        run.glob("*/version_*/metrics.csv"),
        key=lambda p: (p.parent.parent.name, int(p.parent.name.split("_")[-1] or 0)),
    )
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                values = {}
                for k, v in row.items():
                    try:
                        values[k] = float(v)
                    except (TypeError, ValueError):
                        continue
                rows.append(values)
    return rows


def curves_figure(rows: Sequence[Mapping[str, float]], title: str = "") -> str | None:
    """Epoch curves of logged metrics (one panel per metric family: loss, accuracy, SI-SDR,
    ...; train and validation in one panel) as a PNG data URI, or ``None`` without any.

    A metric is plotted against ``epoch`` where rows carry it; rows without an epoch are
    skipped. Keys ``step``/``epoch``/``lr-*`` are not plotted as metrics.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[float, float]] = {}
    for r in rows:
        if "epoch" not in r:
            continue
        for k, v in r.items():
            if k in ("epoch", "step") or k.startswith("lr") or not math.isfinite(v):
                continue
            series.setdefault(k, {})[r["epoch"]] = v  # the last value logged in an epoch
    if not series:
        return None
    families: dict[str, list[str]] = {}
    for k in series:
        family = k.split("/", 1)[-1].removeprefix("train_").removeprefix("val_")
        family = family.removesuffix("_epoch").removesuffix("_step")
        families.setdefault(family, []).append(k)
    n = len(families)
    fig, axes = plt.subplots(1, n, figsize=(min(5 * n, 15), 3.6), squeeze=False)
    for ax, (family, keys) in zip(axes[0], families.items(), strict=True):
        for k in keys:
            pts = sorted(series[k].items())
            ax.plot(*zip(*pts, strict=True), marker=".", label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(family)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return figure_data_uri(fig)


# --------------------------------------------------------------------------- rendering


def render(page: Page) -> str:
    """The page as HTML (jinja2, autoescaped; the template is package data)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wb", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(page=page)


def write_page(page: Page, folder: str | os.PathLike) -> Path:
    """Write ``folder/report.html`` atomically; returns its path."""
    from wb.runs import atomic_write_text

    return atomic_write_text(Path(folder) / REPORT_NAME, render(page))


def run_page(folder: Path) -> Page | None:
    """Generic run folder (``config.yml`` present): the evaluation tables (every
    ``metrics*.json``), training curves (Lightning CSV logs), and the resolved config."""
    config = folder / "config.yml"
    if not config.is_file():
        return None
    sections = []
    tables = []
    for f in sorted(folder.glob("metrics*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, Mapping) and isinstance(data.get("sources"), Mapping):
            n = data.get("n_tracks", "?")
            caption = f"{f.name}: dB; {n} tracks"
            if data.get("sample_rate"):
                caption += f", scored at {data['sample_rate']} Hz"
            tables.append(source_table(data, caption))
        elif isinstance(data, Mapping):
            table = flat_table(data)
            table.caption = f"{f.name}" + (f" ({table.caption})" if table.caption else "")
            tables.append(table)
    if tables:
        sections.append(Section("Evaluation", tables))
    curves = curves_figure(read_csv_logs(folder), folder.name)
    if curves:
        sections.append(Section("Training curves", [Figure(curves, "logged metrics per epoch")]))
    sections.append(Section("Resolved config", [Text(config.read_text(), pre=True)]))
    return Page(f"Run {folder.name}", str(folder.resolve()), sections, kind="run")


def _builders() -> list[Callable[..., Page | None]]:
    from importlib.metadata import entry_points

    eps = sorted(entry_points(group=REPORT_GROUP), key=lambda ep: ep.name)
    return [ep.load() for ep in eps] + [run_page]


def build_report(path: str | os.PathLike, **options: Any) -> Path:
    """Write ``report.html`` into the folder ``path`` by the first page builder that knows it.

    Args:
        path: a ``wb separate`` track folder, a ``wb classify`` run folder or a recipe run
            folder.
        options: passed to the builders that take them (e.g. ``reference=`` for
            separation); ``None`` values are dropped.

    Returns:
        the report's path.

    Raises:
        WbError: ``path`` is not a folder, no builder recognises it, or its builder does
            not take one of ``options``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise WbError(f"{path}: not a folder (give a wb separate, wb classify or run folder)")
    import inspect

    given = {k: v for k, v in options.items() if v is not None}
    for builder in _builders():
        accepted = inspect.signature(builder).parameters
        page = builder(folder, **{k: v for k, v in given.items() if k in accepted})
        if page is not None:
            unused = sorted(k for k in given if k not in accepted)
            if unused:
                raise WbError(f"{path}: a {page.kind} folder takes no {', '.join(unused)} option")
            return write_page(page, folder)
    raise WbError(
        f"{path}: not a report folder (no .wb-separate.json, metrics.json + details.json, "
        "or config.yml)"
    )
