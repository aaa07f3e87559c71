"""Apply an exported classifier (``model.pt`` from ``wb classify``) to audio files.

The model file is self-contained (:func:`wb.checkpoint.save_model`): it rebuilds the
:class:`~classify.models.Classifier` (front end with its fitted normalisation, head) and its
``meta`` holds the class names, sample rate and length policy. Files are decoded with
:func:`wb.audio.load` (resampled, downmixed to mono); files longer than the model's input are
cut into sliding windows (hop = half a window unless the model says otherwise) whose logits
are averaged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from classify.frontends import LengthPolicy, eval_windows
from wb.errors import WbError


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for one file.

    Attributes:
        path: the input file.
        probabilities: softmax of the window-averaged logits, ``(n_classes,)``.
        classes: class names in model order.
        windows: number of windows averaged.
    """

    path: str
    probabilities: np.ndarray
    classes: list[str]
    windows: int

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(class, probability)`` pairs, most probable first."""
        order = np.argsort(-self.probabilities, kind="stable")[: max(1, k)]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]


def load_classifier(path: str | os.PathLike):
    """Load a classifier file written by ``wb classify``.

    Returns:
        ``(classifier in eval mode, meta dict)``.

    Raises:
        WbError: not a model file, or not a classifier (no class names in its meta).
    """
    from classify.models import BUILDERS
    from wb.checkpoint import load_model

    model, info = load_model(path, BUILDERS)
    meta = info.get("meta") or {}
    if "classes" not in meta or "sample_rate" not in meta:
        raise WbError(f"{path}: not a classifier model file (no class names / sample rate)")
    return model, meta


@torch.no_grad()
def predict_files(
    files: Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    batch_windows: int = 256,
    device: str = "cpu",
) -> list[Prediction]:
    """Class probabilities for each file.

    Args:
        files: audio files (any format :func:`wb.audio.load` reads).
        checkpoint: model file from ``wb classify`` (``<run>/model.pt``).
        batch_windows: windows per forward pass.
        device: torch device.

    Returns:
        one :class:`Prediction` per file, in order.

    Raises:
        WbError: bad model file; AudioError: unreadable audio.
    """
    from wb.audio import load

    model, meta = load_classifier(checkpoint)
    model.to(device)
    sr = int(meta["sample_rate"])
    length = dict(meta.get("length") or {})
    policy = LengthPolicy(**{**length, "eval_crop": "sliding"})
    n = policy.n_samples(sr)
    hop = policy.hop_samples(sr)
    out = []
    for f in files:
        audio, _ = load(f, sample_rate=sr, channels=1)
        windows = torch.from_numpy(eval_windows(audio[0].numpy(), n, policy, hop))
        logits = torch.cat(
            [
                model(windows[i : i + batch_windows].to(device))
                for i in range(0, len(windows), batch_windows)
            ]
        )
        probs = torch.softmax(logits.float().mean(dim=0), dim=-1).cpu().numpy()
        out.append(Prediction(str(Path(f)), probs, list(meta["classes"]), len(windows)))
    return out
