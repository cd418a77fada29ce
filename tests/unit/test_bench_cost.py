"""The amortization cost model and equal-accuracy budget matching."""

from __future__ import annotations

import pytest

from sleeptime_bench.cost import (
    BudgetPoint,
    amortization_curves,
    baseline_cost_per_query,
    break_even_queries,
    cost_per_query,
    match_for,
    matched_budget,
)


def test_cost_per_query_numbers() -> None:
    # S = 1000 sleep-time tokens, T = 50 test-time tokens, weight 10
    assert cost_per_query(1, 1000, 50) == 1500.0
    assert cost_per_query(10, 1000, 50) == 600.0  # (1000 + 10*10*50) / 10
    assert cost_per_query(10, 1000, 50, weight=1) == 150.0
    assert cost_per_query(4, [900, 1100], [40, 60]) == 750.0  # lists are averaged
    assert baseline_cost_per_query(250) == 2500.0
    assert baseline_cost_per_query([200, 300], weight=2) == 500.0


def test_cost_per_query_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        cost_per_query(0, 1000, 50)
    with pytest.raises(ValueError):
        cost_per_query(1, [], 50)


def test_amortization_curves() -> None:
    base, sleep = amortization_curves(1000, 50, 250, max_queries=20)
    assert base.label == "baseline" and sleep.label == "sleep-time"
    assert base.n_queries == sleep.n_queries == tuple(range(1, 21))
    assert set(base.cost) == {2500.0}
    assert sleep.cost[0] == 1500.0 and sleep.cost[9] == 600.0
    assert sleep.cost[19] == pytest.approx(550.0)
    assert list(sleep.cost) == sorted(sleep.cost, reverse=True)  # amortization only helps


def test_break_even() -> None:
    # sleep-time costs 1000/n + 500 per query; baseline 800 -> n >= 1000/300 -> 4
    assert break_even_queries(1000, 50, 80) == 4
    assert break_even_queries(0, 50, 80) == 1
    assert break_even_queries(1000, 80, 50) is None  # no test-time saving: never pays off


BASELINE = [("v0", 0.40, 20.0), ("v1", 0.55, 90.0), ("v2", 0.70, 250.0), ("v3", 0.72, 400.0)]


def test_match_for_picks_cheapest_baseline_at_least_as_accurate() -> None:
    m = match_for(BudgetPoint("v0", 0.55, 20.0), BASELINE)
    assert m.exact and m.baseline.budget == "v1"
    assert m.token_ratio == 4.5
    m = match_for(BudgetPoint("v0", 0.60, 20.0), BASELINE)
    assert m.exact and m.baseline.budget == "v2"


def test_match_for_falls_back_to_nearest() -> None:
    m = match_for(BudgetPoint("v4", 0.90, 100.0), BASELINE)
    assert not m.exact and m.baseline.budget == "v3"


def test_matched_budget_takes_most_accurate_matchable_sleeptime_point() -> None:
    sleep = [("v0", 0.62, 25.0), ("v1", 0.71, 50.0), ("v2", 0.80, 120.0)]
    m = matched_budget(BASELINE, sleep)
    assert m.exact
    assert m.sleeptime.budget == "v1"  # 0.80 is beyond any baseline budget
    assert m.baseline.budget == "v3"  # the cheapest baseline with accuracy >= 0.71
    assert m.token_ratio == pytest.approx(8.0)


def test_matched_budget_when_sleeptime_always_wins() -> None:
    sleep = [("v0", 0.85, 25.0), ("v1", 0.90, 50.0)]
    m = matched_budget(BASELINE, sleep)
    assert not m.exact
    assert m.sleeptime.budget == "v0" and m.baseline.budget == "v3"


def test_matched_budget_needs_points() -> None:
    with pytest.raises(ValueError):
        matched_budget([], [("v0", 0.5, 1.0)])
