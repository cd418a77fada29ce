r"""The stateful benchmarks' corrected protocol: what counts as an answer, and what is evidence.

An audit of the first Stateful GSM-Symbolic P2 run found faults that bias the comparison
(issue #15); this module holds the fixes, used by :mod:`sleeptime_bench.stateful`:

- **Cut-off answers.** An answer that used its whole completion-token cap was cut off. It is
  scored only on an explicit final answer it wrote (``\\boxed{}``, "The answer is N",
  ``#### N``), never on the last number in the text: 5 of the 44 "correct" P2 answers were a list
  marker ``"3."`` or an intermediate ``"= 20"`` that happened to equal the gold.
- **The matched pair.** The headline pairs sleep-time at a budget with the baseline at the same
  budget; it is evidence only when those two conditions' 95% intervals separate (before, any
  two conditions separating was enough).
- **Tokens at equal accuracy** are read off the two accuracy-vs-tokens curves, linearly
  interpolated, as the paper does: the test-time tokens the baseline needs for its best
  accuracy, over the tokens sleep-time needs for the same accuracy. Its interval comes from a
  bootstrap over items (every condition of an item resampled together).
- **Item-level intervals.** Items, not answers, are the independent units: conditions of one
  item share the problem, so pooled answers are not independent trials.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sleeptime_bench.results import ResultRecord
from sleeptime_bench.scoring import extract_answer, numbers_equal, wilson_interval

__all__ = [
    "BOOTSTRAP_SAMPLES",
    "MAX_CUTOFF_SHARE",
    "Curve",
    "bootstrap_interval",
    "cut_off",
    "cutoff_rates",
    "equal_accuracy_ratio",
    "headline_ratio",
    "item_gap",
    "item_table",
    "pair_evidence",
    "rescore",
    "savings_along_curve",
    "score_capped",
    "tokens_at_accuracy",
]

#: The protocol's limit on cut-off answers at the top budget.
MAX_CUTOFF_SHARE = 0.10
BOOTSTRAP_SAMPLES = 2000


def cut_off(record: ResultRecord | Mapping[str, Any]) -> bool:
    """Whether an answer used its whole completion-token cap (it was cut off).

    Args:
        record: An answer record (``max_tokens`` and ``testtime_completion_tokens``).

    Returns:
        ``False`` when the record has no cap.
    """
    data = record.model_dump() if isinstance(record, ResultRecord) else dict(record)
    cap = int(data.get("max_tokens") or 0)
    return 0 < cap <= int(data.get("testtime_completion_tokens") or 0)


def score_capped(text: str | None, gold: float, *, was_cut_off: bool) -> bool:
    """Score a GSM answer; a cut-off one only on an explicit final answer.

    Args:
        text: The model's output.
        gold: The gold number.
        was_cut_off: The answer hit its token cap (see :func:`cut_off`).

    Returns:
        Whether the answer is right.
    """
    return numbers_equal(extract_answer(text, last_number=not was_cut_off), gold)


def rescore(records: Sequence[ResultRecord]) -> list[ResultRecord]:
    """Re-score answer records with :func:`score_capped` (the stored prediction is kept).

    Args:
        records: Answer records with ``prediction`` and ``gold``.

    Returns:
        Copies with ``correct`` recomputed and ``cut_off`` set; records without a gold or
        with an error come back unchanged.
    """
    out = []
    for r in records:
        gold = r.gold
        if r.error is not None or gold is None:
            out.append(r)
            continue
        cut = cut_off(r)
        right = score_capped(r.prediction, float(gold), was_cut_off=cut)
        out.append(r.model_copy(update={"correct": right, "cut_off": cut}))
    return out


def cutoff_rates(records: Sequence[ResultRecord]) -> dict[str, dict[str, Any]]:
    """Per condition: answers, how many were cut off, and the share.

    Args:
        records: Answer records.

    Returns:
        ``{condition: {"n", "cut_off", "share"}}``.
    """
    counts: dict[str, list[int]] = {}
    for r in records:
        if r.error is None:
            row = counts.setdefault(r.condition, [0, 0])
            row[0] += 1
            row[1] += int(cut_off(r))
    return {
        c: {"n": n, "cut_off": k, "share": k / n if n else None} for c, (n, k) in counts.items()
    }


# ----------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    """Accuracy against mean test-time completion tokens, one point per budget."""

    tokens: tuple[float, ...]
    accuracy: tuple[float, ...]

    @classmethod
    def of(cls, points: Sequence[tuple[float, float]]) -> Curve:
        """Build from ``(tokens, accuracy)`` points in any order."""
        ordered = sorted(points)
        return cls(tuple(p[0] for p in ordered), tuple(p[1] for p in ordered))

    @property
    def best(self) -> float:
        """The highest accuracy on the curve."""
        return max(self.accuracy)


def tokens_at_accuracy(curve: Curve, target: float) -> float | None:
    """The fewest tokens at which the interpolated curve reaches ``target`` accuracy.

    Points are joined by straight lines in order of tokens; the first crossing counts.

    Args:
        curve: The curve.
        target: An accuracy.

    Returns:
        The tokens, or ``None`` when the curve never reaches ``target``.
    """
    xs, ys = curve.tokens, curve.accuracy
    if not xs:
        return None
    if ys[0] >= target:
        return xs[0]
    for i in range(1, len(xs)):
        x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
        if y1 >= target > y0:
            return x0 + (target - y0) / (y1 - y0) * (x1 - x0)
    return None


def equal_accuracy_ratio(baseline: Curve, sleeptime: Curve) -> dict[str, Any]:
    """The paper's headline: baseline tokens over sleep-time tokens at the baseline's best accuracy.

    Args:
        baseline: The baseline's curve.
        sleeptime: The sleep-time curve.

    Returns:
        ``target`` (the baseline's best accuracy), ``baseline_tokens``, ``sleeptime_tokens``
        (``None`` if sleep-time never gets there) and ``ratio``.
    """
    target = baseline.best
    base = tokens_at_accuracy(baseline, target)
    sleep = tokens_at_accuracy(sleeptime, target)
    ratio = None if base is None or not sleep else base / sleep
    return {"target": target, "baseline_tokens": base, "sleeptime_tokens": sleep, "ratio": ratio}


# ----------------------------------------------------------------------------- items


def item_table(
    records: Sequence[ResultRecord], conditions: Sequence[str]
) -> dict[str, dict[str, tuple[bool, float]]]:
    """``{item: {condition: (correct, completion tokens)}}`` for items with every condition.

    Args:
        records: Scored answer records.
        conditions: The conditions an item must have.

    Returns:
        The table; an item missing a condition is left out.
    """
    table: dict[str, dict[str, tuple[bool, float]]] = {}
    for r in records:
        if r.error is None and r.correct is not None and r.condition in conditions:
            table.setdefault(r.item_id, {})[r.condition] = (
                bool(r.correct),
                float(r.testtime_completion_tokens),
            )
    return {i: row for i, row in table.items() if all(c in row for c in conditions)}


def _curve(
    table: Mapping[str, Mapping[str, tuple[bool, float]]],
    items: Sequence[str],
    conditions: Sequence[str],
) -> Curve:
    points = []
    for c in conditions:
        n = len(items)
        acc = sum(table[i][c][0] for i in items) / n
        tokens = sum(table[i][c][1] for i in items) / n
        points.append((tokens, acc))
    return Curve.of(points)


def bootstrap_interval(
    values: Sequence[float | None], level: float = 0.95
) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap estimates (``None`` estimates count as unreached).

    Args:
        values: One estimate per resample.
        level: Coverage.

    Returns:
        ``(low, high)`` over the estimates that exist, or ``(None, None)`` if none does.
    """
    got = sorted(v for v in values if v is not None)
    if not got:
        return None, None
    lo = got[int((1 - level) / 2 * (len(got) - 1))]
    hi = got[int((1 + level) / 2 * (len(got) - 1))]
    return lo, hi


def headline_ratio(
    records: Sequence[ResultRecord],
    baseline: Sequence[str],
    sleeptime: Sequence[str],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The equal-accuracy token ratio with an item-bootstrap interval.

    Args:
        records: Scored answer records.
        baseline: The baseline's conditions (one per budget).
        sleeptime: The sleep-time conditions (one per budget).
        samples: Bootstrap resamples.
        seed: Their seed.

    Returns:
        The point estimate (:func:`equal_accuracy_ratio`), ``n_items``, ``ci95`` of the ratio
        and ``unreached_share``: the share of resamples where sleep-time never reached the
        baseline's best accuracy.
    """
    table = item_table(records, [*baseline, *sleeptime])
    items = sorted(table)
    if not items:
        return {"n_items": 0, "ratio": None, "ci95": [None, None]}
    point = equal_accuracy_ratio(_curve(table, items, baseline), _curve(table, items, sleeptime))
    rng = random.Random(seed)
    ratios: list[float | None] = []
    for _ in range(samples):
        pick = [items[rng.randrange(len(items))] for _ in items]
        est = equal_accuracy_ratio(_curve(table, pick, baseline), _curve(table, pick, sleeptime))
        ratios.append(est["ratio"])
    lo, hi = bootstrap_interval(ratios)
    unreached = sum(r is None for r in ratios) / samples
    return {**point, "n_items": len(items), "ci95": [lo, hi], "unreached_share": unreached}


def savings_along_curve(
    records: Sequence[ResultRecord],
    baseline: Sequence[str],
    sleeptime: Sequence[str],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    overhead: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Tokens at equal accuracy at every sleep-time budget, not only at the baseline's best.

    The paper's curves differ most at low budgets; the headline (:func:`headline_ratio`) reads
    them only where the baseline peaks. Here each sleep-time point's accuracy is the target:
    the tokens the interpolated baseline curve needs for it, over that point's tokens.

    Args:
        records: Scored answer records.
        baseline: The baseline's conditions (one per budget).
        sleeptime: The sleep-time conditions (one per budget).
        samples: Bootstrap resamples (over items, every condition of an item together).
        seed: Their seed.
        overhead: Per sleep-time condition, tokens added to each of its queries (e.g. the
            sleep-time pass shared by ``n`` queries, in test-time token units); held fixed
            across resamples.

    Returns:
        One entry per sleep-time condition: ``accuracy``, ``sleeptime_tokens``,
        ``baseline_tokens`` (``None`` when the baseline never gets there), ``ratio``, its
        ``ci95`` and ``unreached_share`` (resamples where the baseline never got there).
    """
    table = item_table(records, [*baseline, *sleeptime])
    items = sorted(table)
    if not items:
        return []
    extra = dict(overhead or {})

    def at(pick: Sequence[str], condition: str) -> tuple[float, float, float | None]:
        """Accuracy and tokens of ``condition``, and the baseline's tokens for that accuracy."""
        n = len(pick)
        acc = sum(table[i][condition][0] for i in pick) / n
        tokens = sum(table[i][condition][1] for i in pick) / n + extra.get(condition, 0.0)
        return acc, tokens, tokens_at_accuracy(_curve(table, pick, baseline), acc)

    def ratio(base: float | None, tokens: float) -> float | None:
        return base / tokens if base is not None and tokens else None

    rng = random.Random(seed)
    picks = [[items[rng.randrange(len(items))] for _ in items] for _ in range(samples)]
    out: list[dict[str, Any]] = []
    for condition in sleeptime:
        acc, tokens, base = at(items, condition)
        estimates = [ratio(b, t) for _, t, b in (at(pick, condition) for pick in picks)]
        lo, hi = bootstrap_interval(estimates)
        out.append(
            {
                "sleeptime": condition,
                "accuracy": acc,
                "sleeptime_tokens": tokens,
                "baseline_tokens": base,
                "ratio": ratio(base, tokens),
                "ci95": [lo, hi],
                "unreached_share": sum(e is None for e in estimates) / samples,
            }
        )
    return out


def pair_evidence(records: Sequence[ResultRecord], baseline: str, sleeptime: str) -> dict[str, Any]:
    """Sleep-time vs the baseline at one budget: accuracies, Wilson intervals, separation.

    Args:
        records: Scored answer records.
        baseline: The baseline condition.
        sleeptime: The sleep-time condition at the same budget.

    Returns:
        Per side ``n``, ``accuracy``, ``ci95``; ``separated`` is true only when the intervals
        do not overlap; ``paired_gain_ci95`` is an item-bootstrap interval of the accuracy
        difference on the items both answered.
    """
    table = item_table(records, [baseline, sleeptime])
    items = sorted(table)
    out: dict[str, Any] = {"baseline": baseline, "sleeptime": sleeptime, "n_items": len(items)}
    sides = {}
    for name in (baseline, sleeptime):
        right = sum(table[i][name][0] for i in items)
        lo, hi = wilson_interval(right, len(items))
        sides[name] = (right / len(items) if items else None, lo, hi)
        out[name] = {"accuracy": sides[name][0], "ci95": [lo, hi]}
    b, s = sides[baseline], sides[sleeptime]
    out["separated"] = bool(items) and (s[1] > b[2] or b[1] > s[2])
    rng = random.Random(0)
    gains: list[float | None] = []
    for _ in range(BOOTSTRAP_SAMPLES if items else 0):
        pick = [items[rng.randrange(len(items))] for _ in items]
        gains.append(sum(table[i][sleeptime][0] - table[i][baseline][0] for i in pick) / len(pick))
    out["paired_gain_ci95"] = list(bootstrap_interval(gains))
    return out


def item_gap(
    records: Sequence[ResultRecord],
    items: Sequence[str],
    baseline: Sequence[str],
    sleeptime: Sequence[str],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Sleep-time minus baseline accuracy over some items, with an item-bootstrap interval.

    Each item contributes its mean accuracy over the budgets (so the five budgets of one item
    are one observation, not five); the interval resamples items.

    Args:
        records: Scored answer records.
        items: The items (e.g. one predictability quintile).
        baseline: Baseline conditions pooled.
        sleeptime: Sleep-time conditions pooled (same budgets).
        samples: Bootstrap resamples.
        seed: Their seed.

    Returns:
        ``n_items``, ``baseline`` and ``sleeptime`` accuracy, ``gap`` and its ``gap_ci95``.
    """
    table = item_table(records, [*baseline, *sleeptime])
    keep = [i for i in items if i in table]
    if not keep:
        return {
            "n_items": 0,
            "baseline": None,
            "sleeptime": None,
            "gap": None,
            "gap_ci95": [None, None],
        }

    def mean_acc(item: str, conds: Sequence[str]) -> float:
        return sum(table[item][c][0] for c in conds) / len(conds)

    diffs = {i: mean_acc(i, sleeptime) - mean_acc(i, baseline) for i in keep}
    rng = random.Random(seed)
    boot: list[float | None] = []
    for _ in range(samples):
        pick = [keep[rng.randrange(len(keep))] for _ in keep]
        boot.append(sum(diffs[i] for i in pick) / len(pick))
    base = sum(mean_acc(i, baseline) for i in keep) / len(keep)
    sleep = sum(mean_acc(i, sleeptime) for i in keep) / len(keep)
    return {
        "n_items": len(keep),
        "baseline": base,
        "sleeptime": sleep,
        "gap": sleep - base,
        "gap_ci95": list(bootstrap_interval(boot)),
    }
