"""Separation model registry: Conv-TasNet (asteroid), HDemucs and HTDemucs (demucs).

Every model built here has the same interface, which is also what
:func:`demucs.apply.apply_model` expects:

* ``forward(mixture)``: mixture ``(batch, channels, samples)`` -> estimates
  ``(batch, n_sources, channels, samples)``, same length as the input;
* attributes ``sources`` (list of names, in output order), ``samplerate`` (Hz),
  ``audio_channels`` and ``segment`` (seconds: the training segment length and the default
  inference chunk length).

A recipe's ``model:`` YAML group maps 1:1 to a builder's keyword arguments plus ``name``::

    model:
      name: htdemucs
      channels: 16
      depth: 4

is built with ``build("htdemucs", sources, sample_rate, audio_channels, channels=16, depth=4)``.
Model files written by :func:`wb.checkpoint.save_model` name the builder as
``separation.models:<name>`` and store the builder's kwargs, so :func:`wb.checkpoint.load_model`
rebuilds the model without unpickling code.

References:
    Luo & Mesgarani 2019, "Conv-TasNet: Surpassing ideal time-frequency magnitude masking for
    speech separation" (IEEE/ACM TASLP). Défossez 2021, "Hybrid spectrogram and waveform source
    separation" (HDemucs, ISMIR MDX workshop). Rouard, Massa & Défossez 2023, "Hybrid
    transformers for music source separation" (HTDemucs, ICASSP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from wb.errors import ConfigError, WbError

DEFAULT_SEGMENT = 4.0  # seconds


def _check_common(sources: Sequence[str], sample_rate: int, audio_channels: int) -> list[str]:
    sources = [str(s) for s in sources]
    if not sources:
        raise ConfigError("model needs at least one source name")
    if len(set(sources)) != len(sources):
        raise ConfigError(f"duplicate source names in {sources}")
    if int(sample_rate) <= 0:
        raise ConfigError(f"model sample_rate must be positive, got {sample_rate}")
    if int(audio_channels) not in (1, 2):
        raise ConfigError(f"model audio_channels must be 1 or 2, got {audio_channels}")
    return sources


def _construct(cls: type, name: str, **kwargs: Any) -> nn.Module:
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name}: bad keyword arguments ({exc})") from None
    except (AssertionError, ValueError) as exc:
        raise ConfigError(
            f"model {name}: invalid configuration ({exc or 'assertion failed'})"
        ) from None


class ConvTasNetSeparator(nn.Module):
    """Asteroid's Conv-TasNet behind the uniform ``(batch, channels, samples)`` interface.

    Conv-TasNet (Luo & Mesgarani 2019) is a single-channel network. Multi-channel policy:
    **each channel is separated independently** by the same network (channels are folded
    into the batch axis), so a stereo mixture gives stereo estimates with the input's image.

    Args:
        sources: source names, in output order.
        sample_rate: operating rate in Hz.
        audio_channels: channels of the mixture and of every estimate (1 or 2).
        segment: training segment length in seconds (default inference chunk length).
        **kwargs: :class:`asteroid.models.ConvTasNet` arguments (``n_blocks``, ``n_repeats``,
            ``bn_chan``, ``hid_chan``, ``skip_chan``, ``n_filters``, ``kernel_size``,
            ``stride``, ``norm_type``, ``mask_act``, ...); ``n_src`` and ``sample_rate`` are
            set from the sources and the rate.
    """

    def __init__(
        self,
        sources: Sequence[str],
        sample_rate: int,
        audio_channels: int = 1,
        segment: float = DEFAULT_SEGMENT,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from asteroid.models import ConvTasNet

        self.sources = list(sources)
        self.samplerate = int(sample_rate)
        self.audio_channels = int(audio_channels)
        self.segment = float(segment)
        self.tasnet = ConvTasNet(n_src=len(self.sources), sample_rate=self.samplerate, **kwargs)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separate a batch.

        Args:
            mixture: ``(batch, channels, samples)``.

        Returns:
            ``(batch, n_sources, channels, samples)``.
        """
        batch, channels, samples = mixture.shape
        est = self.tasnet(mixture.reshape(batch * channels, 1, samples))  # (B*C, S, T)
        est = est.reshape(batch, channels, len(self.sources), samples)
        return est.permute(0, 2, 1, 3).contiguous()


def convtasnet(
    sources: Sequence[str],
    sample_rate: int,
    audio_channels: int = 1,
    segment: float = DEFAULT_SEGMENT,
    **kwargs: Any,
) -> ConvTasNetSeparator:
    """Build Conv-TasNet (Luo & Mesgarani 2019) via asteroid.

    Args:
        sources: source names in output order.
        sample_rate: Hz.
        audio_channels: 1 or 2 (channels are separated independently, see
            :class:`ConvTasNetSeparator`).
        segment: training segment length in seconds.
        **kwargs: :class:`asteroid.models.ConvTasNet` keyword arguments. A CPU-trainable size
            at 16 kHz is e.g. ``n_filters=128, bn_chan=64, hid_chan=128, skip_chan=64,
            n_repeats=2`` (the asteroid default, 5.2 M parameters, is far too slow on CPU).

    Returns:
        A module with forward ``(batch, channels, samples) -> (batch, n_sources, channels,
        samples)``.

    Raises:
        ConfigError: empty/duplicate sources, bad rate/channels or unknown kwargs.
    """
    sources = _check_common(sources, sample_rate, audio_channels)
    return _construct(
        ConvTasNetSeparator,
        "convtasnet",
        sources=sources,
        sample_rate=int(sample_rate),
        audio_channels=int(audio_channels),
        segment=float(segment),
        **kwargs,
    )


