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
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from sleeptime_agent import prompts
from sleeptime_agent.blocks import MemoryBlock, namespace_from_config, order_blocks
from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.ledger import Ledger, RunRecord
from sleeptime_agent.scheduler import ForegroundGate, SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace, Note
from sleeptime_agent.storage.transcript import Transcript, TranscriptMessage

__all__ = ["MemoryView", "SleeptimeMemory"]


@dataclass(frozen=True)
class MemoryView:
    """What the primary reads for one turn: blocks, retrieved notes, and the unconsolidated tail."""

    blocks: list[MemoryBlock]
    notes: list[Note]
    pending: list[TranscriptMessage]
    """Messages the sleep-time agent has not consolidated yet (every thread), oldest first."""
    cursor: int

    def render_blocks(self) -> str:
        """Blocks as tagged text; stable blocks first so a prefix cache can reuse them."""
        return "\n".join(b.render() for b in order_blocks(self.blocks))

    def render_notes(self) -> str:
        """Retrieved archival notes, or nothing."""
        if not self.notes:
            return ""
        lines = "\n".join(f"- {n.text}" for n in self.notes)
        return f"\nRelevant archived notes:\n{lines}\n"

    def render(self, persona_fallback: str = prompts.PERSONA_DEFAULT) -> str:
        """The primary's system prompt."""
        persona = next((b.value for b in self.blocks if b.label == "persona"), persona_fallback)
        shown = [b for b in self.blocks if b.label != "persona"]
        view = MemoryView(shown, self.notes, self.pending, self.cursor)
        return prompts.PRIMARY_SYSTEM.format(
            persona=persona, blocks=view.render_blocks(), notes=self.render_notes()
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
        notes_k: archival notes retrieved per turn.
        consolidator_options: passed to :class:`Consolidator` (``max_steps``, ``max_tokens``, ...).
    """

    store: ChromaBlockStore
    sleeptime_model: BaseChatModel
    scheduler: SleeptimeScheduler = field(default_factory=SleeptimeScheduler)
    notes_k: int = 3
    consolidator_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ledger: Ledger = self.scheduler.ledger
        self.transcript = Transcript(self.store)
        self.gate = ForegroundGate()
        self.consolidator = Consolidator(
            self.store,
            self.sleeptime_model,
            ledger=self.ledger,
            gate=self.gate,
            **self.consolidator_options,
        )
        self.scheduler.attach(self.consolidator.arun_until_caught_up)

    # -- reading ---------------------------------------------------------------------------------

    def read(self, namespace: Namespace, query: str = "") -> MemoryView:
        """Blocks, the top-k notes for ``query``, and messages not consolidated yet."""
        self.consolidator.ensure_blocks(namespace)
        cursor = self.transcript.cursor(namespace)
        blocks = self.store.list_blocks(namespace)
        notes = self.store.search_notes(namespace, query, self.notes_k) if query else []
        pending = self.transcript.since(namespace, cursor.seq)
        return MemoryView(blocks, notes, pending, cursor.seq)

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


def _last_turn(messages: Sequence[AnyMessage]) -> tuple[str | None, str | None]:
    """Text of the last human message and of the last AI reply after it."""
    reply: str | None = None
    for msg in reversed(messages):
        if isinstance(msg, AIMessage) and reply is None and not msg.tool_calls:
            reply = msg.text
        elif isinstance(msg, HumanMessage):
            return msg.text, reply
    return None, reply
