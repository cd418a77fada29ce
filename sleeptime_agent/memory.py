"""SleeptimeMemory: the few calls an app needs to read refined memory and feed the sleep-time agent.

It bundles the block store, the durable transcript, the consolidator and the scheduler. The chat
graph is built on it, and so is the drop-in node for apps that are not ours::

    memory = SleeptimeMemory(store, sleeptime_model=model)
    view = memory.read(namespace, query=user_text, thread_id=tid)   # before answering
    ... answer with view.render() in the system prompt ...
    memory.record_turn(namespace, tid, user_text, answer)           # after answering
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from sleeptime_agent import prompts
from sleeptime_agent.blocks import MemoryBlock, namespace_from_config, order_blocks
from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.ledger import Ledger, RunRecord
from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.scheduler import ForegroundGate, SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace, Note
from sleeptime_agent.storage.facts import Fact, FactStore
from sleeptime_agent.storage.recall import RecallHit, RecallIndex, focus
from sleeptime_agent.storage.transcript import Transcript, TranscriptMessage

__all__ = [
    "CONSOLIDATIONS",
    "MemoryView",
    "ReadOptions",
    "SleeptimeMemory",
    "consolidation_for",
]

#: How the sleep-time agent consolidates: the pipeline, the Letta-style edit-tool loop, or
#: ``auto``: per model, whichever scored better on the tuning split. For the embedded 1.5B model
#: that is the pipeline (LoCoMo conv-30: the tool loop's memory scored token F1 0.026, below
#: raw-turn RAG; the pipeline's recall finds 0.575 of the evidence turns in its top 10 vs 0.443
#: for raw-turn RAG). Other models keep the tool loop, which they were built and tested with.
CONSOLIDATIONS = ("auto", "pipeline", "tool-loop")
_LOCAL_LLM_TYPE = "sleeptime-local-llamacpp"


def consolidation_for(model: BaseChatModel, consolidation: str = "auto") -> str:
    """The consolidation ``auto`` means for ``model`` (others are returned as they are)."""
    if consolidation != "auto":
        return consolidation
    return "pipeline" if getattr(model, "_llm_type", "") == _LOCAL_LLM_TYPE else "tool-loop"


@dataclass(frozen=True)
class ReadOptions:
    """What the primary reads besides the blocks, and within which budget.

    The parts come in this order, so the stable ones form a prefix llama.cpp can reuse:
    blocks -> top-k dated facts -> top-k recalled turns with their dates -> the unconsolidated
    tail. Each part can be switched off.
    """

    blocks: bool = True
    """The memory blocks (persona always)."""
    blocks_at_run_start: bool = True
    """While a sleep-time run of this process is in flight, read the blocks as it found them:
    its edits appear when it commits (see
    :meth:`~sleeptime_agent.consolidation.Consolidator.blocks_at_run_start`). Off: each edit
    shows as soon as it is applied (e.g. a primary that edits memory itself mid-run)."""
    facts_k: int = 5
    """Dated facts retrieved (0: none)."""
    recall_k: int = 10
    """Raw turns recalled by the hybrid search (0: none)."""
    speaker_boost: bool = False
    """When the query names exactly one speaker, rank that speaker's turns higher."""
    recall_before: int = 0
    """Also show the turns said just before each recalled one (the question a reply answers)."""
    recall_replies: int = 0
    """Also show the turns said just after each recalled question (the reply that answers it)."""
    vector: bool = True
    """Recall by embedding."""
    bm25: bool = True
    """Recall by BM25."""
    recall_order: Literal["time", "relevance"] = "time"
    """Order of the recalled turns: ``time`` (oldest first, so dates read in order) or
    ``relevance`` (the best match last, next to the question)."""
    tail: bool = True
    """The messages the sleep-time agent has not consolidated yet."""
    token_budget: int = 1500
    """Facts and recalled turns are trimmed (least relevant first) to fit this many tokens
    together with the blocks (the tail is never cut: it may hold the only copy of a fact)."""
    chars_per_token: float = 3.5
    """Conservative estimate used for the budget."""
    line_chars: int = 600
    """Each recalled turn is clipped to this many characters."""
    recall_focus: bool = True
    """Clip a long recalled turn around the sentences that match the query, not at its start
    (on: best on the LongMemEval tuning split, 36/50 vs 35/50; a no-op on LoCoMo's short turns)."""
    retrieval_share: float = 0.4
    """Share of the budget kept for facts and recalled turns however large the blocks are."""


