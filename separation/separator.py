"""A loaded separation model and how to apply it: a value validated once.

:func:`separation.hub.load_separator` returns a :class:`Separator`;
:func:`separation.files.separate_file` and :mod:`separation.evaluate` take one. The model
itself is any module with forward ``(batch, channels, samples) -> (batch, n_sources,
channels, samples)`` (:mod:`separation.models`) or a Demucs model or ``BagOfModels``
(``demucs.apply``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from separation.inference import DEFAULT_OVERLAP, check_segment
from separation.postfilter import PostFilter
from wb.audio import check_sample_rate
from wb.errors import WbError


@dataclass(frozen=True)
class Separator:
    """A separation model with its sources, format and chunking.

    Attributes:
        model: the eval-mode model (or Demucs bag), see the module doc.
        sources: source names in output order.
        sample_rate: Hz the model runs at.
        audio_channels: 1 (mono) or 2 (stereo) the model takes.
        segment: chunk length in seconds for chunked inference.
        overlap: fraction of a chunk shared by neighbours, in ``[0, 1)``.
        postfilter: what refines each chunk's estimates with the chunk's mixture: ``none``,
            ``consistency``, ``mask`` or ``mask:ALPHA`` (:mod:`separation.postfilter`); a
            model file stores the one chosen for it.
        origin: where it came from: ``kind`` (``file``, ``checkpoint``, ``shipped``,
            ``demucs``), ``name``, ``path``, and a model file's ``meta``.

    Raises:
        WbError: no sources, duplicate sources, a rate outside 1 kHz..384 kHz, a channel count
            other than 1 or 2, a segment the model cannot take, an overlap outside ``[0, 1)``,
            an unknown post-filter.
    """

    model: nn.Module
    sources: tuple[str, ...]
    sample_rate: int
    audio_channels: int
    segment: float
    overlap: float = DEFAULT_OVERLAP
    origin: Mapping[str, Any] = field(default_factory=dict)
    postfilter: str = "none"

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise WbError(f"a separator needs distinct source names, got {list(self.sources)}")
        check_sample_rate(int(self.sample_rate), "separation model")
        if self.audio_channels not in (1, 2):
            raise WbError(f"separation model takes {self.audio_channels} channels (1 or 2)")
        check_segment(self.model, self.segment)
        if not 0.0 <= float(self.overlap) < 1.0:
            raise WbError(f"overlap must be in [0, 1), got {self.overlap}")
        object.__setattr__(self, "postfilter", str(PostFilter.parse(self.postfilter)))

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        segment: float | None = None,
        overlap: float | None = None,
        origin: Mapping[str, Any] | None = None,
        postfilter: str | None = None,
    ) -> Separator:
        """Wrap a model that carries ``sources``, ``samplerate`` and ``audio_channels``.

        Args:
            model: the model (put in eval mode).
            segment: chunk seconds (default: the model's training segment, or the shortest
                of a Demucs bag).
            overlap: chunk overlap (default 0.25).
            origin: see the class doc.
            postfilter: see the class doc (default ``none``).

        Raises:
            WbError: see the class doc; a model without those attributes.
        """
        try:
            sources, rate, channels = model.sources, model.samplerate, model.audio_channels
        except AttributeError as exc:
            raise WbError(f"not a separation model ({exc})") from None
        return cls(
            model=model.eval(), sources=tuple(str(s) for s in sources), sample_rate=int(rate),
            audio_channels=int(channels), segment=check_segment(model, segment),
            overlap=DEFAULT_OVERLAP if overlap is None else float(overlap),
            origin=dict(origin or {}), postfilter=postfilter or "none",
        )  # fmt: skip

    def to(self, device: torch.device | str) -> Separator:
        """The same separator with its model on ``device``."""
        return dataclasses.replace(self, model=self.model.to(device))

    def with_chunking(self, segment: float | None = None, overlap: float | None = None):
        """A copy with another chunk length and/or overlap (``None`` keeps the current one).

        Raises:
            WbError: a segment the model cannot take, an overlap outside ``[0, 1)``.
        """
        return dataclasses.replace(
            self,
            segment=self.segment if segment is None else float(segment),
            overlap=self.overlap if overlap is None else float(overlap),
        )

    def with_postfilter(self, postfilter: str | None) -> Separator:
        """A copy with another post-filter (``None`` keeps the current one).

        Raises:
            WbError: an unknown post-filter.
        """
        return self if postfilter is None else dataclasses.replace(self, postfilter=postfilter)
