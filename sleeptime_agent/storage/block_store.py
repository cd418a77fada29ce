"""ChromaBlockStore: versioned memory blocks with compare-and-swap, and archival notes, on Chroma.

How compare-and-swap works without transactions: every version of a block is its own Chroma record
whose id is derived from (namespace, label, version). Chroma's ``add`` ignores an id that already
exists, so writing version ``n + 1`` is an insert-if-absent. After the insert the writer reads the
record back; if the stored write id is not its own, another writer won the race and the write
raises :class:`VersionConflict`. The race is decided inside Chroma, so it holds across processes
that share one Chroma server, not only across threads. History is never rewritten: old versions
stay where they are and a rollback writes a new version.

Every public method builds an op object and hands it to :meth:`ChromaBlockStore.batch`;
the async twins hand the same ops to :meth:`ChromaBlockStore.abatch`, which runs ``batch`` in a
worker thread. The logic is written once. Each op class names its result type
(``GetBlockOp`` is a ``BlockOp[MemoryBlock | None]``), so a single op's result is typed.

The insert-if-absent, the clients and the error mapping are Chroma plumbing shared with the other
stores: :mod:`sleeptime_agent.storage.chroma`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar, cast

from chromadb.api import ClientAPI
from langchain_core.embeddings import Embeddings

from sleeptime_agent.blocks import AGENT_AUTHORS, MemoryBlock, Namespace, diff_values, utcnow
from sleeptime_agent.errors import (
    BlockLimitExceeded,
    BlockNotFound,
    ConfigurationError,
    ReadOnlyBlock,
    VersionConflict,
)
from sleeptime_agent.storage.chroma import (
    DEFAULT_HTTP_TIMEOUT,
    DUMMY_VECTOR,
    connect_ephemeral,
    connect_http,
    connect_persistent,
    connect_url,
    insert_if_absent,
    map_backend_errors,
)
from sleeptime_agent.storage.embeddings import default_embeddings

__all__ = [
    "AddNoteOp",
    "AddNotesOp",
    "BlockOp",
    "ChromaBlockStore",
    "DeleteBlockOp",
    "GetBlockOp",
    "GetVersionOp",
    "HistoryOp",
    "ListBlocksOp",
    "ListNotesOp",
    "Namespace",
    "Note",
    "PutBlockOp",
    "SearchNotesOp",
    "namespace_key",
]

R = TypeVar("R")
_PROBE = 4  # versions probed per read after a block's head hint


class Note(NamedTuple):
    """An archival note; ``score`` is the cosine similarity to the query (1.0 when listed)."""

    id: str
    text: str
    metadata: dict[str, Any]
    created_at: str
    score: float = 1.0


# ---------------------------------------------------------------------------------------------
# Op objects
# ---------------------------------------------------------------------------------------------


class BlockOp(Generic[R]):
    """An op of :class:`ChromaBlockStore`; ``R`` is the type of its result in ``batch``.

    Each op below subclasses it with its result type; ``batch`` runs an op with the handler
    ``_op_<class name>``, and the single-op methods return the result as an ``R``.
    """


@dataclass(frozen=True)
class GetBlockOp(BlockOp[MemoryBlock | None]):
    """Read the current version of a block (``None`` if it does not exist or was deleted)."""

    namespace: Namespace
    label: str


@dataclass(frozen=True)
class GetVersionOp(BlockOp[MemoryBlock]):
    """Read one stored version of a block."""

    namespace: Namespace
    label: str
    version: int


@dataclass(frozen=True)
class ListBlocksOp(BlockOp[list[MemoryBlock]]):
    """List the current version of every live block in a namespace, sorted by label."""

    namespace: Namespace


@dataclass(frozen=True)
class HistoryOp(BlockOp[list[MemoryBlock]]):
    """Every version of a block, oldest first."""

    namespace: Namespace
    label: str


@dataclass(frozen=True)
class PutBlockOp(BlockOp[MemoryBlock]):
    """Create (``expected_version=0``) or update a block with compare-and-swap."""

    namespace: Namespace
    block: MemoryBlock
    expected_version: int
    author: str = "user"


@dataclass(frozen=True)
class DeleteBlockOp(BlockOp[int]):
    """Delete a block by writing a tombstone version; history keeps every earlier version."""

    namespace: Namespace
    label: str
    expected_version: int
    author: str = "user"


@dataclass(frozen=True)
class AddNoteOp(BlockOp[str]):
    """Add an archival note."""

    namespace: Namespace
    text: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class AddNotesOp(BlockOp[list[str]]):
    """Add many archival notes at once (embedded in batches)."""

    namespace: Namespace
    texts: tuple[str, ...]
    metadatas: tuple[dict[str, Any] | None, ...] | None = None


@dataclass(frozen=True)
class SearchNotesOp(BlockOp[list[Note]]):
    """Semantic search over a namespace's archival notes."""

    namespace: Namespace
    query: str
    k: int = 5


