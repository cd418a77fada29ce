"""``sleeptime bench stateful-gsm|stateful-gsm-p1|stateful-gsm-symbolic|stateful-aime``.

The paper's test-time vs sleep-time trade. ``stateful-gsm`` runs Apple's shipped P2 instances;
``stateful-gsm-p1`` and ``stateful-gsm-symbolic`` generate P1 and base-set instances from the
templates at run time (:mod:`sleeptime_bench.gsm_symbolic`, fixed ``--seed``, never written).

Each problem is split into a context and a question. Conditions, per item:

- ``baseline-v<L>``: the primary answers from the context alone at verbosity ``L`` (0..4).
- ``sleeptime-k<K>-v<L>``: first the sleep-time agent writes notes ``c'`` on the context only,
  ``K`` times (:class:`~sleeptime_bench.stateful_qa.NotesWriter`, ``--notes``: a plain-text
  analysis the product's edit loop saves as a memory block, the analysis itself, or the
  quantities of a model-written program computed by code); the primary then answers from the
  context plus the combined notes.

Sleep-time samples are nested: sample 0 is greedy (temperature 0) and is the ``k=1`` notes;
samples 1.. are drawn at ``--sleep-temperature``; ``k=K`` combines samples ``0..K-1`` (see
:func:`~sleeptime_bench.stateful_qa.combine_notes`). Nesting means a larger ``k`` only
adds information, and it saves runs.

Results are appended to ``answers.jsonl`` (one line per item and condition) and
``sleeptime.jsonl`` (one line per item and sample, with the notes) in the output directory; a
rerun skips what is done. The report ``<bench>.json`` and the plots are rewritten at the end.

Token accounting: test-time tokens are the primary's completion tokens (the paper's measure);
prompt tokens are reported beside them. Sleep-time tokens are the sleep-time agent's
completion tokens over all samples a condition uses; its prompt tokens are reported separately
(``mean_sleeptime_prompt_tokens``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from tqdm import tqdm

from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.models import resolve_model, with_temperature
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_bench.cost import BudgetMatch, BudgetPoint, matched_budget
from sleeptime_bench.data import StatefulItem, data_dir, load_aime, load_gsm_p2
from sleeptime_bench.gsm_symbolic import load_gsm_symbolic
from sleeptime_bench.gsm_templates import Split
from sleeptime_bench.gsm_validate import cached_validation
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.plots import plot_pareto, plot_scaling
from sleeptime_bench.report import command_line, write_report
from sleeptime_bench.results import ConditionSummary, ResultRecord, ResultsFile, summarize
from sleeptime_bench.scoring import extract_answer, mentions_number, score_aime
from sleeptime_bench.stateful_protocol import (
    MAX_CUTOFF_SHARE,
    cutoff_rates,
    headline_ratio,
    item_gap,
    pair_evidence,
    rescore,
    savings_along_curve,
    score_capped,
)
from sleeptime_bench.stateful_qa import (
    COMBINE_MODES,
    NOTES_MODES,
    CombineMode,
    Notes,
    NotesMode,
    NotesWriter,
    aanswer,
    combine_notes,
)

__all__ = [
    "ANSWERS_FILE",
    "BENCHMARKS",
    "DEFAULT_NOTES",
    "RUNS_FILE",
    "DEFAULT_MAX_TOKENS",
    "GENERATED",
    "P1_MAX_TOKENS",
    "REPORT_TEMPLATES",
    "TUNING_TEMPLATES",
    "protocol_headline",
    "SLEEP_FILE",
    "StatefulConfig",
    "condition_name",
    "headline",
    "load_results",
    "parse_combine",
    "parse_ints",
    "parse_range",
    "register",
    "run_stateful",
]

ANSWERS_FILE = "answers.jsonl"
SLEEP_FILE = "sleeptime.jsonl"
RUNS_FILE = "runs.jsonl"
#: Completion-token caps per verbosity level 0..4 (the answer-only level needs a handful).
DEFAULT_MAX_TOKENS = (32, 64, 128, 192, 256)
#: Caps of the generated benchmarks: high enough that at most 10% of answers are cut off at the
#: top budget (the first P2 caps cut off 95-99% there; picked on the P1 tuning run).
P1_MAX_TOKENS = (64, 128, 256, 512, 768)
BENCHMARKS = ("stateful-gsm", "stateful-gsm-p1", "stateful-gsm-symbolic", "stateful-aime")
#: The generated GSM-Symbolic benchmarks and their template split.
GENERATED: dict[str, Split] = {"stateful-gsm-p1": "p1", "stateful-gsm-symbolic": "symbolic"}
#: Template ranges: prompts and caps are tuned on the first, the report runs on the second.
TUNING_TEMPLATES = {"stateful-gsm": (0, 24), "stateful-gsm-p1": (0, 49)}
#: Notes mode per benchmark where it is not the edit loop: program notes scored best of the
#: three on the P1 tuning split (12 items, results/stateful-gsm-p1/tuning-program/).
DEFAULT_NOTES: dict[str, NotesMode] = {
    "stateful-gsm-p1": "program",
    "stateful-gsm-symbolic": "program",
}
REPORT_TEMPLATES = {"stateful-gsm": (25, 49), "stateful-gsm-p1": (50, 99)}


@dataclass(kw_only=True)
class StatefulConfig:
    """Settings of one stateful benchmark run (the CLI options)."""

    bench: str = "stateful-gsm"
    """One of :data:`BENCHMARKS`."""
    limit: int | None = None
    model: str = "local"
    out: Path = field(default_factory=lambda: Path(default_out("stateful-gsm")))
    data: str | None = None
    templates: tuple[int, ...] = tuple(range(25, 50))
    """GSM-Symbolic templates (P2: prompts were tuned on 0-24 only; P1: caps on 0-49)."""
    seed: int = 0
    """Generation seed of the P1 and base-set instances."""
    tuning: str | None = None
    """The committed tuning run this report's settings were picked on (recorded)."""
    verbosity: tuple[int, ...] = (0, 1, 2, 3, 4)
    ks: tuple[int, ...] = (1, 2, 5)
    max_tokens: tuple[int, ...] = DEFAULT_MAX_TOKENS
    """Completion-token cap per verbosity level 0..4."""
    k_limit: int | None = None
    """Run ``k > 1`` on the first this many items only (``None``: all)."""
    k_verbosity: tuple[int, ...] | None = None
    """Verbosity levels for ``k > 1`` (``None``: the same as ``verbosity``)."""
    combine: tuple[CombineMode, ...] = ("all",)
    """How ``k > 1`` samples become one set of notes; each mode is its own condition family
    (``sleeptime`` for ``all``, ``sleeptime-agreed``), answered from the same samples."""
    sleep_temperature: float = 0.7
    sleep_max_tokens: int = 400
    """Completion-token cap per sleep-time model call."""
    sleep_max_steps: int = 4
    notes: NotesMode = "edit-loop"
    """How the sleep-time step becomes the notes: ``edit-loop`` (the model saves its analysis
    in at most 8 short lines with ``memory_rethink``), ``analysis`` (code stores the analysis
    as the block) or ``program`` (the model writes Python assignments, code computes them).
    One results directory holds one mode. The CLI's default is per benchmark
    (:data:`DEFAULT_NOTES`: program notes for the generated ones)."""
    chunk: int = 10
    report_only: bool = False
    unit_timeout: float = 1800.0
    """Seconds one sleep-time run or answer may take; a stuck call is recorded as an error
    (retried on the next run) instead of stalling the whole benchmark."""
    """Make no model calls: report on the items whose every condition is finished."""
    """Items whose sleep-time runs go back to back before their answers (prefix cache)."""
    threads: int | None = None
    """CPU threads of the local model (``None``: its default). On a shared machine 1 thread
    can be several times faster than 2: llama.cpp's threads wait on each other at every layer."""
    parallel: int = 1
    """Items worked on at once. With the local model each gets its own llama.cpp slot and the
    slots decode in one batch (measured 1.26x the tokens/s of one stream on 2 cores)."""

    @property
    def k_levels(self) -> tuple[int, ...]:
        """Verbosity levels run with ``k > 1``."""
        return self.verbosity if self.k_verbosity is None else self.k_verbosity


