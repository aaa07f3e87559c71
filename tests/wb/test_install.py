"""The installed environment is the locked one: torch and torchaudio share one release."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "requirements.txt"


def _entries() -> list[str]:
    """One string per requirement of the lock (continuation lines and comments included)."""
    text = LOCK.read_text()
    return [b for b in re.split(r"\n(?=[A-Za-z0-9])", text) if re.match(r"^[A-Za-z0-9]", b)]


def _locked() -> dict[str, str]:
    """``{name: version}`` of the lock's entries whose environment marker fits this machine."""
    from packaging.requirements import Requirement

    pins = {}
    for entry in _entries():
        req = Requirement(entry.split("\\")[0].strip())
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", entry
            pins[req.name.lower().replace("_", "-")] = spec.version
    return pins


def test_lock_pins_every_package_exactly_with_hashes():
    pins = _locked()
    assert {"torch", "torchaudio", "pytorch-lightning", "asteroid", "demucs"} <= set(pins)
    assert pins["torch"] == pins["torchaudio"]  # the same patch release
    entries = _entries()
    assert len(entries) >= len(pins) and all("--hash=sha256:" in b for b in entries)
    assert all(re.match(r"^[A-Za-z0-9_.-]+==", b) for b in entries)  # exact pins only


def test_torch_and_torchaudio_share_one_release_and_load():
    import torch
    import torchaudio
    import torchaudio.functional as F

    release = torch.__version__.split("+")[0]
    assert torchaudio.__version__.split("+")[0] == release
    x = torch.randn(1, 1600)
    assert F.highpass_biquad(x, 16000, 100.0).shape == x.shape  # libtorchaudio loads


def test_installed_versions_are_the_locked_ones():
    """Every package the lock lists for this platform is installed at exactly that version."""
    import sysconfig

    pins = _locked()
    site = list(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    installed = {  # site-packages only: setuptools adds its vendored copies to sys.path
        d.metadata["Name"].lower().replace("_", "-"): d.version
        for d in metadata.distributions(path=site)
    }
    wrong = {
        name: (installed.get(name), version)
        for name, version in pins.items()
        if (installed.get(name) or "").split("+")[0] != version
    }
    assert not wrong, f"(installed, locked) differ: {wrong}"