@dataclass(frozen=True)
class MemoryView:
    """What the primary reads for one turn: blocks, retrieved notes, and the unconsolidated tail."""

    blocks: list[MemoryBlock]
    notes: list[Note]
    pending: list[TranscriptMessage]
    """Messages the sleep-time agent has not consolidated yet (every thread), oldest first."""
    cursor: int
    facts: list[Fact] = field(default_factory=list)
    """Top-k dated facts for the query, most relevant first."""
    recalled: list[RecallHit] = field(default_factory=list)
    """Top-k consolidated turns for the query, in ``recall_order``."""
    recall_order: Literal["time", "relevance"] = "time"
    """How ``recalled`` is ordered (see :attr:`ReadOptions.recall_order`)."""

    def render_blocks(self) -> str:
        """Blocks as tagged text; stable blocks first so a prefix cache can reuse them."""
        return "\n".join(b.render() for b in order_blocks(self.blocks))

    def render_notes(self) -> str:
        """Retrieved archival notes, dated facts and recalled turns, or nothing."""
        out = ""
        if self.notes:
            lines = "\n".join(f"- {n.text}" for n in self.notes)
            out += f"\nRelevant archived notes:\n{lines}\n"
        if self.facts:
            lines = "\n".join(f"- {f.line()}" for f in self.facts)
            out += prompts.PRIMARY_FACTS.format(facts=lines)
        if self.recalled:
            lines = "\n".join(h.line for h in self.recalled)
            order = prompts.PRIMARY_RECALL_ORDER[self.recall_order]
            out += prompts.PRIMARY_RECALL.format(order=order, turns=lines)
        return out

    def render(self, persona_fallback: str = prompts.PERSONA_DEFAULT) -> str:
        """The primary's system prompt."""
        persona = next((b.value for b in self.blocks if b.label == "persona"), persona_fallback)
        # Empty blocks are left out: the primary does not write them (the sleep-time agent does).
        shown = [b for b in self.blocks if b.label != "persona" and b.value.strip()]
        if not shown:
            return prompts.PRIMARY_SYSTEM_NO_BLOCKS.format(
                persona=persona, notes=self.render_notes()
            )
        blocks = MemoryView(shown, [], [], self.cursor).render_blocks()
        return prompts.PRIMARY_SYSTEM.format(
            persona=persona, blocks=blocks, notes=self.render_notes()
        )

    def other_threads(self, thread_id: str) -> list[TranscriptMessage]:
        """Unconsolidated messages said in other threads of the same namespace."""
        return [m for m in self.pending if m.thread_id != thread_id]