def parse_combine(text: str) -> tuple[CombineMode, ...]:
    """``"all,agreed"`` -> ``("all", "agreed")``.

    Raises:
        ConfigurationError: An unknown mode.
    """
    modes: list[CombineMode] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part not in COMBINE_MODES:
            raise ConfigurationError(
                f"--combine: unknown mode {part!r} (choose from {', '.join(COMBINE_MODES)})"
            )
        modes.append(part)
    if not modes:
        raise ConfigurationError("--combine: give at least one mode")
    return tuple(dict.fromkeys(modes))


def parse_ints(text: str) -> tuple[int, ...]:
    """Parse ``"0,1,2"`` (ranges like ``"0-4"`` allowed inside) into integers.

    Args:
        text: Comma-separated integers or ``A-B`` ranges.

    Returns:
        The integers in order, without duplicates.
    """
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        values = parse_range(part) if "-" in part[1:] else (int(part),)
        out.extend(v for v in values if v not in out)
    return tuple(out)


def parse_range(text: str) -> tuple[int, ...]:
    """Parse ``"25-49"`` (inclusive) or a single number.

    Args:
        text: ``A-B`` or ``A``.

    Returns:
        The integers ``A..B``.

    Raises:
        ValueError: ``B < A`` or not numbers.
    """
    lo, _, hi = text.strip().partition("-")
    a, b = int(lo), int(hi or lo)
    if b < a:
        raise ValueError(f"empty range {text!r}")
    return tuple(range(a, b + 1))


def condition_name(k: int | None, verbosity: int, combine: CombineMode = "all") -> str:
    """The condition's name: ``baseline-v<L>``, ``sleeptime-k<K>-v<L>``, ``sleeptime-agreed-...``.

    ``k=None`` is the baseline; ``k > 1`` samples combined another way than ``all`` are the
    ``sleeptime-<combine>-k<K>-v<L>`` family.
    """
    if k is None:
        return f"baseline-v{verbosity}"
    return f"{_family(k, combine)}-k{k}-v{verbosity}"


