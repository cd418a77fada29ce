"""The amortization cost model (Multi-Query GSM-Symbolic) and equal-accuracy budget matching.

Cost is counted in tokens, with test-time tokens priced ``weight`` times sleep-time tokens (the
paper uses 10: test-time tokens are latency-bound, sleep-time tokens can run on cheap, batched,
off-peak compute). When ``n`` queries share one context, its sleep-time tokens are paid once::

    sleep-time: (S + weight * n * T_sleep) / n    per query
    baseline:   weight * T_base                   per query

where ``S`` is the sleep-time tokens spent on the context, ``T_sleep`` the test-time completion
tokens per query with the sleep-time memory, and ``T_base`` those without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_WEIGHT",
    "BudgetMatch",
    "BudgetPoint",
    "CostCurve",
    "amortization_curves",
    "baseline_cost_per_query",
    "break_even_queries",
    "cost_per_query",
    "match_for",
    "matched_budget",
]

#: Price of a test-time token in sleep-time tokens (the paper's choice).
DEFAULT_WEIGHT = 10.0


def _mean(tokens: float | Sequence[float]) -> float:
    if isinstance(tokens, int | float):
        return float(tokens)
    if not tokens:
        raise ValueError("no token measurements to average")
    return sum(tokens) / len(tokens)


def cost_per_query(
    n_queries: int,
    sleeptime_tokens: float | Sequence[float],
    testtime_tokens: float | Sequence[float],
    weight: float = DEFAULT_WEIGHT,
) -> float:
    """Average cost per query with sleep-time compute when ``n_queries`` share one context.

    Args:
        n_queries: Queries answered from the same sleep-time memory (>= 1).
        sleeptime_tokens: Sleep-time tokens per context (a mean, or per-context measurements
            that are averaged).
        testtime_tokens: Test-time completion tokens per query (a mean, or measurements).
        weight: Price of one test-time token in sleep-time tokens.

    Returns:
        ``(S + weight * n * T) / n``.

    Raises:
        ValueError: ``n_queries < 1`` or an empty list of measurements.
    """
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1, got {n_queries}")
    s, t = _mean(sleeptime_tokens), _mean(testtime_tokens)
    return (s + weight * n_queries * t) / n_queries


def baseline_cost_per_query(
    testtime_tokens: float | Sequence[float], weight: float = DEFAULT_WEIGHT
) -> float:
    """Cost per query without sleep-time compute: ``weight * T`` whatever the number of queries.

    Args:
        testtime_tokens: Test-time completion tokens per query (a mean, or measurements).
        weight: Price of one test-time token in sleep-time tokens.

    Returns:
        ``weight * T``.
    """
    return weight * _mean(testtime_tokens)


@dataclass(frozen=True)
class CostCurve:
    """Cost per query as a function of the number of queries sharing a context."""

    label: str
    n_queries: tuple[int, ...]
    cost: tuple[float, ...]


def amortization_curves(
    sleeptime_tokens: float | Sequence[float],
    sleeptime_testtime_tokens: float | Sequence[float],
    baseline_testtime_tokens: float | Sequence[float],
    weight: float = DEFAULT_WEIGHT,
    max_queries: int = 20,
    labels: tuple[str, str] = ("baseline", "sleep-time"),
) -> list[CostCurve]:
    """The baseline and sleep-time cost-per-query curves for ``n = 1 .. max_queries``.

    Args:
        sleeptime_tokens: Sleep-time tokens per context.
        sleeptime_testtime_tokens: Test-time completion tokens per query with sleep-time memory.
        baseline_testtime_tokens: Test-time completion tokens per query without it.
        weight: Price of one test-time token in sleep-time tokens.
        max_queries: The largest number of queries per context.
        labels: Labels of the baseline and sleep-time curves.

    Returns:
        ``[baseline_curve, sleeptime_curve]``.
    """
    ns = tuple(range(1, max_queries + 1))
    base = baseline_cost_per_query(baseline_testtime_tokens, weight)
    sleep = tuple(
        cost_per_query(n, sleeptime_tokens, sleeptime_testtime_tokens, weight) for n in ns
    )
    return [CostCurve(labels[0], ns, tuple(base for _ in ns)), CostCurve(labels[1], ns, sleep)]


def break_even_queries(
    sleeptime_tokens: float | Sequence[float],
    sleeptime_testtime_tokens: float | Sequence[float],
    baseline_testtime_tokens: float | Sequence[float],
    weight: float = DEFAULT_WEIGHT,
    max_queries: int = 10_000,
) -> int | None:
    """The smallest number of queries per context at which sleep-time compute is not dearer.

    Args:
        sleeptime_tokens: Sleep-time tokens per context.
        sleeptime_testtime_tokens: Test-time completion tokens per query with sleep-time memory.
        baseline_testtime_tokens: Test-time completion tokens per query without it.
        weight: Price of one test-time token in sleep-time tokens.
        max_queries: Give up beyond this.

    Returns:
        The smallest ``n`` with sleep-time cost <= baseline cost, or ``None`` if none up to
        ``max_queries`` (sleep-time memory does not save test-time tokens).
    """
    base = baseline_cost_per_query(baseline_testtime_tokens, weight)
    for n in range(1, max_queries + 1):
        if cost_per_query(n, sleeptime_tokens, sleeptime_testtime_tokens, weight) <= base:
            return n
    return None


@dataclass(frozen=True)
class BudgetPoint:
    """One test-time budget (e.g. a verbosity level) with its measured accuracy and cost."""

    budget: str | int
    accuracy: float
    mean_tokens: float


@dataclass(frozen=True)
class BudgetMatch:
    """A sleep-time budget paired with the baseline budget that matches its accuracy."""

    sleeptime: BudgetPoint
    baseline: BudgetPoint
    exact: bool
    """True when the baseline's accuracy is >= the sleep-time accuracy; False when no baseline
    budget gets there and ``baseline`` is the nearest (most accurate) one instead."""

    @property
    def token_ratio(self) -> float:
        """Baseline tokens per sleep-time token at this match (the paper's "5x fewer")."""
        if self.sleeptime.mean_tokens == 0:
            return float("inf")
        return self.baseline.mean_tokens / self.sleeptime.mean_tokens


def _points(points: Iterable[BudgetPoint | tuple[str | int, float, float]]) -> list[BudgetPoint]:
    out = [p if isinstance(p, BudgetPoint) else BudgetPoint(p[0], p[1], p[2]) for p in points]
    if not out:
        raise ValueError("no budget points")
    return out


def match_for(
    point: BudgetPoint, baseline: Iterable[BudgetPoint | tuple[str | int, float, float]]
) -> BudgetMatch:
    """Pair one sleep-time point with the cheapest baseline point at least as accurate.

    When no baseline point is as accurate, the most accurate baseline point is used (ties go
    to the cheaper one) and the match is marked ``exact=False``.

    Args:
        point: The sleep-time budget point.
        baseline: The baseline's ``(budget, accuracy, mean_tokens)`` points.

    Returns:
        The match.
    """
    base = _points(baseline)
    good = [b for b in base if b.accuracy >= point.accuracy]
    if good:
        return BudgetMatch(point, min(good, key=lambda b: (b.mean_tokens, -b.accuracy)), True)
    best = max(base, key=lambda b: (b.accuracy, -b.mean_tokens))
    return BudgetMatch(point, best, False)


def matched_budget(
    baseline: Iterable[BudgetPoint | tuple[str | int, float, float]],
    sleeptime: Iterable[BudgetPoint | tuple[str | int, float, float]],
) -> BudgetMatch:
    """Choose the headline equal-accuracy comparison between sleep-time and baseline budgets.

    The choice: among sleep-time points that some baseline point matches (baseline accuracy >=
    sleep-time accuracy), take the most accurate one (ties: fewer sleep-time tokens) and pair it
    with the cheapest matching baseline point. This is the highest accuracy at which the
    comparison is an interpolation, not an extrapolation. If the baseline matches no sleep-time
    point (sleep-time is better at every budget), the least accurate sleep-time point is paired
    with the most accurate baseline point, ``exact=False``: the baseline never reaches
    that accuracy, so if more tokens buy more accuracy the token ratio understates the saving.

    Args:
        baseline: The baseline's ``(budget, accuracy, mean_tokens)`` points.
        sleeptime: The sleep-time points, same shape.

    Returns:
        The match; :attr:`BudgetMatch.token_ratio` gives "x times fewer test-time tokens".

    Raises:
        ValueError: Either list is empty.
    """
    base, sleep = _points(baseline), _points(sleeptime)
    matches = [match_for(p, base) for p in sleep]
    exact = [m for m in matches if m.exact]
    if exact:
        return max(exact, key=lambda m: (m.sleeptime.accuracy, -m.sleeptime.mean_tokens))
    return min(matches, key=lambda m: (m.sleeptime.accuracy, m.sleeptime.mean_tokens))
