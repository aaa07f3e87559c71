"""The training system: a thin PyTorch Lightning module around a registry model.

Batches are ``(mixture, sources)`` with shapes ``(batch, channels, samples)`` and
``(batch, n_sources, channels, samples)``. Each epoch logs the mean training loss, the
validation loss and the validation SI-SDR (dB, Le Roux et al. 2019) per source
(``val/si_sdr/<source>``) and averaged over sources (``val/si_sdr``, the checkpoint monitor),
in the spine's metric names (``train/loss``, ``val/loss``, ``val/si_sdr``).
Segments whose reference is silent are left out of a source's SI-SDR (it is undefined there);
a silent estimate of a non-silent reference counts with the SI-SDR floor (-100 dB, see
:func:`separation.losses.si_sdr`). NaN is never dropped silently: a NaN loss or estimate makes
the epoch's value NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric

from separation import models
from separation.losses import SeparationLoss, si_sdr
from wb.training.config import OptimConfig
from wb.training.trainer import rename_monitors

SCHEDULES = ("cosine", "plateau", "none")
MONITOR = "val/si_sdr"
_KEEP_NAN = float("nan")
SILENT = 1e-6  # a reference segment with zero-mean energy <= SILENT has no SI-SDR


class SeparationSystem(pl.LightningModule):
    """LightningModule training a separation model it receives (asteroid's ``System`` habit):
    it holds only the steps and metrics.

    Args:
        model: the model, forward ``(batch, channels, samples) -> (batch, n_sources,
            channels, samples)`` (:func:`separation.models.build`; :meth:`build` makes both).
        model_name: the model's registry name, and
        model_kwargs: its constructor kwargs (the YAML ``model:`` group minus ``name``): with
            ``sources``, ``sample_rate`` and ``audio_channels`` they are saved as the
            checkpoint's hyper-parameters, so export can rebuild the model.
        sources: source names in output order.
        sample_rate: Hz.
        audio_channels: 1 or 2.
        loss: ``"l1"`` (waveform L1) or ``"sisdr"`` (negative SI-SDR).
        pit: permutation-invariant loss (unordered sources only).
        optim: :class:`wb.training.config.OptimConfig` fields as plain values (AdamW and its
            schedule: ``cosine`` per step, ``plateau`` on validation SI-SDR, or ``none``).
        config: the resolved run configuration, stored with the checkpoint for export.

    Raises:
        ConfigError: unknown loss or schedule, invalid model kwargs. WbError: unknown model.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        model_name: str,
        model_kwargs: Mapping[str, Any],
        sources: Sequence[str],
        sample_rate: int,
        audio_channels: int = 1,
        loss: str = "l1",
        pit: bool = False,
        optim: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.optim = OptimConfig(**{"lr": 3e-4, **dict(optim or {})})
        self.optim.check(SCHEDULES)
        self.save_hyperparameters(ignore=["model"])
        self.sources = list(sources)
        self.model = model
        self.criterion = SeparationLoss(loss, pit)
        # nan_strategy=NaN replaces a NaN by NaN: it propagates to the epoch's value instead of
        # being dropped ("ignore"), so a diverged model cannot look good
        self.train_loss = MeanMetric(nan_strategy=_KEEP_NAN)
        self.val_loss = MeanMetric(nan_strategy=_KEEP_NAN)
        self.val_sisdr = torch.nn.ModuleList(
            MeanMetric(nan_strategy=_KEEP_NAN) for _ in self.sources
        )
        self.last_epoch_summary: dict[str, float] = {}

    @classmethod
    def build(
        cls,
        model_name: str,
        model_kwargs: Mapping[str, Any],
        sources: Sequence[str],
        sample_rate: int,
        audio_channels: int = 1,
        **kwargs: Any,
    ) -> SeparationSystem:
        """Build the registry model ``model_name`` and the system around it.

        Raises:
            WbError: unknown model. ConfigError: invalid kwargs, loss or schedule.
        """
        model = models.build(model_name, sources, sample_rate, audio_channels, **model_kwargs)
        return cls(model, model_name, model_kwargs, sources, sample_rate, audio_channels, **kwargs)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resume runs saved before the metric rename (``val/sisdr`` -> ``val/si_sdr``)."""
        rename_monitors(checkpoint, {"val/sisdr": MONITOR})

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, samples)`` -> ``(batch, n_sources, channels, samples)``."""
        return self.model(mixture)

    # -- steps -------------------------------------------------------------------------------
    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        """Loss of a batch ``(mixture (B, C, T), sources (B, S, C, T))``."""
        mixture, sources = batch
        loss, _ = self.criterion(self.model(mixture), sources)
        self.train_loss.update(loss.detach())
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Accumulate the validation loss and the per-source SI-SDR (dB) of a batch."""
        mixture, sources = batch
        estimate = self.model(mixture)
        loss, estimate = self.criterion(estimate, sources)
        self.val_loss.update(loss.detach())
        scores = si_sdr(estimate, sources, silent=SILENT).float()  # (batch, n_sources)
        # silent references (NaN from si_sdr) get weight 0; any other NaN propagates
        ref = sources.detach().to(torch.float64).flatten(-2)
        defined = ((ref - ref.mean(-1, keepdim=True)) ** 2).sum(-1) > SILENT
        scores = torch.where(defined, scores, torch.zeros_like(scores))
        for k, metric in enumerate(self.val_sisdr):
            metric.update(scores[:, k], defined[:, k].float())

    # -- epoch ends --------------------------------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        """Log ``val/loss``, ``val/si_sdr/<source>`` and their mean ``val/si_sdr`` (dB)."""
        per_source = [float(m.compute()) for m in self.val_sisdr]
        val_loss = float(self.val_loss.compute())
        for m in (*self.val_sisdr, self.val_loss):
            m.reset()
        # a source is NaN when its reference was silent in every segment (skipped), or when an
        # estimate held NaN -- then the loss is NaN too and so is the mean (never "best")
        finite = [v for v in per_source if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite and math.isfinite(val_loss) else float("nan")
        # values are already reduced over ranks (torchmetrics); sync_dist only averages equals
        for name, value in zip(self.sources, per_source, strict=True):
            self.log(f"{MONITOR}/{name}", value, sync_dist=True)
        self.log(MONITOR, mean, prog_bar=True, sync_dist=True)
        self.log("val/loss", val_loss, sync_dist=True)
        self.last_epoch_summary = {"val_loss": val_loss, "val_sisdr": mean}
        self.last_epoch_summary.update(
            {f"val_sisdr/{n}": v for n, v in zip(self.sources, per_source, strict=True)}
        )

    def on_train_epoch_end(self) -> None:
        """Log ``train/loss_epoch`` and print one summary line per epoch (rank 0)."""
        train_loss = float(self.train_loss.compute())
        self.train_loss.reset()
        self.log("train/loss_epoch", train_loss, sync_dist=True)
        if self.trainer.sanity_checking:
            return
        summary = self.last_epoch_summary
        line = (
            f"epoch {self.current_epoch + 1}/{self.trainer.max_epochs}: train loss {train_loss:.5f}"
        )
        if summary:
            per = ", ".join(f"{n} {summary[f'val_sisdr/{n}']:.2f}" for n in self.sources)
            line += (
                f" | val loss {summary['val_loss']:.5f} | val SI-SDR {summary['val_sisdr']:.2f} dB"
                f" ({per})"
            )
        if self.trainer.is_global_zero:
            print(line, flush=True)

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        """AdamW with the configured schedule (cosine per step, plateau per epoch, or none)."""
        return self.optim.configure(
            self.parameters(), total_steps=int(self.trainer.estimated_stepping_batches),
            epochs=int(self.trainer.max_epochs or 1), monitor=MONITOR, mode="max",
        )  # fmt: skip
