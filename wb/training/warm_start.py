"""Warm starts (``train.init_from``): copy the weights of a finished model into a fresh one.

Shared by every recipe family that trains a bare model inside a LightningModule under the
attribute ``model`` (separation, voice-to-MIDI).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import torch

from wb.errors import WbError


def init_weights(
    model: torch.nn.Module,
    path: str | os.PathLike,
    expect: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> None:
    """Copy weights from a wb model file or a Lightning checkpoint into ``model`` (in place).

    Used by ``train.init_from`` to train a finished model further as a new run: a warm start
    with a fresh AdamW state and a fresh learning-rate schedule (warm-up and cosine again).

    Args:
        model: the freshly built model.
        path: a file written by :func:`wb.checkpoint.save_model` (``state_dict`` of the bare
            model, ``meta``) or a Lightning ``.ckpt`` of a training system
            (``model.`` prefix, ``hyper_parameters``).
        expect: ``{"sources": [...], "sample_rate": Hz, "audio_channels": n}`` of the new
            run; each key the file records must be equal (weights of an 8 kHz model would
            otherwise load silently into a 16 kHz one of the same shape).
        seed: the new run's ``train.seed``; when the file records the same one, the
            :func:`repeated_seed` warning goes to stderr.

    Raises:
        WbError: unreadable file; sources, sample rate or channel count differing from
            ``expect``; or weights that do not fit the model (different architecture or
            size), naming the first mismatching tensors.
    """
    from wb.checkpoint import load_torch_file

    data = load_torch_file(path, "init_from")
    state = data.get("state_dict") if isinstance(data, dict) else None
    if not isinstance(state, Mapping):
        raise WbError(f"{path}: init_from needs a wb model file or a Lightning checkpoint")
    recorded = data.get("meta") or data.get("hyper_parameters") or {}
    for key, want in (expect or {}).items():
        have = recorded.get(key)
        if have is not None and _plain(have) != _plain(want):
            raise WbError(f"{path}: init_from has {key} {have}, the configured model {want}")
    if any(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = ", ".join(
            f"{label}: {names[:3]}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape differs", wrong),
            )
            if names
        )
        raise WbError(f"{path}: weights do not fit the configured model ({detail})")
    model.load_state_dict(state)
    warning = repeated_seed(recorded, seed) if seed is not None else None
    if warning:
        print(warning, file=sys.stderr)


def repeated_seed(recorded: Mapping[str, Any], seed: int) -> str | None:
    """A one-line warning when a warm start would replay its source run's training data.

    The training examples of the separation and voice-to-MIDI families are drawn from
    generators seeded with ``(train.seed, epoch, index)``, so a warm-started run with the
    seed of the run it starts from sees exactly the examples that run saw first, in the same
    order (and a chain of such runs trains again and again on its first epochs). A new seed
    per warm start draws new examples.

    Args:
        recorded: what the ``init_from`` file records about its run (``meta`` of a model
            file, ``hyper_parameters`` of a checkpoint). Separation model files and every
            Lightning checkpoint record the resolved ``config`` (with ``train.seed``);
            voice-to-MIDI model files do not, so they never warn.
        seed: this run's ``train.seed``.

    Returns:
        the warning, or ``None`` when the seeds differ or the file records no usable seed.
    """
    config = recorded.get("config") if isinstance(recorded, Mapping) else None
    train = config.get("train") if isinstance(config, Mapping) else None
    before = train.get("seed") if isinstance(train, Mapping) else None
    try:
        if before is None or int(before) != int(seed):
            return None
    except (TypeError, ValueError):
        return None
    return (
        f"warning: init_from was trained with train.seed {int(seed)} too, so this run replays "
        f"its training examples in the same order; give another (--set train.seed=N)"
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value
