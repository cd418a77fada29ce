"""The corrected stateful protocol: cut-off scoring, equal-accuracy tokens, evidence."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleeptime_bench.results import ResultRecord
from sleeptime_bench.stateful_protocol import (
    Curve,
    bootstrap_interval,
    cut_off,
    cutoff_rates,
    equal_accuracy_ratio,
    headline_ratio,
    pair_evidence,
    rescore,
    savings_along_curve,
    score_capped,
    tokens_at_accuracy,
)


def _rec(item: str, condition: str, correct: bool, tokens: int, **extra: Any) -> ResultRecord:
    return ResultRecord.model_validate(
        {
            "item_id": item,
            "condition": condition,
            "benchmark": "stateful-gsm-p1",
            "family": "baseline" if condition.startswith("baseline") else "sleeptime",
            "correct": correct,
            "testtime_completion_tokens": tokens,
            **extra,
        }
    )


def test_a_cut_off_answer_is_scored_only_on_an_explicit_final_answer() -> None:
    listing = "First, 24 - 8 = 16 remoras.\n2. Then 16 * 9 = 144 inches\n3."
    assert score_capped(listing, 3, was_cut_off=False)  # the old last-number fallback
    assert not score_capped(listing, 3, was_cut_off=True)
    assert score_capped("So 16 * 9 = 144. The answer is 20", 20, was_cut_off=True)
    assert score_capped("... #### 20", 20, was_cut_off=True)


def test_cut_off_is_using_the_whole_cap() -> None:
    assert cut_off({"max_tokens": 64, "testtime_completion_tokens": 64})
    assert not cut_off({"max_tokens": 64, "testtime_completion_tokens": 63})
    assert not cut_off({"max_tokens": None, "testtime_completion_tokens": 900})


def test_rescore_withdraws_credit_from_a_cut_off_last_number() -> None:
    recs = [
        _rec("a", "baseline-v4", True, 256, max_tokens=256, gold=20.0, prediction="x = 20"),
        _rec("b", "baseline-v4", True, 100, max_tokens=256, gold=20.0, prediction="x = 20"),
    ]
    fixed = rescore(recs)
    assert [r.correct for r in fixed] == [False, True]
    assert cutoff_rates(fixed)["baseline-v4"] == {"n": 2, "cut_off": 1, "share": 0.5}


def test_tokens_at_accuracy_interpolates_between_budgets() -> None:
    curve = Curve.of([(10, 0.2), (50, 0.6), (100, 0.5), (200, 0.8)])
    assert tokens_at_accuracy(curve, 0.4) == pytest.approx(30)
    assert tokens_at_accuracy(curve, 0.1) == 10
    assert tokens_at_accuracy(curve, 0.7) == pytest.approx(100 + 0.2 / 0.3 * 100)
    assert tokens_at_accuracy(curve, 0.9) is None


def test_equal_accuracy_ratio_is_read_at_the_baselines_best() -> None:
    base = Curve.of([(10, 0.1), (100, 0.3), (300, 0.5)])
    sleep = Curve.of([(10, 0.4), (30, 0.6)])
    got = equal_accuracy_ratio(base, sleep)
    assert got["target"] == 0.5
    assert got["sleeptime_tokens"] == pytest.approx(10 + 0.5 * 20)
    assert got["ratio"] == pytest.approx(300 / 20)
    assert equal_accuracy_ratio(sleep, base)["ratio"] is None  # baseline never reaches 0.6


@given(st.lists(st.floats(0, 100) | st.none(), min_size=1, max_size=50))
def test_bootstrap_interval_is_ordered_and_within_the_estimates(
    values: list[float | None],
) -> None:
    lo, hi = bootstrap_interval(values)
    got = [v for v in values if v is not None]
    if not got:
        assert (lo, hi) == (None, None)
    else:
        assert lo is not None and hi is not None
        assert min(got) <= lo <= hi <= max(got)


def _runs(n: int, base_right: int, sleep_right: int) -> list[ResultRecord]:
    recs = []
    for i in range(n):
        recs.append(_rec(str(i), "baseline-v0", i < base_right, 5))
        recs.append(_rec(str(i), "baseline-v4", i < base_right + 20, 300))
        recs.append(_rec(str(i), "sleeptime-k1-v0", i < sleep_right, 6))
        recs.append(_rec(str(i), "sleeptime-k1-v4", i < sleep_right, 200))
    return recs


def test_pair_evidence_needs_separated_intervals() -> None:
    clear = pair_evidence(_runs(100, 10, 60), "baseline-v0", "sleeptime-k1-v0")
    assert clear["separated"]
    lo, hi = clear["paired_gain_ci95"]
    assert lo is not None and lo > 0
    close = pair_evidence(_runs(100, 10, 14), "baseline-v0", "sleeptime-k1-v0")
    assert not close["separated"]


def test_headline_ratio_with_a_bootstrap_interval() -> None:
    recs = _runs(60, 10, 40)
    got = headline_ratio(
        recs, ["baseline-v0", "baseline-v4"], ["sleeptime-k1-v0", "sleeptime-k1-v4"], samples=200
    )
    assert got["n_items"] == 60
    assert got["target"] == pytest.approx(30 / 60)
    assert got["ratio"] == pytest.approx(300 / 6)
    lo, hi = got["ci95"]
    assert lo is not None and hi is not None and lo <= got["ratio"] <= hi


def test_savings_along_curve_read_at_each_sleeptime_budget() -> None:
    # Baseline: 1/6 right at 5 tokens, 3/6 at 300; sleep-time: 2/6 at 6 tokens, 3/6 at 200.
    recs = []
    for i in range(6):
        recs.append(_rec(str(i), "baseline-v0", i < 1, 5))
        recs.append(_rec(str(i), "baseline-v4", i < 3, 300))
        recs.append(_rec(str(i), "sleeptime-k1-v0", i < 2, 6))
        recs.append(_rec(str(i), "sleeptime-k1-v4", i < 3, 200))
    low, high = savings_along_curve(
        recs, ["baseline-v0", "baseline-v4"], ["sleeptime-k1-v0", "sleeptime-k1-v4"], samples=200
    )
    # At 2/6 the baseline is halfway between its budgets: 5 + 0.5 * 295 tokens.
    assert low["accuracy"] == pytest.approx(2 / 6)
    assert low["baseline_tokens"] == pytest.approx(152.5)
    assert low["ratio"] == pytest.approx(152.5 / 6)
    lo, hi = low["ci95"]
    assert lo is not None and hi is not None and lo <= low["ratio"] <= hi
    assert high["ratio"] == pytest.approx(300 / 200)
    # A shared sleep-time cost added to each sleep-time query lowers the ratio accordingly.
    shared = savings_along_curve(
        recs,
        ["baseline-v0", "baseline-v4"],
        ["sleeptime-k1-v0"],
        samples=50,
        overhead={"sleeptime-k1-v0": 4.0},
    )[0]
    assert shared["ratio"] == pytest.approx(152.5 / 10)
    # A sleep-time accuracy the baseline never reaches has no ratio.
    recs += [_rec(str(i), "sleeptime-k1-v5", True, 50) for i in range(6)]
    best = savings_along_curve(
        recs, ["baseline-v0", "baseline-v4"], ["sleeptime-k1-v5"], samples=50
    )[0]
    assert best["ratio"] is None and best["unreached_share"] == 1.0
