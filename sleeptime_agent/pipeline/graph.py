"""The consolidation pipeline as a LangGraph graph: code first, then what the model does well.

``observe`` (code) attributes, dates and renders the batch; ``label`` (model, optional) adds
keywords and entities per message; ``extract`` (model, optional) adds atomic facts per message;
``index`` (code) writes every message into recall memory under its keys and the facts into the
fact store; ``profile`` (code) rewrites each subject's profile block from its current facts with
compare-and-swap; ``anticipate`` (model, optional) writes the anticipation block: likely next
questions with answers from the profile blocks and the batch, grounded by code, also with
compare-and-swap. Disabled layers are skipped by the router, so each model-written layer can be
measured against the same pipeline without it.

Nothing here raises on a bad model reply: failures are collected in the state and reported by
the caller. A storage error does raise, so the run fails and the cursor stays where it was.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, TypedDict, TypeVar

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from sleeptime_agent import prompts
from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import VersionConflict
from sleeptime_agent.models import with_temperature
from sleeptime_agent.pipeline.anticipate import (
    ANTICIPATION_LABEL,
    anticipate,
    render_anticipation,
)
from sleeptime_agent.pipeline.enrich import (
    ExtractedFact,
    Labels,
    combine_facts,
    combine_labels,
    extract_facts,
    label_message,
)
from sleeptime_agent.pipeline.render import Observation, observe
from sleeptime_agent.scheduler import ForegroundGate
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.facts import Fact, FactStore
from sleeptime_agent.storage.recall import RecallIndex, RecallRecord
from sleeptime_agent.storage.transcript import TranscriptMessage

__all__ = [
    "DEFAULT_RECALL_LINE",
    "RECALL_LINES",
    "PipelineContext",
    "PipelineState",
    "RecallLine",
    "build_pipeline_graph",
    "profile_label",
    "render_profile",
]

RecallLine = Literal["rendered", "said"]
#: What the primary reads of a recalled turn (``PipelineContext.recall_line``).
RECALL_LINES: tuple[RecallLine, ...] = ("rendered", "said")
#: The words as said, dated, scored higher on LoCoMo conv-30 (tuning) than the third-person
#: rendering: token F1 0.374 vs 0.334 on 81 questions, paired +0.039 [0.000, +0.081]
#: (benchmarks/results/locomo/tuning-conv30-said/README.md). The rendering stays a search key.
DEFAULT_RECALL_LINE: RecallLine = "said"


class PipelineState(TypedDict, total=False):
    """State of one pipeline run over one batch of transcript messages."""

    messages: list[TranscriptMessage]
    """The batch, oldest first (session headers included)."""
    observations: list[Observation]
    """The batch attributed, dated and rendered (headers consumed)."""
    labels: dict[int, Labels]
    """Model-written keywords and entities per sequence number."""
    facts: dict[int, list[ExtractedFact]]
    """Model-written, code-checked facts per sequence number."""
    stored_facts: int
    indexed: int
    profiles: list[str]
    """Labels of the profile blocks rewritten."""
    anticipated: int
    """Questions written to the anticipation block (0: it kept its previous value)."""
    calls: int
    input_tokens: int
    output_tokens: int
    failures: list[dict[str, Any]]


@dataclass(kw_only=True)
class PipelineContext:
    """Run dependencies and switches of one pipeline run."""

    store: ChromaBlockStore
    namespace: Namespace
    recall: RecallIndex
    fact_store: FactStore
    model: BaseChatModel | None = None
    """The sleep-time model; ``None`` runs the code-only layers."""
    keywords: bool = False
    """Model-written keywords and entities as recall keys."""
    facts: bool = False
    """Model-written atomic facts (stored as dated archival notes, shown in profile blocks)."""
    profiles: bool = True
    """Rewrite each subject's profile block from its facts."""
    anticipate: bool = False
    """Model-written likely next questions with answers in the anticipation block (c')."""
    anticipate_questions: int = 3
    """The most questions the anticipation block gets per run."""
    samples: int = 1
    """Samples per message of each model-written layer (the paper's sleep-time compute axis):
    sample 0 is greedy, the others are drawn at ``sample_temperature``, and what at least half
    of them agree on is kept (:func:`~sleeptime_agent.pipeline.enrich.combine_labels`,
    :func:`~sleeptime_agent.pipeline.enrich.combine_facts`)."""
    sample_temperature: float = 0.7
    """Sampling temperature of samples 1.. (sample 0 is greedy)."""
    recall_line: RecallLine = DEFAULT_RECALL_LINE
    """What the primary reads of a recalled turn: the words as ``said`` (dated, relative dates
    resolved; the rendering stays a search key), or the third-person ``rendered`` line."""
    ground_in_assistant: bool = False
    """Whether an anticipated answer may rest on the assistant's own turns (see
    :class:`~sleeptime_agent.consolidation.Consolidator`)."""
    names: dict[str, str] = field(default_factory=dict)
    """Display name per transcript role (``{"user": "Tomasz"}``)."""
    subject_labels: dict[str, str] = field(default_factory=dict)
    """Profile block label per subject (default: the subject's name in lower case)."""
    start_date: datetime | None = None
    """The session date in force before the batch's first message."""
    gate: ForegroundGate | None = None
    """User turns go first: a turn preempts the model call in flight (retried whole after it)
    and holds the next ones."""
    concurrency: int = 1
    """Model calls in flight (1 for the local model: it runs one request at a time)."""


