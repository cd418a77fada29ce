"""``sleeptime bench amortization``: cost per query when several queries share one context.

Built from a ``stateful-gsm`` results directory, with no new model calls: the sleep-time tokens
spent per context, and the test-time completion tokens per query of the sleep-time and baseline
conditions at the matched-accuracy budgets (the ``stateful-gsm`` headline). With ``n`` queries
on one context the sleep-time tokens are paid once (see :mod:`sleeptime_bench.cost`)::

    sleep-time: (S + weight * n * T_sleep) / n        baseline: weight * T_base

This is the paper's Multi-Query model applied to single-query measurements: it assumes every
query on a context costs what the measured query cost at the same accuracy.

``along_curve`` reads the same cost at every sleep-time budget against the baseline's
interpolated curve at that budget's accuracy (as the ``stateful-gsm`` ``along_curve``), since
the matched budget is where the two curves meet and the paper's gain sits at low budgets.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sleeptime_bench.cost import (
    DEFAULT_WEIGHT,
    CostCurve,
    amortization_curves,
    break_even_queries,
    cost_per_query,
)
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.plots import plot_amortization
from sleeptime_bench.report import write_report
from sleeptime_bench.results import ResultRecord, summarize
from sleeptime_bench.stateful import condition_name, headline, load_results
from sleeptime_bench.stateful_protocol import rescore, savings_along_curve

__all__ = ["register", "run_amortization"]


def _sleep_prompt(records: list[ResultRecord]) -> float:
    values = [int((r.model_extra or {}).get("sleeptime_prompt_tokens") or 0) for r in records]
    return sum(values) / len(values) if values else 0.0


def _along_curve(answers: list[ResultRecord], weight: float, queries: int) -> list[dict[str, Any]]:
    """Baseline over sleep-time cost per query at ``queries`` per context, at each budget."""
    summary = summarize(answers)
    levels = sorted(
        {r.verbosity for r in answers if r.family == "baseline" and r.verbosity is not None}
        & {r.verbosity for r in answers if r.family == "sleeptime" and r.k == 1}
    )
    base = [condition_name(None, v) for v in levels]
    sleep = [condition_name(1, v) for v in levels]
    out = []
    for kind in ("completion", "prompt_plus_completion"):
        shared = {}
        for c in sleep:
            per_context = summary[c].mean_sleeptime_tokens
            if kind == "prompt_plus_completion":
                per_context += _sleep_prompt([r for r in answers if r.condition == c])
            # Cost in test-time token units: the sleep-time pass shared by the queries.
            shared[c] = per_context / (weight * queries)
        for row in savings_along_curve(answers, base, sleep, overhead=shared):
            out.append({"sleeptime_tokens_counted": kind, **row})
    return out


def run_amortization(
    results: Path,
    out: Path,
    *,
    weight: float = DEFAULT_WEIGHT,
    max_queries: int = 20,
) -> Path:
    """Write ``amortization.json`` and ``amortization.png`` from a stateful results directory.

    Args:
        results: A ``stateful-gsm`` output directory (``answers.jsonl``, ``sleeptime.jsonl``).
        out: Where to write the report and plot.
        weight: Price of a test-time token in sleep-time tokens.
        max_queries: The largest number of queries per context.

    Returns:
        The JSON report's path.

    Raises:
        ValueError: The directory has no baseline or no ``k=1`` sleep-time results.
    """
    answers, _ = load_results(results)
    if not any(r.benchmark == "stateful-aime" for r in answers):
        answers = rescore(answers)  # the corrected scorer (cut-off answers: explicit only)
    summary = summarize(answers)
    match = headline(summary, 1)
    if match is None:
        raise ValueError(f"{results}: no baseline and k=1 sleep-time results to compare")
    sleep_cond = match["sleeptime"]["condition"]
    sleep_records = [r for r in answers if r.condition == sleep_cond]
    s_completion = summary[sleep_cond].mean_sleeptime_tokens
    s_total = s_completion + _sleep_prompt(sleep_records)
    t_sleep = float(match["sleeptime"]["mean_testtime_completion_tokens"])
    t_base = float(match["baseline"]["mean_testtime_completion_tokens"])
    curves = amortization_curves(
        s_completion,
        t_sleep,
        t_base,
        weight=weight,
        max_queries=max_queries,
        labels=(
            f"baseline ({match['baseline']['condition']})",
            f"sleep-time ({sleep_cond}), sleep completion tokens",
        ),
    )
    ns = tuple(range(1, max_queries + 1))
    total_curve = CostCurve(
        "sleep-time, sleep prompt + completion tokens",
        ns,
        tuple(cost_per_query(n, s_total, t_sleep, weight) for n in ns),
    )
    curves.append(total_curve)
    png = plot_amortization(
        curves,
        out / "amortization.png",
        f"Stateful GSM: cost per query vs queries per context (weight {weight:g})",
    )

    def at(curve: CostCurve, n: int) -> float | None:
        return curve.cost[n - 1] if n <= len(curve.cost) else None

    base_cost = curves[0].cost[0]
    warnings = []
    if not match["exact"]:
        warnings.append("no baseline budget reaches the sleep-time accuracy: not a matched pair")
    if not match.get("accuracies_distinguishable", True):
        warnings.append(match["caveat"])
    if not match["sleeptime"]["accuracy"]:
        warnings.append(
            "matched at zero accuracy: the curves compare token spend only, not equal-quality "
            "answers"
        )
    data: dict[str, Any] = {
        "results_dir": str(results),
        "weight": weight,
        "model": (
            "sleep-time (S + weight*n*T_sleep)/n vs baseline weight*T_base per query; S and T "
            "measured on single-query Stateful GSM at the matched-accuracy budgets"
        ),
        "matched_budget": match,
        "warnings": warnings,
        "sleeptime_tokens_per_context": {
            "completion": s_completion,
            "prompt_plus_completion": s_total,
        },
        "testtime_tokens_per_query": {"sleeptime": t_sleep, "baseline": t_base},
        "break_even_queries": {
            "completion": break_even_queries(s_completion, t_sleep, t_base, weight),
            "prompt_plus_completion": break_even_queries(s_total, t_sleep, t_base, weight),
        },
        "baseline_over_sleeptime_at_10": {
            c.label: base_cost / c_at if (c_at := at(c, 10)) else None for c in curves[1:]
        },
        "curves": [
            {"label": c.label, "n_queries": list(c.n_queries), "cost": list(c.cost)} for c in curves
        ],
        "along_curve_at_10": {
            "model": "at each sleep-time budget: weight * T_base(accuracy) over "
            "(S/10 + weight * T_sleep), T_base read off the interpolated baseline curve at that "
            "budget's accuracy; ci95 by item bootstrap with S held at its mean",
            "points": _along_curve(answers, weight, 10),
        },
        "files": {"plot": str(png)},
    }
    return write_report(out, "amortization", data)


def register(sub: Any) -> None:
    """Add ``sleeptime bench amortization``."""
    p = sub.add_parser(
        "amortization",
        help="cost per query vs queries sharing a context, from stateful-gsm results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--results",
        default=default_out("stateful-gsm"),
        help="a stateful-gsm output directory (default: $SLEEPTIME_HOME/bench/stateful-gsm)",
    )
    p.add_argument("--weight", type=float, default=DEFAULT_WEIGHT, help="test-time token price")
    p.add_argument("--max-queries", type=int, default=20, help="queries per context, 1..N")
    p.add_argument(
        "--out",
        default=default_out("amortization"),
        help=OUT_HELP,
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    path = run_amortization(
        Path(args.results), Path(args.out), weight=args.weight, max_queries=args.max_queries
    )
    print(f"report: {path}")  # noqa: T201 - the command's output
    return 0
