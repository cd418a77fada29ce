"""PNG plots of benchmark summaries (matplotlib, Agg; no pyplot global state is touched).

Every function takes the output of :func:`sleeptime_bench.results.summarize` (or the same
data read back from a JSON report), writes one PNG with a title, axis labels and a legend, and
returns the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import cycle
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sleeptime_bench.cost import CostCurve
from sleeptime_bench.results import ConditionSummary

__all__ = [
    "family_of",
    "plot_amortization",
    "plot_pareto",
    "plot_scaling",
    "plot_score_vs_cost",
    "plot_setting_curve",
    "total_tokens_per_question",
]

Summary = Mapping[str, ConditionSummary | Mapping[str, Any]]


def _entries(summary: Summary) -> list[ConditionSummary]:
    return [
        s if isinstance(s, ConditionSummary) else ConditionSummary.model_validate(s)
        for s in summary.values()
    ]


def family_of(entry: ConditionSummary) -> str:
    """The condition's family: its ``family`` field, else the condition name up to ``-``/``/``."""
    if entry.family:
        return entry.family
    for sep in ("/", "-", ":"):
        if sep in entry.condition:
            return entry.condition.split(sep, 1)[0]
    return entry.condition


def _new_figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, ax: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(out, format="png")
    return out


def _errorbars(entries: list[ConditionSummary]) -> list[list[float]] | None:
    lows: list[float] = []
    highs: list[float] = []
    for e in entries:
        if e.accuracy is None or e.ci_low is None or e.ci_high is None:
            return None
        lows.append(max(0.0, e.accuracy - e.ci_low))
        highs.append(max(0.0, e.ci_high - e.accuracy))
    return [lows, highs]


def plot_pareto(summary: Summary, path: str | Path, title: str | None = None) -> Path:
    """Accuracy vs mean test-time completion tokens, one line per condition family.

    A family run at several ``k`` gets one line per ``k``.

    Points within a family are joined in token order and labelled by verbosity level
    (``v0`` .. ``v4``); error bars are the Wilson 95% intervals. Conditions without an
    accuracy (graded-only benchmarks) are left out.

    Args:
        summary: ``{condition: ConditionSummary}``.
        path: Where to write the PNG.
        title: Plot title.

    Returns:
        The PNG path.
    """
    fig, ax = _new_figure(
        title or "Accuracy vs test-time tokens",
        "mean test-time completion tokens per question",
        "accuracy",
    )
    entries_all = [e for e in _entries(summary) if e.accuracy is not None]
    ks: dict[str, set[int | None]] = {}
    for e in entries_all:
        ks.setdefault(family_of(e), set()).add(e.k)
    families: dict[str, list[ConditionSummary]] = {}
    for e in entries_all:
        label = family_of(e)
        if len(ks[label]) > 1:  # one line per k when a family was run at several k
            label += f" k={e.k}"
        families.setdefault(label, []).append(e)
    for family, entries in sorted(families.items()):
        entries.sort(key=lambda e: e.mean_testtime_completion_tokens)
        xs = [e.mean_testtime_completion_tokens for e in entries]
        ys = [float(e.accuracy or 0.0) for e in entries]
        ax.errorbar(xs, ys, yerr=_errorbars(entries), marker="o", capsize=3, label=family)
        for e, x, y in zip(entries, xs, ys, strict=True):
            tag = f"v{e.verbosity}" if e.verbosity is not None else e.condition
            ax.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    return _save(fig, ax, path)


def plot_scaling(summary: Summary, path: str | Path, title: str | None = None) -> Path:
    """Accuracy vs ``k`` (parallel sleep-time runs), one line per (family, verbosity).

    Conditions without ``k`` (e.g. the no-sleep baseline) are drawn as horizontal dashed lines
    when they have an accuracy, so the gain over the baseline is visible.

    Args:
        summary: ``{condition: ConditionSummary}``.
        path: Where to write the PNG.
        title: Plot title.

    Returns:
        The PNG path.
    """
    fig, ax = _new_figure(
        title or "Scaling sleep-time compute", "k (parallel sleep-time runs)", "accuracy"
    )
    lines: dict[tuple[str, int | None], list[ConditionSummary]] = {}
    flat: list[ConditionSummary] = []
    for e in _entries(summary):
        if e.accuracy is None:
            continue
        if e.k is None:
            flat.append(e)
            continue
        lines.setdefault((family_of(e), e.verbosity), []).append(e)
    # One colour per budget, one line style per family: a budget's families (e.g. k samples
    # combined "all" vs "agreed") and its baseline read as one group.
    budgets = sorted({v for _, v in lines} | {e.verbosity for e in flat}, key=lambda v: v or 0)
    colors = {v: f"C{i % 10}" for i, v in enumerate(budgets)}
    styles = {f: ("-", "--", "-.")[i % 3] for i, f in enumerate(sorted({f for f, _ in lines}))}
    markers = {f: ("o", "s", "^")[i % 3] for i, f in enumerate(sorted(styles))}
    all_ks: set[int] = set()
    for (family, verbosity), entries in sorted(
        lines.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)
    ):
        entries.sort(key=lambda e: e.k or 0)
        ks = [e.k or 0 for e in entries]
        all_ks.update(ks)
        ax.errorbar(
            ks,
            [float(e.accuracy or 0.0) for e in entries],
            yerr=_errorbars(entries),
            marker=markers[family],
            linestyle=styles[family],
            color=colors[verbosity],
            capsize=3,
            label=family + (f" v{verbosity}" if verbosity is not None else ""),
        )
    for e in flat:  # a baseline shares the colour of the sleep-time lines at its verbosity
        ax.axhline(
            float(e.accuracy or 0.0),
            linestyle=":",
            linewidth=1,
            color=colors.get(e.verbosity, "grey"),
            label=e.condition,
        )
    if all_ks:
        ax.set_xticks(sorted(all_ks))
    ax.set_ylim(-0.02, 1.02)
    return _save(fig, ax, path)


