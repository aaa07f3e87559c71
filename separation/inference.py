"""Chunked overlap-add inference for arbitrarily long inputs.

The mixture is cut into chunks of ``segment`` seconds starting every
``(1 - overlap) * segment`` seconds; each chunk is separated and added into a preallocated
output with triangular weights (maximal mid-chunk, linear fades), and the sum is divided by the
summed weights -- the scheme of Demucs' :func:`demucs.apply.apply_model` (Défossez et al.), so
chunk borders cross-fade and a model returning its input reconstructs it exactly. Memory beyond
the input and output is bounded by ``batch_segments`` chunks, whatever the input length.

Demucs models (``HDemucs``, ``HTDemucs``, pretrained bags) go through
:func:`demucs.apply.apply_model` itself; other models (Conv-TasNet) through
:func:`overlap_add`, the same mechanism and weighting implemented here (with optional batching
of several chunks per forward pass).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

from separation.models import is_demucs
from wb.audio import convert_channels, resample
from wb.errors import AudioError, WbError
from wb.progress import progress

DEFAULT_OVERLAP = 0.25
ENGINES = ("auto", "demucs", "ola")


def model_segment(model: nn.Module) -> float | None:
    """Default chunk length in seconds: ``model.inference_segment`` when set (from a model
    file's meta), else ``model.segment``, else the shortest segment in a Demucs bag."""
    seg = getattr(model, "inference_segment", None) or getattr(model, "segment", None)
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


def _padded_chunk(mixture: torch.Tensor, offset: int, length: int, target: int) -> torch.Tensor:
    """Chunk ``[offset, offset + length)`` centred in ``target`` samples of real context
    (zeros beyond the signal), as ``demucs.apply.TensorChunk.padded``."""
    total = mixture.shape[-1]
    delta = target - length
    start = offset - delta // 2
    end = start + target
    lo, hi = max(0, start), min(total, end)
    return F.pad(mixture[..., lo:hi], (lo - start, end - hi))


def overlap_add(
    model: nn.Module,
    mixture: torch.Tensor,
    segment_samples: int,
    overlap: float = DEFAULT_OVERLAP,
    transition_power: float = 1.0,
    batch_segments: int = 1,
    device: torch.device | str | None = None,
    on_chunk=None,
) -> torch.Tensor:
    """Separate ``mixture`` chunk by chunk with triangular overlap-add weights.

    Args:
        model: forward ``(batch, channels, samples) -> (batch, n_sources, channels, samples)``.
        mixture: ``(channels, samples)`` at the model's rate (stays on its device; only
            chunks move to ``device``).
        segment_samples: chunk length in samples.
        overlap: fraction of a chunk shared with the next one, ``0 <= overlap < 1``.
        transition_power: exponent of the triangular weights (1: linear fades).
        batch_segments: chunks per forward pass.
        device: where the model runs (default: the mixture's device).
        on_chunk: called with the number of chunks just processed (progress).

    Returns:
        ``(n_sources, channels, samples)`` float32 on the mixture's device.

    Raises:
        WbError: the model returned a chunk of the wrong shape: every chunk (zero-padded to
            ``segment_samples`` when the track is shorter) must come back as exactly
            ``(batch, n_sources, channels, segment_samples)``. A model that returns a shorter
            or longer output (e.g. a model whose valid lengths differ) is an error rather
            than being cropped, padded or misaligned silently.
    """
    channels, length = mixture.shape
    device = torch.device(device) if device is not None else mixture.device
    stride = max(1, int((1 - overlap) * segment_samples))
    weight = triangular_weight(segment_samples, transition_power).to(mixture.device)
    n_sources = len(model.sources)
    out = torch.zeros(n_sources, channels, length, dtype=torch.float32, device=mixture.device)
    total_weight = torch.zeros(length, dtype=torch.float32, device=mixture.device)
    offsets = list(range(0, length, stride))
    for first in range(0, len(offsets), max(1, batch_segments)):
        group = offsets[first : first + max(1, batch_segments)]
        sizes = [min(segment_samples, length - o) for o in group]
        batch = torch.stack(
            [
                _padded_chunk(mixture, o, n, segment_samples)
                for o, n in zip(group, sizes, strict=True)
            ]
        ).to(device)
        with torch.no_grad():
            est = model(batch).to(mixture.device, torch.float32)  # (k, S, C, segment)
        expected = (len(group), n_sources, channels, segment_samples)
        if tuple(est.shape) != expected:
            raise WbError(
                f"the model returned shape {tuple(est.shape)} for input chunks of shape "
                f"{tuple(batch.shape)}; expected {expected} (batch, sources, channels, samples)"
            )
        for k, (o, n) in enumerate(zip(group, sizes, strict=True)):
            lead = (segment_samples - n) // 2
            out[..., o : o + n] += weight[:n] * est[k, ..., lead : lead + n]
            total_weight[o : o + n] += weight[:n]
        if on_chunk is not None:
            on_chunk(len(group))
    out /= total_weight
    return out


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
) -> torch.Tensor:
    """Separate an arbitrarily long mixture with chunked overlap-add inference.

    Args:
        model: separation model with ``sources``, ``samplerate`` (Hz) and ``audio_channels``
            (see :mod:`separation.models`), a Demucs model or a Demucs ``BagOfModels``.
        mixture: ``(channels, samples)`` at ``model.samplerate`` with ``model.audio_channels``
            channels (see :func:`separate_audio` for other rates/channel counts).
        segment: chunk length in seconds; default :func:`model_segment`. HTDemucs cannot take
            chunks longer than its training segment.
        overlap: chunk overlap fraction in ``[0, 1)``; default ``model.overlap`` if set, else
            0.25.
        shifts: Demucs "shift trick" (random time shifts averaged; Demucs models only; 0 keeps
            the output deterministic).
        device: where the model runs; chunks are moved there, the output stays with the input.
        batch_segments: chunks per forward pass (overlap-add engine).
        transition_power: exponent of the triangular cross-fade weights.
        engine: ``"auto"`` (Demucs models through ``demucs.apply.apply_model``, others through
            :func:`overlap_add`), ``"demucs"`` or ``"ola"`` to force one.
        quiet: no progress bar (``None`` follows ``WB_QUIET``).

    Returns:
        ``(n_sources, channels, samples)`` float32, same length as the input.

    Raises:
        WbError: wrong input shape or channel count, invalid segment/overlap/engine.
    """
    if mixture.dim() != 2:
        raise WbError(f"mixture must be (channels, samples), got shape {tuple(mixture.shape)}")
    channels, length = mixture.shape
    want = int(getattr(model, "audio_channels", channels))
    if channels != want:
        raise WbError(f"mixture has {channels} channels, the model expects {want}")
    if length == 0:
        raise WbError("mixture is empty")
    if engine not in ENGINES:
        raise WbError(f"unknown inference engine {engine!r} (choose from {', '.join(ENGINES)})")
    overlap = float(getattr(model, "overlap", DEFAULT_OVERLAP) if overlap is None else overlap)
    if not 0.0 <= overlap < 1.0:
        raise WbError(f"overlap must be in [0, 1), got {overlap}")
    segment = check_segment(model, segment)
    sr = int(model.samplerate)
    seg_samples = max(1, int(sr * segment))
    stride = max(1, int((1 - overlap) * seg_samples))
    n_chunks = len(range(0, length, stride))
    use_demucs = engine == "demucs" or (engine == "auto" and is_demucs(model))
    was_training = model.training
    model.eval()
    total = n_chunks * max(1, int(shifts)) if use_demucs else n_chunks
    bar = progress(total=total, desc="separating", unit="chunk", quiet=quiet)
    try:
        if use_demucs:
            from demucs.apply import apply_model

            def callback(info: dict) -> None:
                if info.get("state") == "end":
                    bar.update(1)

            with torch.no_grad():
                out = apply_model(
                    model,
                    mixture[None],
                    shifts=int(shifts),
                    split=True,
                    overlap=overlap,
                    transition_power=transition_power,
                    progress=False,
                    device=device if device is not None else mixture.device,
                    segment=Fraction(segment).limit_denominator(10**6),
                    callback=callback,
                )[0]
        else:
            if shifts:
                raise WbError("shifts are only supported for Demucs models")
            out = overlap_add(
                model,
                mixture,
                seg_samples,
                overlap=overlap,
                transition_power=transition_power,
                batch_segments=batch_segments,
                device=device,
                on_chunk=bar.update,
            )
    finally:
        bar.close()
        model.train(was_training)
    return out


