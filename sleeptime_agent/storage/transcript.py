"""The durable transcript of a namespace and the sleep-time "processed up to" cursor.

Messages of every thread of a namespace share one sequence (1, 2, 3, ...). A sequence number is
claimed with the same insert-if-absent + read-back used for block versions
(:func:`~sleeptime_agent.storage.chroma.insert_if_absent`), so several processes appending to one
namespace never reuse a number. The cursor is a block in a hidden namespace, so it
is versioned and moved with compare-and-swap: it advances only when a consolidation commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sleeptime_agent.blocks import MemoryBlock, utcnow
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace, namespace_key
from sleeptime_agent.storage.chroma import insert_if_absent, map_backend_errors

__all__ = ["Cursor", "Transcript", "TranscriptMessage", "system_namespace"]

_CURSOR_LABEL = "cursor"


def system_namespace(namespace: Namespace) -> Namespace:
    """The hidden namespace that holds a namespace's bookkeeping (cursor, lease)."""
    # A NUL byte cannot come from a user id typed anywhere, so this never collides.
    return (*namespace, "\x00sleeptime")


@dataclass(frozen=True)
class TranscriptMessage:
    """One message of the durable transcript."""

    seq: int
    thread_id: str
    role: str  # "user" | "assistant"
    content: str
    created_at: datetime

    def render(self) -> str:
        """One line for a prompt."""
        return f"[{self.seq}] {self.role}: {self.content}"


@dataclass(frozen=True)
class Cursor:
    """How far consolidation has processed the transcript, and the cursor block's version."""

    seq: int
    version: int


@dataclass
class Transcript:
    """Append-only per-namespace transcript plus the consolidation cursor, in the same Chroma."""

    store: ChromaBlockStore
    _last: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._col: Any = self.store.collection("transcript")

    # -- messages --------------------------------------------------------------------------------

    def append(self, namespace: Namespace, thread_id: str, role: str, content: str) -> int:
        """Append a message and return its sequence number."""
        ns = namespace_key(namespace)
        key = hashlib.sha256(ns.encode()).hexdigest()[:40]
        with map_backend_errors(self.store.describe):
            with self._lock:
                seq = self._last.get(ns)
            if seq is None:
                seq = self._max_seq(ns)
            while True:
                seq += 1
                meta = {
                    "ns": ns,
                    "seq": seq,
                    "thread_id": thread_id,
                    "role": role,
                    "created_at": utcnow().isoformat(),
                }
                if insert_if_absent(self._col, f"m-{key}-{seq:012d}", content, meta):
                    with self._lock:
                        self._last[ns] = max(seq, self._last.get(ns, 0))
                    return seq
                # Another process took this number: probe the next one.

    def _max_seq(self, ns: str) -> int:
        got = self._col.get(where={"ns": ns}, include=["metadatas"])
        return max((int(m["seq"]) for m in got["metadatas"] or []), default=0)

    def since(
        self, namespace: Namespace, after_seq: int, *, limit: int | None = None
    ) -> list[TranscriptMessage]:
        """Messages with ``seq > after_seq``, oldest first (at most ``limit``)."""
        ns = namespace_key(namespace)
        with map_backend_errors(self.store.describe):
            got = self._col.get(
                where={"$and": [{"ns": ns}, {"seq": {"$gt": after_seq}}]},
                include=["metadatas", "documents"],
            )
        msgs = [
            TranscriptMessage(
                seq=int(m["seq"]),
                thread_id=str(m["thread_id"]),
                role=str(m["role"]),
                content=d or "",
                created_at=datetime.fromisoformat(str(m["created_at"])),
            )
            for d, m in zip(got["documents"] or [], got["metadatas"] or [], strict=True)
        ]
        msgs.sort(key=lambda m: m.seq)
        return msgs[:limit] if limit is not None else msgs

    def namespaces(self) -> list[Namespace]:
        """Every namespace with a message, sorted (reads every message's metadata once)."""
        with map_backend_errors(self.store.describe):
            got = self._col.get(include=["metadatas"])
        keys = {str(m["ns"]) for m in got["metadatas"] or [] if m and "ns" in m}
        return sorted(tuple(json.loads(k)) for k in keys)

    def last_seq(self, namespace: Namespace) -> int:
        """The highest sequence number written so far (0 if none)."""
        with map_backend_errors(self.store.describe):
            return self._max_seq(namespace_key(namespace))

    # -- cursor ----------------------------------------------------------------------------------

    def cursor(self, namespace: Namespace) -> Cursor:
        """The current cursor (seq 0, version 0 before the first consolidation)."""
        block = self.store.get_block(system_namespace(namespace), _CURSOR_LABEL)
        if block is None:
            return Cursor(0, 0)
        return Cursor(int(block.value), block.version)

    def advance(self, namespace: Namespace, expected: Cursor, seq: int) -> Cursor:
        """Move the cursor to ``seq`` with compare-and-swap on ``expected.version``.

        Raises:
            VersionConflict: another consolidation moved the cursor meanwhile.
        """
        stored = self.store.put_block(
            system_namespace(namespace),
            MemoryBlock(label=_CURSOR_LABEL, value=str(seq), limit=32),
            expected_version=expected.version,
            author="system",
        )
        return Cursor(int(stored.value), stored.version)

    # -- async twins -----------------------------------------------------------------------------

    async def aappend(self, namespace: Namespace, thread_id: str, role: str, content: str) -> int:
        """Async :meth:`append`."""
        return await asyncio.to_thread(self.append, namespace, thread_id, role, content)

    async def asince(
        self, namespace: Namespace, after_seq: int, *, limit: int | None = None
    ) -> list[TranscriptMessage]:
        """Async :meth:`since`."""
        return await asyncio.to_thread(self.since, namespace, after_seq, limit=limit)

    async def acursor(self, namespace: Namespace) -> Cursor:
        """Async :meth:`cursor`."""
        return await asyncio.to_thread(self.cursor, namespace)

    async def aadvance(self, namespace: Namespace, expected: Cursor, seq: int) -> Cursor:
        """Async :meth:`advance`."""
        return await asyncio.to_thread(self.advance, namespace, expected, seq)
