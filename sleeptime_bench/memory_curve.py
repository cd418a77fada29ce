r"""``sleeptime bench memory-curve``: one sleep-time setting swept across memory-bench runs.

Each run directory holds a ``locomo`` or ``longmemeval`` run of the ``sleeptime`` condition
built with a different setting, e.g. ``--keywords --samples 1``, ``2`` and ``4`` (#14's
F1-vs-k curve: more sleep-time compute per message). This reads their answers and their
ingestion logs, and writes one curve: each run's score with a 95% interval (bootstrap over
questions), its paired difference to a reference run on the questions both answered, and what
its memory cost to build (sleep-time tokens per ingested message, wall time). The reference
run's other conditions (raw-turn RAG, full context) are drawn as lines. No model is called.

Example (the keyword runs against the code-only default on the LoCoMo tuning split)::

    sleeptime bench memory-curve --benchmark locomo \
      --reference benchmarks/results/locomo/tuning-conv30-noempty \
      --runs benchmarks/results/locomo/tuning-conv30-keywords{,-k2,-k4} \
      --out benchmarks/results/locomo/tuning-conv30-keywords-curve
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from sleeptime_agent.errors import ConfigurationError
from sleeptime_bench.memqa import paired_difference, question_scores
from sleeptime_bench.plots import plot_setting_curve
from sleeptime_bench.report import write_report
from sleeptime_bench.results import ResultsFile
from sleeptime_bench.stateful_protocol import bootstrap_interval

__all__ = ["MODEL_SAMPLES", "curve_point", "register", "run_curve", "setting_value"]

#: The default x: model calls per message at ingestion (0 = the code-only pipeline).
MODEL_SAMPLES = "model-samples"

#: Categories left out of every score (LoCoMo's adversarial questions have no answer).
EXCLUDED = ("adversarial",)


def setting_value(settings: dict[str, Any], x: str, missing: float | None = None) -> float:
    """The run's value of the swept setting.

    ``model-samples`` is the number of model samples per ingested message: ``--samples`` when
    the pipeline calls the model (``--keywords`` or ``--facts``), else 0.

    Args:
        settings: The report's ``settings``.
        x: :data:`MODEL_SAMPLES` or a settings key (``-`` or ``_``).
        missing: The value of a run whose report predates the setting (``None``: refuse).

    Raises:
        ConfigurationError: The report has no such setting and no ``missing`` value is given.
    """
    if x == MODEL_SAMPLES:
        calls = settings.get("keywords") or settings.get("facts")
        return float(settings.get("samples", 1)) if calls else 0.0
    value = settings.get(x.replace("-", "_"))
    if value is None and missing is not None:
        return missing
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigurationError(
            f"--x {x}: the run's settings have no number {x!r} (older run? give --x-missing)"
        )
    return float(value)


def _load(directory: Path, benchmark: str) -> tuple[dict[str, Any], dict[str, float]]:
    report_path = directory / f"{benchmark}.json"
    results_path = directory / f"{benchmark}.jsonl"
    for path in (report_path, results_path):
        if not path.exists():
            raise ConfigurationError(f"{directory}: no {path.name} (not a {benchmark} run?)")
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    records = ResultsFile(results_path).latest().values()
    return report, question_scores(records, "sleeptime", EXCLUDED)


def _mean_interval(
    scores: list[float], samples: int = 2000, seed: int = 0
) -> tuple[float | None, float | None]:
    rng = random.Random(seed)
    n = len(scores)
    return bootstrap_interval(
        [sum(scores[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples)]
    )


def curve_point(
    directory: Path,
    benchmark: str,
    x: str,
    reference: dict[str, float] | None,
    label: str | None = None,
    missing: float | None = None,
) -> dict[str, Any]:
    """One run's point: setting, score with interval, paired difference, cost to build.

    Args:
        directory: The run's output directory.
        benchmark: ``locomo`` or ``longmemeval``.
        x: The swept setting (:data:`MODEL_SAMPLES` or a settings key).
        reference: The reference run's score per question (``None``: this is the reference).
        label: Shown in the table and plot (default: the directory name).
        missing: The setting's value for a run whose report predates it.

    Raises:
        ConfigurationError: Not a run of ``benchmark``, or it has no ``sleeptime`` answers.
    """
    report, scores = _load(directory, benchmark)
    return _point(directory, report, scores, x, reference, label, missing)


def _point(
    directory: Path,
    report: dict[str, Any],
    scores: dict[str, float],
    x: str,
    reference: dict[str, float] | None,
    label: str | None,
    missing: float | None,
) -> dict[str, Any]:
    if not scores:
        raise ConfigurationError(f"{directory}: no answered sleeptime questions")
    values = list(scores.values())
    ingestion = report.get("sleeptime_ingestion") or {}
    dialogues = ingestion.get("per_dialogue") or []
    messages = sum(int(d.get("messages", 0)) for d in dialogues)
    output = sum(int(d.get("output_tokens", 0)) for d in dialogues)
    tokens = output + sum(int(d.get("input_tokens", 0)) for d in dialogues)
    overall = (report.get("conditions") or {}).get("sleeptime", {}).get("overall", {})
    return {
        "label": label or directory.name,
        "directory": str(directory),
        "command": report.get("command"),
        "x": setting_value(report.get("settings") or {}, x, missing),
        "n": len(values),
        "complete": bool(report.get("complete")),
        "mean": sum(values) / len(values),
        "ci95": list(_mean_interval(values)),
        "vs_reference": (None if reference is None else paired_difference(scores, reference)),
        "sleeptime_tokens_per_message": tokens / messages if messages else 0.0,
        "sleeptime_output_tokens_per_message": output / messages if messages else 0.0,
        "sleeptime_wall_s": sum(float(d.get("wall_time_s", 0.0)) for d in dialogues),
        "ingested_messages": messages,
        "prompt_tokens_per_question": overall.get("mean_prompt_tokens"),
    }


def _baselines(report: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, entry in (report.get("conditions") or {}).items():
        overall = entry.get("overall", {})
        score = overall.get("mean_score", overall.get("accuracy"))
        if name != "sleeptime" and score is not None:
            out[name] = float(score)
    return out


def _interval(ci: list[float | None]) -> str:
    low, high = ci
    return "-" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"


def _markdown(data: dict[str, Any]) -> str:
    ref = data["reference"]
    lines = [
        f"# {data['benchmark_name']}: sleeptime score vs {data['x']}",
        "",
        f"`{data['command']}`",
        "",
        f"Reference: {ref['label']} ({data['x']} = {ref['x']:g}), {ref['mean']:.3f} on "
        f"{ref['n']} questions.",
        "",
        f"| run | {data['x']} | n | score [95% CI] | vs reference, paired [95% CI] | "
        "sleep-time tokens / message (output) | ingestion wall (min) | prompt tokens / q |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in [ref, *data["runs"]]:
        vs = p["vs_reference"]
        if vs is None:
            versus = "reference"
        else:
            word = "evidence" if vs["evidence"] else "not evidence"
            versus = (
                f"{vs['difference']:+.3f} {_interval(vs['difference_ci95'])} on {vs['n']} q, {word}"
            )
        low, high = p["ci95"]
        prompt = p["prompt_tokens_per_question"]
        lines.append(
            f"| {p['label']}{'' if p['complete'] else ' (partial)'} | {p['x']:g} | {p['n']} | "
            f"{p['mean']:.3f} [{low:.3f}, {high:.3f}] | {versus} | "
            f"{p['sleeptime_tokens_per_message']:.0f} "
            f"({p['sleeptime_output_tokens_per_message']:.0f}) | "
            f"{p['sleeptime_wall_s'] / 60:.1f} | {'-' if prompt is None else f'{prompt:.0f}'} |"
        )
    if data["baselines"]:
        lines += ["", "Other conditions of the reference run (drawn as lines):", ""]
        lines += [f"- {name}: {score:.3f}" for name, score in data["baselines"].items()]
    return "\n".join(lines) + "\n"


def run_curve(
    benchmark: str,
    reference: Path,
    runs: list[tuple[Path, str | None]],
    out: Path,
    x: str = MODEL_SAMPLES,
    missing: float | None = None,
) -> Path:
    """Write ``curve.json``, ``curve.md`` and ``curve.png`` under ``out``; return the JSON path.

    Raises:
        ConfigurationError: A directory is not a run of ``benchmark`` or has no answers.
    """
    ref_report, ref_scores = _load(reference, benchmark)
    ref = _point(reference, ref_report, ref_scores, x, None, None, missing)
    points = [curve_point(d, benchmark, x, ref_scores, label, missing) for d, label in runs]
    points.sort(key=lambda p: p["x"])
    data: dict[str, Any] = {
        "benchmark_name": benchmark,
        "x": x,
        "score": "token F1" if benchmark == "locomo" else "accuracy",
        "excluded_categories": list(EXCLUDED),
        "reference": ref,
        "runs": points,
        "baselines": _baselines(ref_report),
        "notes": [
            "Intervals: bootstrap over questions (2,000 resamples, seed 0); the paired "
            "difference resamples the questions both runs answered.",
            "Sleep-time tokens per message: input + output of every ingestion call of the run, "
            "over the messages ingested (0 for the code-only pipeline).",
        ],
        "files": {"tables": "curve.md", "plot": "curve.png"},
    }
    path = write_report(out, "curve", data)
    written = json.loads(path.read_text(encoding="utf-8"))
    (out / "curve.md").write_text(_markdown(written), encoding="utf-8")
    plot_setting_curve(
        [ref, *points],
        data["baselines"],
        out / "curve.png",
        xlabel=x,
        ylabel=data["score"],
        title=f"{benchmark}: sleeptime {data['score']} vs {x}",
    )
    return path


def _run_arg(value: str) -> tuple[Path, str | None]:
    directory, _, label = value.partition("=")
    return Path(directory), label or None


def register(sub: Any) -> None:
    """Add ``sleeptime bench memory-curve``."""
    p = sub.add_parser(
        "memory-curve",
        help="memory benches: score vs a sleep-time setting across runs (no model)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--benchmark", choices=("locomo", "longmemeval"), default="locomo")
    p.add_argument(
        "--runs",
        nargs="+",
        required=True,
        metavar="DIR[=LABEL]",
        help="run directories, each a sleeptime run with another value of the setting",
    )
    p.add_argument(
        "--reference",
        required=True,
        type=Path,
        help="the run every other is paired with (its rag / full-context lines are drawn too)",
    )
    p.add_argument(
        "--x",
        default=MODEL_SAMPLES,
        help=f"the swept setting: {MODEL_SAMPLES} (model samples per ingested message, "
        "0 = code only; the default) or a numeric key of the report's settings, e.g. rag_k",
    )
    p.add_argument(
        "--x-missing",
        type=float,
        default=None,
        help="the setting's value in runs whose report predates it (e.g. 10 for recall_k)",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")

    def command(args: argparse.Namespace) -> int:
        runs = [_run_arg(v) for v in args.runs]
        path = run_curve(
            args.benchmark, args.reference, runs, args.out, x=args.x, missing=args.x_missing
        )
        print(f"report: {path}")  # noqa: T201 - the CLI's own output
        return 0

    p.set_defaults(func=command)