@dataclass(frozen=True)
class ListNotesOp(BlockOp[list[Note]]):
    """List a namespace's archival notes, oldest first."""

    namespace: Namespace
    limit: int | None = None


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def namespace_key(namespace: Namespace) -> str:
    """Encode a namespace as one exact-match string (JSON, so no separator can collide)."""
    if (
        not isinstance(namespace, tuple)
        or not namespace
        or not all(isinstance(p, str) and p for p in namespace)
    ):
        raise ConfigurationError(
            f"a namespace is a non-empty tuple of non-empty strings, got {namespace!r}"
        )
    return json.dumps(list(namespace), ensure_ascii=False)


def _block_key(namespace: Namespace, label: str) -> str:
    raw = json.dumps([list(namespace), label], ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def _version_id(key: str, version: int) -> str:
    return f"b-{key}-{version:010d}"


def _block_metadata(
    namespace: Namespace, block: MemoryBlock, *, deleted: bool = False
) -> dict[str, Any]:
    assert block.updated_at is not None
    return {
        "ns": namespace_key(namespace),
        "key": _block_key(namespace, block.label),
        "label": block.label,
        "version": block.version,
        "limit": block.limit,
        "read_only": block.read_only,
        "description": json.dumps(block.description),
        "metadata": json.dumps(block.metadata, ensure_ascii=False, default=str),
        "author": block.author or "user",
        "updated_at": block.updated_at.isoformat(),
        "deleted": deleted,
    }


def _block_from_record(document: str | None, meta: dict[str, Any]) -> MemoryBlock:
    return MemoryBlock(
        label=str(meta["label"]),
        value=document or "",
        limit=int(meta["limit"]),
        description=json.loads(str(meta["description"])),
        read_only=bool(meta["read_only"]),
        metadata=json.loads(str(meta["metadata"])),
        version=int(meta["version"]),
        updated_at=datetime.fromisoformat(str(meta["updated_at"])),
        author=str(meta["author"]),
    )


def _validate_write(block: MemoryBlock, current: MemoryBlock | None, author: str) -> None:
    """Raise before anything is written; a failed write changes nothing."""
    if len(block.value) > block.limit:
        raise BlockLimitExceeded(block.label, len(block.value), block.limit)
    if current is not None and current.read_only and author in AGENT_AUTHORS:
        raise ReadOnlyBlock(block.label, author)


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


@dataclass
class ChromaBlockStore:
    """Versioned, namespaced memory blocks and archival notes in one Chroma database.

    Build it with :meth:`persistent` (embedded, the default), :meth:`http` (a ``chroma run``
    server; required when several processes share memory) or :meth:`ephemeral` (tests).

    Args:
        client: a chromadb client.
        embeddings: any LangChain ``Embeddings`` for archival notes; defaults to the offline
            MiniLM model shipped on PyPI.
        prefix: collection-name prefix, so several apps can share one Chroma database.
        describe: how the client was built (shown in error messages).
    """

    client: ClientAPI
    embeddings: Embeddings = field(default_factory=default_embeddings)
    prefix: str = "sleeptime"
    describe: str = "chroma"

    def __post_init__(self) -> None:
        # Typed as Any: chromadb's stubs reject plain float lists that it accepts at run time.
        # Every collection gets our offline function so Chroma's downloading default is never hit.
        self._blocks: Any = self.collection("blocks")
        self._head_hints: Any = self.collection("heads")
        self._notes_tag = _embeddings_tag(self.embeddings)
        self._note_cols: dict[str, Any] = {}

    def collection(self, suffix: str) -> Any:
        """Get or create an auxiliary collection of this store (same prefix and embedder)."""
        ef: Any = default_embeddings()
        with map_backend_errors(self.describe):
            return self.client.get_or_create_collection(
                f"{self.prefix}-{suffix}", embedding_function=ef, metadata={"hnsw:space": "cosine"}
            )

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def persistent(cls, path: str | Path, **kwargs: Any) -> ChromaBlockStore:
        """Embedded Chroma persisted under ``path`` (one process at a time)."""
        return cls(**connect_persistent(path).store_kwargs(kwargs))

    @classmethod
    def http(
        cls,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        timeout: float | None = DEFAULT_HTTP_TIMEOUT,
        **kwargs: Any,
    ) -> ChromaBlockStore:
        """A Chroma server (``chroma run``); CAS holds across every process that uses it.

        A request that gets no answer within ``timeout`` seconds raises ``MemoryUnavailable``
        (chromadb's own client would wait forever on a server that accepts but never answers).
        """
        return cls(**connect_http(host, port, timeout=timeout).store_kwargs(kwargs))

    @classmethod
    def ephemeral(cls, **kwargs: Any) -> ChromaBlockStore:
        """In-memory Chroma, gone when the process ends (tests, notebooks).

        Ephemeral clients in one process share their data, so each store gets its own
        collection prefix unless one is given.
        """
        return cls(**connect_ephemeral().store_kwargs(kwargs))

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float | None = DEFAULT_HTTP_TIMEOUT, **kwargs: Any
    ) -> ChromaBlockStore:
        """``http://host:port`` for a server, anything else is a directory for embedded Chroma."""
        return cls(**connect_url(url, timeout=timeout).store_kwargs(kwargs))

    # -- batch: the one place where ops are executed ---------------------------------------------

    def batch(self, ops: Iterable[BlockOp[Any]]) -> list[Any]:
        """Execute ops in order and return one result per op; the first error propagates."""
        results: list[Any] = []
        with map_backend_errors(self.describe):
            for op in ops:
                results.append(self._run(op))
        return results

    async def abatch(self, ops: Iterable[BlockOp[Any]]) -> list[Any]:
        """Async :meth:`batch`; the blocking Chroma calls run in a worker thread."""
        return await asyncio.to_thread(self.batch, list(ops))

    def _one(self, op: BlockOp[R]) -> R:
        """:meth:`batch` of one op, its result typed by the op."""
        return cast(R, self.batch([op])[0])

    async def _aone(self, op: BlockOp[R]) -> R:
        """:meth:`abatch` of one op, its result typed by the op."""
        return cast(R, (await self.abatch([op]))[0])

    def _run(self, op: BlockOp[Any]) -> Any:
        handler: Callable[[Any], Any] = getattr(self, f"_op_{type(op).__name__}")
        return handler(op)

    # -- op handlers (sync; called by batch) -----------------------------------------------------

    def _heads(self, where: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any], str]]:
        """Latest version per label: label -> (version, metadata, record id).

        Reads are O(1) in the length of history: a head record per block holds a hint (a version
        that exists, possibly stale but never ahead), and versions are contiguous, so probing
        the ids just after the hint finds the latest one.
        """
        got = self._head_hints.get(where=where, include=["metadatas"])
        cursor = {
            str(m["label"]): (str(m["key"]), int(m["version"])) for m in got["metadatas"] or []
        }
        heads: dict[str, tuple[int, dict[str, Any], str]] = {}
        while cursor:
            probe = {
                _version_id(key, v): label
                for label, (key, hint) in cursor.items()
                for v in range(max(hint, 1), hint + _PROBE)
            }
            found = self._blocks.get(ids=list(probe), include=["metadatas"])
            again: dict[str, tuple[str, int]] = {}
            for rid, meta in zip(found["ids"], found["metadatas"] or [], strict=True):
                label, version = probe[rid], int(meta["version"])
                if label not in heads or version > heads[label][0]:
                    heads[label] = (version, dict(meta), rid)
            for label, (key, hint) in cursor.items():
                if label in heads and heads[label][0] == hint + _PROBE - 1:
                    again[label] = (key, heads[label][0])  # the window was full: look further
            cursor = again
        return heads

    def _hint(self, namespace: Namespace, label: str, version: int) -> None:
        """Record that ``version`` of a block exists (or is about to, for version 0)."""
        key = _block_key(namespace, label)
        self._head_hints.upsert(
            ids=[f"h-{key}"],
            documents=[""],
            metadatas=[
                {"ns": namespace_key(namespace), "key": key, "label": label, "version": version}
            ],
            embeddings=[DUMMY_VECTOR],
        )

    def _fetch(self, ids: Sequence[str]) -> dict[str, MemoryBlock]:
        if not ids:
            return {}
        got = self._blocks.get(ids=list(ids), include=["metadatas", "documents"])
        docs = got["documents"] or []
        metas = got["metadatas"] or []
        return {
            rid: _block_from_record(doc, dict(meta))
            for rid, doc, meta in zip(got["ids"], docs, metas, strict=True)
        }

    def _head(self, namespace: Namespace, label: str) -> tuple[int, MemoryBlock | None]:
        """(current version number, current live block or None); version 0 = never written."""
        heads = self._heads({"key": _block_key(namespace, label)})
        if label not in heads:
            return 0, None
        version, meta, rid = heads[label]
        if meta.get("deleted"):
            return version, None
        return version, self._fetch([rid])[rid]

    def _op_GetBlockOp(self, op: GetBlockOp) -> MemoryBlock | None:
        namespace_key(op.namespace)
        return self._head(op.namespace, op.label)[1]

    def _op_GetVersionOp(self, op: GetVersionOp) -> MemoryBlock:
        namespace_key(op.namespace)
        rid = _version_id(_block_key(op.namespace, op.label), op.version)
        found = self._fetch([rid])
        if rid not in found:
            raise BlockNotFound(op.label, op.version)
        return found[rid]

    def _op_ListBlocksOp(self, op: ListBlocksOp) -> list[MemoryBlock]:
        heads = self._heads({"ns": namespace_key(op.namespace)})
        live = [rid for _, meta, rid in heads.values() if not meta.get("deleted")]
        blocks = self._fetch(live)
        return sorted(blocks.values(), key=lambda b: b.label)

    def _op_HistoryOp(self, op: HistoryOp) -> list[MemoryBlock]:
        namespace_key(op.namespace)
        got = self._blocks.get(
            where={"key": _block_key(op.namespace, op.label)}, include=["metadatas", "documents"]
        )
        versions = [
            _block_from_record(doc, dict(meta))
            for doc, meta in zip(got["documents"] or [], got["metadatas"] or [], strict=True)
        ]
        return sorted(versions, key=lambda b: b.version)

    def _op_PutBlockOp(self, op: PutBlockOp) -> MemoryBlock:
        namespace_key(op.namespace)
        label = op.block.label
        version, current = self._head(op.namespace, label)
        if version != op.expected_version:
            raise VersionConflict(label, op.expected_version, version)
        _validate_write(op.block, current, op.author)
        new = op.block.model_copy(
            update={"version": version + 1, "updated_at": utcnow(), "author": op.author}
        )
        self._insert(op.namespace, new, deleted=False)
        return new

    def _op_DeleteBlockOp(self, op: DeleteBlockOp) -> int:
        namespace_key(op.namespace)
        version, current = self._head(op.namespace, op.label)
        if current is None:
            raise BlockNotFound(op.label)
        if version != op.expected_version:
            raise VersionConflict(op.label, op.expected_version, version)
        _validate_write(current, current, op.author)
        tomb = current.model_copy(
            update={"version": version + 1, "updated_at": utcnow(), "author": op.author}
        )
        self._insert(op.namespace, tomb, deleted=True)
        return tomb.version

    def _insert(self, namespace: Namespace, block: MemoryBlock, *, deleted: bool) -> None:
        """Insert-if-absent of one version record, then read back to learn who won."""
        if block.version == 1:
            # The head record exists before the first version, so listing never misses a block.
            self._hint(namespace, block.label, 0)
        rid = _version_id(_block_key(namespace, block.label), block.version)
        meta = _block_metadata(namespace, block, deleted=deleted)
        if not insert_if_absent(self._blocks, rid, block.value, meta):
            raise VersionConflict(block.label, block.version - 1, block.version)
        self._hint(namespace, block.label, block.version)

    def _notes(self, namespace: Namespace, *, create: bool) -> Any:
        """The namespace's own notes collection (``None`` if absent and not ``create``).

        One collection per namespace: a metadata filter in a shared collection makes Chroma's
        vector query scan (measured: 0.5 ms -> 220 ms at 30k notes), and separate collections
        also make isolation structural.
        """
        key = hashlib.sha256(namespace_key(namespace).encode()).hexdigest()[:24]
        col = self._note_cols.get(key)
        if col is None:
            suffix = f"notes-{self._notes_tag}-{key}"
            if create:
                col = self.collection(suffix)
            else:
                ef: Any = default_embeddings()
                try:
                    col = self.client.get_collection(
                        f"{self.prefix}-{suffix}", embedding_function=ef
                    )
                except Exception as exc:  # chromadb raises NotFoundError (or ValueError, older)
                    if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                        return None
                    raise
            self._note_cols[key] = col
        return col

    def _op_AddNoteOp(self, op: AddNoteOp) -> str:
        return self._op_AddNotesOp(AddNotesOp(op.namespace, (op.text,), (op.metadata,)))[0]

    def _op_AddNotesOp(self, op: AddNotesOp) -> list[str]:
        ns = namespace_key(op.namespace)
        if any(not t.strip() for t in op.texts):
            raise ValueError("an archival note needs non-empty text")
        metas = op.metadatas or (None,) * len(op.texts)
        now = utcnow().isoformat()
        ids = [f"n-{uuid.uuid4().hex}" for _ in op.texts]
        col = self._notes(op.namespace, create=True)
        for start in range(0, len(ids), 1000):  # bounded request size for the server
            chunk = slice(start, start + 1000)
            texts = list(op.texts[chunk])
            col.add(
                ids=ids[chunk],
                documents=texts,
                metadatas=[
                    {
                        "ns": ns,
                        "metadata": json.dumps(m or {}, ensure_ascii=False, default=str),
                        "created_at": now,
                    }
                    for m in metas[chunk]
                ],
                embeddings=self.embeddings.embed_documents(texts),
            )
        return ids

    def _op_SearchNotesOp(self, op: SearchNotesOp) -> list[Note]:
        col = self._notes(op.namespace, create=False)
        if col is None or op.k <= 0 or not op.query.strip():
            return []
        got = col.query(
            query_embeddings=[self.embeddings.embed_query(op.query)],
            n_results=op.k,
            include=["metadatas", "documents", "distances"],
        )
        ids = got["ids"][0]
        docs = (got["documents"] or [[]])[0]
        metas = (got["metadatas"] or [[]])[0]
        dists = (got["distances"] or [[]])[0]
        return [
            Note(i, d or "", json.loads(str(m["metadata"])), str(m["created_at"]), 1.0 - float(s))
            for i, d, m, s in zip(ids, docs, metas, dists, strict=True)
        ]

    def _op_ListNotesOp(self, op: ListNotesOp) -> list[Note]:
        col = self._notes(op.namespace, create=False)
        if col is None:
            return []
        got = col.get(include=["metadatas", "documents"])
        notes = [
            Note(i, d or "", json.loads(str(m["metadata"])), str(m["created_at"]))
            for i, d, m in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            )
        ]
        notes.sort(key=lambda n: n.created_at)
        return notes[: op.limit] if op.limit is not None else notes

    # -- convenience API (sync) ------------------------------------------------------------------

    def put_block(
        self,
        namespace: Namespace,
        block: MemoryBlock,
        *,
        expected_version: int,
        author: str = "user",
    ) -> MemoryBlock:
        """Create or update a block; returns the stored block with its new version.

        Raises:
            VersionConflict: the block is not at ``expected_version`` (0 = must not exist).
            BlockLimitExceeded: ``len(block.value) > block.limit``.
            ReadOnlyBlock: an agent author ("primary", "sleeptime") writes a read_only block.
        """
        return self._one(PutBlockOp(namespace, block, expected_version, author))

    def get_block(self, namespace: Namespace, label: str) -> MemoryBlock | None:
        """The current version of a block, or ``None``."""
        return self._one(GetBlockOp(namespace, label))

    def get_version(self, namespace: Namespace, label: str, version: int) -> MemoryBlock:
        """One stored version of a block (raises :class:`BlockNotFound`)."""
        return self._one(GetVersionOp(namespace, label, version))

    def list_blocks(self, namespace: Namespace) -> list[MemoryBlock]:
        """Current version of every block in the namespace, sorted by label."""
        return self._one(ListBlocksOp(namespace))

    def history(self, namespace: Namespace, label: str) -> list[MemoryBlock]:
        """Every version of a block, oldest first (deleted blocks included)."""
        return self._one(HistoryOp(namespace, label))

    def delete_block(
        self, namespace: Namespace, label: str, *, expected_version: int, author: str = "user"
    ) -> int:
        """Delete a block (a tombstone version; history stays). Returns the tombstone version."""
        return self._one(DeleteBlockOp(namespace, label, expected_version, author))

    def rollback(
        self, namespace: Namespace, label: str, version: int, *, author: str = "user"
    ) -> MemoryBlock:
        """Write a new version whose content equals ``version``; history is never rewritten."""
        old, history = self.batch(
            [GetVersionOp(namespace, label, version), HistoryOp(namespace, label)]
        )
        return self.put_block(
            namespace, _restorable(old), expected_version=history[-1].version, author=author
        )

    def diff(self, namespace: Namespace, label: str, v1: int, v2: int) -> str:
        """Unified diff of a block between two versions."""
        a, b = self.batch([GetVersionOp(namespace, label, v1), GetVersionOp(namespace, label, v2)])
        return diff_values(a, b)

    def add_note(
        self, namespace: Namespace, text: str, metadata: dict[str, Any] | None = None
    ) -> str:
        """Add an archival note; returns its id."""
        return self._one(AddNoteOp(namespace, text, metadata))

    def add_notes(
        self,
        namespace: Namespace,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add many notes at once (batched embedding); returns their ids."""
        op = AddNotesOp(namespace, tuple(texts), tuple(metadatas) if metadatas else None)
        return self._one(op)

    def search_notes(self, namespace: Namespace, query: str, k: int = 5) -> list[Note]:
        """The ``k`` notes most similar to ``query`` in this namespace."""
        return self._one(SearchNotesOp(namespace, query, k))

    def list_notes(self, namespace: Namespace, limit: int | None = None) -> list[Note]:
        """A namespace's notes, oldest first."""
        return self._one(ListNotesOp(namespace, limit))

    # -- async twins: same ops, awaited ----------------------------------------------------------

    async def aput_block(
        self,
        namespace: Namespace,
        block: MemoryBlock,
        *,
        expected_version: int,
        author: str = "user",
    ) -> MemoryBlock:
        """Async :meth:`put_block`."""
        return await self._aone(PutBlockOp(namespace, block, expected_version, author))

    async def aget_block(self, namespace: Namespace, label: str) -> MemoryBlock | None:
        """Async :meth:`get_block`."""
        return await self._aone(GetBlockOp(namespace, label))

    async def aget_version(self, namespace: Namespace, label: str, version: int) -> MemoryBlock:
        """Async :meth:`get_version`."""
        return await self._aone(GetVersionOp(namespace, label, version))

    async def alist_blocks(self, namespace: Namespace) -> list[MemoryBlock]:
        """Async :meth:`list_blocks`."""
        return await self._aone(ListBlocksOp(namespace))

    async def ahistory(self, namespace: Namespace, label: str) -> list[MemoryBlock]:
        """Async :meth:`history`."""
        return await self._aone(HistoryOp(namespace, label))

    async def adelete_block(
        self, namespace: Namespace, label: str, *, expected_version: int, author: str = "user"
    ) -> int:
        """Async :meth:`delete_block`."""
        return await self._aone(DeleteBlockOp(namespace, label, expected_version, author))

    async def arollback(
        self, namespace: Namespace, label: str, version: int, *, author: str = "user"
    ) -> MemoryBlock:
        """Async :meth:`rollback`."""
        return await asyncio.to_thread(self.rollback, namespace, label, version, author=author)

    async def adiff(self, namespace: Namespace, label: str, v1: int, v2: int) -> str:
        """Async :meth:`diff`."""
        return await asyncio.to_thread(self.diff, namespace, label, v1, v2)

    async def aadd_note(
        self, namespace: Namespace, text: str, metadata: dict[str, Any] | None = None
    ) -> str:
        """Async :meth:`add_note`."""
        return await self._aone(AddNoteOp(namespace, text, metadata))

    async def aadd_notes(
        self,
        namespace: Namespace,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[str]:
        """Async :meth:`add_notes`."""
        op = AddNotesOp(namespace, tuple(texts), tuple(metadatas) if metadatas else None)
        return await self._aone(op)

    async def asearch_notes(self, namespace: Namespace, query: str, k: int = 5) -> list[Note]:
        """Async :meth:`search_notes`."""
        return await self._aone(SearchNotesOp(namespace, query, k))

    async def alist_notes(self, namespace: Namespace, limit: int | None = None) -> list[Note]:
        """Async :meth:`list_notes`."""
        return await self._aone(ListNotesOp(namespace, limit))


def _restorable(old: MemoryBlock) -> MemoryBlock:
    return MemoryBlock(
        label=old.label,
        value=old.value,
        limit=old.limit,
        description=old.description,
        read_only=old.read_only,
        metadata=old.metadata,
    )


def _embeddings_tag(embeddings: Embeddings) -> str:
    """A collection-name-safe tag so vectors of different models never share a collection."""
    name = getattr(embeddings, "model", None) or type(embeddings).__name__
    return hashlib.sha256(str(name).encode()).hexdigest()[:10]
