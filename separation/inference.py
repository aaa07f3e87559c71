"""Chunked overlap-add inference for arbitrarily long inputs, in bounded memory.

The mixture is cut into chunks of ``segment`` seconds starting every
``(1 - overlap) * segment`` seconds; each chunk is separated and added into the output with
triangular weights (maximal mid-chunk, linear fades), and the sum is divided by the summed
weights -- the scheme of Demucs' :func:`demucs.apply.apply_model` (Défossez et al.), so chunk
borders cross-fade and a model returning its input reconstructs it exactly.

:class:`OverlapAdd` does this as a stream: mixture blocks go in, and the estimates before the
next chunk's start come out as soon as they are final, so memory holds about one chunk of
audio whatever the input length. :class:`StreamSeparator` adds the conversion from and to the
input's sample rate and channel count (streaming soxr resamplers); ``wb separate`` feeds it
blocks read from the file and writes its output blocks to the stem files.
:func:`separate_tensor` and :func:`separate_audio` are the same machinery on whole tensors.

Demucs models (``HDemucs``, ``HTDemucs``) run chunk by chunk through
``demucs.apply.apply_model(split=False)`` on the window ``apply_model(split=True)`` would give
them (the segment for HTDemucs, ``valid_length`` for the others; segment lengths rounded as
Demucs rounds them), and each model of a ``BagOfModels`` gets its own engine, combined with
the bag's weights, so the result equals Demucs' own chunked inference (tests compare them).
Other models (Conv-TasNet) get every chunk padded to a full segment with real context.
A post-filter (:mod:`separation.postfilter`: mixture consistency or a soft mask from the
estimates) refines each chunk's estimates with the chunk's mixture before the overlap-add.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from separation.models import is_demucs
from wb.audio import convert_channels
from wb.config import check_int
from wb.errors import AudioError, WbError
from wb.progress import progress

DEFAULT_OVERLAP = 0.25
ENGINES = ("auto", "demucs", "ola")


def model_segment(model: nn.Module) -> float | None:
    """Default chunk length in seconds: ``model.segment`` (its training segment), else the
    shortest segment in a Demucs bag (:class:`separation.separator.Separator` carries the
    chunking stored with a model file)."""
    seg = getattr(model, "segment", None)
    if seg is None and hasattr(model, "models"):
        segs = [getattr(m, "segment", None) for m in model.models]
        segs = [s for s in segs if s is not None]
        seg = min(segs) if segs else None
    return float(seg) if seg is not None else None


def _max_segment(model: nn.Module) -> float | None:
    """Longest chunk (seconds) the model can process in one call, or ``None`` (no limit)."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    if isinstance(model, BagOfModels):
        limit = model.max_allowed_segment
        return None if limit == float("inf") else float(limit)
    if isinstance(model, HTDemucs) and getattr(model, "use_train_segment", True):
        return float(model.segment)
    return None


def check_shifts(shifts) -> int:
    """Validate a shift count (Demucs' shift trick, :func:`separate_tensor`) and return it.

    Raises:
        WbError: not an integer >= 0 (a bool or a fraction; :func:`wb.config.check_int`).
    """
    return check_int(shifts, "shifts", minimum=0)


def check_segment(model: nn.Module, segment: float | None) -> float:
    """Validate a chunk length for ``model`` and return it (default :func:`model_segment`).

    Raises:
        WbError: not a positive number of seconds, or longer than an HTDemucs model's
            training segment.
    """
    segment = model_segment(model) if segment is None else float(segment)
    if segment is None or not segment > 0:
        raise WbError(f"segment must be a positive number of seconds, got {segment}")
    limit = _max_segment(model)
    if limit is not None and segment > limit + 1e-9:
        raise WbError(
            f"segment {segment:g} s is longer than this model's training segment {limit:g} s"
        )
    return segment