def restore_format(
    stem: torch.Tensor, model_rate: int, sample_rate: int, channels: int, length: int
) -> torch.Tensor:
    """Bring one separated stem back to the input's format.

    Args:
        stem: ``(model_channels, samples)`` at ``model_rate`` Hz.
        model_rate: Hz.
        sample_rate: the input's rate in Hz.
        channels: the input's channel count (mono stems are duplicated for stereo input, stereo
            stems averaged for mono input).
        length: the input's length in samples (the result is trimmed/zero-padded to it).

    Returns:
        ``(channels, length)`` float32.
    """
    if stem.shape[0] > channels:
        stem = convert_channels(stem, channels)
    stem = resample(stem, model_rate, sample_rate)
    if stem.shape[0] < channels:
        stem = convert_channels(stem, channels)
    if stem.shape[-1] >= length:
        return stem[..., :length]
    return F.pad(stem, (0, length - stem.shape[-1]))


def iter_separate(
    model: nn.Module,
    audio: torch.Tensor,
    sample_rate: int,
    stems: list[str] | None = None,
    **kwargs,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Separate ``audio`` in its own format, yielding one stem at a time (bounded memory).

    The input is converted to the model's rate and channel count (:func:`wb.audio.resample`,
    :func:`wb.audio.convert_channels`: mono downmix by mean, mono duplicated to stereo),
    separated with :func:`separate_tensor`, and every stem is converted back.

    Args:
        model: see :func:`separate_tensor`.
        audio: ``(channels, samples)`` at ``sample_rate`` Hz.
        sample_rate: Hz.
        stems: source names to yield (default all, in model order).
        **kwargs: :func:`separate_tensor` options (``segment``, ``overlap``, ``device``, ...).

    Yields:
        ``(source name, (channels, samples) float32 tensor)`` in the input's format.

    Raises:
        WbError / AudioError: see :func:`separate_tensor` and the channel policy.
    """
    channels, length = audio.shape
    if channels not in (1, 2):
        raise AudioError(
            f"input has {channels} channels; only mono or stereo audio can be separated"
        )
    model_rate = int(model.samplerate)
    mix = convert_channels(audio, int(model.audio_channels), "input")
    mix = resample(mix, sample_rate, model_rate)
    est = separate_tensor(model, mix, **kwargs)
    del mix
    names = list(model.sources)
    for name in stems or names:
        yield (
            name,
            restore_format(est[names.index(name)], model_rate, sample_rate, channels, length),
        )


def separate_audio(
    model: nn.Module, audio: torch.Tensor, sample_rate: int, **kwargs
) -> torch.Tensor:
    """Separate ``audio`` ``(channels, samples)`` at ``sample_rate`` Hz in its own format.

    Returns:
        ``(n_sources, channels, samples)`` at ``sample_rate``; see :func:`iter_separate`.
    """
    return torch.stack([stem for _, stem in iter_separate(model, audio, sample_rate, **kwargs)])
