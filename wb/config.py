"""The project's one config mechanism: a YAML file, dotted ``key=value`` overrides, a saved copy.

A recipe's ``conf.yml`` is a nested mapping whose groups map 1:1 to constructor kwargs
(speechbrain / lightning-hydra-template habit). Overrides are ``a.b.c=value`` strings whose
value is parsed as YAML 1.2 (``lr=1e-3`` is a float, ``model.channels=16``,
``sources=[soprano,bass]``). Merging and overriding go through OmegaConf: overrides are applied
in struct mode, so only keys that already exist may be set and a typo is an error, not a silent
no-op (``+a.b=value`` adds a new key on purpose), and ``${group.key}`` interpolations resolve.
Results are plain dicts and lists, ready to become constructor kwargs.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from wb.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.2), not the string PyYAML gives."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """Parse one YAML scalar or flow value (``1e-3`` is a float, ``[a, b]`` a list).

    Raises:
        yaml.YAMLError: invalid YAML.
    """
    return yaml.load(text, Loader=_Loader)


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is a whole number (an ``int``, or a float such as
    YAML's ``16000.0``; never a bool) of at least ``minimum``.

    Raises:
        ConfigError: a bool, a fraction, a non-number, or a number below ``minimum``
            (the message names ``name``).
    """
    whole = not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )
    if not whole or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ConfigError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping.

    Raises:
        ConfigError: missing file, YAML syntax error, or a top level that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.load(p.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML ({' '.join(str(exc).split())[:160]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def _omega(cfg: Mapping[str, Any]):
    from omegaconf import OmegaConf

    try:
        return OmegaConf.create(copy.deepcopy(dict(cfg)))
    except Exception as exc:  # noqa: BLE001 - omegaconf raises its own hierarchy
        raise ConfigError(f"config: {' '.join(str(exc).split())[:160]}") from None


def _plain(conf) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(conf, resolve=True)
    except Exception as exc:  # noqa: BLE001 - an interpolation that does not resolve
        raise ConfigError(f"config: {' '.join(str(exc).split())[:160]}") from None


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` with :func:`omegaconf.OmegaConf.merge`
    (mappings merge, other values and lists replace; ``${...}`` interpolations resolve).

    Raises:
        ConfigError: a value OmegaConf cannot hold, or an interpolation that does not resolve.
    """
    from omegaconf import OmegaConf

    return _plain(OmegaConf.merge(_omega(base), _omega(update)))


def apply_overrides(cfg: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied (OmegaConf struct
    mode: existing keys only, unless the key starts with ``+``).

    Args:
        cfg: nested mapping.
        overrides: strings ``dotted.key=yaml_value``; a leading ``+`` allows a new key.

    Raises:
        ConfigError: malformed override, unknown key (without ``+``; the message lists the
            keys known at that level), or indexing into a non-mapping.
    """
    from omegaconf import OmegaConf, open_dict

    conf = _omega(cfg)
    OmegaConf.set_struct(conf, True)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        allow_new = key.startswith("+")
        key = key.lstrip("+").strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = parse_value(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: value is not valid YAML") from None
        _check_path(conf, key, item, allow_new)
        if allow_new:
            with open_dict(conf):
                OmegaConf.update(conf, key, value, merge=False, force_add=True)
        else:
            OmegaConf.update(conf, key, value, merge=False)
    return _plain(conf)


def _check_path(conf, key: str, item: str, allow_new: bool) -> None:
    """One-line errors for an override path: unknown keys (with the known ones) and paths
    through values that are not groups."""
    from omegaconf import DictConfig

    node, parts = conf, key.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if not isinstance(node, DictConfig):
            raise ConfigError(f"override {item!r}: {'.'.join(parts[:depth])!r} is not a group")
        if part not in node:
            if allow_new:
                return
            if depth == len(parts) - 1:
                known = ", ".join(sorted(str(k) for k in node)) or "none"
                raise ConfigError(f"override {item!r}: unknown key {key!r} (known here: {known})")
            raise ConfigError(f"override {item!r}: unknown key {where!r}")
        if depth < len(parts) - 1:
            node = node.get(part)


def save_yaml(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically (temporary file + rename); returns the path."""
    from wb.runs import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(dict(cfg), sort_keys=False))


def _flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(cfg, Mapping) and cfg:
        out: dict[str, Any] = {}
        for k, v in cfg.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(cfg) if isinstance(cfg, tuple) else cfg}


def config_differences(
    saved: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """Dotted keys whose values differ between two config trees (added and removed keys too).

    Args:
        saved: the config stored in a run folder.
        new: the config of the command that wants to continue the run.
        ignore: dotted keys (or group prefixes ending in ``.``) that may change on resume
            because they do not change results, e.g. ``train.threads``.

    Returns:
        sorted dotted keys, empty when the configs agree. Tuples compare equal to lists
        (YAML has no tuples).
    """
    a, b = _flatten(dict(saved)), _flatten(dict(new))
    skip = tuple(ignore)

    def ignored(key: str) -> bool:
        return any(key == s or (s.endswith(".") and key.startswith(s)) for s in skip)

    return sorted(
        k for k in set(a) | set(b) if not ignored(k) and a.get(k, _MISSING) != b.get(k, _MISSING)
    )


_MISSING = object()
