"""The Lightning system: one thin ``LightningModule`` around a :class:`~classify.models.Classifier`.

Training step: waveform augmentation -> mixup (on waveforms and soft targets) -> front end ->
SpecAugment -> head -> soft-target cross-entropy with label smoothing (Szegedy et al. 2016).
Validation step: deterministic windows per clip (centre crop or sliding), logits averaged per
clip, plain cross-entropy and accuracy. AdamW (Loshchilov & Hutter 2019) with a cosine,
plateau or one-cycle (Smith & Topin 2019) schedule and linear warm-up.

Reproducibility: torch's global generator is reseeded at every training batch from
``(seed, rank, global_step, batch_idx)``, so augmentation and dropout draws depend only on the
position in training, and a run resumed from a checkpoint continues bit-for-bit.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from classify.augment import Augmentation
from classify.models import Classifier
from wb.training.config import OptimConfig
from wb.training.trainer import rename_monitors

SCHEDULES = ("cosine", "plateau", "onecycle", "constant")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against soft targets: ``-(targets * log_softmax(logits)).sum(-1)``.

    Args:
        logits: ``(batch, n_classes)``.
        targets: probabilities ``(batch, n_classes)``.
    """
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def average_windows(logits: torch.Tensor, owner: torch.Tensor, n_clips: int) -> torch.Tensor:
    """Average window logits per clip.

    Args:
        logits: ``(windows, n_classes)``.
        owner: clip index of each window ``(windows,)`` in ``0..n_clips-1``.
        n_clips: number of clips.

    Returns:
        ``(n_clips, n_classes)`` mean logits.
    """
    out = torch.zeros(n_clips, logits.shape[1], device=logits.device, dtype=torch.float32)
    out.index_add_(0, owner, logits.float())
    count = torch.bincount(owner, minlength=n_clips).clamp_min(1).to(out.dtype)
    return out / count[:, None]


class ClassifierSystem(pl.LightningModule):
    """LightningModule training a :class:`~classify.models.Classifier`.

    Args:
        classifier: front end + head.
        augment: training augmentation (identity in eval mode).
        n_classes: number of classes.
        optim: :class:`wb.training.config.OptimConfig` (AdamW and its schedule).
        label_smoothing: epsilon of label smoothing (Szegedy et al. 2016), in [0, 1).
        seed: base seed of the per-step reseeding.
        plateau_monitor: metric watched by the plateau schedule (``train/loss`` when there is
            no validation set).

    Batches:
        training ``(wave (batch, samples), labels (batch,))``; validation
        ``(windows (n_windows, samples), owner (n_windows,), labels (batch,))``.

    Logged metrics (per epoch, the spine's names): ``train/loss``, ``train/accuracy`` (on
    augmented batches, in train mode), ``val/loss``, ``val/accuracy``, ``lr``.
    """

    def __init__(
        self,
        classifier: Classifier,
        augment: Augmentation,
        n_classes: int,
        optim: OptimConfig,
        label_smoothing: float = 0.0,
        seed: int = 0,
        plateau_monitor: str = "val/loss",
    ) -> None:
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.classifier = classifier
        self.augment = augment
        self.n_classes = n_classes
        self.optim = optim
        self.seed = int(seed)
        self.plateau_monitor = plateau_monitor
        self._warmup_steps = 0

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resume runs saved before the metric renames (``val_loss`` -> ``val/loss``, ...)."""
        rename_monitors(
            checkpoint,
            {"val_loss": "val/loss", "val_acc": "val/accuracy", "train_loss": "train/loss"},
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform ``(batch, samples)`` -> logits ``(batch, n_classes)``."""
        return self.classifier(wave)

    # ------------------------------------------------------------------------------ training
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """Reseed torch's generator from the position in training (exact resume)."""
        rank = self.trainer.global_rank if self._trainer is not None else 0
        torch.manual_seed(
            (self.seed * 1_000_003 + rank * 7_919 + self.global_step * 104_729 + batch_idx)
            % (2**63 - 1)
        )
        if self.optim.schedule == "plateau" and self._warmup_steps:
            self._plateau_warmup()

    def _plateau_warmup(self) -> None:
        opt = self.optimizers()
        opt = getattr(opt, "optimizer", opt)
        if self.global_step <= self._warmup_steps:
            frac = min(1.0, (self.global_step + 1) / self._warmup_steps)
            for g in opt.param_groups:
                g["lr"] = self.optim.lr * frac

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Augment, mix, featurise, mask, classify; return the soft-target loss."""
        wave, labels = batch
        eps = self.label_smoothing
        targets = F.one_hot(labels, self.n_classes).float() * (1 - eps) + eps / self.n_classes
        wave = self.augment.wave(wave)
        wave, targets = self.augment.mix(wave, targets)
        feats = self.augment.spec(self.classifier.features(wave))
        logits = self.classifier.head(feats)
        loss = soft_cross_entropy(logits, targets)
        acc = (logits.argmax(-1) == targets.argmax(-1)).float().mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(labels))
        self.log("train/accuracy", acc, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        """Clip-level validation loss and accuracy from window-averaged logits."""
        windows, owner, labels = batch
        logits = average_windows(self.classifier(windows), owner, len(labels))
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean()
        kw = dict(on_step=False, on_epoch=True, batch_size=len(labels), sync_dist=True)
        self.log("val/loss", loss, prog_bar=True, **kw)
        self.log("val/accuracy", acc, prog_bar=True, **kw)

    def on_train_epoch_start(self) -> None:
        """Log the learning rate the epoch starts with."""
        opt = self.optimizers()
        opt = getattr(opt, "optimizer", opt)
        self.log("lr", float(opt.param_groups[0]["lr"]), on_epoch=True)

    # ---------------------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        """AdamW plus the configured schedule (stepped per optimiser step, plateau per epoch)."""
        o = self.optim
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(".pos") else decay).append(p)
        groups = [{"params": decay, "weight_decay": o.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]  # fmt: skip
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = max(1, int(self.trainer.max_epochs or 1))
        self._warmup_steps = min(o.warmup(total, epochs), total)
        return o.configure(
            groups, total_steps=total, epochs=epochs, monitor=self.plateau_monitor, mode="min"
        )
