"""The harness shared by the conversational memory benchmarks (LoCoMo, LongMemEval).

A *dialogue* is a dated history to remember (a LoCoMo conversation, or the haystack of one
LongMemEval question) plus the questions asked about it. Three conditions answer every question
with the same model, in the same run:

- ``sleeptime``: the history is recorded session by session into :class:`SleeptimeMemory`'s
  transcript and the sleep-time agent consolidates it at each session boundary
  (``consolidate_now``), as a deployment would between conversations. The primary then answers
  from :func:`build_primary_prompt`: the refined blocks, the top-k archival notes and anything
  not consolidated yet.
- ``full-context``: the whole history in the prompt, cut to the most recent turns that fit in
  ``context_tokens`` when it does not (the report says how often, and to how many tokens).
- ``rag``: every turn embedded in a Chroma collection; the top-k turns for the question, in
  chronological order, are the context.

Prompts put the stable part first (persona, blocks / history) and what changes per question last
(notes, retrieved turns, the question), so that llama.cpp reuses its cached prefix across the
questions of one dialogue. ``cache_probe`` re-asks a few questions with the question first to
measure what that ordering saves.

Conditions run one after the other per dialogue (all questions of one condition, then the next)
so each keeps its own prefix warm. Every answer is one line of a resumable JSONL file; an
ingestion is resumable too (its store and progress live under ``<out>/state/<dialogue>/`` until
every question of the dialogue is answered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]  # no types-tqdm in the dev extra

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.consolidation import default_blocks
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.graphs.chat import build_primary_prompt
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.memory import ReadOptions, SleeptimeMemory, consolidation_for
from sleeptime_agent.models import SLEEPTIME_MODEL_ENV, resolve_model
from sleeptime_agent.pipeline.graph import DEFAULT_RECALL_LINE, RECALL_LINES, RecallLine
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.facts import FactStore
from sleeptime_agent.storage.recall import RecallIndex
from sleeptime_bench import prompts
from sleeptime_bench.cost import DEFAULT_WEIGHT
from sleeptime_bench.memtables import markdown_summary
from sleeptime_bench.plots import plot_score_vs_cost
from sleeptime_bench.report import percentiles, write_report
from sleeptime_bench.results import ConditionSummary, ResultRecord, ResultsFile, summarize
from sleeptime_bench.scoring import REFUSAL_PHRASES, wilson_interval
from sleeptime_bench.stateful_protocol import bootstrap_interval

__all__ = [
    "CONDITIONS",
    "PROBE_CONDITION",
    "Dialogue",
    "DialogueSession",
    "MemoryBenchConfig",
    "Question",
    "ScoreFn",
    "Utterance",
    "abstains",
    "add_options",
    "cap_tokens",
    "condition_stats",
    "config_from_args",
    "load_models",
    "memory_snapshot",
    "render_history",
    "paired_comparisons",
    "paired_difference",
    "question_scores",
    "quoted_answer",
    "round_robin",
    "stratified",
    "run_from_args",
    "run_memory_bench",
    "truncate_history",
]

#: The three conditions, in the order they run for each dialogue.
CONDITIONS: tuple[str, ...] = ("sleeptime", "full-context", "rag")
#: The prefix-cache probe: sleep-time memory with the question put before the blocks.
PROBE_CONDITION = "sleeptime-question-first"
_THREAD = "bench"


# --------------------------------------------------------------------------- data shapes


@dataclass(frozen=True)
class Utterance:
    """One turn of a history: who said it and what."""

    speaker: str
    text: str


@dataclass(frozen=True)
class DialogueSession:
    """One dated session of a history."""

    date: str
    utterances: tuple[Utterance, ...]


@dataclass(frozen=True)
class Question:
    """One question about a dialogue."""

    item_id: str
    text: str
    gold: str | None
    category: str
    today: str | None = None
    """The date the question is asked, when the benchmark gives one."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Benchmark-specific fields copied into the result record (e.g. LoCoMo's category number)."""


@dataclass
class Dialogue:
    """A history to remember, its questions, and how the memory of it is set up."""

    key: str
    """Unique id; also the memory namespace and the state directory name."""
    sessions: list[DialogueSession]
    questions: list[Question]
    persona: str
    """Who the answering assistant is (the persona block; also heads the other conditions)."""
    instructions: str
    """How to answer (shared by the three conditions; sent with the question)."""
    blocks: list[MemoryBlock]
    """The blocks the sleep-time agent starts from."""
    sleeptime_system: str
    """System prompt of the sleep-time agent."""


#: Scores one prediction: ``(score, correct)``; a graded benchmark sets ``score`` only.
ScoreFn = Callable[[Question, str], tuple[float | None, bool | None]]


@dataclass(kw_only=True)
class MemoryBenchConfig:
    """Settings of one memory-benchmark run (one ``sleeptime bench`` invocation)."""

    benchmark: str
    """``"locomo"`` or ``"longmemeval"``: names the output files."""
    out: Path
    model: str = "local"
    """The model spec, for the report (the same model answers and consolidates)."""
    conditions: tuple[str, ...] = CONDITIONS
    answer_tokens: int = 64
    """Completion-token cap of an answer."""
    answer_style: Literal["direct", "quote"] = "direct"
    """``direct``: the reply is the answer. ``quote``: the reply copies the evidence first and
    the answer is what follows the last "Answer:" (every condition alike)."""
    context_tokens: int = 7400
    """Full-context budget: the history is cut to its most recent turns that fit. The default
    is the local model's whole window (8,192 tokens) less the answer, the question and a margin
    for the characters-per-token estimate: LongMemEval oracle histories fit uncut (99 of
    questions 50-149; the longest, ~8k tokens, would not fit the window at all)."""
    chars_per_token: float = 3.5
    """Conservative characters-per-token estimate used to cut the history (measured tokens are
    reported)."""
    rag_k: int = 10
    """Turns retrieved by the RAG condition."""
    rag_chars: int = 600
    """Each retrieved turn is clipped to this many characters."""
    notes_k: int = 5
    """Archival notes retrieved for the sleep-time condition."""
    consolidation: str = "auto"
    """How the sleep-time agent consolidates: ``auto`` (the product default per model: the
    pipeline for the embedded model), ``pipeline`` or ``tool-loop`` (the Letta-style edit loop
    of the earlier runs)."""
    keywords: bool = False
    """Pipeline: model-written keywords and entities as recall keys (one call per message)."""
    facts: bool = False
    """Pipeline: model-written atomic facts (one call per message)."""
    anticipate: bool = False
    """Pipeline: model-written likely next questions with answers in the anticipation block
    (one call per run)."""
    samples: int = 1
    """Pipeline: samples per message of each model-written layer, combined by agreement."""
    recall_before: int = 0
    """Sleep-time read: turns said just before each recalled turn, shown with it."""
    recall_replies: int = 0
    """Sleep-time read: turns said just after each recalled question, shown with it."""
    recall_k: int = ReadOptions.recall_k
    """Sleep-time read: raw turns recalled by the hybrid search."""
    recall_order: Literal["time", "relevance"] = ReadOptions.recall_order
    """Sleep-time read: recalled turns oldest first, or the best match last."""
    speaker_boost: bool = False
    """Sleep-time read: a question that names one speaker ranks that speaker's turns higher."""
    recall_focus: bool = ReadOptions.recall_focus
    """Sleep-time read: a long recalled turn is clipped around the sentences that match."""
    recall_line: RecallLine = DEFAULT_RECALL_LINE
    """Pipeline: what the sleep-time read shows of a recalled turn (the words as ``said``,
    dated, or the third-person ``rendered`` line). One results directory keeps one."""
    sleeptime_steps: int = 6
    """Model calls per sleep-time run."""
    sleeptime_call_tokens: int = 512
    """Completion-token cap of one sleep-time model call."""
    transcript_chars: int = 8000
    """Transcript characters one sleep-time run reads (a longer backlog takes several runs)."""
    memory_assistant_chars: int | None = None
    """Clip assistant turns to this many characters in the sleep-time transcript only."""
    cache_probe: int = 0
    """Questions of the first dialogue also answered question-first (prefix-cache probe)."""
    keep_state: bool = False
    """Keep each dialogue's memory store after its questions are all answered."""
    report_only: bool = False
    """Rewrite the report and tables from the answers on disk; answer nothing."""
    baselines_from: Path | None = None
    """Another run's directory whose answers for the conditions not run here join the report."""
    weight: float = DEFAULT_WEIGHT
    """Price of a test-time token in sleep-time tokens."""
    selection: str = ""
    """How the dialogues and questions were chosen, for the report."""
    notes: list[str] = field(default_factory=list)
    """Benchmark-specific caveats, for the report."""

    @property
    def results_path(self) -> Path:
        """The JSONL of answers."""
        return self.out / f"{self.benchmark}.jsonl"

    @property
    def ingest_path(self) -> Path:
        """The JSONL of finished sleep-time ingestions (one line per dialogue)."""
        return self.out / f"{self.benchmark}_ingest.jsonl"

    @property
    def plot_path(self) -> Path:
        """The score-vs-cost PNG."""
        return self.out / f"{self.benchmark}_score_vs_cost.png"

    @property
    def tables_path(self) -> Path:
        """The Markdown tables made from the JSON report."""
        return self.out / f"{self.benchmark}.md"

    @property
    def memory_path(self) -> Path:
        """The JSONL of each dialogue's memory after ingestion: what the sleeptime answers read."""
        return self.out / f"{self.benchmark}_memory.jsonl"

    def state_dir(self, key: str) -> Path:
        """Where a dialogue's memory store and ingestion progress live while it runs."""
        return self.out / "state" / _safe(key)


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


