"""Export Lightning checkpoints of separation training runs to self-describing model files.

A model file (:func:`wb.checkpoint.save_model`, loadable with ``torch.load(...,
weights_only=True)``) holds::

    class   "separation.models:<name>"   (registry builder)
    kwargs  {sources, sample_rate, audio_channels, segment, <constructor kwargs>}
    state_dict
    meta    {name, sources, sample_rate, audio_channels, segment, overlap, postfilter,
             training_segment, parameters, config (the training run's resolved config),
             metrics, checkpoint}
    versions

Loading models by name or path is :mod:`separation.hub`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from separation import models
from separation.inference import DEFAULT_OVERLAP
from separation.postfilter import PostFilter
from separation.separator import Separator
from wb.checkpoint import count_parameters, load_torch_file, save_model
from wb.errors import WbError


# -- Lightning checkpoints ------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint of a :class:`~separation.system.SeparationSystem`
    (``weights_only=True``: no code is unpickled).

    Raises:
        WbError: missing or unreadable file, or not a separation checkpoint.
    """
    data = load_torch_file(path, "checkpoint")
    hp = data.get("hyper_parameters") if isinstance(data, dict) else None
    if not isinstance(hp, Mapping) or "model_name" not in hp or "state_dict" not in data:
        raise WbError(f"{path}: not a separation training checkpoint (no model hyper-parameters)")
    kinds = {
        "model_name": str, "sources": list | tuple, "sample_rate": int,
        "audio_channels": int, "model_kwargs": Mapping,
    }  # fmt: skip
    bad = [k for k, kind in kinds.items() if not isinstance(hp.get(k), kind)]
    if bad or not isinstance(data["state_dict"], Mapping):
        what = ", ".join(bad) or "state_dict"
        raise WbError(f"{path}: not a separation training checkpoint (bad or missing {what})")
    return data


def model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the trained model (eval mode) from a Lightning checkpoint.

    Returns:
        ``(model, checkpoint dict without optimizer/loop state)``.

    Raises:
        WbError: see :func:`read_checkpoint`; weights that do not fit the model.
    """
    data = read_checkpoint(path)
    hp = data["hyper_parameters"]
    try:
        model = models.build(
            hp["model_name"],
            hp["sources"],
            hp["sample_rate"],
            hp["audio_channels"],
            **dict(hp["model_kwargs"]),
        )
    except (TypeError, ValueError) as exc:
        raise WbError(f"{path}: cannot build {hp['model_name']} ({str(exc)[:120]})") from None
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WbError(f"{path}: weights do not fit {hp['model_name']} ({str(exc)[:120]})") from None
    model.eval()
    keep = ("epoch", "global_step", "hyper_parameters", "callbacks", "averaged_from")
    return model, {k: data[k] for k in keep if k in data}


def best_score(info: Mapping[str, Any]) -> float | None:
    """The best validation score a Lightning checkpoint's ``ModelCheckpoint`` callback
    recorded (validation SI-SDR in dB for separation runs), or ``None`` if it has none."""
    for key, state in (info.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(key) and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


def export(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    half: bool = False,
    metrics: Mapping[str, Any] | str | os.PathLike | None = None,
    inference: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-describing model file from a Lightning checkpoint.

    Args:
        checkpoint: ``best.ckpt`` / ``last.ckpt`` of a training run.
        out: destination ``.pt`` file (written atomically).
        half: store weights as float16 (about half the size; loaded back as float32).
        metrics: evaluation results to embed: a dict or a ``metrics.json`` path.
        inference: defaults for ``wb separate``: ``{"segment": seconds, "overlap":
            fraction, "postfilter": spec}`` (the recipe's ``inference:`` group; default: the
            training segment, 0.25 and ``none``; see :mod:`separation.postfilter`).

    Returns:
        The written path.

    Raises:
        WbError: unreadable checkpoint, unreadable metrics file, an inference segment
            that is not a positive number of seconds or is longer than an HTDemucs model's
            training segment, an overlap outside ``[0, 1)``, or an unknown post-filter.
    """
    model, info = model_from_checkpoint(checkpoint)
    hp = info["hyper_parameters"]
    kwargs = dict(hp["model_kwargs"])
    train_segment = float(kwargs.get("segment", models.DEFAULT_SEGMENT))
    inference = dict(inference or {})
    segment = float(inference.get("segment") or train_segment)
    overlap = float(inference.get("overlap", DEFAULT_OVERLAP))
    postfilter = str(PostFilter.parse(inference.get("postfilter")))
    if hp["model_name"] == "htdemucs" and segment > train_segment:
        raise WbError(
            f"inference segment {segment:g} s exceeds the HTDemucs training segment "
            f"{train_segment:g} s"
        )
    try:  # what `wb separate` will check when it loads the file, checked before writing it
        Separator.from_model(model, segment=segment, overlap=overlap, postfilter=postfilter)
    except WbError as exc:
        raise WbError(f"inference settings: {exc}") from None
    if metrics is not None and not isinstance(metrics, Mapping):
        try:
            metrics = json.loads(Path(metrics).read_text())
        except (OSError, ValueError) as exc:
            raise WbError(f"{metrics}: cannot read metrics ({exc})") from None
    meta = {
        "name": hp["model_name"],
        "sources": list(hp["sources"]),
        "sample_rate": int(hp["sample_rate"]),
        "audio_channels": int(hp["audio_channels"]),
        "segment": segment,
        "overlap": overlap,
        "postfilter": postfilter,
        "training_segment": train_segment,
        "parameters": count_parameters(model),
        # save_model coerces these to plain values (wb.checkpoint._plain) and checks them
        "config": dict(hp.get("config") or {}),
        "metrics": dict(metrics or {}),
        "checkpoint": {
            "file": Path(checkpoint).name,
            "epoch": int(info.get("epoch", -1)),
            "global_step": int(info.get("global_step", -1)),
            "best_val_sisdr": best_score(info),
            # the members' checkpoints when it is a weight average (separation.stages)
            "averaged_from": list(info.get("averaged_from") or []),
        },
    }
    full_kwargs = {
        "sources": list(hp["sources"]),
        "sample_rate": int(hp["sample_rate"]),
        "audio_channels": int(hp["audio_channels"]),
        **kwargs,
    }
    return save_model(
        out, models.class_ref(hp["model_name"]), full_kwargs, model.state_dict(), meta, half=half
    )