@dataclass
class SleeptimeMemory:
    """Refined memory for one app: read it before a turn, record the turn after it.

    Args:
        store: the block store.
        sleeptime_model: the model of the sleep-time agent.
        scheduler: when runs happen (default: after every turn, no delay).
        notes_k: archival notes retrieved per turn (notes other than dated facts).
        consolidation: ``"auto"`` (default: the pipeline for the embedded model, the tool loop
            for others), ``"pipeline"`` or ``"tool-loop"`` (the Letta-style edit loop).
        read_options: what the primary reads and within which budget.
        consolidator_options: passed to the consolidator (``max_steps``, ``keywords``, ...).
    """

    store: ChromaBlockStore
    sleeptime_model: BaseChatModel
    scheduler: SleeptimeScheduler = field(default_factory=SleeptimeScheduler)
    notes_k: int = 3
    consolidation: str = "auto"
    read_options: ReadOptions = field(default_factory=ReadOptions)
    consolidator_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.consolidation not in CONSOLIDATIONS:
            raise ConfigurationError(
                f"unknown consolidation {self.consolidation!r}; choose one of {CONSOLIDATIONS}"
            )
        self.ledger: Ledger = self.scheduler.ledger
        self.transcript = Transcript(self.store)
        self.gate = ForegroundGate()
        self.recall = RecallIndex(self.store)
        self.facts = FactStore(self.store)
        self.consolidation = consolidation_for(self.sleeptime_model, self.consolidation)
        kind: type[Consolidator] = (
            PipelineConsolidator if self.consolidation == "pipeline" else Consolidator
        )
        self.consolidator = kind(
            self.store,
            self.sleeptime_model,
            ledger=self.ledger,
            gate=self.gate,
            **self.consolidator_options,
        )
        self.scheduler.attach(self.consolidator.arun_until_caught_up)

    # -- reading ---------------------------------------------------------------------------------

    def read(self, namespace: Namespace, query: str = "") -> MemoryView:
        """Blocks, then top-k dated facts and recalled turns for ``query``, then the tail.

        Facts and recalled turns come only from batches the cursor has passed (a batch being
        written is read as raw messages in the tail instead), and are trimmed to
        :attr:`ReadOptions.token_budget`.
        """
        opts = self.read_options
        self.consolidator.ensure_blocks(namespace)
        cursor = self.transcript.cursor(namespace)
        blocks = (
            self.consolidator.blocks_at_run_start(namespace) if opts.blocks_at_run_start else None
        )
        if blocks is None:
            blocks = self.store.list_blocks(namespace)
        if not opts.blocks:
            blocks = [b for b in blocks if b.label == "persona"]
        notes: list[Note] = []
        facts: list[Fact] = []
        recalled: list[RecallHit] = []
        if query:
            found = self.store.search_notes(namespace, query, self.notes_k) if self.notes_k else []
            notes = [n for n in found if n.metadata.get("kind") != "fact"]
            facts = self.facts.search(namespace, query, opts.facts_k, max_seq=cursor.seq)
            recalled = self.recall.search(
                namespace,
                query,
                opts.recall_k,
                max_seq=cursor.seq,
                vector=opts.vector,
                bm25=opts.bm25,
                speaker_boost=opts.speaker_boost,
            )
            recalled = self.recall.around(
                namespace,
                recalled,
                before=opts.recall_before,
                replies=opts.recall_replies,
                max_seq=cursor.seq,
            )
        pending = self.transcript.since(namespace, cursor.seq) if opts.tail else []
        view = MemoryView(blocks, notes, pending, cursor.seq)
        return _within_budget(view, facts, recalled, opts, query)

    async def aread(self, namespace: Namespace, query: str = "") -> MemoryView:
        """Async :meth:`read`."""
        return await asyncio.to_thread(self.read, namespace, query)

    # -- writing ---------------------------------------------------------------------------------

    def record(self, namespace: Namespace, thread_id: str, role: str, content: str) -> int:
        """Append one message to the durable transcript; returns its sequence number."""
        return self.transcript.append(namespace, thread_id, role, content)

    def record_turn(self, namespace: Namespace, thread_id: str, user: str, assistant: str) -> None:
        """Record a finished turn and let the scheduler decide on a sleep-time run."""
        self.record(namespace, thread_id, "user", user)
        self.record(namespace, thread_id, "assistant", assistant)
        self.after_turn(namespace)

    def after_turn(self, namespace: Namespace) -> None:
        """Tell the scheduler a turn finished (call after the reply is returned)."""
        self.scheduler.notify(namespace)

    async def consolidate_now(self, namespace: Namespace) -> list[RunRecord]:
        """Run the sleep-time agent right away (tests, scripts, benchmarks)."""
        return await self.consolidator.arun_until_caught_up(namespace)

    # -- drop-in node ----------------------------------------------------------------------------

    def node(self) -> RunnableLambda[Any, dict[str, Any]]:
        """A LangGraph node to put after an app's answering node.

        It records the latest user message and the reply from ``state["messages"]`` into the
        transcript, then notifies the scheduler. The namespace comes from the run's config
        (``configurable.user_id``, optionally ``agent_id``); ``thread_id`` from the config too.
        """

        def run(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            namespace = namespace_from_config(config)
            thread_id = str(config.get("configurable", {}).get("thread_id", "default"))
            user, reply = _last_turn(state.get("messages", []))
            if user is not None and reply is not None:
                self.record_turn(namespace, thread_id, user, reply)
            return {}

        async def arun(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
            return await asyncio.to_thread(run, state, config)

        return RunnableLambda(run, afunc=arun, name="sleeptime_memory")


def _within_budget(
    view: MemoryView,
    facts: list[Fact],
    recalled: list[RecallHit],
    opts: ReadOptions,
    query: str = "",
) -> MemoryView:
    """``view`` with the facts and recalled turns that fit the budget (least relevant dropped).

    The recalled turns are shown in ``opts.recall_order``: oldest first, so that dates read in
    order, or the best match last, next to the question. Full blocks never
    crowd retrieval out: facts and turns always get at least ``retrieval_share`` of the budget.
    """
    budget = int(opts.token_budget * opts.chars_per_token)
    used = min(len(view.render()), int(budget * (1 - opts.retrieval_share)))
    kept_facts: list[Fact] = []
    for fact in facts:
        size = len(fact.line()) + 3
        if used + size > budget:
            break
        kept_facts.append(fact)
        used += size
    kept: list[RecallHit] = []
    for hit in recalled:  # best first
        if len(hit.line) <= opts.line_chars:
            line = hit.line
        elif opts.recall_focus:
            line = focus(hit.line, query, opts.line_chars)
        else:
            line = hit.line[: opts.line_chars] + " [...]"
        size = len(line) + 1
        if used + size > budget:
            break
        kept.append(RecallHit(hit.seq, line, hit.date, hit.speaker, hit.score))
        used += size
    if opts.recall_order == "time":
        kept.sort(key=lambda h: h.seq)
    else:
        kept.reverse()  # best first -> best last
    return MemoryView(
        view.blocks,
        view.notes,
        view.pending,
        view.cursor,
        facts=kept_facts,
        recalled=kept,
        recall_order=opts.recall_order,
    )


def _last_turn(messages: Sequence[AnyMessage]) -> tuple[str | None, str | None]:
    """Text of the last human message and of the last AI reply after it."""
    reply: str | None = None
    for msg in reversed(messages):
        if isinstance(msg, AIMessage) and reply is None and not msg.tool_calls:
            reply = msg.text
        elif isinstance(msg, HumanMessage):
            return msg.text, reply
    return None, reply