# --------------------------------------------------------------------------- helpers


ANSWER_BLOCK = 20
"""Questions answered by every condition before the next block starts (see ``todo``)."""


def round_robin(items: Sequence[Any], key: Callable[[Any], str], limit: int | None) -> list[Any]:
    """The first ``limit`` items taken in turn from each group, groups and items in file order.

    A stratified, deterministic selection: with ``limit`` smaller than the total every group
    is represented (LoCoMo and LongMemEval list their questions grouped by category).

    Args:
        items: The items, in file order.
        key: The group of an item.
        limit: How many to keep (``None``: all, in file order).

    Returns:
        The selected items, in file order.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for indexes in groups.values():
            if depth < len(indexes) and len(chosen) < limit:
                chosen.append(indexes[depth])
        depth += 1
    return [items[i] for i in sorted(chosen)]


def stratified(items: Sequence[Any], key: Callable[[Any], str]) -> list[Any]:
    """All ``items`` in the order :func:`round_robin` takes them: in turn from each group."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    rows = [
        group[depth]
        for depth in range(max(map(len, groups.values()), default=0))
        for group in groups.values()
        if depth < len(group)
    ]
    return rows


def render_history(sessions: Sequence[DialogueSession]) -> list[str]:
    """The history as prompt lines: a dated header per session, then ``speaker: text``."""
    lines: list[str] = []
    for n, session in enumerate(sessions, start=1):
        lines.append(prompts.BENCH_SESSION_HEADER.format(n=n, date=session.date))
        lines.extend(f"{u.speaker}: {u.text}" for u in session.utterances)
    return lines


def truncate_history(sessions: Sequence[DialogueSession], max_chars: int) -> tuple[str, int, int]:
    """The most recent turns that fit in ``max_chars``, each kept session under its header.

    Args:
        sessions: The history, oldest first.
        max_chars: Character budget of the rendered text.

    Returns:
        ``(text, turns kept, turns in total)``.
    """
    total = sum(len(s.utterances) for s in sessions)
    kept: list[tuple[int, list[str]]] = []
    size = 0
    full = True
    for n in range(len(sessions), 0, -1):
        session = sessions[n - 1]
        header = prompts.BENCH_SESSION_HEADER.format(n=n, date=session.date)
        lines: list[str] = []
        for u in reversed(session.utterances):
            line = f"{u.speaker}: {u.text}"
            extra = len(line) + 1 + (0 if lines else len(header) + 1)
            if size + extra > max_chars:
                full = False
                break
            lines.append(line)
            size += extra
        if lines:
            kept.append((n, [header, *reversed(lines)]))
        if not full:
            break
    kept.reverse()
    text = "\n".join(line for _, lines in kept for line in lines)
    return text, sum(len(lines) - 1 for _, lines in kept), total


def cap_tokens(model: BaseChatModel, max_tokens: int) -> BaseChatModel:
    """A copy of ``model`` whose calls generate at most ``max_tokens`` (when it has the field)."""
    if "max_tokens" in type(model).model_fields:
        return model.model_copy(update={"max_tokens": max_tokens})
    return model


def load_models(
    spec: str, sleeptime_spec: str | None, threads: int | None = None
) -> tuple[BaseChatModel, BaseChatModel]:
    """Resolve the answering model and the sleep-time model (default: the same spec).

    ``threads`` sets the local model's llama.cpp threads. On a shared, oversubscribed 2-core
    machine (load ~8) one thread answered a 540-token prompt in 31.8 s and two threads took
    135.6 s: llama.cpp's threads wait for each other at every step, and a descheduled one
    stalls the other.
    """
    model = resolve_model(spec)
    sleeptime = resolve_model(sleeptime_spec or spec, env_var=SLEEPTIME_MODEL_ENV)
    if threads is not None:
        model, sleeptime = (_with_threads(m, threads) for m in (model, sleeptime))
    return model, sleeptime


def _with_threads(model: BaseChatModel, threads: int) -> BaseChatModel:
    if "n_threads" in type(model).model_fields:
        return model.model_copy(update={"n_threads": threads})
    return model


@dataclass
class _Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None
    prompt_ms: float | None
    seconds: float