def triangular_weight(length: int, transition_power: float = 1.0) -> torch.Tensor:
    """Demucs' chunk weight: ``1..L/2`` then ``L-L/2..1``, normalised to max 1, raised to
    ``transition_power``; ``(length,)`` float32."""
    weight = torch.cat(
        [torch.arange(1, length // 2 + 1), torch.arange(length - length // 2, 0, -1)]
    ).float()
    return (weight / weight.max()) ** transition_power


class OverlapAdd:
    """Streaming overlap-add at the model's rate: push mixture blocks, get finished estimates.

    Chunks of ``segment_samples`` start every ``stride = int((1 - overlap) * segment_samples)``
    samples; a chunk of ``n`` samples (``n < segment_samples`` only for the last ones) is run
    centred in a window of ``window_length(n)`` samples of real context (zeros beyond the
    signal), the window's centre ``n`` samples of the output are weighted with
    :func:`triangular_weight` and summed, and the sum is divided by the summed weights -- the
    scheme of :func:`demucs.apply.apply_model` (Défossez et al.). Samples before the next
    chunk's start are final once a chunk is done, so they are returned at once: memory holds
    about one window of mixture and one segment of estimates, whatever the input length.

    Args:
        run: ``(k, channels, W) -> (k, n_sources, channels, W)``, the model on ``k`` windows.
        n_sources: number of sources the model returns.
        channels: channels of the mixture (and of every source).
        segment_samples: chunk length in samples.
        overlap: fraction of a chunk shared with the next one, ``0 <= overlap < 1``.
        transition_power: exponent of the triangular weights (1: linear fades).
        window_length: ``n -> W >= n`` (default: always ``segment_samples``, i.e. every chunk
            is padded to a full segment; Demucs models pass their ``valid_length``).
        batch_segments: windows per ``run`` call when several chunks are ready.
        on_chunk: called with the number of chunks just processed (progress).

    Raises:
        WbError: from :meth:`push` / :meth:`finish` on a block of the wrong shape, an empty
            mixture, a push after :meth:`finish`, or a model output of the wrong shape (every
            window must come back as exactly ``(k, n_sources, channels, W)``; a model whose
            output is shorter or longer is an error rather than being cropped or padded
            silently).
    """

    def __init__(
        self,
        run,
        n_sources: int,
        channels: int,
        segment_samples: int,
        overlap: float = DEFAULT_OVERLAP,
        transition_power: float = 1.0,
        window_length=None,
        batch_segments: int = 1,
        on_chunk=None,
    ) -> None:
        self.run, self.n_sources, self.channels = run, int(n_sources), int(channels)
        self.segment = int(segment_samples)
        self.stride = max(1, int((1 - overlap) * self.segment))
        self.window_length = window_length or (lambda n: self.segment)
        self.batch_segments = max(1, int(batch_segments))
        self.on_chunk = on_chunk
        self.weight = triangular_weight(self.segment, transition_power)
        # mixture kept from ``_mix_start``: enough left context for any later window
        self._keep = max(self.window_length(1), self.window_length(self.segment))
        self._mix: torch.Tensor | None = None
        self._mix_start = 0
        self._received = 0
        self._length: int | None = None  # known once finish() is called
        self._next = 0  # offset of the next chunk to run
        self._acc: torch.Tensor | None = None  # weighted sum from ``_emitted`` on
        self._wsum = torch.zeros(0)
        self._emitted = 0

    @property
    def received(self) -> int:
        """Mixture samples pushed so far."""
        return self._received

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Add ``(channels, n)`` mixture samples; return the estimates that became final,
        ``(n_sources, channels, m)`` float32 (``m`` may be 0)."""
        if self._length is not None:
            raise WbError("push() after finish()")
        if block.dim() != 2 or block.shape[0] != self.channels:
            raise WbError(
                f"mixture block must be ({self.channels}, samples), got {tuple(block.shape)}"
            )
        block = block.float()
        if self._mix is None or self._mix.shape[-1] == 0:
            self._mix = block
        elif block.shape[-1]:
            self._mix = torch.cat([self._mix, block.to(self._mix.device)], dim=-1)
        self._received += block.shape[-1]
        return self._advance()

    def finish(self) -> torch.Tensor:
        """End of the mixture: run the remaining chunks, return the last estimates."""
        if self._length is not None:
            raise WbError("finish() called twice")
        if self._received == 0:
            raise WbError("mixture is empty")
        self._length = self._received
        return self._advance()

    def _ready(self) -> list[tuple[int, int]]:
        """``(offset, n)`` of every chunk that can run now, in order."""
        chunks, offset = [], self._next
        full_window = self.window_length(self.segment)
        while True:
            if self._length is None:
                end = offset - (full_window - self.segment) // 2 + full_window
                if end > self._received:
                    return chunks
                chunks.append((offset, self.segment))
            else:
                if offset >= self._length:
                    return chunks
                chunks.append((offset, min(self.segment, self._length - offset)))
            offset += self.stride

    def _window(self, offset: int, n: int) -> torch.Tensor:
        """``(channels, W)``: the chunk centred in its window, zeros beyond the signal."""
        width = self.window_length(n)
        start = offset - (width - n) // 2
        end = start + width
        lo, hi = max(0, start), min(self._received, end)
        assert lo >= self._mix_start, "window reaches before the kept mixture"
        part = self._mix[:, lo - self._mix_start : hi - self._mix_start]
        return F.pad(part, (lo - start, end - hi))

    def _advance(self) -> torch.Tensor:
        device = self._mix.device if self._mix is not None else torch.device("cpu")
        if self._acc is None:
            self._acc = torch.zeros(self.n_sources, self.channels, 0, device=device)
            self._wsum = torch.zeros(0, device=device)
            self.weight = self.weight.to(device)
        chunks = self._ready()
        outs, i = [], 0
        while i < len(chunks):
            # a batch: consecutive chunks with windows of one length
            width = self.window_length(chunks[i][1])
            group = [chunks[i]]
            while (
                len(group) < self.batch_segments
                and i + len(group) < len(chunks)
                and self.window_length(chunks[i + len(group)][1]) == width
            ):
                group.append(chunks[i + len(group)])
            i += len(group)
            self._run_group(group, width)
            # emit after every batch: the accumulator never grows past one batch of chunks
            self._next = group[-1][0] + self.stride
            if i < len(chunks):
                outs.append(self._emit(self._next))
        outs.append(self._emit(self._length if self._length is not None else self._next))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def _run_group(self, group: list[tuple[int, int]], width: int) -> None:
        batch = torch.stack([self._window(o, n) for o, n in group])
        with torch.no_grad():
            est = self.run(batch)
        expected = (len(group), self.n_sources, self.channels, width)
        if tuple(est.shape) != expected:
            raise WbError(
                f"the model returned shape {tuple(est.shape)} for input chunks of shape "
                f"{tuple(batch.shape)}; expected {expected} (batch, sources, channels, samples)"
            )
        est = est.to(self._acc.device, torch.float32)
        end = group[-1][0] + group[-1][1] - self._emitted
        if end > self._acc.shape[-1]:
            grow = end - self._acc.shape[-1]
            self._acc = F.pad(self._acc, (0, grow))
            self._wsum = F.pad(self._wsum, (0, grow))
        for k, (o, n) in enumerate(group):
            lead, at = (width - n) // 2, o - self._emitted
            self._acc[..., at : at + n] += self.weight[:n] * est[k, ..., lead : lead + n]
            self._wsum[at : at + n] += self.weight[:n]
        if self.on_chunk is not None:
            self.on_chunk(len(group))

    def _emit(self, upto: int) -> torch.Tensor:
        """Return (and forget) the final estimates before absolute sample ``upto``."""
        count = max(0, upto - self._emitted)
        out = self._acc[..., :count] / self._wsum[:count]
        self._acc = self._acc[..., count:].clone()
        self._wsum = self._wsum[count:].clone()
        self._emitted += count
        keep_from = max(0, self._next - self._keep)
        if self._mix is not None and keep_from > self._mix_start:
            self._mix = self._mix[:, keep_from - self._mix_start :]
            self._mix_start = keep_from
        return out


def _demucs_window_length(model: nn.Module, segment_samples: int):
    """``n -> W``: the window ``demucs.apply.apply_model`` gives a chunk of ``n`` samples when
    called with a ``segment`` (one model, not a bag): the segment itself for HTDemucs (which
    zero-pads it to its training length inside ``forward``), ``valid_length(n)`` for models
    that define it, else ``n``."""
    from demucs.htdemucs import HTDemucs

    def window_length(n: int) -> int:
        if isinstance(model, HTDemucs):
            return segment_samples
        return int(model.valid_length(n)) if hasattr(model, "valid_length") else n

    return window_length


def segment_samples(sample_rate: int, segment: float) -> int:
    """Chunk length in samples, rounded as :func:`demucs.apply.apply_model` rounds it
    (``int(sample_rate * Fraction(segment))``), so both chunk alike."""
    return max(1, int(int(sample_rate) * _fraction(segment)))


def _fraction(segment: float) -> Fraction:
    return Fraction(segment).limit_denominator(10**6)


class _WeightedBag:
    """A Demucs ``BagOfModels`` as a stream: one :class:`OverlapAdd` per model (each with
    its own windows, as ``apply_model(split=True)`` chunks each model of a bag separately),
    outputs combined with the bag's per-source weights once every model has produced them."""

    def __init__(self, engines: list[OverlapAdd], weights) -> None:
        self.engines = engines
        self.weights = torch.as_tensor(weights, dtype=torch.float32)  # (models, sources)
        self.totals = self.weights.sum(dim=0)
        self._pending: list[torch.Tensor | None] = [None] * len(engines)

    @property
    def received(self) -> int:
        return self.engines[0].received

    def push(self, block: torch.Tensor) -> torch.Tensor:
        return self._combine([e.push(block) for e in self.engines])

    def finish(self) -> torch.Tensor:
        return self._combine([e.finish() for e in self.engines])

    def _combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        self._pending = [
            o if p is None else torch.cat([p, o], dim=-1)
            for p, o in zip(self._pending, outs, strict=True)
        ]
        m = min(p.shape[-1] for p in self._pending)
        w = self.weights.to(outs[0].device)
        est = sum(w[i][:, None, None] * p[..., :m] for i, p in enumerate(self._pending))
        self._pending = [p[..., m:] for p in self._pending]
        return est / self.totals.to(outs[0].device)[:, None, None]


class _Shifted:
    """Demucs' shift trick as a stream (Défossez et al., ``demucs.apply.apply_model(shifts=
    N)``): engine ``k`` separates the mixture delayed by ``delays[k]`` samples (zeros first),
    its output is advanced by the same amount, and the ``N`` outputs are averaged. The model
    is not exactly time-equivariant (chunk borders, strides), so the average of shifted runs
    is a test-time augmentation. Each delay is ``max_shift - random.randint(0, max_shift)``
    with ``max_shift`` = 0.5 s, as in ``apply_model``; for the same offsets the two agree
    (HTDemucs' forward also draws from ``random``, so the same seed gives other offsets)."""

    def __init__(self, engines: list, delays: list[int]) -> None:
        self.engines, self.delays = engines, [int(d) for d in delays]
        self._drop = list(self.delays)  # output samples each engine still has to drop
        self._pending: list[torch.Tensor | None] = [None] * len(engines)
        self._received = 0

    @property
    def received(self) -> int:
        return self._received

    def push(self, block: torch.Tensor) -> torch.Tensor:
        outs = []
        for k, e in enumerate(self.engines):
            x = block
            if self._received == 0 and block.shape[-1] and self.delays[k]:
                x = F.pad(block, (self.delays[k], 0))
            outs.append(e.push(x))
        self._received += block.shape[-1]
        return self._combine(outs)

    def finish(self) -> torch.Tensor:
        return self._combine([e.finish() for e in self.engines])

    def _combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        for k, o in enumerate(outs):
            cut = min(self._drop[k], o.shape[-1])
            self._drop[k] -= cut
            o = o[..., cut:]
            p = self._pending[k]
            self._pending[k] = o if p is None else torch.cat([p, o], dim=-1)
        m = min(p.shape[-1] for p in self._pending)
        est = sum(p[..., :m] for p in self._pending) / len(self._pending)
        self._pending = [p[..., m:] for p in self._pending]
        return est


def _runner(
    model: nn.Module, use_demucs: bool, device, segment: float | None = None, postfilter=None
):
    """``(k, channels, W) -> (k, n_sources, channels, W)`` on ``device``: the model itself,
    or ``apply_model(..., split=False, segment=segment)`` for a Demucs model (its padding),
    followed by ``postfilter`` (:class:`separation.postfilter.PostFilter`) on each window."""
    from separation.postfilter import PostFilter

    post = PostFilter.parse(postfilter)
    rate = int(model.samplerate)
    if use_demucs:
        from demucs.apply import apply_model

        seg = _fraction(segment) if segment is not None else None

        def run_demucs(batch: torch.Tensor) -> torch.Tensor:
            return apply_model(
                model, batch, shifts=0, split=False, progress=False, device=device, segment=seg
            )

        forward = run_demucs
    else:

        def run_model(batch: torch.Tensor) -> torch.Tensor:
            return model(batch.to(device))

        forward = run_model
    if post.kind == "none":
        return forward

    def run_filtered(batch: torch.Tensor) -> torch.Tensor:
        est = forward(batch)
        if est.dim() != 4 or est.shape[0] != batch.shape[0] or est.shape[2:] != batch.shape[1:]:
            return est  # OverlapAdd reports the wrong shape
        return post(est, batch.to(est.device, est.dtype), rate)

    return run_filtered


def _plan(model: nn.Module, segment, overlap, engine: str) -> tuple[float, float, bool]:
    """Checked ``(segment seconds, overlap, use_demucs)`` for ``model``."""
    if engine not in ENGINES:
        raise WbError(f"unknown inference engine {engine!r} (choose from {', '.join(ENGINES)})")
    overlap = float(DEFAULT_OVERLAP if overlap is None else overlap)
    if not 0.0 <= overlap < 1.0:
        raise WbError(f"overlap must be in [0, 1), got {overlap}")
    segment = check_segment(model, segment)
    use_demucs = engine == "demucs" or (engine == "auto" and is_demucs(model))
    return segment, overlap, use_demucs


def _n_models(model: nn.Module, use_demucs: bool) -> int:
    """Models run on every chunk (a Demucs bag runs each of its models)."""
    return len(model.models) if use_demucs and hasattr(model, "models") else 1


def _engine(
    model: nn.Module,
    channels: int,
    segment: float,
    overlap: float,
    use_demucs: bool,
    device,
    transition_power: float,
    batch_segments: int,
    on_chunk,
    shifts: int = 0,
    postfilter=None,
):
    """The streaming engine for ``model``: an :class:`OverlapAdd`, one per model of a
    Demucs bag combined with the bag's weights, and with ``shifts > 0`` one per random shift
    of each (leaf) model averaged by :class:`_Shifted` (all have ``push``/``finish``);
    ``postfilter`` refines every window of every leaf model (:func:`_runner`)."""
    seg = segment_samples(int(model.samplerate), segment)
    if use_demucs and hasattr(model, "models"):
        engines = [
            _engine(m, channels, segment, overlap, True, device, transition_power,
                    batch_segments, on_chunk, shifts, postfilter)
            for m in model.models
        ]  # fmt: skip
        return _WeightedBag(engines, model.weights)
    if shifts:
        import random

        max_shift = int(0.5 * model.samplerate)
        delays = [max_shift - random.randint(0, max_shift) for _ in range(int(shifts))]
        engines = [
            _engine(model, channels, segment, overlap, use_demucs, device, transition_power,
                    batch_segments, on_chunk, postfilter=postfilter)
            for _ in delays
        ]  # fmt: skip
        return _Shifted(engines, delays)
    return OverlapAdd(
        _runner(model, use_demucs, device, segment, postfilter),
        len(model.sources),
        channels,
        seg,
        overlap,
        transition_power,
        window_length=_demucs_window_length(model, seg) if use_demucs else None,
        batch_segments=batch_segments,
        on_chunk=on_chunk,
    )


def separate_tensor(
    model: nn.Module,
    mixture: torch.Tensor,
    segment: float | None = None,
    overlap: float | None = None,
    shifts: int = 0,
    device: torch.device | str | None = None,
    batch_segments: int = 1,
    transition_power: float = 1.0,
    engine: str = "auto",
    quiet: bool | None = None,
    postfilter: str | None = None,
) -> torch.Tensor:
    """Separate a whole mixture already in the model's format with chunked overlap-add.

    Args:
        model: separation model with ``sources``, ``samplerate`` (Hz) and ``audio_channels``
            (see :mod:`separation.models`), a Demucs model or a Demucs ``BagOfModels``.
        mixture: ``(channels, samples)`` at ``model.samplerate`` with ``model.audio_channels``
            channels (:class:`StreamSeparator` / :func:`separate_audio` take any format).
        segment: chunk length in seconds; default :func:`model_segment`. HTDemucs cannot take
            chunks longer than its training segment.
        overlap: chunk overlap fraction in ``[0, 1)``; default 0.25.
        shifts: Demucs' "shift trick": the average of ``shifts`` runs on the mixture delayed
            by random amounts up to 0.5 s (:class:`_Shifted`; the same as
            ``demucs.apply.apply_model(shifts=...)`` for the same offsets); 0 keeps the
            output deterministic. Costs ``shifts`` times the work.
        device: where the model runs; chunks are moved there, the output stays with the input.
        batch_segments: chunks per forward pass.
        transition_power: exponent of the triangular cross-fade weights.
        engine: ``"auto"`` (Demucs models chunk by chunk through
            ``demucs.apply.apply_model(split=False)``, which pads each window to the model's
            ``valid_length``: the same result as ``apply_model(split=True)``; other models
            called directly with every chunk padded to a full segment), ``"demucs"`` or
            ``"ola"`` to force one.
        quiet: no progress bar (``None`` follows ``WB_QUIET``).
        postfilter: ``none`` (default), ``consistency``, ``mask`` or ``mask:ALPHA`` (or a
            :class:`separation.postfilter.PostFilter`), applied to every chunk's estimates
            with the chunk's mixture.

    Returns:
        ``(n_sources, channels, samples)`` float32, same length as the input.

    Raises:
        WbError: wrong input shape or channel count, invalid segment/overlap/engine/
            postfilter, or a model output of the wrong shape.
    """
    from separation.postfilter import PostFilter

    postfilter = PostFilter.parse(postfilter)
    if mixture.dim() != 2:
        raise WbError(f"mixture must be (channels, samples), got shape {tuple(mixture.shape)}")
    channels, length = mixture.shape
    want = int(getattr(model, "audio_channels", channels))
    if channels != want:
        raise WbError(f"mixture has {channels} channels, the model expects {want}")
    if length == 0:
        raise WbError("mixture is empty")
    segment, overlap, use_demucs = _plan(model, segment, overlap, engine)
    shifts = check_shifts(shifts)
    sr = int(model.samplerate)
    stride = max(1, int((1 - overlap) * max(1, int(sr * segment))))
    n_chunks = len(range(0, length, stride))
    was_training = model.training
    model.eval()
    bar = progress(
        total=n_chunks * max(1, int(shifts)), desc="separating", unit="chunk", quiet=quiet
    )
    device = device if device is not None else mixture.device
    try:
        ola = _engine(
            model, channels, segment, overlap, use_demucs, device, transition_power,
            batch_segments, bar.update, shifts, postfilter,
        )  # fmt: skip
        return torch.cat([ola.push(mixture), ola.finish()], dim=-1)
    finally:
        bar.close()
        model.train(was_training)


class StreamSeparator:
    """Separate audio of any rate and channel count block by block, in bounded memory.

    Each pushed block is converted to the model's channel count (:func:`wb.audio.
    convert_channels`: mono downmix by mean, mono duplicated to stereo) and resampled to the
    model's rate with a streaming soxr resampler (``soxr.ResampleStream``, "HQ"), separated by
    :class:`OverlapAdd`, and the final estimates are converted back to the input's rate and
    channel count. Outputs lag the input by about one chunk; :meth:`finish` flushes the rest.
    The concatenated outputs have exactly as many samples as the concatenated inputs.

    Args:
        model: see :func:`separate_tensor`.
        sample_rate: the input's rate in Hz.
        channels: the input's channel count (1 or 2).
        stems: source names to return, in this order (default all, in model order).
        segment, overlap, shifts, device, batch_segments, transition_power, engine,
            postfilter: see :func:`separate_tensor`.
        expected_frames: input length in samples if known (progress bar total only).
        quiet: no progress bar (``None`` follows ``WB_QUIET``).
        high_band: when the input's rate is above the model's, give the stems the input's
            band above the model's Nyquist frequency, shared out by
            :class:`separation.highband.HighBandExtension` (default on). Off: the stems are
            band-limited to ``model_rate / 2``.

    Raises:
        AudioError: ``channels`` not 1 or 2, or a non-positive sample rate.
        WbError: unknown stems, invalid segment/overlap/engine/postfilter; from :meth:`push` /
            :meth:`finish` as :class:`OverlapAdd`.
    """

    def __init__(
        self,
        model: nn.Module,
        sample_rate: int,
        channels: int,
        stems: list[str] | None = None,
        segment: float | None = None,
        overlap: float | None = None,
        device: torch.device | str | None = None,
        batch_segments: int = 1,
        transition_power: float = 1.0,
        engine: str = "auto",
        expected_frames: int | None = None,
        quiet: bool | None = None,
        high_band: bool = True,
        shifts: int = 0,
        postfilter: str | None = None,
    ) -> None:
        import soxr

        from separation.highband import HighBandExtension
        from separation.postfilter import PostFilter

        postfilter = PostFilter.parse(postfilter)

        if channels not in (1, 2):
            raise AudioError(
                f"input has {channels} channels; only mono or stereo audio can be separated"
            )
        if sample_rate <= 0:
            raise AudioError(f"sample rate must be positive, got {sample_rate} Hz")
        names = list(model.sources)
        unknown = [s for s in stems or [] if s not in names]
        if unknown:
            raise WbError(f"unknown stem(s) {', '.join(unknown)}; sources: {', '.join(names)}")
        self.stems = list(stems or names)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.model_rate, self.model_channels = int(model.samplerate), int(model.audio_channels)
        # the high band is shared among all sources, so then all are brought back
        self._hb = None
        if high_band and self.sample_rate > self.model_rate:
            self._hb = HighBandExtension(len(names), self.channels, self.sample_rate,
                                         self.model_rate)  # fmt: skip
        self._index = list(range(len(names))) if self._hb else [names.index(s) for s in self.stems]
        self._final = [names.index(s) for s in self.stems] if self._hb else None
        segment, overlap, use_demucs = _plan(model, segment, overlap, engine)
        device = device if device is not None else torch.device("cpu")
        shifts = check_shifts(shifts)
        self._ola = _engine(
            model, self.model_channels, segment, overlap, use_demucs, device,
            transition_power, batch_segments, lambda k: self._bar.update(k), shifts, postfilter,
        )  # fmt: skip
        # stems are brought to min(model, input) channels before resampling back (less work)
        self._mid_channels = min(self.model_channels, self.channels)
        same_rate = self.sample_rate == self.model_rate
        self._in = None if same_rate else soxr.ResampleStream(
            self.sample_rate, self.model_rate, self.model_channels, dtype="float32"
        )  # fmt: skip
        self._out = None if same_rate else soxr.ResampleStream(
            self.model_rate, self.sample_rate, len(self._index) * self._mid_channels,
            dtype="float32",
        )  # fmt: skip
        stride = max(1, int((1 - overlap) * segment_samples(self.model_rate, segment)))
        total = None
        if expected_frames:
            chunks = -(-int(expected_frames * self.model_rate / self.sample_rate) // stride)
            total = chunks * _n_models(model, use_demucs) * max(1, shifts)
        # last: nothing below can fail, so close() always has a bar and a flag to restore
        self._bar = progress(total=total, desc="separating", unit="chunk", quiet=quiet)
        self.model = model
        self._was_training = model.training
        model.eval()
        self._pushed = 0  # input samples so far
        self._returned = 0  # output samples so far
        self._done = False

    def push(self, block) -> torch.Tensor:
        """Separate the next ``(channels, n)`` block (tensor or array) at the input's rate.

        Returns:
            ``(len(stems), channels, m)`` float32 on the CPU: the estimates that became final
            (``m`` may be 0; the first ones come after about one chunk of input).
        """
        if self._done:
            raise WbError("push() after finish()")
        block = torch.as_tensor(block, dtype=torch.float32)
        if block.dim() != 2 or block.shape[0] != self.channels:
            raise WbError(f"block must be ({self.channels}, samples), got {tuple(block.shape)}")
        self._pushed += block.shape[-1]
        mix = convert_channels(block, self.model_channels, "input")
        if self._in is not None:
            mix = self._resample(self._in, mix, last=False)
        est = self._back(self._ola.push(mix), last=False)
        if self._hb is None:
            return est
        return self._hb.push(block, est)[self._final]

    def finish(self) -> torch.Tensor:
        """End of the input: flush everything and return the last estimates (as :meth:`push`);
        the total output length then equals the total input length."""
        if self._done:
            raise WbError("finish() called twice")
        self._done = True
        try:
            tail = []
            if self._in is not None:
                flushed = self._resample(self._in, torch.zeros(self.model_channels, 0), last=True)
                tail.append(self._back(self._ola.push(flushed), last=False))
            if self._pushed and self._ola.received == 0:  # shorter than the resampler delay
                tail.append(self._back(self._ola.push(torch.zeros(self.model_channels, 1)), False))
            tail.append(self._back(self._ola.finish(), last=True))
            out = torch.cat(tail, dim=-1)
            missing = self._pushed - self._returned
            if missing > 0:  # the resamplers' rounding: pad the last samples
                out = F.pad(out, (0, missing))
                self._returned += missing
            if self._hb is not None:
                flushed = self._hb.push(torch.zeros(self.channels, 0), out)
                out = torch.cat([flushed, self._hb.finish()], dim=-1)[self._final]
            return out
        finally:
            self.close()

    def close(self) -> None:
        """Close the progress bar and restore the model's training flag (idempotent)."""
        self._bar.close()
        self.model.train(self._was_training)

    @staticmethod
    def _resample(stream, audio: torch.Tensor, last: bool) -> torch.Tensor:
        """``(channels, n)`` through a soxr stream (it takes ``(n, channels)`` arrays)."""
        arr = np.ascontiguousarray(audio.detach().cpu().numpy().T)
        return torch.from_numpy(np.ascontiguousarray(stream.resample_chunk(arr, last=last).T))

    def _back(self, est: torch.Tensor, last: bool) -> torch.Tensor:
        """Model-rate estimates ``(n_sources, model_channels, m)`` to the input's format,
        never past the input received so far."""
        est = est[self._index].cpu()
        k, _, m = est.shape
        if self.model_channels > self._mid_channels:
            est = est.mean(dim=1, keepdim=True)
        if self._out is not None:
            flat = est.reshape(k * self._mid_channels, m)
            flat = self._resample(self._out, flat, last=last)
            est = flat.reshape(k, self._mid_channels, flat.shape[-1])
        if self._mid_channels < self.channels:
            est = est.expand(k, self.channels, est.shape[-1])
        est = est[..., : max(0, self._pushed - self._returned)].contiguous()
        self._returned += est.shape[-1]
        return est


def separate_audio(
    model: nn.Module,
    audio: torch.Tensor,
    sample_rate: int,
    stems: list[str] | None = None,
    block_seconds: float = 60.0,
    **kwargs,
) -> torch.Tensor:
    """Separate ``audio`` in its own format: :class:`StreamSeparator` over the whole tensor.

    Args:
        model: see :func:`separate_tensor`.
        audio: ``(channels, samples)`` at ``sample_rate`` Hz (1 or 2 channels).
        sample_rate: Hz.
        stems: source names to return (default all, in model order).
        block_seconds: input seconds per pushed block.
        **kwargs: :class:`StreamSeparator` options (``segment``, ``overlap``, ``device``, ...).

    Returns:
        ``(len(stems), channels, samples)`` float32 at ``sample_rate``.

    Raises:
        AudioError / WbError: see :class:`StreamSeparator`.
    """
    if audio.dim() != 2:
        raise WbError(f"audio must be (channels, samples), got shape {tuple(audio.shape)}")
    sep = StreamSeparator(
        model, sample_rate, audio.shape[0], stems, expected_frames=audio.shape[-1], **kwargs
    )
    try:
        step = max(1, int(block_seconds * sample_rate))
        parts = [sep.push(audio[:, i : i + step]) for i in range(0, audio.shape[-1], step)]
        parts.append(sep.finish())
    finally:
        sep.close()
    return torch.cat(parts, dim=-1)
