"""Evaluation: BSSEval v4 + SI-SDR on known signals, metrics.json, the table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from separation.evaluate import aggregate, evaluate, format_table, oracle_irm, track_metrics
from separation.losses import MIN_DB, si_sdr

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


@pytest.mark.parametrize("fill", [0.0, 0.7])  # silent, constant (silent after removing the mean)
def test_silent_estimate_scores_the_floor_not_nan(fill):
    refs = orthogonal_sources(0.0)
    est = refs.clone()
    est[1] = fill  # the model dropped source b
    scores = si_sdr(est, refs)
    assert torch.isfinite(scores).all() and float(scores[1]) == MIN_DB == -100.0
    m = track_metrics(refs, est, refs.sum(0), SR, ["a", "b"], with_bsseval=False)
    assert m["b"]["SI-SDR"] == -100.0 and m["b"]["SI-SDRi"] < -90
    summary = aggregate([{"name": "x", "metrics": m}], ["a", "b"])
    assert summary["sources"]["b"]["SI-SDR"] == -100.0 and summary["mean"]["SI-SDR"] < 60
    # an estimate orthogonal to its reference is scored (very low), not undefined either
    assert float(si_sdr(refs[1:], refs[:1])) == MIN_DB


def test_only_a_silent_reference_is_undefined():
    refs = orthogonal_sources(0.0)
    refs[1] = 0.25  # constant: silent once zero-mean
    scores = si_sdr(torch.zeros_like(refs), refs)
    assert float(scores[0]) == MIN_DB and math.isnan(float(scores[1]))
    assert math.isnan(float(si_sdr(refs, refs)[1]))  # even a "perfect" estimate


def test_broken_estimates_are_an_error_not_skipped():
    from wb.errors import WbError

    refs = orthogonal_sources(0.0)
    est = refs.clone()
    est[0, 0, 5] = float("nan")
    with pytest.raises(WbError, match="NaN"):
        track_metrics(refs, est, refs.sum(0), SR, ["a", "b"], with_bsseval=False)


def test_validation_counts_a_dropped_source_and_skips_silent_references():
    from separation.system import SeparationSystem

    from .conftest import TINY_TASNET

    kwargs = {k: v for k, v in TINY_TASNET.items() if k != "name"}
    system = SeparationSystem.build("convtasnet", kwargs, ["a", "b"], SR)
    system.model = GainModel(gains=(1.0, 0.0))  # estimate of b: silence
    refs = orthogonal_sources(0.0, n=SR // 2)
    sources = torch.stack([refs, refs.clone()])  # (batch 2, sources 2, 1, samples)
    sources[1, 0] = 0  # a silent reference in the second example: skipped for a
    mixture = sources.sum(1)
    system.validation_step((mixture, sources), 0)
    per_source = [float(m.compute()) for m in system.val_sisdr]
    # a: only the first example counts (estimate = mixture, 0 dB); b: the floor, not skipped
    assert abs(per_source[0]) < 1e-3 and per_source[1] == MIN_DB


def test_validation_of_a_nan_model_is_nan_not_the_other_sources():
    from separation.system import SeparationSystem

    from .conftest import TINY_TASNET

    kwargs = {k: v for k, v in TINY_TASNET.items() if k != "name"}
    system = SeparationSystem.build("convtasnet", kwargs, ["a", "b"], SR)
    system.model = GainModel(gains=(1.0, float("nan")))
    sources = orthogonal_sources(0.0, n=SR // 2)[None]
    system.validation_step((sources.sum(1), sources), 0)
    system.on_validation_epoch_end()  # logs nothing without a trainer
    summary = system.last_epoch_summary
    assert math.isnan(summary["val_sisdr/b"]) and math.isnan(summary["val_sisdr"])
    assert math.isnan(summary["val_loss"]) and abs(summary["val_sisdr/a"]) < 1e-3


def test_oracle_irm_is_near_perfect_on_disjoint_spectra_and_sums_to_the_mixture():
    refs = orthogonal_sources(0.0)
    irm = oracle_irm(refs, SR)
    assert irm.shape == refs.shape
    m = track_metrics(refs, irm, refs.sum(0), SR, ["a", "b"], with_bsseval=False)
    assert m["a"]["SI-SDR"] > 30 and m["b"]["SI-SDR"] > 30  # 440 vs 1003 Hz: disjoint bins
    g = torch.Generator().manual_seed(0)
    noisy = torch.randn(3, 2, SR, generator=g)
    assert torch.allclose(oracle_irm(noisy, SR).sum(0), noisy.sum(0), atol=1e-4)


def test_evaluate_at_the_data_rate_scores_the_full_band(tmp_path, capsys):
    """16 kHz stems, an 8 kHz identity model: at the model's rate the mixture estimate is
    exact; at the data's rate the high band comes back through the extension, and the oracle
    ceiling is reported beside it."""
    from .conftest import write_stems

    root = write_stems(tmp_path / "d16", {"test": 1})
    import soundfile as sf  # rewrite the fixture at 16 kHz with a 6 kHz tone

    folder = root / "test" / "t0"
    n = 2 * 16000
    t = np.arange(n) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    for name, x in (("tone", tone), ("noise", noise), ("mixture", tone + noise)):
        sf.write(folder / f"{name}.wav", x, 16000, subtype="FLOAT")
    model = GainModel(gains=(1.0, 1.0))
    model.sources = list(SOURCES)
    full = evaluate(model, root, "test", quiet=True, with_bsseval=False, title="full band")
    assert full["sample_rate"] == 16000 and full["rate"] == "data"
    assert full["oracle"]["mean"]["SI-SDR"] > full["mean"]["SI-SDR"]
    limited = evaluate(model, root, "test", quiet=True, with_bsseval=False, rate="model")
    assert limited["sample_rate"] == SR
    # the 6 kHz tone is above the 8 kHz model's band: at the model's rate only its resampler
    # residue is left in the reference; at the data's rate the identity model's two equal
    # stems each get half of the high band (+2.7 dB for the tone)
    assert full["sources"]["tone"]["SI-SDR"] > 2.0
    assert limited["sources"]["tone"]["SI-SDR"] < -30.0
    printed = capsys.readouterr().out
    assert "full band" in printed and "IRM SI-SDR" in printed and "16000 Hz" in printed


def test_museval_json_per_track_matches_the_table(stems_root, tmp_path):
    """The per-track JSON has museval's schema (``TrackStore.validate``) and its framewise
    SDR medians are the table's per-track values."""
    import museval

    model = GainModel(gains=(0.7, 0.3))
    model.sources = list(SOURCES)
    result = evaluate(model, stems_root, split="test", museval_dir=tmp_path / "museval",
                      print_table=False, oracle=False, quiet=True)  # fmt: skip
    files = sorted((tmp_path / "museval").glob("*.json"))
    assert [f.stem for f in files] == [t["name"] for t in result["tracks"]]
    for f, track in zip(files, result["tracks"], strict=True):
        data = json.loads(f.read_text())
        store = museval.TrackStore(track_name=f.stem)
        store.scores = data
        store.validate()
        for target in data["targets"]:
            sdr = [fr["metrics"]["SDR"] for fr in target["frames"]]
            expected = track["metrics"][target["name"]]["SDR"]
            assert np.nanmedian(np.array(sdr, dtype=float)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("rate", ["data", "model"])
def test_shifts_reach_the_separation_and_a_shift_invariant_model_scores_the_same(
    stems_root, monkeypatch, rate
):
    """``shifts`` is passed to the separation of every track (which then runs the model once
    per shift) and recorded in the result; a gain model is shift-invariant, so its averaged
    estimates score as the unshifted ones."""
    import separation.evaluate as ev

    seen = []
    for name in ("separate_audio", "separate_tensor"):
        real = getattr(ev, name)

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs["shifts"])
            return _real(*args, **kwargs)

        monkeypatch.setattr(ev, name, spy)
    model = GainModel(gains=(0.7, 0.3))
    model.sources = list(SOURCES)
    common = {"with_bsseval": False, "oracle": False, "quiet": True, "print_table": False}
    plain = evaluate(model, stems_root, "test", rate=rate, **common)
    calls = len(model.seen)
    shifted = evaluate(model, stems_root, "test", rate=rate, shifts=2, **common)
    assert seen == [0, 0, 2, 2] and plain["shifts"] == 0 and shifted["shifts"] == 2
    assert len(model.seen) - calls >= 2 * calls  # two shifted passes over every track
    for name in SOURCES:
        assert shifted["sources"][name]["SI-SDR"] == pytest.approx(
            plain["sources"][name]["SI-SDR"], abs=0.05
        )


@pytest.mark.parametrize(
    ("bad", "message"),
    [({"shifts": v}, "shifts must be an integer >= 0") for v in (-1, 1.5, True)]
    + [({"max_tracks": v}, "max_tracks must be an integer >= 1") for v in (0, -1, 1.5)],
)
def test_bad_shifts_and_max_tracks_are_refused_before_any_work(stems_root, bad, message):
    from wb.errors import WbError

    model = GainModel()
    model.sources = list(SOURCES)
    with pytest.raises(WbError, match=message):
        evaluate(model, stems_root, "test", quiet=True, print_table=False, **bad)
    assert model.seen == []