def plot_amortization(
    curves: Iterable[CostCurve], path: str | Path, title: str | None = None
) -> Path:
    """Cost per query vs the number of queries sharing a context.

    Args:
        curves: E.g. the output of :func:`sleeptime_bench.cost.amortization_curves`.
        path: Where to write the PNG.
        title: Plot title.

    Returns:
        The PNG path.
    """
    fig, ax = _new_figure(
        title or "Amortizing sleep-time compute over queries",
        "queries per context",
        "cost per query (sleep-time-token equivalents)",
    )
    for curve in curves:
        ax.plot(curve.n_queries, curve.cost, marker=".", label=curve.label)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save(fig, ax, path)


def total_tokens_per_question(entry: ConditionSummary) -> float:
    """Default LoCoMo cost: test-time prompt + completion tokens + sleep-time tokens per question.

    Args:
        entry: One condition's summary.

    Returns:
        The mean tokens per question.
    """
    return (
        entry.mean_testtime_prompt_tokens
        + entry.mean_testtime_completion_tokens
        + entry.mean_sleeptime_tokens
    )


def plot_score_vs_cost(
    summary: Summary,
    path: str | Path,
    cost: Callable[[ConditionSummary], float] = total_tokens_per_question,
    title: str | None = None,
    xlabel: str = "tokens per question (prompt + completion + sleep-time)",
) -> Path:
    """Score vs cost per question, one labelled point per condition (LoCoMo, LongMemEval).

    The score is ``mean_score`` (LoCoMo F1) when set, else ``accuracy``.

    Args:
        summary: ``{condition: ConditionSummary}``.
        path: Where to write the PNG.
        cost: Cost per question of a condition; the default is total tokens per question.
        title: Plot title.
        xlabel: Label of the cost axis (match it to ``cost``).

    Returns:
        The PNG path.
    """
    fig, ax = _new_figure(title or "Score vs cost per question", xlabel, "score")
    for e in _entries(summary):
        score = e.mean_score if e.mean_score is not None else e.accuracy
        if score is None:
            continue
        ax.scatter([cost(e)], [score], s=40, label=e.condition)
    ax.set_ylim(-0.02, 1.02)
    return _save(fig, ax, path)


def plot_setting_curve(
    points: Iterable[Mapping[str, Any]],
    baselines: Mapping[str, float],
    path: str | Path,
    xlabel: str,
    ylabel: str = "score",
    title: str | None = None,
) -> Path:
    """Score vs a swept setting, one point per run with its interval, baselines as lines.

    Each point is labelled with its sleep-time tokens per ingested message and its prompt tokens
    per question, so the price of a point reads off the plot.

    Args:
        points: ``x``, ``mean``, ``ci95``, ``sleeptime_tokens_per_message`` and (optional)
            ``prompt_tokens_per_question`` of each run.
        baselines: Other conditions' scores (e.g. raw-turn RAG), drawn as dashed lines.
        path: Where to write the PNG.
        xlabel: The swept setting.
        ylabel: The score's name.
        title: Plot title.

    Returns:
        The PNG path.
    """
    ordered = sorted(points, key=lambda p: float(p["x"]))
    fig, ax = _new_figure(title or f"Score vs {xlabel}", xlabel, ylabel)
    xs = [float(p["x"]) for p in ordered]
    ys = [float(p["mean"]) for p in ordered]
    bounds = [
        [y if b is None else float(b) for b in p["ci95"]] for y, p in zip(ys, ordered, strict=True)
    ]
    yerr = [
        [y - lo for y, (lo, _) in zip(ys, bounds, strict=True)],
        [hi - y for y, (_, hi) in zip(ys, bounds, strict=True)],
    ]
    ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label="sleeptime")
    for x, y, p in zip(xs, ys, ordered, strict=True):
        prompt = p.get("prompt_tokens_per_question")
        ax.annotate(
            f"{float(p.get('sleeptime_tokens_per_message', 0.0)):.0f} sleep tok/msg"
            + ("" if prompt is None else f"\n{float(prompt):.0f} prompt tok/q"),
            (x, y),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize="small",
        )
    for (name, score), style in zip(baselines.items(), cycle(("--", ":", "-."))):
        ax.axhline(score, linestyle=style, linewidth=1, color="grey", label=name)
    ax.set_xticks(sorted(set(xs)))
    ax.set_ylim(0.0, max([*ys, *baselines.values(), 0.0]) * 1.25 + 0.05)
    return _save(fig, ax, path)
