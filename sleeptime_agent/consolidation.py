"""One consolidation of a namespace: lease, read since the cursor, edit loop, commit the cursor.

The cursor moves only after the edit loop has ended (finished or out of budget), so a crash or a
cancellation leaves it where it was and the next run sees the same messages again. Each edit was
written with compare-and-swap, so a re-run works on the newest blocks and never overwrites a
concurrent write. A lease (a versioned record, taken with CAS) keeps two processes from
consolidating the same namespace at once; if a lease holder dies, the lease expires.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from sleeptime_agent import prompts
from sleeptime_agent.blocks import MemoryBlock, order_blocks, utcnow
from sleeptime_agent.errors import VersionConflict
from sleeptime_agent.graphs.sleeptime import SleeptimeContext, build_sleeptime_graph
from sleeptime_agent.ledger import Ledger, RunRecord
from sleeptime_agent.scheduler import ForegroundGate
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.transcript import (
    Cursor,
    Transcript,
    TranscriptMessage,
    system_namespace,
)
from sleeptime_agent.tools.editor import MemoryEditor

__all__ = ["Consolidator", "default_blocks"]

_LEASE = "lease"


def default_blocks() -> list[MemoryBlock]:
    """The blocks a new namespace starts with: persona, human, and the anticipation block (c')."""
    return [
        MemoryBlock(
            label="persona",
            value=prompts.PERSONA_DEFAULT,
            limit=2000,
            description=prompts.PERSONA_DESCRIPTION,
            read_only=True,
        ),
        MemoryBlock(label="human", value="", limit=5000, description=prompts.HUMAN_DESCRIPTION),
        MemoryBlock(
            label="anticipation",
            value="",
            limit=3000,
            description=prompts.ANTICIPATION_DESCRIPTION,
        ),
    ]


@dataclass
class Consolidator:
    """Runs the sleep-time graph over what a namespace said since its cursor.

    Args:
        store: where blocks, notes and the transcript live.
        model: the sleep-time model (any LangChain chat model that binds tools).
        ledger: where each run is recorded.
        max_steps: model calls per run.
        max_tokens: input + output tokens per run.
        max_transcript_chars: a longer backlog is consolidated in several runs, oldest first,
            so the prompt stays bounded.
        lease_seconds: how long a run may hold a namespace before another process may take over.
        blocks: the blocks a namespace is created with.
        grounded: refuse edits that add sentences, names or numbers found neither in the run's
            transcript nor in memory (:func:`~sleeptime_agent.tools.guards.ungrounded_facts`);
            the anticipation block is exempt. The refusal goes back to the model.
        ground_in_assistant: whether the assistant's own turns count as a source. Off by
            default: a small model's reply elaborates ("Marine biologists also ...") and the
            sleep-time agent then saved that as a fact about the user. Turn it on when memory
            must recall what the assistant said (LongMemEval's single-session-assistant).
    """

    store: ChromaBlockStore
    model: BaseChatModel
    ledger: Ledger = field(default_factory=Ledger)
    max_steps: int = 8
    max_tokens: int = 30_000
    max_transcript_chars: int = 6000
    lease_seconds: float = 600.0
    blocks: list[MemoryBlock] = field(default_factory=default_blocks)
    system_prompt: str = prompts.SLEEPTIME_SYSTEM
    user_prompt: str = prompts.SLEEPTIME_USER
    gate: ForegroundGate | None = None
    grounded: bool = True
    ground_in_assistant: bool = False

    def __post_init__(self) -> None:
        self.transcript = Transcript(self.store)
        self.graph = build_sleeptime_graph(self.model)
        self.holder = uuid.uuid4().hex
        self._ensured: set[Namespace] = set()
        self._at_start: dict[Namespace, list[MemoryBlock]] = {}

    def blocks_at_run_start(self, namespace: Namespace) -> list[MemoryBlock] | None:
        """The blocks as this process's run in flight on ``namespace`` found them, or None.

        The primary reads these until the run commits (:attr:`ReadOptions.blocks_at_run_start
        <sleeptime_agent.memory.ReadOptions.blocks_at_run_start>`): a run's edits then appear
        together with the cursor's move, as its facts and recalled turns already do, and the
        start of the primary's prompt stays the same while a run is in flight. Every edit
        applied mid-run used to change it, and llama.cpp re-evaluates everything after the
        first changed token (critical-path smoke run: a turn after a mid-run edit evaluated
        223 of 284 prompt tokens, 4.8 s, vs 17 tokens and 0.5 s warm). Nothing is hidden: the
        messages being consolidated are still in the primary's unconsolidated tail.
        """
        blocks = self._at_start.get(tuple(namespace))
        return list(blocks) if blocks is not None else None

    # -- setup -----------------------------------------------------------------------------------

    def ensure_blocks(self, namespace: Namespace) -> None:
        """Create the default blocks that a namespace does not have yet (once per process)."""
        if namespace in self._ensured:
            return
        existing = {b.label for b in self.store.list_blocks(namespace)}
        for block in self.blocks:
            if block.label not in existing:
                try:
                    self.store.put_block(namespace, block, expected_version=0, author="system")
                except VersionConflict:
                    pass  # another process created it first: fine
        self._ensured.add(namespace)

    # -- lease -----------------------------------------------------------------------------------

    def _acquire(self, namespace: Namespace) -> bool:
        ns = system_namespace(namespace)
        current = self.store.get_block(ns, _LEASE)
        if current is not None:
            lease = json.loads(current.value)
            if lease["holder"] != self.holder and lease["until"] > time.time():
                return False
        value = json.dumps({"holder": self.holder, "until": time.time() + self.lease_seconds})
        try:
            self.store.put_block(
                ns,
                MemoryBlock(label=_LEASE, value=value, limit=200),
                expected_version=current.version if current else 0,
                author="system",
            )
        except VersionConflict:
            return False
        return True

    def _release(self, namespace: Namespace) -> None:
        ns = system_namespace(namespace)
        current = self.store.get_block(ns, _LEASE)
        if current is None or json.loads(current.value)["holder"] != self.holder:
            return
        value = json.dumps({"holder": self.holder, "until": 0})
        try:
            self.store.put_block(
                ns,
                MemoryBlock(label=_LEASE, value=value, limit=200),
                expected_version=current.version,
                author="system",
            )
        except VersionConflict:
            pass  # someone took over an expired lease: nothing to release

    # -- one run ---------------------------------------------------------------------------------

    def _batch(self, messages: list[TranscriptMessage]) -> list[TranscriptMessage]:
        """The oldest messages that fit in ``max_transcript_chars`` (at least one)."""
        out: list[TranscriptMessage] = []
        size = 0
        for m in messages:
            size += len(m.render()) + 1
            if out and size > self.max_transcript_chars:
                break
            out.append(m)
        return out

    async def arun(self, namespace: Namespace) -> RunRecord:
        """Consolidate the oldest unprocessed batch of ``namespace``; always returns a record."""
        record = RunRecord(run_id=uuid.uuid4().hex[:12], namespace=namespace)
        acquired = False
        # Shielded: a cancel cannot stop the lease write once its thread runs, so the run must
        # learn whether it landed and release it (or the namespace stays locked until expiry).
        attempt = asyncio.ensure_future(asyncio.to_thread(self._acquire, namespace))
        try:
            acquired = await asyncio.shield(attempt)
            if not acquired:
                record.status, record.reason = "skipped", "another worker holds the lease"
                return record
            record = await self._run_locked(namespace, record)
        except asyncio.CancelledError:
            record.status, record.reason = "cancelled", "run cancelled; cursor not moved"
            raise
        except Exception as exc:  # recorded, never lost silently, never breaks a user turn
            record.status, record.reason = "error", f"{type(exc).__name__}: {exc}"
        finally:
            self._at_start.pop(tuple(namespace), None)  # committed or not, the run is over
            if not attempt.done():  # cancelled while the lease write was in flight
                await asyncio.wait([attempt])
            acquired = acquired or _landed(attempt)
            if acquired:
                try:
                    await asyncio.to_thread(self._release, namespace)
                except Exception:  # the lease expires on its own
                    pass
            record.finished_at = utcnow()
            self.ledger.add_run(record)
        return record

    async def _run_locked(self, namespace: Namespace, record: RunRecord) -> RunRecord:
        await asyncio.to_thread(self.ensure_blocks, namespace)
        cursor = await self.transcript.acursor(namespace)
        record.cursor_before = record.cursor_after = cursor.seq
        pending = await self.transcript.asince(namespace, cursor.seq)
        if not pending:
            record.status = "no_input"
            return record
        batch = self._batch(pending)
        self._at_start[tuple(namespace)] = await self.store.alist_blocks(namespace)
        await self._edit(namespace, batch, record)
        committed = await asyncio.to_thread(self._commit, namespace, cursor, batch[-1].seq)
        record.cursor_after = committed.seq
        record.more_pending = len(pending) - len(batch)
        if record.more_pending:
            record.reason = f"{record.more_pending} messages left for the next run"
        return record

    async def _edit(
        self, namespace: Namespace, batch: list[TranscriptMessage], record: RunRecord
    ) -> None:
        """The edit loop over ``batch``; fills ``record`` with steps, tokens, edits, versions."""
        blocks = await self.store.alist_blocks(namespace)
        record.versions_before = {b.label: b.version for b in blocks}
        rendered = "\n\n".join(b.render() for b in order_blocks(blocks))
        text = "\n".join(m.render() for m in batch)
        editor = MemoryEditor(
            self.store,
            namespace,
            author="sleeptime",
            seen=dict(record.versions_before),
            # Facts may come from what was said or what memory already holds, nowhere else.
            sources=f"{self._grounds(batch)}\n{rendered}" if self.grounded else None,
        )
        messages = [
            SystemMessage(self.system_prompt),
            HumanMessage(self.user_prompt.format(blocks=rendered, transcript=text)),
        ]
        ctx = SleeptimeContext(
            editor=editor,
            max_steps=self.max_steps,
            max_tokens=self.max_tokens,
            labels=[b.label for b in blocks if not b.read_only],
            gate=self.gate,
        )
        state = await self.graph.ainvoke(
            {"messages": messages},
            context=ctx,
            config={"recursion_limit": 4 * self.max_steps + 10},
        )
        record.steps = int(state.get("steps", 0))
        record.input_tokens = int(state.get("input_tokens", 0))
        record.output_tokens = int(state.get("output_tokens", 0))
        record.failures = list(state.get("failures", []))
        record.edits = list(editor.edits)
        status = state.get("status")
        record.status = status if status in ("ok", "stalled") else "finished_by_budget"
        after = await self.store.alist_blocks(namespace)
        record.versions_after = {b.label: b.version for b in after}

    def _grounds(self, batch: list[TranscriptMessage]) -> str:
        return "\n".join(
            m.render() for m in batch if self.ground_in_assistant or m.role != "assistant"
        )

    async def arun_messages(
        self, namespace: Namespace, messages: list[TranscriptMessage]
    ) -> RunRecord:
        """Run the edit loop on messages held elsewhere (e.g. a Letta agent's), oldest first.

        No transcript or cursor is involved and no default block is created: the caller owns
        both the messages and the set of blocks. Long inputs are cut to the newest messages that
        fit ``max_transcript_chars``.
        """
        record = RunRecord(run_id=uuid.uuid4().hex[:12], namespace=namespace)
        try:
            if not messages:
                record.status = "no_input"
            else:
                newest = self._batch(list(reversed(messages)))
                await self._edit(namespace, list(reversed(newest)), record)
        except Exception as exc:
            record.status, record.reason = "error", f"{type(exc).__name__}: {exc}"
        finally:
            record.finished_at = utcnow()
            self.ledger.add_run(record)
        return record

    def _commit(self, namespace: Namespace, cursor: Cursor, seq: int) -> Cursor:
        """Advance the cursor to ``seq`` unless someone already moved it further."""
        for _ in range(5):
            try:
                return self.transcript.advance(namespace, cursor, seq)
            except VersionConflict:
                cursor = self.transcript.cursor(namespace)
                if cursor.seq >= seq:
                    return cursor
        return self.transcript.cursor(namespace)

    async def arun_until_caught_up(
        self, namespace: Namespace, max_runs: int = 20
    ) -> list[RunRecord]:
        """Run until the cursor reaches the end of the transcript (or a run fails)."""
        records = []
        for _ in range(max_runs):
            record = await self.arun(namespace)
            records.append(record)
            if (
                record.status not in ("ok", "finished_by_budget", "stalled")
                or not record.more_pending
            ):
                break
        return records


def _landed(attempt: asyncio.Future[bool]) -> bool:
    """Whether a finished lease attempt took the lease."""
    return not attempt.cancelled() and attempt.exception() is None and attempt.result()
