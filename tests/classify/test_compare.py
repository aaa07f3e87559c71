"""``wb classify compare``: paired comparison of two runs on their common test clips."""

from __future__ import annotations

import csv

import pytest

from classify.compare import compare_runs, mcnemar_exact
from wb.errors import WbError


def _run(tmp_path, name, root, rows):
    """A run folder whose predictions.csv holds ``(file, label, correct)`` rows."""
    run = tmp_path / name
    run.mkdir()
    with (run / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fold", "path", "label", "predicted", "p_label", "p_predicted"])
        for file, label, correct in rows:
            w.writerow(["fold1", f"{root}/{label}/{file}", label,
                        label if correct else "other", "0.5", "0.5"])  # fmt: skip
    return run


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [(0, 0, 1.0), (0, 6, 2 / 64), (1, 9, 2 * 11 / 1024), (5, 5, 1.0), (3, 4, 1.0)],
)
def test_mcnemar_exact_known_values(b, c, expected):
    # two-sided: 2 * P(X <= min(b, c)), X ~ Bin(b + c, 1/2), capped at 1
    assert mcnemar_exact(b, c) == pytest.approx(expected)
    assert mcnemar_exact(c, b) == pytest.approx(expected)


def test_compare_matches_clips_across_folders_and_counts_discordant_pairs(tmp_path):
    a_rows = [(f"w{i}__0.wav", "x", i < 8) for i in range(10)] + [("extra.wav", "x", True)]
    # B: right on 0-5 and 8-9, wrong on 6-7; A wrong on 8-9: b = 2 (6, 7), c = 2 (8, 9)
    b_rows = [(f"w{i}__0.wav", "x", i not in (6, 7)) for i in range(10)]
    b_rows += [("new1.wav", "y", False), ("new2.wav", "y", True)]
    a = _run(tmp_path, "a", "data/set_small", a_rows)
    b = _run(tmp_path, "b", "data/set_large", b_rows)
    r = compare_runs(a, b)
    assert (r["common"], r["only_a"], r["only_b"]) == (10, 1, 2)
    assert (r["accuracy_a"], r["accuracy_b"]) == (0.8, 0.8)
    assert (r["b"], r["c"], r["difference"]) == (2, 2, 0.0)
    assert r["p_mcnemar"] == 1.0
    assert "difference_ci95" not in r


def test_cluster_bootstrap_ignores_copies_within_a_group_while_mcnemar_does_not(tmp_path):
    # 20 works; B fixes works 0-5 and breaks work 6. With every work's clip copied 5 times
    # (renditions that succeed or fail together) McNemar sees 35 discordant clips instead
    # of 7 and gets far more confident; the cluster bootstrap gives the same interval.
    def rows(copies, better):
        return [(f"w{w}__{k}.wav", "x", (w < 6 or w >= 7) if better else (w >= 6))
                for w in range(20) for k in range(copies)]  # fmt: skip

    one = compare_runs(
        _run(tmp_path, "a1", "d", rows(1, False)), _run(tmp_path, "b1", "d", rows(1, True)),
        group_regex=r"^(w\d+)__", seed=3,
    )  # fmt: skip
    five = compare_runs(
        _run(tmp_path, "a5", "d", rows(5, False)), _run(tmp_path, "b5", "d", rows(5, True)),
        group_regex=r"^(w\d+)__", seed=3,
    )  # fmt: skip
    assert (one["b"], one["c"], five["b"], five["c"]) == (1, 6, 5, 30)
    assert one["difference"] == five["difference"] == pytest.approx(0.25)
    assert one["groups"] == five["groups"] == 20
    assert one["difference_ci95"] == pytest.approx(five["difference_ci95"])
    lo, hi = one["difference_ci95"]
    assert lo < 0.25 < hi and hi - lo > 0.1
    assert five["p_mcnemar"] < 1e-4 < one["p_mcnemar"]


def test_identical_runs_have_a_zero_interval(tmp_path):
    rows = [(f"w{i}__0.wav", "x", i % 3 > 0) for i in range(30)]
    r = compare_runs(_run(tmp_path, "a", "d", rows), _run(tmp_path, "b", "d", rows),
                     group_regex=r"^(w\d+)")  # fmt: skip
    assert r["difference_ci95"] == (0.0, 0.0) and r["p_mcnemar"] == 1.0


def test_compare_errors(tmp_path):
    a = _run(tmp_path, "a", "d", [("w1.wav", "x", True)])
    b = _run(tmp_path, "b", "d", [("w2.wav", "x", True)])
    with pytest.raises(WbError, match="no test clip in common"):
        compare_runs(a, b)
    with pytest.raises(WbError, match="no predictions.csv"):
        compare_runs(a, tmp_path / "missing")
    dup = _run(tmp_path, "dup", "d", [("w1.wav", "x", True)])
    with (dup / "predictions.csv").open("a") as fh:
        fh.write("fold2,other/x/w1.wav,x,x,0.5,0.5\n")
    with pytest.raises(WbError, match="two test clips named"):
        compare_runs(dup, a)
    with pytest.raises(WbError, match="does not match"):
        compare_runs(a, a, group_regex=r"^zzz")
    with pytest.raises(WbError, match="group_regex"):
        compare_runs(a, a, group_regex=r"(")
    with pytest.raises(WbError, match="takes no part"):
        compare_runs(a, a, group_regex=r"^(zz)?")
    with pytest.raises(WbError, match="resamples=50"):
        compare_runs(a, a, group_regex=r"^(w)", resamples=50)
    short = _run(tmp_path, "short", "d", [("w1.wav", "x", True)])
    with (short / "predictions.csv").open("a") as fh:
        fh.write("fold1,d/x/w3.wav\n")
    with pytest.raises(WbError, match="line 3: a row with missing fields"):
        compare_runs(short, a)


def test_cli_prints_the_comparison_and_fails_in_one_line(tmp_path, capsys):
    from wb.cli import main

    rows_a = [(f"w{i}.wav", "x", i < 5) for i in range(10)]
    rows_b = [(f"w{i}.wav", "x", i < 7) for i in range(10)]
    a, b = _run(tmp_path, "a", "d", rows_a), _run(tmp_path, "b", "d", rows_b)
    assert main(["classify", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "accuracy 50.00 %" in out and "accuracy 70.00 %" in out
    assert "+20.00 points; only A right on 0 clips, only B right on 2" in out
    assert main(["classify", "compare", str(a), str(tmp_path / "nope")]) != 0
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "no predictions.csv" in err and "Traceback" not in err
