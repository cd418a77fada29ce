"""The memory benchmarks' report as Markdown tables, for a person reading the results folder."""

from __future__ import annotations

from typing import Any

__all__ = ["markdown_summary"]


def _score(stats: dict[str, Any]) -> str:
    if "accuracy" in stats:
        low, high = stats["ci95"]
        return f"{stats['accuracy']:.1%} [{low:.1%}, {high:.1%}]"
    if "mean_score" in stats:
        return f"{stats['mean_score']:.3f}"
    return "-"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _latency(stats: dict[str, Any], kind: str) -> str:
    """``p50 / p95 (n=...)`` of cold or warm answers (older reports have neither)."""
    n = stats.get(f"n_{kind}")
    if not n:
        return "-"
    return f"{stats[f'{kind}_latency_p50_s']:.2f} / {stats[f'{kind}_latency_p95_s']:.2f} (n={n})"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_summary(report: dict[str, Any]) -> str:
    """Overall and per-category tables of a ``locomo`` / ``longmemeval`` report.

    Args:
        report: The JSON report as written by the memory benchmark.

    Returns:
        Markdown: the command, the overall table (score, tokens, latency, amortized cost per
        question), the score by category, and the sleep-time ingestion cost.
    """
    kind = "accuracy [95% CI]" if report.get("score_kind") == "accuracy" else "token F1"
    conditions: dict[str, Any] = report["conditions"]
    has_excl = any("overall_excluding" in c for c in conditions.values())
    lines = [
        f"# {report['benchmark']}: {report['answers_done']} of {report['answers_expected']} "
        "answers",
        "",
        f"`{report['command']}`",
        "",
        f"Model: {report['model']}. {report['selection']}.",
        "",
    ]
    head = ["condition", kind]
    if has_excl:
        excluded = next(iter(conditions.values()))["overall_excluding"]["excluded"]
        head.append(f"{kind} without {', '.join(excluded)}")
    head += [
        "prompt tokens/q",
        "completion tokens/q",
        "abstained",
        "latency p50 / p95 (s)",
        "cold p50 / p95 (s)",
        "warm p50 / p95 (s)",
        "sleep-time tokens/q",
        f"amortized cost/q ({report['settings']['weight']:g}x test-time)",
    ]
    lines += [_row(head), _row(["---"] * len(head))]
    for entry in conditions.values():
        o = entry["overall"]
        cells = [f"{entry['label']} (n={o['n']})", _score(o)]
        if has_excl:
            cells.append(_score(entry["overall_excluding"]))
        cells += [
            f"{o['mean_prompt_tokens']:,.0f}",
            f"{o['mean_completion_tokens']:.1f}",
            _share(o.get("abstention_rate")),
            f"{o['latency_p50_s']:.2f} / {o['latency_p95_s']:.2f}",
            _latency(o, "cold"),
            _latency(o, "warm"),
            f"{o['sleeptime_tokens_per_question']:,.0f}",
            f"{o['amortized_cost_per_question']:,.0f}",
        ]
        lines.append(_row(cells))
    cats: list[str] = []
    for entry in conditions.values():
        cats += [c for c in entry["by_category"] if c not in cats]
    names = list(conditions)
    lines += ["", f"By category ({kind}):", "", _row(["category", "n", *names])]
    lines.append(_row(["---"] * (len(names) + 2)))
    for cat in cats:
        stats = [conditions[n]["by_category"].get(cat, {}) for n in names]
        n = max((s.get("n", 0) for s in stats), default=0)
        lines.append(_row([cat, str(n), *(_score(s) if s else "-" for s in stats)]))
    paired = report.get("paired") or []
    if paired:
        lines += ["", "Paired, on the questions both conditions answered (question bootstrap):", ""]
        lines += [
            _row(["sleeptime vs", "n", "means", "difference [95% CI]", "ratio [95% CI]", ""]),
            _row(["---"] * 6),
        ]
        for p in paired:
            (dlo, dhi), (rlo, rhi) = p["difference_ci95"], p["ratio_ci95"]
            ratio = "-" if p["ratio"] is None else f"{p['ratio']:.2f}x"
            if rlo is not None and rhi is not None:
                ratio += f" [{rlo:.2f}, {rhi:.2f}]"
            lines.append(
                _row(
                    [
                        p["other"],
                        str(p["n"]),
                        f"{p['sleeptime_mean']:.3f} vs {p['other_mean']:.3f}",
                        f"{p['difference']:+.3f} [{dlo:+.3f}, {dhi:+.3f}]",
                        ratio,
                        "evidence" if p["evidence"] else "not evidence (interval includes 0)",
                    ]
                )
            )
    ingest = report["sleeptime_ingestion"]
    if ingest["per_dialogue"]:
        tokens = ingest["mean_tokens_per_dialogue"]
        lines += [
            "",
            f"Sleep-time ingestion: {len(ingest['per_dialogue'])} dialogues, "
            f"{tokens:,.0f} tokens per dialogue on average, "
            f"{ingest['total_wall_time_s'] / 60:.1f} min in all.",
        ]
    cache = report.get("prefix_cache", {})
    if cache.get("questions"):
        first, qfirst = cache["blocks_first"], cache["question_first"]
        lines += [
            "",
            f"Prefix cache ({cache['questions']} questions): blocks first "
            f"{first['mean_latency_s']:.2f} s ({first['mean_cached_prompt_tokens']:.0f} of "
            f"{first['mean_prompt_tokens']:.0f} prompt tokens cached) vs question first "
            f"{qfirst['mean_latency_s']:.2f} s ({qfirst['mean_cached_prompt_tokens']:.0f} "
            "cached).",
        ]
    return "\n".join(lines) + "\n"
