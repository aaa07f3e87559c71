"""The classification run config: defaults from the constructors, a recipe's ``conf.yml``,
per-model blocks and ``--set`` overrides (:func:`resolve_config`)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classify.augment import GROUPS as AUGMENTATIONS
from classify.frontends import Frontend, LengthPolicy
from classify.train import TrainConfig
from wb import names
from wb.config import apply_overrides, load_yaml, merge
from wb.errors import ConfigError

HEAD_NAMES = names.CLASSIFIER_HEADS


def _plain(value: Any) -> Any:
    """Tuples (nested too) as lists, the way YAML gives them back."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _signature_defaults(fn, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword defaults of ``fn`` as plain YAML values (tuples, nested too, become lists)."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or p.default is inspect.Parameter.empty or name == "self":
            continue
        out[name] = _plain(p.default)
    return out


def defaults() -> dict[str, Any]:
    """The complete default config; a recipe's ``conf.yml`` is merged over it.

    Every group lists every constructor argument with its default, so any of them can be set
    with ``--set group.key=value``; ``null`` sample rate / duration mean "the dataset's
    recommendation".
    """
    from classify.models import head_class

    train = _signature_defaults(TrainConfig)
    data = _signature_defaults(LengthPolicy)
    data["seconds"] = None
    frontend = _signature_defaults(Frontend.__init__)
    frontend["sample_rate"] = None
    frontend["normalize"] = True
    augment = {
        name: _signature_defaults(cls.__init__, skip=("sample_rate",))
        for name, cls in AUGMENTATIONS.items()
    }
    model: dict[str, Any] = {"name": "cnn"}
    for name in HEAD_NAMES:
        model[name] = _signature_defaults(
            head_class(name).__init__, skip=("n_classes", "n_bins", "n_frames")
        )
    return {
        "dataset_options": {},
        "protocol": None,
        "extra_train": None,
        "cache_dir": None,
        "data": data,
        "frontend": frontend,
        "augment": augment,
        "model": model,
        "train": train,
        "per_model": {},
    }


def recipe_config_path(dataset: str) -> Path | None:
    """``recipes/<dataset>/conf.yml`` when the recipe exists, else ``None``."""
    import recipes

    p = Path(recipes.__file__).parent / dataset / "conf.yml"
    return p if p.is_file() else None


def resolve_config(
    dataset: str,
    model: str | None = None,
    overrides: Sequence[str] = (),
    epochs: int | None = None,
    protocol: str | None = None,
    config_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build the run config: defaults <- recipe conf.yml <- per-model block <- overrides.

    ``model`` (``--model``), ``epochs`` (``--epochs``) and ``protocol`` (``--protocol``) set
    ``model.name``, ``train.epochs`` and ``protocol``; then the ``--set`` overrides apply.
    Both win over the recipe's per-model block (``per_model: {<head>: {group: {key: value}}}``)
    which is merged over the groups when that head is selected.

    Returns:
        the resolved config tree (``model.name`` selects the head; ``model.<name>`` holds its
        kwargs; see :func:`head_config`).

    Raises:
        ConfigError: unknown keys, invalid YAML, unknown model name.
    """
    path = Path(config_path) if config_path else recipe_config_path(dataset)
    base = merge(defaults(), load_yaml(path) if path else {})
    base["dataset"] = dataset

    def explicit(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg = merge(cfg, {})
        if model is not None:
            cfg["model"]["name"] = model
        if epochs is not None:
            cfg["train"]["epochs"] = int(epochs)
        if protocol is not None:
            cfg["protocol"] = protocol
        return apply_overrides(cfg, overrides)

    name = explicit(base)["model"].get("name")
    if name not in HEAD_NAMES:
        raise ConfigError(f"unknown model {name!r} (choose from {', '.join(HEAD_NAMES)})")
    per = (base.get("per_model") or {}).get(name) or {}
    if not isinstance(per, dict):
        raise ConfigError(f"per_model.{name} must be a mapping of config groups")
    return explicit(merge(base, per))


def head_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``{"name": head, **kwargs}`` for :class:`~classify.models.Classifier` from ``cfg``."""
    name = cfg["model"]["name"]
    kwargs = cfg["model"].get(name) or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"model.{name} must be a mapping of the head's options")
    return {"name": name, **kwargs}
