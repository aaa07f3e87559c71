"""Self-describing model files, loadable with ``torch.load(..., weights_only=True)``.

Layout (asteroid's ``serialize`` habit, without pickled objects)::

    {"format": "wb-model/1", "class": "separation.models:htdemucs", "kwargs": {...},
     "state_dict": {...tensors...}, "meta": {...}, "versions": {"wb": ..., "torch": ...}}

``class`` names a registry entry ``module:name``; ``kwargs`` and ``meta`` hold only plain
values (str, int, float, bool, None, lists, dicts), so loading never unpickles code. Loading
builds only classes on the caller's explicit allow-list (:func:`resolve`): nothing named by the
file is imported or called otherwise.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from wb import __version__
from wb.errors import WbError

FORMAT = "wb-model/1"
_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise WbError(f"checkpoint {where}: key {k!r} is not a string")
            _check_plain(v, f"{where}.{k}")
        return
    raise WbError(f"checkpoint {where}: {type(value).__name__} is not a plain value")


def _plain(value: Any) -> Any:
    """Coerce str/number subclasses (TorchVersion, numpy scalars) and tuples to plain types."""
    if isinstance(value, bool | type(None)):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform average of several models' weights (a "uniform soup").

    Averaging the weights of models fine-tuned from one shared starting point often scores
    better than each of them, where the models stay in one basin of the loss (Wortsman et
    al. 2022, "Model soups", ICML; Izmailov et al. 2018, SWA, for points of one run).
    Floating-point tensors are summed in float32 (float64 stays float64) in the order
    given, divided by their number and cast back to their dtype. Other tensors must be
    equal in every model and are kept, except BatchNorm's step counters
    (``*num_batches_tracked``), which take the largest value.

    Args:
        states: two or more state dicts of one architecture (same keys, shapes and dtypes).

    Returns:
        ``{key: averaged tensor}`` in the first state dict's key order.

    Raises:
        WbError: fewer than two state dicts, or keys, shapes, dtypes or non-float tensors
            that differ.
    """
    if len(states) < 2:
        raise WbError("averaging weights needs at least two models")
    first = states[0]
    for i, state in enumerate(states[1:], start=2):
        if set(state) != set(first):
            extra = sorted(set(state) ^ set(first))[:3]
            raise WbError(f"model {i} has other weights than model 1 (e.g. {', '.join(extra)})")
    out = {}
    for key, ref in first.items():
        tensors = [s[key] for s in states]
        for i, t in enumerate(tensors[1:], start=2):
            if t.shape != ref.shape or t.dtype != ref.dtype:
                raise WbError(
                    f"{key}: model {i} has {tuple(t.shape)} {t.dtype}, model 1 "
                    f"{tuple(ref.shape)} {ref.dtype}"
                )
        if ref.is_floating_point():
            wide = torch.promote_types(ref.dtype, torch.float32)
            total = ref.detach().to(wide).clone()
            for t in tensors[1:]:
                total += t.detach().to(wide)
            out[key] = (total / len(tensors)).to(ref.dtype)
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.stack([t.detach() for t in tensors]).amax(dim=0)
        else:
            for i, t in enumerate(tensors[1:], start=2):
                if not torch.equal(t, ref):
                    raise WbError(f"{key}: model {i} differs from model 1 (not averageable)")
            out[key] = ref.detach().clone()
    return out


