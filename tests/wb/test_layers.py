"""``wb/`` is the bottom layer: it imports nothing above it, and its name registry matches
the libraries'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wb import names
from wb.errors import WbError

WB = Path(__file__).resolve().parents[2] / "wb"
UPPER = r"(separation|classify|music|recipes)"


def test_wb_imports_nothing_above_it():
    offenders = []
    for path in sorted(WB.rglob("*.py")):
        for k, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(rf"\b(from|import) {UPPER}([. ]|$)", line) or re.search(
                rf"import_module\(\s*[\"']{UPPER}", line
            ):
                offenders.append(f"{path.name}:{k}: {line.strip()}")
    assert not offenders, offenders


def test_name_registry_matches_the_libraries():
    from classify.datasets import DATASETS
    from classify.models import HEADS
    from separation.models import REGISTRY

    assert tuple(DATASETS) == names.DATASETS
    assert tuple(HEADS) == names.CLASSIFIER_HEADS
    assert tuple(REGISTRY) == names.SEPARATION_MODELS
    assert names.dataset("US8K") == "urbansound8k" and names.dataset("ESC-50") == "esc50"
    with pytest.raises(WbError, match="unknown dataset 'mtat' \\(known: esc50"):
        names.dataset("mtat")


def test_subcommands_come_from_entry_points(capsys):
    from wb.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("classify", "datasets", "info", "separate", "transcribe"):
        assert re.search(rf"^\s+{command}\s", out, re.M), out
