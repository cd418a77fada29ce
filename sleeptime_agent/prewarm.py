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

The blocks are not all that follows the change: the conversation comes after them, and llama.cpp
re-evaluates everything after the first changed token. Measured on the local model (critical-path
smoke run, pinned slots): with the blocks alone pre-warmed, the turn right after a run still
evaluated 124 of 320 prompt tokens (2.8 s; a warm turn: 17). So when the chat graph tells the
pre-warmer each thread's messages (:meth:`PrefixPrewarmer.remember`), it evaluates the whole
prompt the thread's next turn will have before the user's new message (:func:`next_turn_prefix`),
without retrieved notes: those depend on the query, and nothing after them can be warmed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from sleeptime_agent.blocks import utcnow
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.memory import MemoryView, SleeptimeMemory
from sleeptime_agent.storage.block_store import Namespace
from sleeptime_agent.storage.transcript import TranscriptMessage

__all__ = ["PrefixPrewarmer", "PromptBuilder", "Prewarmable", "next_turn_prefix", "stable_prefix"]

PromptBuilder = Callable[[MemoryView, list[BaseMessage], str], list[BaseMessage]]
"""Builds the primary's prompt from (view, thread history ending with the user's message,
thread id), e.g. :func:`~sleeptime_agent.graphs.chat.build_primary_prompt`."""


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


def next_turn_prefix(
    build: PromptBuilder, view: MemoryView, history: Sequence[BaseMessage], thread_id: str
) -> list[BaseMessage] | None:
    """The prompt the thread's next turn will send before its user message, or None.

    A turn records its message in the transcript before reading memory, and ends its history
    with it: an empty stand-in plays that message, and is cut from the result. Retrieved notes
    are left out (they depend on the query). None if ``build`` did not end the prompt with the
    stand-in (it builds some other shape: pre-warm the blocks alone then).

    Args:
        build: the primary's prompt builder.
        view: memory as the next turn will read it, before its query's retrieval.
        history: the thread's messages after its last turn (the reply last).
        thread_id: the thread.
    """
    last = view.pending[-1].seq if view.pending else view.cursor
    stand_in = TranscriptMessage(last + 1, thread_id, "user", "", utcnow())
    bare = replace(view, notes=[], facts=[], recalled=[], pending=[*view.pending, stand_in])
    message = HumanMessage("")
    prompt = build(bare, [*history, message], thread_id)
    if not prompt or prompt[-1] is not message:
        return None
    return prompt[:-1]


def _blocks_changed(records: Sequence[RunRecord]) -> bool:
    return any(r.versions_after != r.versions_before for r in records if r.versions_after)


def _cursor_moved(records: Sequence[RunRecord]) -> bool:
    return any(r.cursor_after != r.cursor_before for r in records)


@dataclass
class PrefixPrewarmer:
    """An after-run hook (:meth:`SleeptimeScheduler.add_after_run`) that pre-warms the primary.

    Args:
        model: the primary model.
        memory: whose blocks, and whose gate (user turns preempt the pre-warm).
        enabled: switch it off without detaching it (benchmarks compare both).
        build: the primary's prompt builder; with it and :meth:`remember`, the whole prompt
            of the namespace's last thread's next turn is pre-warmed, not only the blocks.
        max_threads: namespaces whose last thread is remembered, most recent first; older
            ones fall back to pre-warming the blocks only. Bounds a long-lived server's memory
            (each entry holds a thread's messages), and a model with one primary slot keeps
            only the last prompt warm anyway.
    """

    model: Prewarmable
    memory: SleeptimeMemory
    enabled: bool = True
    build: PromptBuilder | None = None
    max_threads: int = 64
    _threads: OrderedDict[Namespace, tuple[str, list[BaseMessage]]] = field(
        default_factory=OrderedDict, repr=False
    )
    warmed: int = 0
    """Pre-warms that finished."""
    dropped: int = 0
    """Pre-warms a user turn preempted."""

    def remember(self, namespace: Namespace, thread_id: str, history: list[BaseMessage]) -> None:
        """Note the thread a turn of ``namespace`` just ended, and its messages (reply last)."""
        key = tuple(namespace)
        self._threads[key] = (thread_id, list(history))
        self._threads.move_to_end(key)
        while len(self._threads) > self.max_threads:
            self._threads.popitem(last=False)

    async def __call__(self, namespace: Namespace, records: list[RunRecord]) -> None:
        """Pre-warm ``namespace``'s next prompt if the run changed a block or moved the cursor.

        A run that edits nothing still moves the cursor, and so the conversation part of the
        thread's prompt: the consolidated messages leave the unconsolidated tail and only the
        last ``recent_turns`` of them stay (critical-path, runs without an edit: the next turn
        evaluated 130-139 of ~350 prompt tokens, 2.9-5.0 s, vs ~16 tokens and 0.5 s warm).
        That only matters when the whole next prompt is pre-warmed (a thread is known).
        """
        if not self.enabled:
            return
        thread = self._threads.get(tuple(namespace))
        whole = self.build is not None and thread is not None
        if not _blocks_changed(records) and not (whole and _cursor_moved(records)):
            return  # the last turn's prompt already holds what the next one starts with
        view = await self.memory.aread(namespace)
        prefix: list[BaseMessage] | None = None
        if self.build is not None and thread is not None:
            prefix = next_turn_prefix(self.build, view, thread[1], thread[0])
        messages = prefix if prefix is not None else stable_prefix(view)

        async def warm() -> bool:
            await self.model.aprewarm(messages)
            return True

        if await self.memory.gate.try_run(warm, what="prewarm"):
            self.warmed += 1
        else:
            self.dropped += 1