def hdemucs(
    sources: Sequence[str],
    sample_rate: int,
    audio_channels: int = 2,
    segment: float = DEFAULT_SEGMENT,
    **kwargs: Any,
) -> nn.Module:
    """Build Hybrid Demucs (Défossez 2021), :class:`demucs.hdemucs.HDemucs`.

    Args:
        sources: source names in output order.
        sample_rate: Hz (the demucs ``samplerate``).
        audio_channels: 1 or 2.
        segment: training segment length in seconds (default inference chunk length).
        **kwargs: ``HDemucs`` keyword arguments (``channels``, ``depth``, ``nfft``, ...);
            e.g. ``channels=16`` is a small CPU-trainable size.

    Returns:
        ``HDemucs``: forward ``(batch, channels, samples) -> (batch, n_sources, channels,
        samples)``.

    Raises:
        ConfigError: bad sources, rate, channels or kwargs.
    """
    from demucs.hdemucs import HDemucs

    sources = _check_common(sources, sample_rate, audio_channels)
    return _construct(
        HDemucs,
        "hdemucs",
        sources=sources,
        audio_channels=int(audio_channels),
        samplerate=int(sample_rate),
        segment=float(segment),
        **kwargs,
    )


def htdemucs(
    sources: Sequence[str],
    sample_rate: int,
    audio_channels: int = 2,
    segment: float = DEFAULT_SEGMENT,
    **kwargs: Any,
) -> nn.Module:
    """Build Hybrid Transformer Demucs (Rouard et al. 2023), :class:`demucs.htdemucs.HTDemucs`.

    HTDemucs is trained on fixed-length segments and, in eval mode, pads shorter inputs to
    ``segment`` seconds; it cannot process longer inputs in one call, so chunked inference
    must use a chunk length ``<= segment``.

    Args:
        sources: source names in output order.
        sample_rate: Hz (the demucs ``samplerate``).
        audio_channels: 1 or 2.
        segment: training segment length in seconds.
        **kwargs: ``HTDemucs`` keyword arguments (``channels``, ``depth``, ``nfft``,
            ``t_layers``, ...); ``channels=16`` gives a 3 M parameter model that trains on CPU.

    Returns:
        ``HTDemucs``: forward ``(batch, channels, samples) -> (batch, n_sources, channels,
        samples)``.

    Raises:
        ConfigError: bad sources, rate, channels or kwargs.
    """
    from demucs.htdemucs import HTDemucs

    sources = _check_common(sources, sample_rate, audio_channels)
    return _construct(
        HTDemucs,
        "htdemucs",
        sources=sources,
        audio_channels=int(audio_channels),
        samplerate=int(sample_rate),
        segment=float(segment),
        **kwargs,
    )


REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "convtasnet": convtasnet,
    "hdemucs": hdemucs,
    "htdemucs": htdemucs,
}


def get(name: str) -> Callable[..., nn.Module]:
    """Return the builder registered as ``name``.

    Raises:
        WbError: unknown name (the message lists the known ones).
    """
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise WbError(f"unknown separation model {name!r} (known: {known})") from None


def class_ref(name: str) -> str:
    """The ``module:name`` reference stored in model files for registry entry ``name``."""
    get(name)
    return f"{__name__}:{name}"


#: The allow-list of model-file classes this package builds (:func:`wb.checkpoint.load_model`).
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    f"{__name__}:{name}": builder for name, builder in REGISTRY.items()
}


def build(
    name: str,
    sources: Sequence[str],
    sample_rate: int,
    audio_channels: int,
    **kwargs: Any,
) -> nn.Module:
    """Build registry model ``name`` from a YAML ``model:`` group's kwargs.

    Args:
        name: ``convtasnet``, ``hdemucs`` or ``htdemucs``.
        sources: source names in output order.
        sample_rate: Hz.
        audio_channels: 1 or 2.
        **kwargs: the model constructor's keyword arguments (plus ``segment`` in seconds).

    Returns:
        A module with forward ``(batch, channels, samples) -> (batch, n_sources, channels,
        samples)`` and attributes ``sources``, ``samplerate``, ``audio_channels``, ``segment``.

    Raises:
        WbError: unknown name. ConfigError: invalid kwargs.
    """
    return get(name)(
        sources=sources, sample_rate=sample_rate, audio_channels=audio_channels, **kwargs
    )


def is_demucs(model: nn.Module) -> bool:
    """True for demucs models (``Demucs``, ``HDemucs``, ``HTDemucs``, ``BagOfModels``), which
    are applied with :func:`demucs.apply.apply_model`."""
    from demucs.apply import BagOfModels
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    return isinstance(model, Demucs | HDemucs | HTDemucs | BagOfModels)
