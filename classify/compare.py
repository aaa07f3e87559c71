"""Paired comparison of two finished classification runs on the clips both tested
(``wb classify compare``).

Two runs of one recipe that differ in one setting are usually compared by their mean
accuracy; when their test sets overlap, a paired comparison on the common clips says more:
how many clips only one of them gets right, and whether that split could be chance.

- McNemar's exact test (McNemar 1947; recommended for comparing classifiers on one test
  set by Dietterich 1998, "Approximate statistical tests for comparing supervised
  classification learning algorithms"): under the null hypothesis the ``b`` clips that only
  run A gets right and the ``c`` clips that only run B gets right are a fair coin's split of
  ``b + c``; two-sided binomial p-value.
- McNemar's test treats clips as independent. Clips cut from one work (several renditions
  of a chorale, several excerpts of a recording) are not; with ``group_regex`` the
  difference in accuracy also gets a 95 % interval from a paired *cluster* bootstrap that
  resamples whole groups (Field & Welsh 2007), which stays honest when clips of a group
  succeed or fail together.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np

from wb.errors import WbError


def read_predictions(run: str | os.PathLike) -> dict[tuple[str, str], tuple[str, bool]]:
    """The test clips of a run's ``predictions.csv``, keyed by ``(label, file name)``.

    The key leaves the folder out, so two runs on copies of a data set in different folders
    (or a data set and a larger one that contains its files) are matched clip by clip.

    Args:
        run: a run folder written by ``wb classify`` (or ``wb classify ensemble``).

    Returns:
        ``{(label, file name): (path as written, predicted correctly)}``.

    Raises:
        WbError: no readable ``predictions.csv``, missing columns, or two test clips with
            the same label and file name (the key would be ambiguous).
    """
    path = Path(run) / "predictions.csv"
    if not path.is_file():
        raise WbError(f"{run}: no predictions.csv (not a finished wb classify run)")
    out: dict[tuple[str, str], tuple[str, bool]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"path", "label", "predicted"} - set(reader.fieldnames or ())
        if missing:
            raise WbError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if any(row.get(k) is None for k in ("path", "label", "predicted")):
                raise WbError(f"{path}, line {line}: a row with missing fields")
            key = (row["label"], Path(row["path"]).name)
            if key in out:
                raise WbError(f"{path}: two test clips named {key[1]!r} with label {key[0]!r}")
            out[key] = (row["path"], row["label"] == row["predicted"])
    if not out:
        raise WbError(f"{path}: no test clips")
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Args:
        b: pairs only the first system gets right; c: pairs only the second gets right.

    Returns:
        ``P(X <= min(b, c) or X >= max(b, c))`` for ``X ~ Binomial(b + c, 1/2)``, at most 1;
        1.0 when ``b + c == 0``.

    Raises:
        WbError: a negative count.
    """
    from scipy.stats import binom

    if b < 0 or c < 0:
        raise WbError(f"discordant counts must be non-negative, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return float(min(1.0, 2.0 * binom.cdf(k, n, 0.5)))


def compare_runs(
    run_a: str | os.PathLike,
    run_b: str | os.PathLike,
    group_regex: str | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Compare two runs on the test clips they share (see the module docstring).

    Args:
        run_a, run_b: run folders with ``predictions.csv``.
        group_regex: regex whose first capture group (or whole match) in a clip's file name
            is its group, for the cluster bootstrap; None: no bootstrap.
        resamples: bootstrap resamples; seed: the bootstrap's random seed.

    Returns:
        ``{"run_a", "run_b"`` (the folders as given), ``"common"`` (clips both tested),
        ``"only_a"`` / ``"only_b"`` (clips in one run's test set only, left out),
        ``"accuracy_a"``, ``"accuracy_b"`` (fractions on the common clips), ``"difference"``
        (B - A, in [-1, 1]), ``"b"`` (clips only A gets right), ``"c"`` (only B),
        ``"p_mcnemar"}``, plus ``"groups"`` (how many) and ``"difference_ci95"`` (the 2.5 and
        97.5 % quantiles of the resampled B - A) with ``group_regex``.

    Raises:
        WbError: unreadable runs, no clip in common, an invalid ``group_regex``, a file name
            it does not match or whose group is empty, or ``resamples`` below 100 with
            ``group_regex``.
    """
    if group_regex is not None and resamples < 100:
        raise WbError(f"resamples={resamples}: use at least 100")
    a, b_runs = read_predictions(run_a), read_predictions(run_b)
    keys = sorted(set(a) & set(b_runs))
    if not keys:
        raise WbError(f"{run_a} and {run_b} have no test clip in common (label and file name)")
    ok_a = np.array([a[k][1] for k in keys])
    ok_b = np.array([b_runs[k][1] for k in keys])
    only_a = int((ok_a & ~ok_b).sum())
    only_b = int((~ok_a & ok_b).sum())
    out = {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "common": len(keys),
        "only_a": len(set(a) - set(b_runs)),
        "only_b": len(set(b_runs) - set(a)),
        "accuracy_a": float(ok_a.mean()),
        "accuracy_b": float(ok_b.mean()),
        "difference": float(ok_b.mean() - ok_a.mean()),
        "b": only_a,
        "c": only_b,
        "p_mcnemar": mcnemar_exact(only_a, only_b),
    }
    if group_regex is None:
        return out
    try:
        pattern = re.compile(group_regex)
    except re.error as exc:
        raise WbError(f"group_regex {group_regex!r}: {exc}") from None
    groups = []
    for label, name in keys:
        m = pattern.search(name)
        if m is None:
            raise WbError(f"group_regex {group_regex!r} does not match the file name {name!r}")
        group = m.group(1) if m.groups() else m.group(0)
        if group is None:
            raise WbError(f"group_regex {group_regex!r}: its group takes no part in {name!r}")
        groups.append((label, group))
    index = {g: i for i, g in enumerate(sorted(set(groups)))}
    gid = np.array([index[g] for g in groups])
    n_groups = len(index)
    # per group: clips, right answers of A and of B; a resample draws groups with replacement
    count = np.bincount(gid, minlength=n_groups).astype(np.float64)
    right_a = np.bincount(gid, weights=ok_a.astype(np.float64), minlength=n_groups)
    right_b = np.bincount(gid, weights=ok_b.astype(np.float64), minlength=n_groups)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    weights = np.stack([np.bincount(d, minlength=n_groups) for d in draws]).astype(np.float64)
    diffs = (weights @ (right_b - right_a)) / (weights @ count)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    out["groups"] = n_groups
    out["difference_ci95"] = (float(lo), float(hi))
    return out


def format_comparison(result: dict) -> str:
    """Human-readable lines for a comparison.

    Args:
        result: what :func:`compare_runs` returns.

    Returns:
        four lines (clip counts, the accuracy of each run in %, the difference in points with
        the discordant counts and McNemar's p-value), and a fifth with the bootstrap
        interval when ``result`` has one.
    """
    lines = [
        f"common test clips: {result['common']} (only in A: {result['only_a']}, "
        f"only in B: {result['only_b']})",
        f"A {result['run_a']}: accuracy {100 * result['accuracy_a']:.2f} %",
        f"B {result['run_b']}: accuracy {100 * result['accuracy_b']:.2f} %",
        f"B - A: {100 * result['difference']:+.2f} points; only A right on {result['b']} clips, "
        f"only B right on {result['c']}; McNemar exact p = {result['p_mcnemar']:.3g}",
    ]
    if "difference_ci95" in result:
        lo, hi = result["difference_ci95"]
        lines.append(
            f"95 % cluster-bootstrap interval of B - A over {result['groups']} groups: "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}] points"
        )
    return "\n".join(lines)
