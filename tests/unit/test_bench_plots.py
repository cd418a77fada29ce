"""The plots write real PNG files."""

from __future__ import annotations

from pathlib import Path

from sleeptime_bench.cost import amortization_curves
from sleeptime_bench.plots import (
    family_of,
    plot_amortization,
    plot_pareto,
    plot_scaling,
    plot_score_vs_cost,
)
from sleeptime_bench.results import ConditionSummary, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _summary() -> dict[str, ConditionSummary]:
    recs = []
    for family, base_acc in (("baseline", 0.4), ("sleeptime", 0.6)):
        for v in range(5):
            for k in (1, 2, 5) if family == "sleeptime" else (None,):
                for i in range(20):
                    recs.append(
                        {
                            "item_id": str(i),
                            "condition": f"{family}-v{v}" + (f"-k{k}" if k else ""),
                            "family": family,
                            "verbosity": v,
                            "k": k,
                            "correct": i < 20 * min(1.0, base_acc + 0.05 * v + 0.02 * (k or 0)),
                            "testtime_completion_tokens": 20 + 60 * v,
                            "sleeptime_tokens": 400 if k else 0,
                        }
                    )
    return summarize(recs)


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5000  # axes, labels and lines, not an empty canvas


def test_plot_pareto(tmp_path: Path) -> None:
    _assert_png(plot_pareto(_summary(), tmp_path / "pareto.png"))


def test_plot_scaling(tmp_path: Path) -> None:
    _assert_png(plot_scaling(_summary(), tmp_path / "nested" / "scaling.png"))


def test_plot_amortization(tmp_path: Path) -> None:
    _assert_png(plot_amortization(amortization_curves(1000, 50, 250), tmp_path / "amort.png"))


def test_plot_score_vs_cost_accepts_json_summary(tmp_path: Path) -> None:
    summary = summarize(
        [
            {
                "item_id": "q1",
                "condition": "full-context",
                "score": 0.7,
                "testtime_prompt_tokens": 26000,
            },
            {
                "item_id": "q1",
                "condition": "sleeptime",
                "score": 0.6,
                "testtime_prompt_tokens": 1700,
                "sleeptime_tokens": 300,
            },
        ]
    )
    as_json = {k: v.model_dump() for k, v in summary.items()}
    _assert_png(plot_score_vs_cost(as_json, tmp_path / "locomo.png"))


def test_family_of() -> None:
    s = _summary()
    assert family_of(s["sleeptime-v3-k2"]) == "sleeptime"
    bare = ConditionSummary.model_validate({**s["baseline-v0"].model_dump(), "family": None})
    assert family_of(bare) == "baseline"