def profile_label(subject: str) -> str:
    """The default block label of a subject ("Jon" -> "jon", "the user" -> "human")."""
    if subject == "the user":
        return "human"
    return re.sub(r"[^a-z0-9_]+", "_", subject.lower()).strip("_") or "subject"


def render_profile(facts: list[Fact], limit: int) -> str:
    """A subject's profile: its facts as dated lines, the newest that fit ``limit``, in order."""
    lines: list[str] = []
    size = 0
    for fact in sorted(facts, key=lambda f: (f.date, f.max_seq), reverse=True):
        line = f"- {fact.line()}"
        if size + len(line) + 1 > limit:
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(reversed(lines))


T = TypeVar("T")


async def _gated(gate: ForegroundGate | None, call: Callable[[], Awaitable[T]]) -> T:
    return await gate.run(call) if gate is not None else await call()


def _model_calls(ctx: PipelineContext) -> bool:
    return ctx.model is not None and (ctx.keywords or ctx.facts)


async def _observe(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    obs = observe(state["messages"], names=ctx.names, start_date=ctx.start_date)
    return {"observations": obs, "labels": {}, "facts": {}, "failures": [], "calls": 0}


async def _enrich(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert ctx.model is not None
    model = ctx.model
    observations = state.get("observations", [])
    subjects = sorted({o.speaker for o in observations})
    labels: dict[int, Labels] = {}
    facts: dict[int, list[ExtractedFact]] = {}
    failures: list[dict[str, Any]] = list(state.get("failures", []))
    totals = {"calls": 0, "in": 0, "out": 0}
    limit = asyncio.Semaphore(max(1, ctx.concurrency))

    # Nested samples: sample 0 is the greedy reply, so samples=1 is the single-call pipeline.
    models = [model] + [with_temperature(model, ctx.sample_temperature)] * (ctx.samples - 1)

    async def sampled(
        call: Callable[[BaseChatModel], Awaitable[T]], combine: Callable[[list[T]], T]
    ) -> T:
        got = [await _gated(ctx.gate, partial(call, m)) for m in models]
        return got[0] if len(got) == 1 else combine(got)

    async def one(obs: Observation) -> None:
        async with limit:
            if ctx.keywords:
                got = await sampled(partial(label_message, obs=obs), combine_labels)
                totals["calls"] += len(models)
                totals["in"] += got.input_tokens
                totals["out"] += got.output_tokens
                labels[obs.seq] = got
                if got.failure:
                    failures.append({"layer": "keywords", "seq": obs.seq, "error": got.failure})
            if ctx.facts:
                reply = await sampled(
                    partial(extract_facts, obs=obs, subjects=subjects), combine_facts
                )
                totals["calls"] += len(models)
                totals["in"] += reply.input_tokens
                totals["out"] += reply.output_tokens
                facts[obs.seq] = list(reply.facts)
                if reply.failure:
                    failures.append({"layer": "facts", "seq": obs.seq, "error": reply.failure})
                failures.extend(
                    {"layer": "facts", "seq": obs.seq, "kind": "dropped", "error": d}
                    for d in reply.dropped
                )

    await asyncio.gather(*(one(o) for o in observations))
    return {
        "labels": labels,
        "facts": facts,
        "failures": failures,
        "calls": state.get("calls", 0) + totals["calls"],
        "input_tokens": state.get("input_tokens", 0) + totals["in"],
        "output_tokens": state.get("output_tokens", 0) + totals["out"],
    }


def _keys(
    obs: Observation,
    labels: Labels | None,
    facts: list[ExtractedFact],
    recall_line: RecallLine,
) -> tuple[str, ...]:
    # The message as said is a key too: on conv-30 (tuning) it lifted vector recall@10 of the
    # evidence turns from 0.462 to 0.509 (hybrid @5: 0.453 -> 0.481) over the rendering alone.
    # When the primary reads the words as said, the rendering is the extra key instead.
    keys: list[str] = [d.text for d in obs.dates]
    other = obs.text if recall_line == "rendered" else obs.rendered
    if other.strip() and obs.text != obs.rendered:
        keys.append(other)
    if labels is not None:
        keys.extend(labels.keywords)
        keys.extend(labels.entities)
    keys.extend(f.text for f in facts)
    unique: dict[str, str] = {}
    for key in keys:
        unique.setdefault(key.lower(), key)
    return tuple(unique.values())


def _index_sync(state: PipelineState, ctx: PipelineContext) -> dict[str, Any]:
    observations = state.get("observations", [])
    labels = state.get("labels", {})
    extracted = state.get("facts", {})
    records = [
        RecallRecord(
            seq=o.seq,
            line=o.line() if ctx.recall_line == "rendered" else o.said_line(),
            speaker=o.speaker,
            session=o.session,
            date=o.observed.isoformat() if o.observed else "",
            keys=_keys(o, labels.get(o.seq), extracted.get(o.seq, []), ctx.recall_line),
        )
        for o in observations
    ]
    ctx.recall.add(ctx.namespace, records)
    facts = [
        Fact(
            text=f.text,
            subject=f.subject,
            date=o.observed.isoformat() if o.observed else "",
            session=o.session,
            sources=(o.seq,),
        )
        for o in observations
        for f in extracted.get(o.seq, [])
    ]
    stored = ctx.fact_store.add(ctx.namespace, facts) if facts else []
    return {"indexed": len(records), "stored_facts": len(stored)}


async def _index(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    return await asyncio.to_thread(_index_sync, state, runtime.context)


def _rewrite(
    ctx: PipelineContext, block: MemoryBlock, value_for: Callable[[int], str | None]
) -> str | None:
    """Write ``value_for(limit)`` into ``block`` with compare-and-swap; the value written.

    ``None`` from ``value_for`` means nothing to write. On a conflict the block is re-read and
    the value re-made for its current limit (3 tries): a concurrent version is never
    overwritten blindly.
    """
    for _ in range(3):
        value = value_for(block.limit)
        if value is None or value == block.value:
            return None
        try:
            ctx.store.put_block(
                ctx.namespace,
                block.model_copy(update={"value": value}),
                expected_version=block.version,
                author="sleeptime",
            )
            return value
        except VersionConflict:
            fresh = ctx.store.get_block(ctx.namespace, block.label)
            if fresh is None:
                return None
            block = fresh
    return None


def _profile_sync(state: PipelineState, ctx: PipelineContext) -> dict[str, Any]:
    subjects = {f.subject for fs in state.get("facts", {}).values() for f in fs}
    if not subjects:
        return {"profiles": []}
    live = ctx.fact_store.all(ctx.namespace)
    blocks = {b.label: b for b in ctx.store.list_blocks(ctx.namespace)}
    changed: list[str] = []
    for subject in sorted(subjects):
        label = ctx.subject_labels.get(subject, profile_label(subject))
        block = blocks.get(label)
        if block is None or block.read_only:
            continue  # no profile block for this subject: its facts stay archival notes
        render = partial(render_profile, [f for f in live if f.subject == subject])
        if _rewrite(ctx, block, render) is not None:
            changed.append(label)
    return {"profiles": changed}


async def _profile(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    return await asyncio.to_thread(_profile_sync, state, runtime.context)


def _anticipation_input(
    state: PipelineState, ctx: PipelineContext, blocks: list[MemoryBlock]
) -> tuple[list[str], str, str]:
    """``(subjects, prompt, sources)``: what the model reads, and what answers must come from.

    The anticipation block itself is left out of both: last run's answers must not ground
    this run's. The assistant's turns are shown but ground nothing unless
    ``ground_in_assistant``: a small model's reply elaborates, as the edit tools' guard found.
    """
    observations = state.get("observations", [])
    extracted = [f for fs in state.get("facts", {}).values() for f in fs]
    subjects = sorted({o.speaker for o in observations} | {f.subject for f in extracted})
    labels = {ctx.subject_labels.get(s, profile_label(s)) for s in subjects}
    profiles = [
        b for b in blocks if b.label in labels and b.label != ANTICIPATION_LABEL and b.value.strip()
    ]
    prompt = prompts.PIPELINE_ANTICIPATE_USER.format(
        blocks="\n".join(f"[{b.label}]\n{b.value}" for b in profiles) or "(none)",
        messages="\n".join(o.line() for o in observations) or "(none)",
        facts="\n".join(f"- {f.text}" for f in extracted) or "(none)",
    )
    sources = "\n".join(
        [b.value for b in profiles]
        + [
            f"{o.line()}\n{o.text}"
            for o in observations
            if ctx.ground_in_assistant or o.role != "assistant"
        ]
        + [f.text for f in extracted]
    )
    return subjects, prompt, sources


async def _anticipate(state: PipelineState, runtime: Runtime[PipelineContext]) -> dict[str, Any]:
    ctx = runtime.context
    assert ctx.model is not None
    model = ctx.model
    blocks = await asyncio.to_thread(ctx.store.list_blocks, ctx.namespace)
    target = next((b for b in blocks if b.label == ANTICIPATION_LABEL), None)
    if target is None or target.read_only:
        # Reported, not raised: the other layers' work stands, and the ledger shows why.
        skipped = {"layer": "anticipate", "kind": "skipped", "error": "no writable block"}
        return {"anticipated": 0, "failures": [*state.get("failures", []), skipped]}
    if not state.get("observations"):
        return {"anticipated": 0}  # nothing new to anticipate from
    subjects, prompt, sources = _anticipation_input(state, ctx, blocks)
    reply = await _gated(
        ctx.gate,
        lambda: anticipate(
            model, prompt, subjects, sources=sources, max_questions=ctx.anticipate_questions
        ),
    )
    failures: list[dict[str, Any]] = list(state.get("failures", []))
    if reply.failure:
        failures.append({"layer": "anticipate", "error": reply.failure})
    failures.extend({"layer": "anticipate", "kind": "dropped", "error": d} for d in reply.dropped)
    questions = reply.questions

    def value_for(limit: int) -> str | None:
        # No valid question (or none that fits): the block keeps its previous value.
        return render_anticipation(questions, limit) or None

    value = await asyncio.to_thread(_rewrite, ctx, target, value_for)
    written = value.count("\n") + 1 if value else 0
    return {
        "anticipated": written,
        "failures": failures,
        "calls": state.get("calls", 0) + 1,
        "input_tokens": state.get("input_tokens", 0) + reply.input_tokens,
        "output_tokens": state.get("output_tokens", 0) + reply.output_tokens,
    }


def _anticipates(ctx: PipelineContext) -> bool:
    return ctx.model is not None and ctx.anticipate


def _after_observe(state: PipelineState, runtime: Runtime[PipelineContext]) -> str:
    return "enrich" if _model_calls(runtime.context) else "index"


def _after_index(state: PipelineState, runtime: Runtime[PipelineContext]) -> str:
    ctx = runtime.context
    if ctx.profiles and ctx.facts:
        return "profile"
    return "anticipate" if _anticipates(ctx) else END


def _after_profile(state: PipelineState, runtime: Runtime[PipelineContext]) -> str:
    return "anticipate" if _anticipates(runtime.context) else END


def build_pipeline_graph() -> CompiledStateGraph[PipelineState, PipelineContext, Any, Any]:
    """Compile the consolidation pipeline (dependencies come through the run's context)."""
    builder = StateGraph(PipelineState, context_schema=PipelineContext)
    builder.add_node("observe", _observe)
    builder.add_node("enrich", _enrich)
    builder.add_node("index", _index)
    builder.add_node("profile", _profile)
    builder.add_node("anticipate", _anticipate)
    builder.add_edge(START, "observe")
    builder.add_conditional_edges("observe", _after_observe, ["enrich", "index"])
    builder.add_edge("enrich", "index")
    builder.add_conditional_edges("index", _after_index, ["profile", "anticipate", END])
    builder.add_conditional_edges("profile", _after_profile, ["anticipate", END])
    builder.add_edge("anticipate", END)
    return builder.compile(name="sleeptime_pipeline")
