"""wb.config: dotted overrides parsed as YAML, unknown keys rejected, atomic save."""

from __future__ import annotations

import pytest

from wb.config import apply_overrides, load_yaml, merge, save_yaml
from wb.errors import ConfigError

BASE = {"model": {"name": "htdemucs", "channels": 48}, "train": {"lr": 3e-4, "epochs": 10}}


def test_overrides_parse_values_and_do_not_mutate():
    out = apply_overrides(BASE, ["model.channels=16", "train.lr=1e-3", "model.name=hdemucs"])
    assert out["model"] == {"name": "hdemucs", "channels": 16}
    assert out["train"]["lr"] == pytest.approx(1e-3)
    assert BASE["model"]["channels"] == 48
    assert apply_overrides(BASE, ["+train.sources=[s, a]"])["train"]["sources"] == ["s", "a"]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("model.chanels=16", "unknown key 'model.chanels'"),
        ("nokey", "key=value"),
        ("model.channels.x=1", "not a group"),
        ("model.channels=[1", "not valid YAML"),
    ],
)
def test_bad_overrides(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("[", r"\[")):
        apply_overrides(BASE, [override])


def test_save_load_roundtrip(tmp_path):
    path = save_yaml(merge(BASE, {"train": {"epochs": 2}}), tmp_path / "run" / "config.yml")
    assert load_yaml(path) == {"model": BASE["model"], "train": {"lr": 3e-4, "epochs": 2}}
    (tmp_path / "bad.yml").write_text("a: [1,")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(tmp_path / "bad.yml")
    with pytest.raises(ConfigError, match="no such config"):
        load_yaml(tmp_path / "missing.yml")


def test_interpolations_resolve_and_struct_mode_refuses_new_keys():
    base = {"data": {"sample_rate": 16000}, "model": {"sample_rate": "${data.sample_rate}"}}
    out = apply_overrides(base, ["data.sample_rate=8000"])
    assert out["model"]["sample_rate"] == 8000 and isinstance(out["model"]["sample_rate"], int)
    assert merge(base, {"data": {"sample_rate": 22050}})["model"]["sample_rate"] == 22050
    with pytest.raises(ConfigError, match="unknown key 'data.rate' \\(known here: sample_rate\\)"):
        apply_overrides(base, ["data.rate=1"])
    assert apply_overrides(base, ["+data.rate=1"])["data"]["rate"] == 1
    with pytest.raises(ConfigError, match="config: "):
        merge({"a": "${missing.key}"}, {})
