"""Pre-warming: after a sleep-time run commits, evaluate the primary's new prompt prefix.

Each consolidation rewrites blocks near the top of the primary's prompt, and llama.cpp reuses a
cached prompt only up to the first changed token, so the first turn after a run used to
evaluate the whole memory section again (the issue measured p50 2.6 s right after a run, 0.9 s
with memory unchanged). Right after a run is idle time, so the sleep-time side spends it on the
primary: it evaluates the part of the primary's prompt that only changes with the blocks
(:func:`stable_prefix`) through the model's ``aprewarm``, preemptibly. A user turn that arrives
first drops the pre-warm: the turn's own prompt starts with the same prefix, and llama.cpp keeps
what the pre-warm had evaluated so far.

The primary's prompt is ordered for this: persona, then the blocks from the least to the most
often edited (:func:`~sleeptime_agent.blocks.order_blocks`), then what the query retrieves, then
the conversation. Only models with ``aprewarm`` are pre-warmed (the local model); a provider's
prompt cache works differently (and is billed), so it is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from langchain_core.messages import BaseMessage, SystemMessage

from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.memory import MemoryView, SleeptimeMemory
from sleeptime_agent.storage.block_store import Namespace

__all__ = ["PrefixPrewarmer", "Prewarmable", "stable_prefix"]


@runtime_checkable
class Prewarmable(Protocol):
    """A model that can evaluate the start of a later prompt ahead of time."""

    async def aprewarm(self, messages: Sequence[BaseMessage]) -> None:
        """Evaluate ``messages`` as a prompt prefix and keep them cached."""


def stable_prefix(view: MemoryView) -> list[BaseMessage]:
    """The start of the primary's prompt that changes only when the blocks do.

    :func:`~sleeptime_agent.graphs.chat.build_primary_prompt` starts its system message with
    this text; what the query retrieves (notes, facts, recalled turns) and the conversation
    follow it.
    """
    blocks_only = MemoryView(view.blocks, [], [], view.cursor)
    return [SystemMessage(blocks_only.render())]


def _blocks_changed(records: Sequence[RunRecord]) -> bool:
    return any(r.versions_after != r.versions_before for r in records if r.versions_after)


@dataclass
class PrefixPrewarmer:
    """An after-run hook (:meth:`SleeptimeScheduler.add_after_run`) that pre-warms the primary.

    Args:
        model: the primary model.
        memory: whose blocks, and whose gate (user turns preempt the pre-warm).
        enabled: switch it off without detaching it (benchmarks compare both).
    """

    model: Prewarmable
    memory: SleeptimeMemory
    enabled: bool = True
    warmed: int = 0
    """Pre-warms that finished."""
    dropped: int = 0
    """Pre-warms a user turn preempted."""

    async def __call__(self, namespace: Namespace, records: list[RunRecord]) -> None:
        """Pre-warm ``namespace``'s new prefix if the run changed any block."""
        if not self.enabled or not _blocks_changed(records):
            return  # unchanged blocks: the last turn's prompt already holds the prefix
        view = await self.memory.aread(namespace)
        prefix = stable_prefix(view)

        async def warm() -> bool:
            await self.model.aprewarm(prefix)
            return True

        if await self.memory.gate.try_run(warm, what="prewarm"):
            self.warmed += 1
        else:
            self.dropped += 1
