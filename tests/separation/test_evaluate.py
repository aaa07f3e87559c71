"""Evaluation: BSSEval v4 + SI-SDR on known signals, metrics.json, the table."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from separation.evaluate import aggregate, evaluate, format_table, track_metrics
from separation.losses import si_sdr

from .conftest import SOURCES, SR, GainModel


def orthogonal_sources(power_ratio_db: float, n: int = 2 * SR) -> torch.Tensor:
    """Two zero-mean, exactly orthogonal sines (whole periods) with a known power ratio."""
    t = torch.arange(n, dtype=torch.float64) / n
    a = torch.sin(2 * math.pi * 440 * t)
    b = torch.sin(2 * math.pi * 1003 * t) * 10 ** (-power_ratio_db / 20)
    return torch.stack([a, b])[:, None].float() * 0.5  # (2, 1, n)


def test_si_sdr_of_mixture_is_the_power_ratio():
    refs = orthogonal_sources(6.0)
    mix = refs.sum(0)
    scores = si_sdr(mix.expand_as(refs), refs)
    assert abs(float(scores[0]) - 6.0) < 1e-3 and abs(float(scores[1]) + 6.0) < 1e-3
    m = track_metrics(refs, mix.expand_as(refs).clone(), mix, SR, ["a", "b"], with_bsseval=False)
    assert abs(m["a"]["SI-SDR"] - 6.0) < 1e-3 and abs(m["a"]["SI-SDRi"]) < 1e-6


def test_perfect_estimate_scores_very_high():
    refs = orthogonal_sources(3.0) + 0.01 * torch.randn(2, 1, 2 * SR)
    m = track_metrics(refs, refs.clone(), refs.sum(0), SR, ["a", "b"], with_bsseval=True)
    for name in ("a", "b"):
        assert m[name]["SI-SDR"] > 100 and m[name]["SDR"] > 100
        assert m[name]["SI-SDRi"] > 90


def test_silent_reference_is_undefined_not_a_crash():
    refs = orthogonal_sources(0.0)
    refs[1] = 0
    m = track_metrics(refs, refs.clone(), refs.sum(0), SR, ["a", "b"], with_bsseval=False)
    assert m["b"]["SI-SDR"] is None and m["a"]["SI-SDR"] > 100
    summary = aggregate([{"name": "x", "metrics": m}], ["a", "b"])
    assert summary["sources"]["b"]["SI-SDR"] is None and summary["mean"]["SI-SDR"] > 100


def test_evaluate_writes_metrics_json(stems_root, tmp_path, capsys):
    model = GainModel(gains=(1.0, 1.0))
    model.sources = list(SOURCES)  # mixture as the estimate of both sources
    out = tmp_path / "metrics.json"
    result = evaluate(model, stems_root, "test", out=out, quiet=True)
    saved = json.loads(out.read_text())
    assert saved["n_tracks"] == 2 and "median over 1-second frames" in saved["aggregation"]
    assert set(saved["sources"]) == set(SOURCES) and len(saved["tracks"]) == 2
    for name in SOURCES:
        row = saved["sources"][name]
        assert set(row) == {"SDR", "SIR", "SAR", "ISR", "SI-SDR", "SI-SDRi"}
        assert abs(row["SI-SDRi"]) < 1e-4  # the mixture improves nothing over itself
    # tone (0.3 sine, power 0.045) over noise (std 0.1, power 0.01): about +6.5 dB
    assert abs(result["sources"]["tone"]["SI-SDR"] - 10 * np.log10(0.045 / 0.01)) < 0.5
    table = capsys.readouterr().out
    assert "SI-SDRi" in table and "tone" in table and "median over" in table
    assert format_table(result).splitlines()[0].split()[0] == "source"