def count_parameters(module: torch.nn.Module, trainable: bool = True) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def versions() -> dict[str, str]:
    """Versions of wb, torch and (when importable) torchaudio, asteroid, demucs."""
    out = {"wb": __version__, "torch": str(torch.__version__)}
    for name in ("torchaudio", "asteroid", "demucs", "pytorch-lightning"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def save_model(
    path: str | os.PathLike,
    class_ref: str,
    kwargs: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a self-describing model file atomically.

    Args:
        path: destination ``.pt`` file.
        class_ref: ``"module:name"`` of a registry entry that builds the model from ``kwargs``.
        kwargs: constructor kwargs (plain values only).
        state_dict: the model's weights.
        meta: plain-valued extras: ``sources``, ``sample_rate``, training config, metrics.
        half: store floating-point weights as float16 (half the size; loaded back as float32).

    Raises:
        WbError: a kwarg or meta value that is not a plain value.
    """
    from wb.runs import atomic_write

    kwargs, meta = _plain(dict(kwargs)), _plain(dict(meta or {}))
    _check_plain(kwargs, "kwargs")
    _check_plain(meta, "meta")
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in state_dict.items()
    }
    payload = {
        "format": FORMAT,
        "class": class_ref,
        "kwargs": kwargs,
        "state_dict": state,
        "meta": meta,
        "versions": _plain(versions()),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_torch_file(path: str | os.PathLike, what: str = "model file") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU with one-line errors (no code unpickled).

    Args:
        path: a file written by ``torch.save`` (model file, Lightning checkpoint).
        what: how to call the file in error messages.

    Raises:
        WbError: missing file, or not loadable with ``weights_only=True``.
    """
    p = Path(path)
    if not p.is_file():
        raise WbError(f"{p}: no such {what}")
    try:
        return torch.load(io.BytesIO(p.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        msg = " ".join(str(exc).split())[:120]
        raise WbError(f"{p}: not a loadable {what} ({msg})") from None


def read_model(path: str | os.PathLike) -> dict[str, Any]:
    """Load a model file's dictionary with ``weights_only=True`` (no code is unpickled).

    Raises:
        WbError: missing file, not a torch file, or not a ``wb-model/1`` file.
    """
    data = load_torch_file(path, "model file")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WbError(f"{path}: not a wb model file (expected format {FORMAT})")
    return data


def resolve(class_ref: str, builders: Mapping[str, Callable[..., torch.nn.Module]]):
    """Return the builder that ``builders`` (an explicit allow-list) registers as ``class_ref``.

    Nothing is imported and nothing is called: a model file can only name a builder that the
    caller allowed (``separation.models.BUILDERS``, ``classify.models.BUILDERS``), so a crafted
    file naming any other callable (``os:system``, ``wb.runs:atomic_write_text``) is refused
    before any of its kwargs reach code.

    Args:
        class_ref: the ``"module:name"`` string stored in the model file.
        builders: allowed ``{class_ref: builder}``.

    Raises:
        WbError: ``class_ref`` is not a string or is not in ``builders``.
    """
    if not isinstance(class_ref, str) or class_ref not in builders:
        known = ", ".join(sorted(builders)) or "none"
        raise WbError(f"model class {class_ref!r} is not an allowed model (allowed: {known})")
    return builders[class_ref]


def load_model(
    path: str | os.PathLike, builders: Mapping[str, Callable[..., torch.nn.Module]]
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model from a file written by :func:`save_model`.

    Args:
        path: the model file.
        builders: the allow-list ``{class_ref: builder}`` the file's ``class`` must be in
            (checked before anything is built).

    Returns:
        ``(model in eval mode with float32 weights, the file's dictionary without state)``.

    Raises:
        WbError: see :func:`read_model` and :func:`resolve`; kwargs that are not a mapping of
            plain values, or weights that do not fit.
    """
    data = read_model(path)
    build = resolve(data.get("class"), builders)
    kwargs, state = data.get("kwargs"), data.get("state_dict")
    if not isinstance(kwargs, Mapping) or not isinstance(state, Mapping):
        raise WbError(f"{path}: model file without kwargs or state_dict")
    _check_plain(kwargs, "kwargs")
    try:
        model = build(**kwargs)
    except (TypeError, ValueError, WbError) as exc:
        raise WbError(f"{path}: cannot build {data['class']} ({str(exc)[:120]})") from None
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WbError(f"{path}: state_dict holds values that are not tensors")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WbError(f"{path}: weights do not fit {data['class']} ({str(exc)[:120]})") from None
    model.eval()
    info = {k: v for k, v in data.items() if k != "state_dict"}
    return model, info