async def _ask(model: Runnable[Any, Any], messages: list[BaseMessage]) -> _Reply:
    start = time.perf_counter()
    reply = await model.ainvoke(messages)
    seconds = time.perf_counter() - start
    if not isinstance(reply, AIMessage):
        reply = AIMessage(content=str(getattr(reply, "content", reply)))
    usage: dict[str, Any] = dict(reply.usage_metadata or {})
    details: dict[str, Any] = dict(usage.get("input_token_details") or {})
    timings = reply.response_metadata.get("timings") or {}
    cached = details.get("cache_read", timings.get("cache_n"))
    prompt_ms = timings.get("prompt_ms")
    return _Reply(
        text=reply.text.strip(),
        prompt_tokens=int(usage.get("input_tokens", 0)),
        completion_tokens=int(usage.get("output_tokens", 0)),
        cached_tokens=int(cached) if cached is not None else None,
        prompt_ms=float(prompt_ms) if prompt_ms is not None else None,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- ingestion


class _IngestLog:
    """One JSON line per finished ingestion; a partial last line (a crash) is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out[str(rec["key"])] = rec
        return out

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(b"\n"):  # cut a partial line left by a crash
            with self.path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _transcript_messages(
    dialogue: Dialogue, clip_assistant: int | None
) -> list[tuple[int, str, str]]:
    """``(session index, role, text)`` of every message the sleep-time transcript receives."""
    out: list[tuple[int, str, str]] = []
    for i, session in enumerate(dialogue.sessions):
        header = prompts.BENCH_SESSION_HEADER.format(n=i + 1, date=session.date)
        out.append((i, "session", header))
        for u in session.utterances:
            text = u.text
            if (
                clip_assistant is not None
                and u.speaker == "assistant"
                and len(text) > clip_assistant
            ):
                text = text[:clip_assistant].rstrip() + " [...]"
            out.append((i, u.speaker, text))
    return out


def _ingest_settings(cfg: MemoryBenchConfig) -> dict[str, Any]:
    """The settings a memory is built, read and answered with: they cannot change on resume."""
    return {
        "recall_line": cfg.recall_line,
        "keywords": cfg.keywords,
        "facts": cfg.facts,
        "anticipate": cfg.anticipate,
        "samples": cfg.samples,
        "recall_before": cfg.recall_before,
        "recall_replies": cfg.recall_replies,
        "recall_k": cfg.recall_k,
        "recall_order": cfg.recall_order,
        "answer_style": cfg.answer_style,
        "speaker_boost": cfg.speaker_boost,
        "recall_focus": cfg.recall_focus,
    }


def _flag(key: str, value: Any) -> str:
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return name if value else f"no {name}"
    return f"{name} {value}"


def _check_ingest_settings(state: Path, progress: dict[str, Any], cfg: MemoryBenchConfig) -> None:
    """Refuse to resume a kept memory with other ingestion settings; record them otherwise.

    Raises:
        ConfigurationError: the memory under ``state`` was built with other settings.
    """
    wanted = _ingest_settings(cfg)
    # Runs before the options were recorded: their recall lines were the third-person ones;
    # the other settings are unknown and not checked.
    # Runs before recall_focus was recorded clipped long turns at their start.
    built = {"recall_line": "rendered", "recall_focus": False} if progress["sessions_done"] else {}
    built.update({k: progress[k] for k in wanted if k in progress})
    differ = [k for k in wanted if k in built and built[k] != wanted[k]]
    if differ:
        was = ", ".join(_flag(k, built[k]) for k in differ)
        asks = ", ".join(_flag(k, wanted[k]) for k in differ)
        raise ConfigurationError(
            f"{state} holds a memory built with {was}; this run asks for {asks}. "
            "Resume it with the same options, or use another --out."
        )
    progress.update(wanted)


def _add_runs(progress: dict[str, Any], runs: Iterable[RunRecord], samples: int = 10) -> None:
    statuses: Counter[str] = Counter(progress.get("statuses", {}))
    kinds: Counter[str] = Counter(progress.get("failure_kinds", {}))
    examples: list[str] = list(progress.get("failure_examples", []))
    for run in runs:
        progress["input_tokens"] += run.input_tokens
        progress["output_tokens"] += run.output_tokens
        progress["runs"] += 1
        progress["steps"] += run.steps
        progress["edits"] += len(run.edits)
        progress["failures"] += len(run.failures)
        statuses[run.status] += 1
        for failure in run.failures:
            # Why calls failed (grounding, duplicate, malformed ...) says what to fix next.
            kinds[f"{failure.get('kind')}:{failure.get('tool')}"] += 1
            if len(examples) < samples:
                examples.append(str(failure.get("error", ""))[:300])
    progress["statuses"] = dict(statuses)
    progress["failure_kinds"] = dict(kinds)
    progress["failure_examples"] = examples


async def _ingest(
    cfg: MemoryBenchConfig,
    dialogue: Dialogue,
    sleeptime_model: BaseChatModel,
    bar: Any,
) -> tuple[SleeptimeMemory, Namespace, dict[str, Any]]:
    """Record the history session by session and consolidate at each boundary (resumable)."""
    state = cfg.state_dir(dialogue.key)
    state.mkdir(parents=True, exist_ok=True)
    store = ChromaBlockStore.persistent(state / "store")
    pipeline = consolidation_for(sleeptime_model, cfg.consolidation) == "pipeline"
    blocks = [b.model_copy() for b in dialogue.blocks]
    if pipeline and cfg.anticipate and all(b.label != "anticipation" for b in blocks):
        # LoCoMo dialogues have speaker blocks only: without this the option would do nothing.
        blocks += [b for b in default_blocks() if b.label == "anticipation"]
    memory = SleeptimeMemory(
        store,
        sleeptime_model,
        notes_k=cfg.notes_k,
        read_options=ReadOptions(
            recall_before=cfg.recall_before,
            recall_replies=cfg.recall_replies,
            recall_k=cfg.recall_k,
            recall_order=cfg.recall_order,
            speaker_boost=cfg.speaker_boost,
            recall_focus=cfg.recall_focus,
        ),
        consolidation=cfg.consolidation,
        consolidator_options={
            "blocks": blocks,
            "system_prompt": dialogue.sleeptime_system,
            "max_steps": cfg.sleeptime_steps,
            "max_transcript_chars": cfg.transcript_chars,
            # The whole dialogue is what is remembered, both sides of it.
            "ground_in_assistant": True,
            **(
                {
                    "keywords": cfg.keywords,
                    "facts": cfg.facts,
                    "anticipate": cfg.anticipate,
                    "samples": cfg.samples,
                    "recall_line": cfg.recall_line,
                }
                if pipeline
                else {}
            ),
        },
    )
    namespace: Namespace = (cfg.benchmark, dialogue.key)
    progress_path = state / "progress.json"
    progress: dict[str, Any] = {
        "key": dialogue.key,
        "sessions": len(dialogue.sessions),
        "sessions_done": 0,
        "messages": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "runs": 0,
        "steps": 0,
        "edits": 0,
        "failures": 0,
        "statuses": {},
        "wall_time_s": 0.0,
    }
    if progress_path.exists():
        progress.update(json.loads(progress_path.read_text(encoding="utf-8")))
    if pipeline:
        _check_ingest_settings(state, progress, cfg)
    messages = _transcript_messages(dialogue, cfg.memory_assistant_chars)
    recorded = len(memory.transcript.since(namespace, 0))
    bar.update(progress["sessions_done"])
    for i in range(progress["sessions_done"], len(dialogue.sessions)):
        start = time.perf_counter()
        for index, (session, role, text) in enumerate(messages):
            if session == i and index >= recorded:
                memory.record(namespace, f"session-{i + 1}", role, text)
                recorded += 1
        runs = await memory.consolidate_now(namespace)
        _add_runs(progress, runs)
        progress["sessions_done"] = i + 1
        progress["messages"] = recorded
        progress["wall_time_s"] += time.perf_counter() - start
        progress_path.write_text(json.dumps(progress), encoding="utf-8")
        bar.update(1)
    return memory, namespace, progress


def memory_snapshot(
    store: ChromaBlockStore, namespace: Namespace, key: str, max_notes: int = 500
) -> dict[str, Any]:
    """A dialogue's blocks and archival notes as plain JSON, so a reader can see what was kept."""
    notes = store.list_notes(namespace)
    facts = FactStore(store).all(namespace)
    recalled = RecallIndex(store).all(namespace)
    return {
        "key": key,
        "blocks": {b.label: b.value for b in store.list_blocks(namespace)},
        "notes_total": len(notes),
        "notes": [n.text for n in notes[:max_notes] if n.metadata.get("kind") != "fact"],
        "facts": [
            {"text": f.text, "subject": f.subject, "date": f.date, "sources": list(f.sources)}
            for f in facts[:max_notes]
        ],
        "recall_total": len(recalled),
        "recall_sample": [h.line for h in recalled[:20]],
    }


# --------------------------------------------------------------------------- answering


@dataclass
class _DialogueContext:
    """What the three conditions read for one dialogue."""

    memory: SleeptimeMemory | None
    namespace: Namespace | None
    history: str
    kept_turns: int
    total_turns: int
    rag: ChromaBlockStore | None
    rag_namespace: Namespace
    sleeptime_per_question: float


def _user_text(
    dialogue: Dialogue, question: Question, style: Literal["direct", "quote"] = "direct"
) -> str:
    today = prompts.BENCH_TODAY.format(date=question.today) if question.today else ""
    template = prompts.BENCH_QUOTE_ANSWER_USER if style == "quote" else prompts.BENCH_ANSWER_USER
    return template.format(instructions=dialogue.instructions, today=today, question=question.text)


_ANSWER_MARK = re.compile(r"answer\s*:", re.IGNORECASE)
_EVIDENCE_MARK = re.compile(r"^\W*evidence\s*:", re.IGNORECASE)


def quoted_answer(reply: str, *, cut_off: bool) -> str:
    """The answer of a ``quote``-style reply: the text after its last "Answer:".

    A reply without that mark is taken as an answer only if it ended on its own and holds
    something besides the quoted evidence (its last line); a cut-off reply without it gets ""
    so a half-copied quote is never scored as the answer.
    """
    marks = list(_ANSWER_MARK.finditer(reply))
    if marks:
        after = reply[marks[-1].end() :].strip()
        return after.splitlines()[0].strip() if after else ""
    lines = [ln.strip() for ln in reply.splitlines() if ln.strip()]
    if cut_off or not lines or _EVIDENCE_MARK.match(lines[-1]):
        return ""
    return lines[-1]


def _build_rag(dialogue: Dialogue, store: ChromaBlockStore, namespace: Namespace) -> None:
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    for session in dialogue.sessions:
        for u in session.utterances:
            texts.append(f"[{session.date}] {u.speaker}: {u.text}")
            metas.append({"i": len(texts)})
    if texts:
        store.add_notes(namespace, texts, metas)


def _prompt(
    condition: str,
    cfg: MemoryBenchConfig,
    dialogue: Dialogue,
    ctx: _DialogueContext,
    question: Question,
) -> tuple[list[BaseMessage], dict[str, Any]]:
    """The messages of one question under one condition, and what was read for them."""
    user = _user_text(dialogue, question, cfg.answer_style)
    if condition in ("sleeptime", PROBE_CONDITION):
        assert ctx.memory is not None and ctx.namespace is not None
        view = ctx.memory.read(ctx.namespace, query=question.text)
        messages = build_primary_prompt(view, [HumanMessage(user)], _THREAD)
        # The lines as shown (clipped or focused), so a miss can be told apart: evidence cut
        # off by the read, or read and not used by the model.
        info = {
            "notes": len(view.notes),
            "pending": len(view.pending),
            "read_facts": [f.line() for f in view.facts],
            "read_turns": [h.line for h in view.recalled],
        }
        if condition == PROBE_CONDITION:
            system = prompts.BENCH_QUESTION_FIRST_SYSTEM.format(
                question=user, memory=messages[0].text
            )
            messages = [SystemMessage(system), HumanMessage(prompts.BENCH_QUESTION_FIRST_USER)]
        return messages, info
    if condition == "full-context":
        system = prompts.BENCH_FULL_CONTEXT_SYSTEM.format(
            persona=dialogue.persona, history=ctx.history
        )
        info = {"kept_turns": ctx.kept_turns, "total_turns": ctx.total_turns}
        return [SystemMessage(system), HumanMessage(user)], info
    if condition == "rag":
        assert ctx.rag is not None
        hits = ctx.rag.search_notes(ctx.rag_namespace, question.text, cfg.rag_k)
        hits.sort(key=lambda n: int(n.metadata.get("i", 0)))
        turns = "\n".join(_clip(n.text, cfg.rag_chars) for n in hits)
        system = prompts.BENCH_RAG_SYSTEM.format(persona=dialogue.persona, turns=turns)
        return [SystemMessage(system), HumanMessage(user)], {"retrieved": len(hits)}
    raise ValueError(f"unknown condition {condition!r}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


async def _answer(
    condition: str,
    cfg: MemoryBenchConfig,
    dialogue: Dialogue,
    ctx: _DialogueContext,
    question: Question,
    model: Runnable[Any, Any],
    score: ScoreFn,
) -> ResultRecord:
    base: dict[str, Any] = {
        "item_id": question.item_id,
        "condition": condition,
        "benchmark": cfg.benchmark,
        "family": condition,
        "gold": question.gold,
        "category": question.category,
        "dialogue": dialogue.key,
        **question.meta,
    }
    if condition in ("sleeptime", PROBE_CONDITION):
        base["sleeptime_tokens"] = round(ctx.sleeptime_per_question)
    start = time.perf_counter()
    try:
        messages, info = _prompt(condition, cfg, dialogue, ctx, question)
        read_s = time.perf_counter() - start
        reply = await _ask(model, messages)
    except Exception as exc:  # recorded and retried on the next run, never fatal
        return ResultRecord.model_validate(
            {**base, "error": f"{type(exc).__name__}: {exc}"[:500], "wall_time_s": 0.0}
        )
    prediction = reply.text
    if cfg.answer_style == "quote":
        cut = reply.completion_tokens >= cfg.answer_tokens
        prediction = quoted_answer(reply.text, cut_off=cut)
        info = {**info, "reply": reply.text, "cut_off": cut}
    value, correct = score(question, prediction)
    return ResultRecord.model_validate(
        {
            **base,
            **info,
            "prediction": prediction,
            "score": value,
            "correct": correct,
            "testtime_prompt_tokens": reply.prompt_tokens,
            "testtime_completion_tokens": reply.completion_tokens,
            "cached_prompt_tokens": reply.cached_tokens,
            "prompt_ms": reply.prompt_ms,
            "model_s": round(reply.seconds, 3),
            "read_s": round(read_s, 4),
            "wall_time_s": round(time.perf_counter() - start, 3),
        }
    )


# --------------------------------------------------------------------------- the run


async def run_memory_bench(
    cfg: MemoryBenchConfig,
    dialogues: Sequence[Dialogue],
    model: BaseChatModel,
    sleeptime_model: BaseChatModel,
    score: ScoreFn,
    *,
    categories: Sequence[str] = (),
    excluded_categories: Sequence[str] = (),
    score_kind: str = "score",
) -> Path:
    """Run (or resume) the three conditions over ``dialogues`` and write the report and plot.

    Args:
        cfg: The run's settings.
        dialogues: The histories and their questions.
        model: The answering (test-time) model.
        sleeptime_model: The sleep-time model.
        score: Scores one prediction.
        categories: Category order in the report (others follow, sorted).
        excluded_categories: Categories also left out of an ``overall_excluding`` aggregate
            (LoCoMo's adversarial category, as mem0 reports it).
        score_kind: ``"f1"`` (graded) or ``"accuracy"``.

    Returns:
        The JSON report's path.
    """
    started = time.perf_counter()
    # "auto" is resolved once, so the report says which consolidation ran.
    cfg.consolidation = consolidation_for(sleeptime_model, cfg.consolidation)
    results = ResultsFile(cfg.results_path)
    done = results.done_keys()
    ingest_log = _IngestLog(cfg.ingest_path)
    ingested = ingest_log.read()
    memory_log = _IngestLog(cfg.memory_path)
    snapshots = set(memory_log.read())
    answer_model = model.bind(max_tokens=cfg.answer_tokens)
    capped_sleeptime = cap_tokens(sleeptime_model, cfg.sleeptime_call_tokens)
    probe_keys = (
        {q.item_id for q in dialogues[0].questions[: cfg.cache_probe]} if dialogues else set()
    )

    def todo(d: Dialogue) -> list[tuple[str, Question]]:
        conditions = list(cfg.conditions)
        if d is dialogues[0] and "sleeptime" in conditions:  # the probe right after sleeptime
            conditions.insert(conditions.index("sleeptime") + 1, PROBE_CONDITION)
        # Blocks of questions, each answered by every condition in turn: a run stopped early
        # leaves paired answers on a stratified sample, while the full-context condition still
        # reuses its long cached prefix from one question to the next within a block.
        rank = {q.item_id: i for i, q in enumerate(stratified(d.questions, lambda q: q.category))}
        pairs = [
            (rank[q.item_id] // ANSWER_BLOCK, ci, rank[q.item_id], c, q)
            for ci, c in enumerate(conditions)
            for q in d.questions
            if (q.item_id, c) not in done and (c != PROBE_CONDITION or q.item_id in probe_keys)
        ]
        return [(c, q) for *_, c, q in sorted(pairs, key=lambda p: p[:3])]

    def report() -> Path:
        return _write(
            cfg,
            dialogues,
            results,
            ingest_log.read(),
            categories=categories,
            excluded=excluded_categories,
            score_kind=score_kind,
            invocation_s=time.perf_counter() - started,
        )

    if cfg.report_only:
        return report()
    plans = [(d, todo(d)) for d in dialogues]
    needs_memory = [
        d
        for d, pairs in plans
        if any(c in ("sleeptime", PROBE_CONDITION) for c, _ in pairs) or d.key not in ingested
    ]
    needs_memory = [d for d in needs_memory if "sleeptime" in cfg.conditions]
    n_answers = sum(len(p) for _, p in plans)
    n_sessions = sum(len(d.sessions) for d in needs_memory)
    rag_store: ChromaBlockStore | None = None
    with (
        tqdm(total=n_sessions, desc=f"{cfg.benchmark} sleep-time", unit="session") as ibar,
        tqdm(total=n_answers, desc=f"{cfg.benchmark} answers", unit="q") as abar,
    ):
        for dialogue, pairs in plans:
            memory: SleeptimeMemory | None = None
            namespace: Namespace | None = None
            if dialogue in needs_memory:
                memory, namespace, progress = await _ingest(cfg, dialogue, capped_sleeptime, ibar)
                if dialogue.key not in snapshots:
                    memory_log.append(memory_snapshot(memory.store, namespace, dialogue.key))
                    snapshots.add(dialogue.key)
                if dialogue.key not in ingested:
                    ingest_log.append(progress)
                    ingested[dialogue.key] = progress
            if not pairs:
                _drop_state(cfg, dialogue)
                continue
            ingest = ingested.get(dialogue.key, {})
            spent = int(ingest.get("input_tokens", 0)) + int(ingest.get("output_tokens", 0))
            history, kept, total = truncate_history(
                dialogue.sessions, int(cfg.context_tokens * cfg.chars_per_token)
            )
            rag_ns: Namespace = ("rag", cfg.benchmark, dialogue.key)
            if any(c == "rag" for c, _ in pairs):
                if rag_store is None:
                    rag_store = ChromaBlockStore.ephemeral()
                _build_rag(dialogue, rag_store, rag_ns)
            ctx = _DialogueContext(
                memory=memory,
                namespace=namespace,
                history=history,
                kept_turns=kept,
                total_turns=total,
                rag=rag_store,
                rag_namespace=rag_ns,
                sleeptime_per_question=spent / max(1, len(dialogue.questions)),
            )
            ok = True
            for condition, question in pairs:
                record = await _answer(condition, cfg, dialogue, ctx, question, answer_model, score)
                results.append(record)
                ok = ok and record.error is None
                abar.update(1)
                if abar.n % 10 == 0:
                    report()
            if ok:
                _drop_state(cfg, dialogue)
            report()  # partial results are on disk while a long run goes on
    return report()


def _drop_state(cfg: MemoryBenchConfig, dialogue: Dialogue) -> None:
    if not cfg.keep_state:
        shutil.rmtree(cfg.state_dir(dialogue.key), ignore_errors=True)


# --------------------------------------------------------------------------- the report


def condition_stats(
    records: Sequence[ResultRecord], weight: float = DEFAULT_WEIGHT
) -> dict[str, Any]:
    """Aggregate of a group of records: score/accuracy, tokens, latency and amortized cost.

    Args:
        records: The latest record of each question of the group.
        weight: Price of a test-time token in sleep-time tokens.

    Returns:
        ``n``, ``n_errors``, ``mean_score`` (F1) or ``accuracy`` with its Wilson interval,
        mean prompt / completion / cached tokens, latency p50/p95, sleep-time tokens per
        question and the amortized cost per question: ``sleep-time + weight * (prompt +
        completion)``; ``amortized_cost_completion_only`` prices only completion tokens (the
        paper's definition of test-time tokens).
    """
    ok = [r for r in records if r.error is None]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    scores = [r.score for r in ok if r.score is not None]
    judged = [r for r in ok if r.correct is not None]
    right = sum(1 for r in judged if r.correct)
    cached = [float(c) for r in ok if (c := (r.model_extra or {}).get("cached_prompt_tokens"))]
    prompt = mean([float(r.testtime_prompt_tokens) for r in ok]) or 0.0
    completion = mean([float(r.testtime_completion_tokens) for r in ok]) or 0.0
    sleep = mean([float(r.sleeptime_tokens) for r in ok]) or 0.0
    out: dict[str, Any] = {"n": len(records), "n_errors": len(records) - len(ok)}
    if scores:
        out["mean_score"] = mean(scores)
    if judged:
        low, high = wilson_interval(right, len(judged))
        out.update(accuracy=right / len(judged), ci95=[low, high])
    latency = percentiles([r.wall_time_s for r in ok])
    warm = [r for r in ok if _warm(r)]
    cold = [r for r in ok if not _warm(r)]
    cold_latency = percentiles([r.wall_time_s for r in cold])
    warm_latency = percentiles([r.wall_time_s for r in warm])
    out.update(
        abstention_rate=(sum(1 for r in ok if abstains(r.prediction)) / len(ok)) if ok else None,
        n_cold=len(cold),
        n_warm=len(warm),
        cold_latency_p50_s=cold_latency["p50"],
        cold_latency_p95_s=cold_latency["p95"],
        warm_latency_p50_s=warm_latency["p50"],
        warm_latency_p95_s=warm_latency["p95"],
        mean_prompt_tokens=prompt,
        mean_completion_tokens=completion,
        mean_cached_prompt_tokens=(sum(cached) / len(ok)) if ok and cached else 0.0,
        latency_p50_s=latency["p50"],
        latency_p95_s=latency["p95"],
        latency_mean_s=latency["mean"],
        sleeptime_tokens_per_question=sleep,
        amortized_cost_per_question=sleep + weight * (prompt + completion),
        amortized_cost_completion_only=sleep + weight * completion,
    )
    return out


def abstains(prediction: str) -> bool:
    """Whether an answer declines ("Not mentioned in the conversation", "I don't know", ...)."""
    low = prediction.lower().replace("\u2019", "'")
    return "not mentioned" in low or any(p in low for p in REFUSAL_PHRASES)


def _warm(record: ResultRecord) -> bool:
    """Whether llama.cpp reused at least half of the prompt from its cache (else: cold).

    Question order decides what is cached, so latency is reported both ways; a model without
    cache figures (a hosted API) counts as cold.
    """
    cached = (record.model_extra or {}).get("cached_prompt_tokens") or 0
    return bool(record.testtime_prompt_tokens) and cached >= 0.5 * record.testtime_prompt_tokens


def _ordered(values: Iterable[str], first: Sequence[str]) -> list[str]:
    present = set(values)
    return [c for c in first if c in present] + sorted(present - set(first))


def _cache_effect(latest: dict[tuple[str, str], ResultRecord], n: int) -> dict[str, Any]:
    """Blocks-first (``sleeptime``) vs question-first on the probe questions."""
    probe = [r for (_, c), r in latest.items() if c == PROBE_CONDITION and r.error is None]
    ids = [r.item_id for r in probe]
    ordered = [latest[(i, "sleeptime")] for i in ids if (i, "sleeptime") in latest]
    if not probe or not ordered:
        return {"questions": 0}

    def side(rs: list[ResultRecord]) -> dict[str, Any]:
        warm = rs[1:] or rs  # the first question of each side starts cold
        extra = [r.model_extra or {} for r in warm]
        ms = [float(e["prompt_ms"]) for e in extra if e.get("prompt_ms") is not None]
        return {
            "mean_prompt_tokens": sum(r.testtime_prompt_tokens for r in warm) / len(warm),
            "mean_cached_prompt_tokens": sum(
                float(e.get("cached_prompt_tokens") or 0) for e in extra
            )
            / len(warm),
            "mean_prompt_ms": sum(ms) / len(ms) if ms else None,
            "mean_latency_s": sum(r.wall_time_s for r in warm) / len(warm),
            "mean_score": _mean_or_none([r.score for r in warm]),
            "accuracy": _mean_or_none([float(r.correct) for r in warm if r.correct is not None]),
        }

    blocks_first, question_first = side(ordered), side(probe)
    speedup = (
        question_first["mean_latency_s"] / blocks_first["mean_latency_s"]
        if blocks_first["mean_latency_s"]
        else None
    )
    return {
        "questions": len(probe),
        "method": (
            f"the first {n} questions of the first dialogue, answered from the same memory twice "
            "in a row each way: blocks first and the question last (the sleeptime condition), "
            "then the question first and the blocks after it; means over questions 2..n (the "
            "first of each side starts cold). Cached tokens are llama.cpp's reused prefix "
            "(usage.prompt_tokens_details.cached_tokens / timings.cache_n)."
        ),
        "blocks_first": blocks_first,
        "question_first": question_first,
        "latency_ratio_question_first_over_blocks_first": speedup,
    }


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _write(
    cfg: MemoryBenchConfig,
    dialogues: Sequence[Dialogue],
    results: ResultsFile,
    ingested: dict[str, dict[str, Any]],
    *,
    categories: Sequence[str],
    excluded: Sequence[str],
    score_kind: str,
    invocation_s: float,
) -> Path:
    wanted = {(q.item_id, c) for d in dialogues for q in d.questions for c in cfg.conditions}
    probe_ids = (
        {q.item_id for q in dialogues[0].questions[: cfg.cache_probe]} if dialogues else set()
    )
    latest = {
        k: r
        for k, r in results.latest().items()
        if k in wanted or (k[1] == PROBE_CONDITION and k[0] in probe_ids)
    }
    main = [r for (_, c), r in latest.items() if c in cfg.conditions]
    borrowed = _borrowed(cfg, {q.item_id for d in dialogues for q in d.questions})
    main += borrowed
    lent = sorted({r.condition for r in borrowed})
    conditions = _ordered([*cfg.conditions, *lent], CONDITIONS)
    keys = [d.key for d in dialogues]
    ingest = [ingested[k] for k in keys if k in ingested]
    per_dialogue = [int(i.get("input_tokens", 0)) + int(i.get("output_tokens", 0)) for i in ingest]
    history_chars = {
        d.key: sum(len(line) + 1 for line in render_history(d.sessions)) for d in dialogues
    }
    budget_chars = int(cfg.context_tokens * cfg.chars_per_token)
    truncated = [k for k, n in history_chars.items() if n > budget_chars]
    fc = [r for r in main if r.condition == "full-context" and r.error is None]
    fc_tokens = percentiles([float(r.testtime_prompt_tokens) for r in fc])
    labels = {
        "sleeptime": (
            "sleep-time memory (the product's read: blocks, dated facts, recalled turns, tail)"
            if cfg.consolidation == "pipeline"
            else "sleep-time memory (blocks + top-k notes)"
        ),
        "full-context": (
            f"full-context (truncated to {cfg.context_tokens} tokens)"
            if truncated
            else "full-context"
        ),
        "rag": f"raw-turn RAG (top-{cfg.rag_k} turns)",
    }
    for condition in lent:
        labels[condition] = f"{labels.get(condition, condition)}, from {cfg.baselines_from}"
    cats = _ordered((str((r.model_extra or {}).get("category")) for r in main), categories)
    table: dict[str, Any] = {}
    for condition in conditions:
        rs = [r for r in main if r.condition == condition]
        entry: dict[str, Any] = {
            "label": labels.get(condition, condition),
            "overall": condition_stats(rs, cfg.weight),
            "by_category": {
                c: condition_stats(
                    [r for r in rs if str((r.model_extra or {}).get("category")) == c],
                    cfg.weight,
                )
                for c in cats
            },
        }
        if excluded:
            kept = [r for r in rs if str((r.model_extra or {}).get("category")) not in excluded]
            entry["overall_excluding"] = {
                "excluded": list(excluded),
                **condition_stats(kept, cfg.weight),
            }
        table[condition] = entry
    paired = paired_comparisons(main, conditions, excluded)
    # Abstentions score high on LoCoMo's adversarial category, so an empty memory would look
    # good there: the plot shows the score without the excluded categories.
    plotted = [r for r in main if str((r.model_extra or {}).get("category")) not in excluded]
    plot = _plot(cfg, summarize(plotted), labels, excluded)
    n_done = len([r for r in main if r.error is None and r.condition in cfg.conditions])
    data: dict[str, Any] = {
        "model": cfg.model,
        "score_kind": score_kind,
        "selection": cfg.selection,
        "dialogues": keys,
        "questions_per_dialogue": {d.key: len(d.questions) for d in dialogues},
        "answers_done": n_done,
        "answers_expected": len(wanted),
        "complete": n_done == len(wanted),
        "settings": {
            k: v
            for k, v in asdict(cfg).items()
            if k not in ("out", "selection", "notes", "benchmark", "model")
        },
        "conditions": table,
        "paired": paired,
        "baselines_from": (
            {
                "directory": str(cfg.baselines_from),
                "conditions": lent,
                "answers": len(borrowed),
            }
            if cfg.baselines_from
            else None
        ),
        "sleeptime_ingestion": {
            "per_dialogue": ingest,
            "mean_tokens_per_dialogue": (sum(per_dialogue) / len(per_dialogue))
            if per_dialogue
            else 0.0,
            "total_wall_time_s": sum(float(i.get("wall_time_s", 0.0)) for i in ingest),
            "attribution": (
                "each sleeptime answer carries its dialogue's sleep-time tokens (input + output "
                "of every consolidation call) divided by the dialogue's evaluated questions"
            ),
        },
        "full_context": {
            "budget_tokens": cfg.context_tokens,
            "chars_per_token_estimate": cfg.chars_per_token,
            "dialogues_truncated": len(truncated),
            "dialogues": len(dialogues),
            "history_chars": history_chars,
            "measured_prompt_tokens": fc_tokens,
        },
        "prefix_cache": _cache_effect(latest, cfg.cache_probe),
        "cost_model": (
            f"amortized cost per question = sleep-time tokens per question + {cfg.weight:g} x "
            "(test-time prompt + completion tokens); amortized_cost_completion_only prices only "
            "completion tokens, as the paper does"
        ),
        "latency": "wall time per question: memory/retrieval read + the model call",
        "durations": {
            "this_invocation_s": round(invocation_s, 1),
            "sum_answer_time_s": round(sum(r.wall_time_s for r in latest.values()), 1),
            "sum_ingestion_time_s": round(sum(float(i.get("wall_time_s", 0)) for i in ingest), 1),
        },
        "files": {
            "results": cfg.results_path.name,
            "ingestion": cfg.ingest_path.name,
            "memory": cfg.memory_path.name,
            "plot": plot.name,
            "tables": cfg.tables_path.name,
        },
        "notes": cfg.notes,
    }
    path = write_report(cfg.out, cfg.benchmark, data)
    tables = markdown_summary(json.loads(path.read_text(encoding="utf-8")))
    cfg.tables_path.write_text(tables, encoding="utf-8")
    return path


def _borrowed(cfg: MemoryBenchConfig, item_ids: set[str]) -> list[ResultRecord]:
    """The latest answers in ``cfg.baselines_from`` for these questions and other conditions.

    Raises:
        ConfigurationError: The directory holds no answers of this benchmark, or its report
            names another answering model.
    """
    if cfg.baselines_from is None:
        return []
    other = MemoryBenchConfig(benchmark=cfg.benchmark, out=cfg.baselines_from)
    if not other.results_path.exists():
        raise ConfigurationError(f"--baselines-from: no {other.results_path}")
    report = other.out / f"{cfg.benchmark}.json"
    if report.exists():
        model = json.loads(report.read_text(encoding="utf-8")).get("model")
        if model != cfg.model:
            raise ConfigurationError(
                f"--baselines-from: {report} was answered by {model!r}, this run by {cfg.model!r}"
            )
    return [
        r
        for (item, condition), r in ResultsFile(other.results_path).latest().items()
        if item in item_ids and condition in CONDITIONS and condition not in cfg.conditions
    ]


def paired_comparisons(
    records: Sequence[ResultRecord],
    conditions: Sequence[str],
    excluded: Sequence[str],
    samples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``sleeptime`` against every other condition on the questions both answered.

    Partial runs compare on what both conditions answered (every condition answers each block
    of questions before the next starts), without the excluded categories. The intervals come
    from resampling questions (seeded), so they are paired: a question's difficulty cancels.

    Returns:
        One entry per other condition: ``n``, both means, ``difference`` with its 95% interval,
        ``ratio`` (sleeptime / other) with its interval, and ``evidence``: whether the
        difference's interval leaves out 0.
    """
    if "sleeptime" not in conditions:
        return []

    def scores(condition: str) -> dict[str, float]:
        return question_scores(records, condition, excluded)

    mine = scores("sleeptime")
    out: list[dict[str, Any]] = []
    for other in (c for c in conditions if c != "sleeptime"):
        pair = paired_difference(mine, scores(other), samples=samples, seed=seed)
        if pair is None:
            continue
        out.append(
            {
                "other": other,
                "n": pair["n"],
                "excluded": list(excluded),
                "sleeptime_mean": pair["mean"],
                "other_mean": pair["other_mean"],
                **{k: pair[k] for k in ("difference", "difference_ci95", "ratio", "ratio_ci95")},
                "evidence": pair["evidence"],
            }
        )
    return out


def question_scores(
    records: Iterable[ResultRecord], condition: str, excluded: Sequence[str] = ()
) -> dict[str, float]:
    """Each answered question's score under ``condition``: F1, else 1/0 for ``correct``."""
    # LoCoMo records a score (token F1); LongMemEval only ``correct`` (accuracy).
    return {
        r.item_id: float(r.score) if r.score is not None else float(bool(r.correct))
        for r in records
        if r.condition == condition
        and r.error is None
        and str((r.model_extra or {}).get("category")) not in excluded
    }


def paired_difference(
    mine: dict[str, float], theirs: dict[str, float], samples: int = 2000, seed: int = 0
) -> dict[str, Any] | None:
    """``mine`` against ``theirs`` on the questions both have, with bootstrap intervals.

    The intervals come from resampling questions (seeded), so they are paired: a question's
    difficulty cancels.

    Returns:
        ``n``, ``mean``, ``other_mean``, ``difference`` with ``difference_ci95``, ``ratio``
        (mine / theirs) with ``ratio_ci95``, and ``evidence``: whether the difference's interval
        leaves out 0. ``None`` when no question is shared.
    """
    items = sorted(set(mine) & set(theirs))
    if not items:
        return None
    rng = random.Random(seed)
    diffs: list[float] = []
    ratios: list[float | None] = []
    for _ in range(samples):
        pick = [items[rng.randrange(len(items))] for _ in items]
        a, b = sum(mine[i] for i in pick), sum(theirs[i] for i in pick)
        diffs.append((a - b) / len(pick))
        ratios.append(a / b if b else None)
    a_mean = sum(mine[i] for i in items) / len(items)
    b_mean = sum(theirs[i] for i in items) / len(items)
    low, high = bootstrap_interval(diffs)
    return {
        "n": len(items),
        "mean": a_mean,
        "other_mean": b_mean,
        "difference": a_mean - b_mean,
        "difference_ci95": [low, high],
        "ratio": a_mean / b_mean if b_mean else None,
        "ratio_ci95": list(bootstrap_interval(ratios)),
        "evidence": low is not None and high is not None and (low > 0 or high < 0),
    }


def _plot(
    cfg: MemoryBenchConfig,
    summary: dict[str, ConditionSummary],
    labels: dict[str, str],
    excluded: Sequence[str],
) -> Path:
    def amortized(entry: ConditionSummary) -> float:
        return entry.mean_sleeptime_tokens + cfg.weight * (
            entry.mean_testtime_prompt_tokens + entry.mean_testtime_completion_tokens
        )

    named = {
        labels.get(k, k): v.model_copy(update={"condition": labels.get(k, k)})
        for k, v in summary.items()
    }
    return plot_score_vs_cost(
        named,
        cfg.plot_path,
        cost=amortized,
        title=f"{cfg.benchmark}: score vs amortized cost per question ({cfg.model})"
        + (f"\nscore without {', '.join(excluded)}" if excluded else ""),
        xlabel=f"sleep-time tokens/question + {cfg.weight:g} x test-time tokens",
    )


# --------------------------------------------------------------------------- command line


def add_options(
    p: argparse.ArgumentParser,
    *,
    rag_k: int,
    out: str,
    run: Callable[[argparse.Namespace], Path],
) -> None:
    """Add the options shared by ``bench locomo`` and ``bench longmemeval``; ``run`` runs it."""

    def command(args: argparse.Namespace) -> int:
        print(f"report: {run(args)}")  # noqa: T201 - the CLI's own output
        return 0

    p.add_argument("--model", default="local", help="'local' (default) or provider:model")
    p.add_argument("--sleeptime-model", default=None, help="sleep-time model (default: --model)")
    p.add_argument(
        "--local-threads",
        type=int,
        default=None,
        metavar="N",
        help="llama.cpp threads of the local model (1 is ~4x faster on a loaded shared machine)",
    )
    p.add_argument("--out", default=out, help=f"output directory (default {out})")
    p.add_argument("--data", default=None, help="evaluation data directory")
    p.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help=f"comma-separated subset of {','.join(CONDITIONS)}",
    )
    p.add_argument(
        "--answer-tokens",
        type=int,
        default=None,
        help="answer completion-token cap (default 64; 128 with --answer-style quote)",
    )
    p.add_argument(
        "--answer-style",
        choices=("direct", "quote"),
        default="direct",
        help="direct: the reply is the answer (default). quote: every condition first copies "
        "the message that answers, then answers after 'Answer:', which is what is scored",
    )
    p.add_argument(
        "--context-tokens",
        type=int,
        default=7400,
        help="full-context budget: keep the most recent turns that fit (default 7400: the "
        "local model's 8k window less the answer and a margin)",
    )
    p.add_argument("--rag-k", type=int, default=rag_k, help=f"turns retrieved (default {rag_k})")
    p.add_argument("--notes-k", type=int, default=5, help="archival notes read (default 5)")
    p.add_argument("--sleeptime-steps", type=int, default=6, help="model calls per sleep-time run")
    p.add_argument(
        "--consolidation",
        default="auto",
        choices=["auto", "pipeline", "tool-loop"],
        help="sleep-time consolidation: auto (default: the product's choice per model, the "
        "pipeline for the local model), pipeline, or the Letta-style tool loop",
    )
    p.add_argument(
        "--keywords",
        action="store_true",
        help="pipeline: model-written keywords/entities as recall keys (one call per message)",
    )
    p.add_argument(
        "--facts",
        action="store_true",
        help="pipeline: model-written atomic facts (one call per message)",
    )
    p.add_argument(
        "--anticipate",
        action="store_true",
        help="pipeline: likely next questions with answers in the anticipation block "
        "(one call per run)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        help="pipeline: samples per message of --keywords/--facts (sample 0 greedy, the rest "
        "at temperature 0.7), keeping what at least half agree on (default 1)",
    )
    p.add_argument(
        "--recall-before",
        type=int,
        default=0,
        metavar="N",
        help="sleep-time read: also show the N turns said just before each recalled turn "
        "(default 0)",
    )
    p.add_argument(
        "--recall-replies",
        type=int,
        default=0,
        metavar="N",
        help="sleep-time read: also show the N turns said just after each recalled question, "
        "where its answer is (default 0)",
    )
    p.add_argument(
        "--recall-k",
        type=int,
        default=ReadOptions.recall_k,
        metavar="N",
        help=f"sleep-time read: raw turns recalled by the hybrid search (default "
        f"{ReadOptions.recall_k})",
    )
    p.add_argument(
        "--recall-order",
        choices=("time", "relevance"),
        default=ReadOptions.recall_order,
        help="sleep-time read: show the recalled turns oldest first (time) or with the best "
        f"match last, next to the question (relevance; default {ReadOptions.recall_order})",
    )
    p.add_argument(
        "--speaker-boost",
        action="store_true",
        help="sleep-time read: when a question names one speaker, rank that speaker's turns higher",
    )
    p.add_argument(
        "--recall-focus",
        action=argparse.BooleanOptionalAction,
        default=ReadOptions.recall_focus,
        help="sleep-time read: clip a long recalled turn around the sentences that share the "
        "question's words, not at its start",
    )
    p.add_argument(
        "--recall-line",
        choices=RECALL_LINES,
        default=DEFAULT_RECALL_LINE,
        help="pipeline: what the sleep-time read shows of a recalled turn: the words as said, "
        "dated (default; the third-person rendering stays a search key), or the rendering",
    )
    p.add_argument(
        "--cache-probe",
        type=int,
        default=5,
        help="also answer the first N questions question-first, to measure the prefix cache",
    )
    p.add_argument("--keep-state", action="store_true", help="keep memory stores under OUT/state/")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from the answers already in OUT (e.g. while a run goes on)",
    )
    p.add_argument(
        "--baselines-from",
        default=None,
        metavar="DIR",
        help="report the conditions this run leaves out from the answers in DIR (same model, "
        "same questions): e.g. a new sleeptime setting paired with RAG answered earlier",
    )
    p.set_defaults(func=command)


def config_from_args(
    args: argparse.Namespace, benchmark: str, *, selection: str, notes: Sequence[str]
) -> MemoryBenchConfig:
    """The run's settings from the options of :func:`add_options` (and the benchmark's own).

    Raises:
        ConfigurationError: ``--conditions`` names an unknown condition.
    """
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    unknown = set(conditions) - set(CONDITIONS)
    if unknown or not conditions:
        raise ConfigurationError(f"unknown conditions {sorted(unknown)}; choose from {CONDITIONS}")
    return MemoryBenchConfig(
        benchmark=benchmark,
        out=Path(args.out),
        model=args.model,
        conditions=conditions,
        answer_tokens=args.answer_tokens or (128 if args.answer_style == "quote" else 64),
        answer_style=args.answer_style,
        context_tokens=args.context_tokens,
        rag_k=args.rag_k,
        rag_chars=getattr(args, "rag_chars", 600),
        notes_k=args.notes_k,
        sleeptime_steps=args.sleeptime_steps,
        consolidation=args.consolidation,
        keywords=args.keywords,
        facts=args.facts,
        anticipate=getattr(args, "anticipate", False),
        samples=getattr(args, "samples", 1),
        recall_before=getattr(args, "recall_before", 0),
        recall_replies=getattr(args, "recall_replies", 0),
        recall_k=getattr(args, "recall_k", ReadOptions.recall_k),
        recall_order=getattr(args, "recall_order", ReadOptions.recall_order),
        speaker_boost=getattr(args, "speaker_boost", False),
        recall_focus=getattr(args, "recall_focus", ReadOptions.recall_focus),
        recall_line=getattr(args, "recall_line", DEFAULT_RECALL_LINE),
        memory_assistant_chars=getattr(args, "memory_assistant_chars", None),
        cache_probe=args.cache_probe,
        keep_state=args.keep_state,
        report_only=args.report_only,
        baselines_from=Path(args.baselines_from) if getattr(args, "baselines_from", None) else None,
        selection=selection,
        notes=list(notes),
    )


def run_from_args(
    args: argparse.Namespace,
    cfg: MemoryBenchConfig,
    dialogues: Sequence[Dialogue],
    score: ScoreFn,
    **kwargs: Any,
) -> Path:
    """Resolve ``--model`` / ``--sleeptime-model`` and run :func:`run_memory_bench` to the end."""
    model, sleeptime_model = load_models(
        args.model, args.sleeptime_model, getattr(args, "local_threads", None)
    )
    return asyncio.run(run_memory_bench(cfg, dialogues, model, sleeptime_model, score, **kwargs))