def _gain_vs_k1(
    cfg: StatefulConfig, answers: Sequence[ResultRecord], items: Sequence[str], ks: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Each k > 1 condition family against k = 1 on the same items, over the k budgets.

    The issue's "scaling k lifts accuracy at the low budgets": an item's accuracy is its mean
    over the budgets, and the interval resamples items (``item_gap``).
    """
    one = [condition_name(1, v) for v in cfg.k_levels]
    out: dict[str, dict[str, Any]] = {}
    for combine in cfg.combine:
        for k in ks:
            cond = [condition_name(k, v, combine) for v in cfg.k_levels]
            gap = item_gap(answers, items, one, cond)
            out[f"{_family(k, combine)}-k{k}"] = {
                "n_items": gap["n_items"],
                "k1_accuracy": gap["baseline"],
                "accuracy": gap["sleeptime"],
                "gain": gap["gap"],
                "gain_ci95": gap["gap_ci95"],
            }
    return out


def _family(k: int | None, combine: CombineMode) -> str:
    if k is None:
        return "baseline"
    # One sample is the same notes however samples are combined.
    return "sleeptime" if combine == "all" or k <= 1 else f"sleeptime-{combine}"


def _sample_key(j: int) -> str:
    return f"sample-{j}"


# ----------------------------------------------------------------------------- the run


@dataclass
class _Unit:
    """One piece of pending work: a sleep-time sample, or an answer under a condition."""

    item: StatefulItem
    sample: int | None = None
    k: int | None = None
    verbosity: int = 0
    combine: CombineMode = "all"


@dataclass
class _Runner:
    cfg: StatefulConfig
    model: BaseChatModel
    answers: ResultsFile
    sleeps: ResultsFile
    notes: dict[tuple[str, int], ResultRecord] = field(default_factory=dict)
    _writers: dict[bool, NotesWriter] = field(default_factory=dict)
    _store: ChromaBlockStore | None = None

    def writer(self, sampled: bool) -> NotesWriter:
        if sampled not in self._writers:
            if self._store is None:
                self._store = ChromaBlockStore.ephemeral()
            base = self.model.model_copy()
            if "max_tokens" in type(base).model_fields:
                base = base.model_copy(update={"max_tokens": self.cfg.sleep_max_tokens})
            model = with_temperature(base, self.cfg.sleep_temperature) if sampled else base
            self._writers[sampled] = NotesWriter(
                model,
                self._store,
                max_steps=self.cfg.sleep_max_steps,
                mode=self.cfg.notes,
            )
        return self._writers[sampled]

    async def sample(self, unit: _Unit) -> None:
        assert unit.sample is not None
        item, j = unit.item, unit.sample
        try:
            run = self.writer(j > 0).arun(
                item.context, ("bench", self.cfg.bench, item.id, _sample_key(j), _nonce())
            )
            notes: Notes | None = await asyncio.wait_for(run, self.cfg.unit_timeout)
            error = None
        except Exception as exc:  # recorded and retried on the next run, never fatal
            notes, error = None, f"{type(exc).__name__}: {exc}"
        record = ResultRecord.model_validate(
            {
                "item_id": item.id,
                "condition": _sample_key(j),
                "benchmark": self.cfg.bench,
                "family": "sleeptime-notes",
                "prediction": notes.text if notes else "",
                "sleeptime_tokens": notes.output_tokens if notes else 0,
                "wall_time_s": notes.wall_time_s if notes else 0.0,
                "error": error,
                "sleeptime_prompt_tokens": notes.input_tokens if notes else 0,
                "steps": notes.steps if notes else 0,
                "status": notes.status if notes else "error",
                "failures": notes.failures if notes else 0,
                "problems": list(notes.problems) if notes else [],
                "temperature": self.cfg.sleep_temperature if j > 0 else 0.0,
                "notes_mode": self.cfg.notes,
            }
        )
        self.sleeps.append(record)
        if error is None:
            self.notes[(item.id, j)] = record

    async def answer(self, unit: _Unit) -> None:
        item, k, v, combine = unit.item, unit.k, unit.verbosity, unit.combine
        samples: list[ResultRecord] = []
        if k is not None:
            samples = [self.notes[(item.id, j)] for j in range(k) if (item.id, j) in self.notes]
            if len(samples) < k:
                return  # a sample failed this run: the condition is retried on the next run
        notes = combine_notes([s.prediction for s in samples], combine) if samples else None
        cap = self.cfg.max_tokens[v] if v < len(self.cfg.max_tokens) else None
        base: dict[str, Any] = {
            "item_id": item.id,
            "condition": condition_name(k, v, combine),
            "benchmark": self.cfg.bench,
            "family": _family(k, combine),
            "verbosity": v,
            "k": k,
            "gold": item.answer,
            "template_id": item.template_id,
            "max_tokens": cap,
            "sleeptime_tokens": sum(s.sleeptime_tokens for s in samples),
            "sleeptime_prompt_tokens": sum(
                _extra_int(s, "sleeptime_prompt_tokens") for s in samples
            ),
            "notes_chars": len(notes or ""),
        }
        try:
            reply = await asyncio.wait_for(
                aanswer(
                    self.model,
                    item.context,
                    item.question,
                    notes=notes,
                    verbosity=v,
                    max_tokens=cap,
                ),
                self.cfg.unit_timeout,
            )
        except Exception as exc:  # recorded and retried on the next run
            self.answers.append({**base, "error": f"{type(exc).__name__}: {exc}"})
            return
        cut = cap is not None and reply.completion_tokens >= cap
        if self.cfg.bench == "stateful-aime":
            right = score_aime(reply.text, item.answer)
        else:
            # A cut-off answer counts only with an explicit final answer (stateful_protocol).
            right = score_capped(reply.text, item.answer, was_cut_off=cut)
        self.answers.append(
            {
                **base,
                "correct": right,
                "cut_off": cut,
                "prediction": reply.text,
                "extracted": extract_answer(reply.text, last_number=not cut),
                "testtime_completion_tokens": reply.completion_tokens,
                "testtime_prompt_tokens": reply.prompt_tokens,
                "wall_time_s": reply.wall_time_s,
            }
        )


def _nonce() -> str:
    # A rerun of a failed sample must not find the previous attempt's block.
    return f"{time.time_ns():x}"


def _check_notes_mode(cfg: StatefulConfig, samples: Iterable[ResultRecord]) -> None:
    # Notes written one way must not be answered from as if written the other way.
    for rec in samples:
        mode = (rec.model_extra or {}).get("notes_mode") or "edit-loop"
        if mode != cfg.notes:
            raise ConfigurationError(
                f"{cfg.out} holds notes written with --notes {mode}; this run asks for "
                f"--notes {cfg.notes}. Use another --out for the other mode."
            )


def _extra_int(record: ResultRecord, name: str) -> int:
    extra = record.model_extra or {}
    return int(extra.get(name) or 0)


def _plan(
    cfg: StatefulConfig,
    items: Sequence[StatefulItem],
    done_answers: set[tuple[str, str]],
    done_samples: set[tuple[str, str]],
) -> list[_Unit]:
    """Pending work in run order: baseline and ``k=1`` for every item first, then ``k > 1``.

    Stopping early therefore leaves complete items behind, and the ``k > 1`` subset is the
    first ``k_limit`` items.
    """
    ks = sorted(set(cfg.ks))
    k1 = [k for k in ks if k <= 1]
    more = [k for k in ks if k > 1]
    k_items = items if cfg.k_limit is None else items[: cfg.k_limit]
    units: list[_Unit] = []

    def add_samples(item: StatefulItem, upto: int, start: int = 0) -> None:
        for j in range(start, upto):
            if (item.id, _sample_key(j)) not in done_samples:
                units.append(_Unit(item, sample=j))

    def add_answers(
        item: StatefulItem, k: int | None, levels: Iterable[int], combine: CombineMode = "all"
    ) -> None:
        for v in levels:
            if (item.id, condition_name(k, v, combine)) not in done_answers:
                units.append(_Unit(item, k=k, verbosity=v, combine=combine))

    # Items go in chunks: the chunk's sleep-time runs back to back (they share the long
    # instruction prefix in llama.cpp's cache), then its answers item by item (the verbosity
    # levels of an item share the context prefix).
    for start in range(0, len(items), cfg.chunk):
        chunk = items[start : start + cfg.chunk]
        if k1:
            for item in chunk:
                add_samples(item, 1)
        for item in chunk:
            add_answers(item, None, cfg.verbosity)
            if k1:
                add_answers(item, 1, cfg.verbosity)
    if more:
        for start in range(0, len(k_items), cfg.chunk):
            chunk = k_items[start : start + cfg.chunk]
            for item in chunk:
                add_samples(item, max(more), start=1 if k1 else 0)
            for item in chunk:
                for k in more:
                    for combine in cfg.combine:
                        add_answers(item, k, cfg.k_levels, combine)
    return units


def load_items(cfg: StatefulConfig) -> list[StatefulItem]:
    """The items a configuration runs on.

    Args:
        cfg: The run settings.

    Returns:
        GSM-Symbolic P2 items of ``cfg.templates`` (ordered so a prefix covers every template),
        or AIME items, cut to ``cfg.limit``.
    """
    root = data_dir(cfg.data)
    if cfg.bench == "stateful-gsm":
        return load_gsm_p2(root, limit=cfg.limit, templates=cfg.templates)
    if cfg.bench in GENERATED:
        return load_gsm_symbolic(
            root, GENERATED[cfg.bench], templates=cfg.templates, limit=cfg.limit, seed=cfg.seed
        )
    items = load_aime(root)
    return items if cfg.limit is None else items[: cfg.limit]


async def _arun(cfg: StatefulConfig, model: BaseChatModel, items: list[StatefulItem]) -> int:
    answers = ResultsFile(cfg.out / ANSWERS_FILE)
    sleeps = ResultsFile(cfg.out / SLEEP_FILE)
    latest = sleeps.latest()
    _check_notes_mode(cfg, latest.values())
    runner = _Runner(cfg, model, answers, sleeps)
    for key, rec in latest.items():
        if rec.error is None:
            runner.notes[(key[0], int(key[1].split("-")[1]))] = rec
    units = _plan(cfg, items, answers.done_keys(), sleeps.done_keys())
    # An item's units stay in plan order (its answers need its samples); items run side by
    # side up to ``cfg.parallel``.
    by_item: dict[str, list[_Unit]] = {}
    for unit in units:
        by_item.setdefault(unit.item.id, []).append(unit)
    slots = asyncio.Semaphore(max(1, cfg.parallel))
    with tqdm(total=len(units), desc=cfg.bench, unit="call", dynamic_ncols=True) as bar:

        async def work(item_units: list[_Unit]) -> None:
            async with slots:
                for unit in item_units:
                    bar.set_postfix_str(
                        f"{unit.item.id} "
                        + (
                            f"sleep s{unit.sample}"
                            if unit.sample is not None
                            else condition_name(unit.k, unit.verbosity)
                        ),
                        refresh=False,
                    )
                    if unit.sample is not None:
                        await runner.sample(unit)
                    else:
                        await runner.answer(unit)
                    bar.update(1)

        await asyncio.gather(*(work(u) for u in by_item.values()))
    return len(units)


# ----------------------------------------------------------------------------- reporting


def load_results(
    out: Path, item_ids: Iterable[str] | None = None
) -> tuple[list[ResultRecord], list[ResultRecord]]:
    """The latest answer and sleep-time records of a results directory.

    Args:
        out: The directory holding ``answers.jsonl`` and ``sleeptime.jsonl``.
        item_ids: Keep only these items (``None``: all).

    Returns:
        ``(answers, samples)``, errored records left out.
    """
    keep = None if item_ids is None else set(item_ids)

    def latest(name: str) -> list[ResultRecord]:
        recs = ResultsFile(out / name).latest().values()
        return [r for r in recs if r.error is None and (keep is None or r.item_id in keep)]

    return latest(ANSWERS_FILE), latest(SLEEP_FILE)


def _points(summary: dict[str, ConditionSummary], k: int | None) -> list[BudgetPoint]:
    out = []
    for s in summary.values():
        if s.k == k and s.accuracy is not None and s.verbosity is not None:
            family_ok = s.family == ("baseline" if k is None else "sleeptime")
            if family_ok:
                out.append(
                    BudgetPoint(f"v{s.verbosity}", s.accuracy, s.mean_testtime_completion_tokens)
                )
    return sorted(out, key=lambda p: str(p.budget))


def _match_dict(match: BudgetMatch, summary: dict[str, ConditionSummary], k: int) -> dict[str, Any]:
    def side(point: BudgetPoint, kk: int | None) -> dict[str, Any]:
        s = summary[condition_name(kk, int(str(point.budget)[1:]))]
        return {
            "condition": s.condition,
            "n": s.n_scored,
            "accuracy": s.accuracy,
            "ci95": [s.ci_low, s.ci_high],
            "mean_testtime_completion_tokens": s.mean_testtime_completion_tokens,
            "mean_sleeptime_tokens": s.mean_sleeptime_tokens,
        }

    return {
        "baseline": side(match.baseline, None),
        "sleeptime": side(match.sleeptime, k),
        "exact": match.exact,
        "testtime_token_ratio": match.token_ratio,
    }


def headline(summary: dict[str, ConditionSummary], k: int = 1) -> dict[str, Any] | None:
    """Baseline vs sleep-time test-time completion tokens at matched accuracy.

    Args:
        summary: Per-condition summaries (baseline and ``sleeptime-k<k>`` levels).
        k: Which sleep-time scale to compare.

    Returns:
        The match (see :func:`~sleeptime_bench.cost.matched_budget`) with both sides'
        accuracy, interval and tokens, or ``None`` when a side has no points.
    """
    base, sleep = _points(summary, None), _points(summary, k)
    if not base or not sleep:
        return None
    match = _match_dict(matched_budget(base, sleep), summary, k)
    # Only the matched pair counts: sleep-time at its budget against the baseline at the
    # same budget (what the notes bought there). Any two conditions separating, which the
    # first P2 report used, says nothing about this pair.
    level = int(str(match["sleeptime"]["condition"]).rsplit("-v", 1)[1])
    same = summary.get(condition_name(None, level))
    s_row = summary[match["sleeptime"]["condition"]]
    separated = bool(
        same is not None
        and None not in (same.ci_low, same.ci_high, s_row.ci_low, s_row.ci_high)
        and (s_row.ci_low > same.ci_high or same.ci_low > s_row.ci_high)  # type: ignore[operator]
    )
    match["same_budget_baseline"] = same.condition if same is not None else None
    match["accuracies_distinguishable"] = separated
    if not separated:
        match["caveat"] = (
            f"the 95% intervals of {s_row.condition} and {match['same_budget_baseline']} "
            "overlap: the matched budget, and the token ratio, are not evidence"
        )
    return match


def protocol_headline(
    answers: Sequence[ResultRecord], verbosity: Sequence[int], k: int = 1
) -> dict[str, Any]:
    """The paper's headline under the corrected protocol (:mod:`.stateful_protocol`).

    Tokens at equal accuracy are read off the interpolated accuracy-vs-tokens curves (the
    baseline's best accuracy, over the tokens sleep-time needs for it), with an item-bootstrap
    interval; the matched pair is sleep-time at the first budget reaching that accuracy against
    the baseline at the same budget; the result is evidence only when that pair's intervals
    separate and the ratio's interval excludes 1.

    Args:
        answers: Scored answer records (every condition of every reported item).
        verbosity: The budgets both sides ran.
        k: The sleep-time scale.

    Returns:
        ``equal_accuracy``, ``pairs`` (per budget), ``matched_pair``, ``evidence`` and
        ``statement``.
    """
    base = [condition_name(None, v) for v in verbosity]
    sleep = [condition_name(k, v) for v in verbosity]
    ratio = headline_ratio(answers, base, sleep)
    pairs = {
        f"v{v}": pair_evidence(answers, b, s)
        for v, b, s in zip(verbosity, base, sleep, strict=True)
    }
    matched = None
    for v, s in zip(verbosity, sleep, strict=True):
        acc = pairs[f"v{v}"][s]["accuracy"]
        if ratio.get("target") is not None and acc is not None and acc >= ratio["target"]:
            matched = f"v{v}"
            break
    lo = ratio.get("ci95", [None, None])[0]
    separated = matched is not None and bool(pairs[matched]["separated"])
    evidence = bool(separated and lo is not None and lo > 1 and ratio.get("ratio"))
    if ratio.get("ratio") is None:
        statement = (
            "not evidence: sleep-time never reaches the baseline's best accuracy "
            f"({ratio.get('target')}) on these items"
        )
    elif not separated:
        statement = (
            f"not evidence: at the matched budget ({matched}) the 95% intervals of sleep-time "
            "and the baseline overlap"
        )
    elif not evidence:
        statement = "not evidence: the ratio's bootstrap interval reaches 1"
    else:
        statement = (
            f"evidence: sleep-time reaches the baseline's best accuracy with "
            f"{ratio['ratio']:.1f}x fewer test-time tokens (95% CI {lo:.1f}-{ratio['ci95'][1]:.1f})"
        )
    return {
        "k": k,
        "equal_accuracy": ratio,
        "along_curve": savings_along_curve(answers, base, sleep),
        "pairs": pairs,
        "matched_pair": matched,
        "evidence": evidence,
        "statement": statement,
    }


def _condition_rows(
    summary: dict[str, ConditionSummary], answers: list[ResultRecord]
) -> dict[str, Any]:
    prompt_sleep: dict[str, list[int]] = {}
    capped: dict[str, list[bool]] = {}
    for r in answers:
        prompt_sleep.setdefault(r.condition, []).append(_extra_int(r, "sleeptime_prompt_tokens"))
        cap = _extra_int(r, "max_tokens")
        capped.setdefault(r.condition, []).append(0 < cap <= r.testtime_completion_tokens)
    rows: dict[str, Any] = {}
    for name, s in summary.items():
        row = s.model_dump()
        values = prompt_sleep.get(name, [])
        row["mean_sleeptime_prompt_tokens"] = sum(values) / len(values) if values else 0.0
        hits = capped.get(name, [])
        # Answers cut off by the verbosity level's token cap (scored on what they wrote).
        row["share_at_token_cap"] = sum(hits) / len(hits) if hits else 0.0
        row["total_wall_time_s"] = s.mean_wall_time_s * (s.n - s.n_errors)
        rows[name] = row
    return rows


def _order(summary: dict[str, ConditionSummary]) -> dict[str, ConditionSummary]:
    return dict(sorted(summary.items(), key=lambda kv: (kv[1].k or 0, kv[1].verbosity or 0, kv[0])))


def _gold_in_notes(
    items: Sequence[StatefulItem],
    samples: Sequence[ResultRecord],
    ks: Sequence[int],
    combine: CombineMode = "all",
) -> dict[str, Any]:
    """Per ``k``: share of items with ``k`` samples whose combined notes mention the gold."""
    notes: dict[tuple[str, int], str] = {}
    for r in samples:
        notes[(r.item_id, int(r.condition.split("-")[1]))] = r.prediction
    out: dict[str, Any] = {}
    for k in sorted(set(ks)):
        have = [it for it in items if all((it.id, j) in notes for j in range(k))]
        hits = 0
        for it in have:
            texts = [notes[(it.id, j)] for j in range(k)]
            # 'all' shows every sample; its "[notes N]" headers would count as numbers.
            shown = texts if combine == "all" else [combine_notes(texts, combine)]
            hits += any(mentions_number(t, it.answer) for t in shown)
        out[f"k{k}"] = {"n": len(have), "share": hits / len(have) if have else None}
    return out


def write_stateful_report(
    cfg: StatefulConfig,
    items: list[StatefulItem],
    elapsed_s: float,
    *,
    requested: int | None = None,
) -> Path:
    """Summarize a results directory into ``<bench>.json``, ``pareto.png`` and ``scaling.png``.

    Args:
        cfg: The run settings (recorded in the report).
        items: The items of the run (records of other items in the directory are ignored).
        elapsed_s: Wall time of this invocation.
        requested: How many items the configuration asked for, when the report covers fewer.

    Returns:
        The JSON report's path.
    """
    ids = [it.id for it in items]
    answers, samples = load_results(cfg.out, ids)
    if cfg.bench != "stateful-aime":
        # Records written by the old scorer (last-number fallback on cut-off answers) are
        # scored again with the corrected one; the stored predictions are unchanged.
        answers = rescore(answers)
    summary = _order(summarize(answers))
    k_ids = ids if cfg.k_limit is None else ids[: cfg.k_limit]
    more = sorted(k for k in cfg.ks if k > 1)
    # The Pareto plot and headline use conditions run on every item; k > 1 on a subset is
    # compared with k = 1 and the baseline on that same subset only.
    full = {c: s for c, s in summary.items() if s.n_scored == len(ids) or not more}
    k_set = set(k_ids)
    subset_answers = [r for r in answers if r.item_id in k_set]
    k_items = [it for it in items if it.id in k_set]
    agreed_cover = (
        {"gold_in_notes_k_subset_agreed": _gold_in_notes(k_items, samples, cfg.ks, "agreed")}
        if more and "agreed" in cfg.combine
        else {}
    )
    subset = _order(summarize(r for r in subset_answers if r.verbosity in cfg.k_levels))
    plots = [str(plot_pareto(full or summary, cfg.out / "pareto.png", _title(cfg, len(ids))))]
    if more:
        plots.append(
            str(
                plot_scaling(
                    subset, cfg.out / "scaling.png", _title(cfg, len(k_ids), "accuracy vs k")
                )
            )
        )
    sample_wall = sum(r.wall_time_s for r in samples)
    answer_wall = sum(r.wall_time_s for r in answers)
    reductions = []
    if requested is not None and requested > len(ids):
        reductions.append(
            f"stopped at a time limit: reported on the {len(ids)} of {requested} requested "
            "items whose every condition finished"
        )
    if cfg.k_limit is not None and more:
        reductions.append(f"k > 1 run on the first {len(k_ids)} of {len(ids)} items")
    if more and cfg.k_levels != cfg.verbosity:
        reductions.append(f"k > 1 run at verbosity {list(cfg.k_levels)} only")
    data: dict[str, Any] = {
        "protocol": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("out", "data")},
            "model_spec": cfg.model,
            "n_items": len(ids),
            "n_k_items": len(k_ids) if more else 0,
            "testtime_tokens": "completion tokens of the primary's answer",
            "sleeptime_tokens": "completion tokens of the sleep-time agent (analysis + edit "
            "loop) over the samples a condition uses (prompt tokens in "
            "mean_sleeptime_prompt_tokens)",
            "k_combination": "samples 0..k-1 nested (sample 0 greedy, the rest at "
            "sleep_temperature); 'all' (family sleeptime): the results most samples agree on "
            "first, then the notes concatenated in order, duplicate lines dropped; 'agreed' "
            "(family sleeptime-agreed): the agreed lines only, else the greedy sample's notes",
            "prompt_tuning": "prompts tuned on GSM-Symbolic P2 templates 0-24 only",
            "tuning_run": cfg.tuning,
            "scoring": "a cut-off answer (completion tokens = cap) counts only with an explicit "
            "final answer (boxed, 'The answer is N', '#### N'), never its last number",
            "reductions": reductions,
        },
        "protocol_headline": protocol_headline(
            [r for r in answers if r.item_id in set(ids)], cfg.verbosity
        ),
        "cutoff": _cutoff_report(cfg, answers),
        "generator_validation": _validation(cfg),
        "headline": headline(summary, 1),
        "headline_per_k": {f"k{k}": headline(subset, k) for k in sorted(cfg.ks)} if more else {},
        "conditions": _condition_rows(summary, answers),
        "scaling_subset": {
            "n_items": len(k_ids),
            "verbosity": list(cfg.k_levels),
            "conditions": _condition_rows(subset, subset_answers),
            "gain_vs_k1": _gain_vs_k1(cfg, subset_answers, k_ids, more),
        }
        if more
        else None,
        "sleeptime_samples": {
            "n": len(samples),
            "mean_completion_tokens": _mean([r.sleeptime_tokens for r in samples]),
            "mean_prompt_tokens": _mean(
                [_extra_int(r, "sleeptime_prompt_tokens") for r in samples]
            ),
            "finished_by_model": sum(
                1 for r in samples if (r.model_extra or {}).get("status") == "ok"
            ),
            "empty_notes": sum(1 for r in samples if not r.prediction.strip()),
            "with_failed_tool_calls": sum(1 for r in samples if _extra_int(r, "failures")),
            # Did the question-free analysis already reach the answer? It bounds what the
            # primary can gain from c' at a low budget.
            "gold_in_notes": _gold_in_notes(items, samples, [k for k in cfg.ks if k >= 1]),
            # The same on the k > 1 subset for every k, so the shares compare like with like.
            "gold_in_notes_k_subset": _gold_in_notes(k_items, samples, sorted(cfg.ks))
            if more
            else None,
            # What the agreed combination keeps of that coverage.
            **agreed_cover,
        },
        "timing": {
            "this_invocation_s": elapsed_s,
            "model_time_s": sample_wall + answer_wall,
            "sleeptime_model_time_s": sample_wall,
            "testtime_model_time_s": answer_wall,
        },
        "runs": _runs(cfg.out),
        "files": {"answers": ANSWERS_FILE, "sleeptime": SLEEP_FILE, "plots": plots},
    }
    return write_report(cfg.out, cfg.bench, data)


def _validation(cfg: StatefulConfig) -> dict[str, Any] | None:
    """The generator's validation counts for a generated benchmark (``None`` otherwise)."""
    if cfg.bench not in GENERATED:
        return None
    split = GENERATED[cfg.bench]
    report = cached_validation(str(data_dir(cfg.data)), split, cfg.seed)
    return {
        "split": split,
        "n_templates": report.n_templates,
        "n_passed": report.n_passed,
        "defaults_reproduce_gsm8k": report.defaults_reproduce_gsm8k,
        "left_out": report.failures,
        "checks": "see sleeptime_bench.gsm_validate (python -m sleeptime_bench.gsm_validate)",
    }


def _cutoff_report(cfg: StatefulConfig, answers: Sequence[ResultRecord]) -> dict[str, Any]:
    """Cut-off rates per condition and whether the top budget keeps under the protocol limit."""
    rates = cutoff_rates(answers)
    top = max(cfg.verbosity) if cfg.verbosity else None
    at_top = {
        c: r["share"]
        for c, r in rates.items()
        if top is not None and c.endswith(f"-v{top}") and r["share"] is not None
    }
    return {
        "per_condition": rates,
        "top_budget": f"v{top}",
        "max_share_allowed": MAX_CUTOFF_SHARE,
        "top_budget_within_limit": bool(at_top) and max(at_top.values()) <= MAX_CUTOFF_SHARE,
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _title(cfg: StatefulConfig, n: int, what: str = "accuracy vs test-time tokens") -> str:
    name = {
        "stateful-gsm": "Stateful GSM-Symbolic P2",
        "stateful-gsm-p1": "Stateful GSM-Symbolic P1",
        "stateful-gsm-symbolic": "Stateful GSM-Symbolic",
    }.get(cfg.bench, "Stateful AIME")
    return f"{name} ({cfg.model}, n={n}): {what}"


def run_stateful(cfg: StatefulConfig, model: BaseChatModel | None = None) -> Path:
    """Run (or resume) a stateful benchmark and write its report.

    Args:
        cfg: The run settings.
        model: The model for both phases; default: ``resolve_model(cfg.model)``.

    Returns:
        The JSON report's path.
    """
    started = time.perf_counter()
    items = load_items(cfg)
    if cfg.report_only:
        answers, samples = ResultsFile(cfg.out / ANSWERS_FILE), ResultsFile(cfg.out / SLEEP_FILE)
        pending = {u.item.id for u in _plan(cfg, items, answers.done_keys(), samples.done_keys())}
        # A run stopped at a time limit: report on the items whose every condition finished.
        finished = [it for it in items if it.id not in pending]
        return write_stateful_report(
            cfg, finished, time.perf_counter() - started, requested=len(items)
        )
    if model is None:
        model = resolve_model(cfg.model)
        if cfg.threads is not None and "n_threads" in type(model).model_fields:
            model = model.model_copy(update={"n_threads": cfg.threads})
        if cfg.parallel > 1 and "n_parallel" in type(model).model_fields:
            # One slot per item in flight, each with the context of a single-slot model.
            n_ctx = int(vars(model)["n_ctx"]) * cfg.parallel
            model = model.model_copy(update={"n_parallel": cfg.parallel, "n_ctx": n_ctx})
    began = datetime.now(UTC).isoformat(timespec="seconds")
    units = asyncio.run(_arun(cfg, model, items))
    elapsed = time.perf_counter() - started
    # Every invocation that did work is logged: a results directory built by several
    # (resumed, or extended with more k) runs keeps the provenance of each.
    if units:
        _log_run(
            cfg.out,
            {"command": command_line(), "started_at": began, "units": units, "elapsed_s": elapsed},
        )
    return write_stateful_report(cfg, items, elapsed)


def _log_run(out: Path, entry: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / RUNS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def _runs(out: Path) -> list[dict[str, Any]]:
    path = out / RUNS_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# ----------------------------------------------------------------------------- CLI


def register(sub: Any) -> None:
    """Add ``sleeptime bench stateful-gsm``, ``-gsm-p1``, ``-gsm-symbolic`` and ``-aime``."""
    for name, what in (
        ("stateful-gsm", "Stateful GSM-Symbolic P2"),
        ("stateful-gsm-p1", "Stateful GSM-Symbolic P1 (generated from the templates)"),
        ("stateful-gsm-symbolic", "Stateful GSM-Symbolic base set (generated)"),
        ("stateful-aime", "Stateful AIME 2024-2025"),
    ):
        p = sub.add_parser(
            name,
            help=f"{what}: test-time tokens with and without sleep-time notes",
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--limit", type=int, default=None, help="at most N items")
        p.add_argument("--model", default="local", help="'local' (default) or provider:model")
        p.add_argument("--out", default=default_out(name), help=OUT_HELP)
        p.add_argument("--data", default=None, help="evaluation data directory")
        if name != "stateful-aime":
            lo, hi = REPORT_TEMPLATES.get(name, (0, 99))
            tuned = TUNING_TEMPLATES.get(name)
            p.add_argument(
                "--templates",
                default=f"{lo}-{hi}",
                help=f"GSM-Symbolic templates A-B (default {lo}-{hi}"
                + (f"; tuned on {tuned[0]}-{tuned[1]})" if tuned else ")"),
            )
        if name in GENERATED:
            p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
            p.add_argument("--tuning", default=None, help="the tuning run's directory (recorded)")
        p.add_argument("--verbosity", default="0,1,2,3,4", help="verbosity levels (0..4)")
        p.add_argument("--k", default="1,2,5", help="sleep-time samples per context to compare")
        p.add_argument(
            "--max-tokens",
            default=",".join(map(str, P1_MAX_TOKENS if name in GENERATED else DEFAULT_MAX_TOKENS)),
            help="test-time completion-token cap per verbosity level 0..4, or one cap for all",
        )
        p.add_argument("--k-limit", type=int, default=None, help="run k > 1 on the first N items")
        p.add_argument("--k-verbosity", default=None, help="verbosity levels for k > 1")
        p.add_argument(
            "--combine",
            default="all",
            help="how k > 1 samples become one set of notes, comma-separated for several: "
            "'all' (agreed results first, then every sample's lines; the default) or 'agreed' "
            "(only the results most samples reached; conditions sleeptime-agreed-k<K>-v<L>)",
        )
        p.add_argument(
            "--sleep-temperature", type=float, default=0.7, help="temperature of samples 1.."
        )
        p.add_argument(
            "--sleep-max-tokens", type=int, default=400, help="cap per sleep-time model call"
        )
        notes_default = DEFAULT_NOTES.get(name, "edit-loop")
        p.add_argument(
            "--notes",
            choices=NOTES_MODES,
            default=notes_default,
            help="how the sleep-time step becomes the notes: 'edit-loop' (the model saves its "
            "analysis in at most 8 short lines with memory_rethink), 'analysis' (the analysis "
            "itself is stored as the block) or 'program' (the model writes Python assignments "
            f"for the quantities; whitelisted code computes them). Default: {notes_default}",
        )
        p.add_argument("--threads", type=int, default=None, help="CPU threads of the local model")
        p.add_argument(
            "--chunk",
            type=int,
            default=10,
            help="items whose sleep-time runs go back to back before their answers "
            "(prefix cache; smaller leaves fewer unanswered items when stopped)",
        )
        p.add_argument(
            "--parallel",
            type=int,
            default=1,
            help="items worked on at once (local model: one llama.cpp slot each, decoded in "
            "one batch; default 1)",
        )
        p.add_argument(
            "--report-only",
            action="store_true",
            help="no model calls: report on the items whose every condition finished",
        )
        p.set_defaults(func=_cmd, bench_name=name)


def config_from_args(args: argparse.Namespace) -> StatefulConfig:
    """Build the run settings from parsed options.

    Args:
        args: The parsed ``stateful-*`` options.

    Returns:
        The settings.
    """
    caps = parse_ints(args.max_tokens)
    if len(caps) == 1:
        caps = caps * 5
    templates = getattr(args, "templates", None)
    lo, hi = REPORT_TEMPLATES.get(args.bench_name, (25, 49))
    return StatefulConfig(
        bench=args.bench_name,
        limit=args.limit,
        model=args.model,
        out=Path(args.out),
        data=args.data,
        templates=parse_range(templates) if templates else tuple(range(lo, hi + 1)),
        seed=getattr(args, "seed", 0),
        tuning=getattr(args, "tuning", None),
        verbosity=parse_ints(args.verbosity),
        ks=parse_ints(args.k),
        max_tokens=caps,
        k_limit=args.k_limit,
        k_verbosity=parse_ints(args.k_verbosity) if args.k_verbosity else None,
        combine=parse_combine(args.combine),
        sleep_temperature=args.sleep_temperature,
        sleep_max_tokens=args.sleep_max_tokens,
        notes=args.notes,
        threads=args.threads,
        chunk=max(1, args.chunk),
        parallel=max(1, args.parallel),
        report_only=args.report_only,
    )


def _cmd(args: argparse.Namespace) -> int:
    path = run_stateful(config_from_args(args))
    print(f"report: {path}")  # noqa: T201 - the command's output
    return 0
