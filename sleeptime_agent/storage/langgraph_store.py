"""ChromaStore: LangGraph's ``BaseStore`` (long-term memory for graphs) on Chroma.

Layout. Two collections per store:

* ``{prefix}-lgstore-items``: one record per (namespace, key), its id a hash of
  ``json([namespace, key])``. The metadata holds only what filters need: one ``ns_<i>`` field per
  namespace component and ``rev``, a fresh id for every write (Chroma reads slow down with every
  metadata field). The document is JSON: key, value, timestamps, creation sequence number.
* ``{prefix}-lgstore-vec-{tag}`` (only with an ``index``): one record per (item, embedded text),
  as ``InMemoryStore`` keeps one vector per field path. The tag hashes the embedding model and
  ``dims``, so vectors of different models never share a collection.

Namespace prefixes are matched with an ``$and`` of exact ``ns_<i>`` equalities, never with string
prefixes, so no component (quotes, slashes, dots, a prefix-string of another) reaches across
namespaces. A vector counts only while its ``rev`` equals its item's current ``rev``: vectors of
an overwritten value, of a half-finished write or of a writer that lost a race are ignored.

LangGraph filters (``$eq $ne $gt $gte $lt $lte`` and nested JSON) go beyond what Chroma's
metadata filters express, so they are applied in Python to the records of the namespace prefix:
exact, at the cost of reading the prefix's records. Likewise a search without a query reads the
prefix's records to return them in creation order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias, cast

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.api.models.Collection import Collection
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.storage.chroma import (
    DEFAULT_HTTP_TIMEOUT,
    DUMMY_VECTOR,
    connect_ephemeral,
    connect_http,
    connect_persistent,
    connect_url,
    map_backend_errors,
)
from sleeptime_agent.storage.embeddings import default_embeddings

__all__ = ["ChromaStore", "offline_index"]

Namespace: TypeAlias = tuple[str, ...]
Where: TypeAlias = dict[str, Any]

_TIE = 1e-6  # closer scores are ties (Chroma stores float32); ties go in creation order
# Denser than Chroma's defaults (16/100/100): duplicate vectors, common in memories, cut
# HNSW recall hard with those (up to 10% of vectors missed in a test of 450).
_HNSW: CreateHNSWConfiguration = {
    "space": "cosine",
    "max_neighbors": 32,
    "ef_construction": 200,
    "ef_search": 200,
}
_PREFIX_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,398}[A-Za-z0-9])?$")


def offline_index(fields: list[str] | None = None) -> IndexConfig:
    """The offline default ``index``: MiniLM-L6 int8 (384 dims), nothing downloaded at run time.

    Args:
        fields: JSON paths to embed (``["$"]``, the whole value, when omitted).

    Returns:
        ``{"dims": 384, "embed": default_embeddings()}`` plus ``fields`` when given.
    """
    config: IndexConfig = {"dims": default_embeddings().dims, "embed": default_embeddings()}
    if fields is not None:
        config["fields"] = fields
    return config


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


class _Record(NamedTuple):
    """One item record as read from Chroma."""

    id: str
    namespace: Namespace
    key: str
    seq: int
    rev: str
    created_at: datetime
    updated_at: datetime
    value: dict[str, Any]

    def item(self) -> Item:
        return Item(
            value=self.value,
            key=self.key,
            namespace=self.namespace,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def search_item(self, score: float | None = None) -> SearchItem:
        return SearchItem(
            self.namespace, self.key, self.value, self.created_at, self.updated_at, score
        )


@dataclass(frozen=True)
class _Vectors:
    """Embeddings computed before a batch touches Chroma (so ``abatch`` can await them)."""

    documents: dict[str, list[float]]
    queries: dict[str, list[float]]


def _item_id(namespace: Namespace, key: str) -> str:
    raw = json.dumps([list(namespace), key], ensure_ascii=False).encode()
    return "i-" + hashlib.sha256(raw).hexdigest()[:40]


def _vector_id(item_id: str, path: str) -> str:
    return "v-" + hashlib.sha256(json.dumps([item_id, path]).encode()).hexdigest()[:40]


def _cosine(matrix: Any, vector: Sequence[float]) -> list[float]:
    """Cosine of each row with ``vector`` in float64; a zero vector scores 0 (InMemoryStore)."""
    m = np.asarray(matrix, dtype=np.float64)
    v = np.asarray(vector, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(v)
    sims = np.divide(m @ v, norms, out=np.zeros(len(m)), where=norms != 0)
    return [float(x) for x in sims]


def _ns_fields(namespace: Namespace) -> dict[str, str]:
    return {f"ns_{i}": part for i, part in enumerate(namespace)}


def _and(clauses: Sequence[Where]) -> Where | None:
    """Chroma wants a bare clause for one condition and ``$and`` only for two or more."""
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": list(clauses)}


def _prefix_where(prefix: Sequence[str], wildcards: bool = False) -> Where | None:
    """Exact component equalities; with ``wildcards`` (list_namespaces) ``"*"`` matches any."""
    return _and([{f"ns_{i}": p} for i, p in enumerate(prefix) if not (wildcards and p == "*")])


def _namespace_of(meta: Mapping[str, Any]) -> Namespace:
    depth = sum(1 for k in meta if k.startswith("ns_"))
    return tuple(str(meta[f"ns_{i}"]) for i in range(depth))


def _record(rid: str, meta: Mapping[str, Any], document: str | None) -> _Record:
    doc = json.loads(document or "{}")
    return _Record(
        id=rid,
        namespace=_namespace_of(meta),
        key=doc["key"],
        seq=int(doc["seq"]),
        rev=str(meta["rev"]),
        created_at=datetime.fromisoformat(doc["created_at"]),
        updated_at=datetime.fromisoformat(doc["updated_at"]),
        value=doc["value"],
    )


def _records(got: Mapping[str, Any]) -> dict[str, _Record]:
    docs = got["documents"] or [None] * len(got["ids"])
    metas = got["metadatas"] or []
    return {
        rid: _record(rid, meta, doc) for rid, meta, doc in zip(got["ids"], metas, docs, strict=True)
    }


def _order(record: _Record) -> tuple[int, str]:
    return record.seq, record.id


def _matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:  # noqa: A002
    return all(_compare(value.get(k), v) for k, v in filter.items())


def _compare(item_value: Any, filter_value: Any) -> bool:
    """LangGraph filter semantics (as ``InMemoryStore``): nested dicts, lists, operators."""
    if isinstance(filter_value, dict):
        if any(k.startswith("$") for k in filter_value):
            return all(_apply_operator(item_value, op, arg) for op, arg in filter_value.items())
        if not isinstance(item_value, dict):
            return False
        return all(_compare(item_value.get(k), v) for k, v in filter_value.items())
    if isinstance(filter_value, list | tuple):
        return (
            isinstance(item_value, list | tuple)
            and len(item_value) == len(filter_value)
            and all(_compare(i, f) for i, f in zip(item_value, filter_value, strict=True))
        )
    return bool(item_value == filter_value)


def _apply_operator(value: Any, operator: str, arg: Any) -> bool:
    if operator == "$eq":
        return bool(value == arg)
    if operator == "$ne":
        return bool(value != arg)
    if operator not in ("$gt", "$gte", "$lt", "$lte"):
        raise ValueError(f"Unsupported operator: {operator}")
    try:
        a, b = float(value), float(arg)
    except (TypeError, ValueError):
        return False  # a missing or non-numeric field never matches (SQL NULL semantics)
    if operator == "$gt":
        return a > b
    if operator == "$gte":
        return a >= b
    if operator == "$lt":
        return a < b
    return a <= b


def _namespace_matches(condition: MatchCondition, namespace: Namespace) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(p == "*" or n == p for n, p in pairs)


def _rank(scored: Iterable[tuple[float, _Record]]) -> list[tuple[float, _Record]]:
    """Best score first; near-equal scores in creation order, so pages are stable."""
    ranked = sorted(scored, key=lambda s: -s[0])
    out: list[tuple[float, _Record]] = []
    group: list[tuple[float, _Record]] = []
    for entry in ranked:
        if group and group[0][0] - entry[0] > _TIE:
            out.extend(sorted(group, key=lambda s: _order(s[1])))
            group = []
        group.append(entry)
    out.extend(sorted(group, key=lambda s: _order(s[1])))
    return out


def _last_puts(ops: Sequence[Op]) -> list[PutOp]:
    """One put per (namespace, key): the last one wins, in the position of the first."""
    puts: dict[tuple[Namespace, str], PutOp] = {}
    for op in ops:
        if isinstance(op, PutOp):
            puts[(op.namespace, op.key)] = op
    return list(puts.values())


def _embeddings_tag(embed: object, embeddings: Embeddings, dims: int | None) -> str:
    """A collection-name-safe tag for (model, dims)."""
    func = getattr(embeddings, "func", None) or getattr(embeddings, "afunc", None)
    if isinstance(embed, str):
        name = embed
    elif func is not None:  # a bare function wrapped by ensure_embeddings
        name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"
    else:
        model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
        name = str(model or f"{type(embeddings).__module__}.{type(embeddings).__qualname__}")
    return hashlib.sha256(f"{name}|{dims}".encode()).hexdigest()[:12]


_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    """Creation order: nanoseconds, strictly increasing within the process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class ChromaStore(BaseStore):
    """LangGraph ``BaseStore`` on Chroma, with optional vector search.

    Pass it wherever LangGraph takes a store: ``builder.compile(store=ChromaStore.persistent(p))``;
    nodes reach it through ``runtime.store`` or ``get_store()``. Build it with :meth:`persistent`
    (embedded), :meth:`http` (a ``chroma run`` server: required when several processes share
    memory), :meth:`ephemeral` (tests) or from any chromadb client.

    ``index`` works as in ``InMemoryStore``: ``{"dims": int, "embed": Embeddings | function |
    "provider:model", "fields": [json paths]}``; without it, search filters and lists and a
    ``query`` is ignored (results unscored). The offline default is :func:`offline_index`,
    ``{"embed": default_embeddings(), "dims": 384}``: Chroma's own embedding function, which
    downloads a model, is never used. A search with a query ranks items by the best cosine
    similarity over their embedded texts; items without vectors follow, unscored.

    Batches behave as in ``InMemoryStore``: reads see the store as it was before the batch's
    writes, and of several puts to one key the last wins. A batch is not a transaction: a crash
    can leave part of it written (never a half-written item; an item's vectors are ignored until
    the item record is written). TTL is not supported (``InMemoryStore`` does not support it
    either): ``put(..., ttl=...)`` raises ``NotImplementedError``, ``PutOp.ttl`` is ignored.

    Deliberate differences from ``InMemoryStore`` (each asserted in the tests):

    * An update keeps ``created_at`` (as ``PostgresStore`` does); ``InMemoryStore`` resets it.
    * A put replaces the item's vectors. ``InMemoryStore`` keeps vectors of paths the new put
      does not embed, so an item re-put with ``index=False`` still ranks by its old text.
    * ``list_namespaces`` lists namespaces that hold items. ``InMemoryStore`` also lists
      namespaces whose items were all deleted and namespaces that were only read with ``get``.
    * Without a query, and among equal scores, search returns items in creation order across
      the whole prefix. ``InMemoryStore`` goes namespace by namespace (in the order namespaces
      were first touched); within one namespace the order is the same.
    * With a query, ``offset`` counts through scored and then unscored items.
      ``InMemoryStore`` fills every page's tail with unscored items from the first one.
    * ``$gt $gte $lt $lte`` on a missing or non-numeric field do not match;
      ``InMemoryStore`` raises ``TypeError``.
    * ``put(..., index=["$"])`` embeds the whole value, as ``fields=["$"]`` does;
      ``InMemoryStore`` embeds nothing for it.
    * A batch may embed one text for several items; ``InMemoryStore`` raises ``ValueError``
      ("Number of embeddings ... does not match") for such a batch.
    * Values are stored as JSON: tuples come back as lists, and values JSON cannot encode
      raise ``TypeError``.

    Scores are exact (cosine over every vector of an item, max-pooled, as ``InMemoryStore``).
    While the vectors collection holds at most ``exact_search_limit`` vectors, search scores
    every vector under the prefix: scores and ranking match ``InMemoryStore``'s. Above it, Chroma's
    HNSW index proposes the candidates: fast, but an item whose vectors HNSW misses can be
    left out (approximate recall, as in any vector database).

    Args:
        client: a chromadb client.
        index: vector-search configuration (see above); ``None`` disables vector search.
        prefix: collection-name prefix, so several apps can share one Chroma database.
        describe: how the client was built (shown in error messages).
        exact_search_limit: up to this many vectors in the collection, a query scores every
            vector under the prefix instead of asking Chroma's approximate index.

    Raises:
        ConfigurationError: a bad ``prefix`` or ``index``.
        MemoryUnavailable: Chroma cannot be reached.
    """

    supports_ttl = False

    def __init__(
        self,
        client: ClientAPI,
        index: IndexConfig | None = None,
        *,
        prefix: str = "sleeptime",
        describe: str = "chroma",
        exact_search_limit: int = 2000,
    ) -> None:
        if not _PREFIX_RE.fullmatch(prefix) or ".." in prefix:
            raise ConfigurationError(
                "prefix must be 1-400 characters from [A-Za-z0-9._-], start and end with a "
                f"letter or digit, and have no '..'; got {prefix!r}"
            )
        self.client = client
        self.prefix = prefix
        self.describe = describe
        self.exact_search_limit = exact_search_limit
        self.index_config: IndexConfig | None = None
        self.embeddings: Embeddings | None = None
        self._fields: list[str] = []
        self._dims: int | None = None
        self._write_lock = threading.Lock()
        tag = ""
        if index:
            if index.get("embed") is None:
                raise ConfigurationError('index needs "embed": Embeddings, a function or a name')
            self.index_config = index.copy()
            try:
                self.embeddings = ensure_embeddings(index["embed"])
            except (ValueError, ImportError) as exc:
                raise ConfigurationError(f"cannot load index embeddings: {exc}") from exc
            self._fields = list(index.get("fields") or ["$"])
            self._dims = index.get("dims")
            tag = _embeddings_tag(index["embed"], self.embeddings, self._dims)
        self._vectors: Collection | None = None
        with map_backend_errors(describe):
            self._max_batch = int(client.get_max_batch_size())
            self._items = self._collection(f"{prefix}-lgstore-items")
            if tag:
                self._vectors = self._collection(f"{prefix}-lgstore-vec-{tag}")

    def _collection(self, name: str) -> Collection:
        return self.client.get_or_create_collection(
            name,
            embedding_function=None,  # embeddings are always passed in; never Chroma's default
            configuration={"hnsw": _HNSW},
        )

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def persistent(
        cls, path: str | Path, index: IndexConfig | None = None, **kwargs: Any
    ) -> ChromaStore:
        """Embedded Chroma persisted under ``path`` (one process at a time)."""
        return cls(index=index, **connect_persistent(path).store_kwargs(kwargs))

    @classmethod
    def http(
        cls,
        host: str = "127.0.0.1",
        port: int = 8000,
        index: IndexConfig | None = None,
        *,
        timeout: float | None = DEFAULT_HTTP_TIMEOUT,
        **kwargs: Any,
    ) -> ChromaStore:
        """A Chroma server (``chroma run``), shared by every process that connects to it.

        A request unanswered within ``timeout`` seconds raises ``MemoryUnavailable``.
        """
        return cls(index=index, **connect_http(host, port, timeout=timeout).store_kwargs(kwargs))

    @classmethod
    def ephemeral(cls, index: IndexConfig | None = None, **kwargs: Any) -> ChromaStore:
        """In-memory Chroma, gone when the process ends (tests, notebooks).

        Ephemeral clients in one process share their data, so each store gets its own
        collection prefix unless one is given.
        """
        return cls(index=index, **connect_ephemeral().store_kwargs(kwargs))

    @classmethod
    def from_url(
        cls,
        url: str,
        index: IndexConfig | None = None,
        *,
        timeout: float | None = DEFAULT_HTTP_TIMEOUT,
        **kwargs: Any,
    ) -> ChromaStore:
        """``http://host:port`` for a server, anything else is a directory for embedded Chroma."""
        return cls(index=index, **connect_url(url, timeout=timeout).store_kwargs(kwargs))

    # -- batch -----------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Execute ops; one result per op, in order (see the class docstring for semantics)."""
        ops = list(ops)
        texts, queries = self._to_embed(ops)
        vectors = _Vectors({}, {})
        if self.embeddings is not None:
            embedded = self.embeddings.embed_documents(texts) if texts else []
            vectors = _Vectors(
                dict(zip(texts, embedded, strict=True)),
                {q: self.embeddings.embed_query(q) for q in queries},
            )
        return self._execute(ops, vectors)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch`: same body, run in a worker thread because Chroma's client blocks.

        Embeddings are awaited first, so async embedding functions work.
        """
        ops = list(ops)
        texts, queries = self._to_embed(ops)
        vectors = _Vectors({}, {})
        if self.embeddings is not None:
            embedded = await self.embeddings.aembed_documents(texts) if texts else []
            vectors = _Vectors(
                dict(zip(texts, embedded, strict=True)),
                {q: await self.embeddings.aembed_query(q) for q in queries},
            )
        return await asyncio.to_thread(self._execute, ops, vectors)

    def _to_embed(self, ops: Sequence[Op]) -> tuple[list[str], list[str]]:
        """Distinct texts of the batch's effective puts, and distinct search queries."""
        for op in ops:
            if not isinstance(op, GetOp | PutOp | SearchOp | ListNamespacesOp):
                raise ValueError(f"Unknown operation type: {type(op)}")
        if self.embeddings is None:
            return [], []
        texts = [text for op in _last_puts(ops) for _, text in self._texts(op)]
        queries = [op.query for op in ops if isinstance(op, SearchOp) and op.query]
        return list(dict.fromkeys(texts)), list(dict.fromkeys(queries))

    def _texts(self, op: PutOp) -> list[tuple[str, str]]:
        """(path label, text) pairs to embed for a put, labelled as ``InMemoryStore`` does."""
        if op.value is None or op.index is False or self.embeddings is None:
            return []
        pairs: list[tuple[str, str]] = []
        for path in self._fields if op.index is None else op.index:
            found = get_text_at_path(op.value, path if path == "$" else tokenize_path(path))
            if len(found) == 1:
                pairs.append((path, found[0]))
            else:
                pairs.extend((f"{path}.{i}", text) for i, text in enumerate(found))
        return pairs

    def _execute(self, ops: Sequence[Op], vectors: _Vectors) -> list[Result]:
        results: list[Result] = [None] * len(ops)
        with map_backend_errors(self.describe):
            gets = [(i, g) for i, g in enumerate(ops) if isinstance(g, GetOp)]
            if gets:
                found = self._fetch([_item_id(g.namespace, g.key) for _, g in gets])
                for i, g in gets:
                    rec = found.get(_item_id(g.namespace, g.key))
                    results[i] = None if rec is None else rec.item()
            for i, op in enumerate(ops):
                if isinstance(op, SearchOp):
                    results[i] = self._search(op, vectors.queries.get(op.query or ""))
                elif isinstance(op, ListNamespacesOp):
                    results[i] = self._list_namespaces(op)
            puts = _last_puts(ops)
            if puts:
                with self._write_lock:
                    self._apply_puts(puts, vectors.documents)
        return results

    # -- reads -----------------------------------------------------------------------------------

    def _fetch(self, ids: Sequence[str]) -> dict[str, _Record]:
        if not ids:
            return {}
        got = self._items.get(ids=list(dict.fromkeys(ids)), include=["metadatas", "documents"])
        return _records(got)

    def _filtered(self, op: SearchOp) -> list[_Record]:
        """Every item under the prefix that passes the filter, in creation order."""
        got = self._items.get(
            where=_prefix_where(op.namespace_prefix), include=["metadatas", "documents"]
        )
        records = list(_records(got).values())
        if op.filter:
            records = [r for r in records if _matches(r.value, op.filter)]
        return sorted(records, key=_order)

    def _search(self, op: SearchOp, query_vector: list[float] | None) -> list[SearchItem]:
        if query_vector is None or self._vectors is None:
            page = self._filtered(op)[op.offset : op.offset + op.limit]
            return [r.search_item() for r in page]
        need = op.offset + op.limit
        ranked, complete = self._ranked(op, query_vector, need)
        found = [rec.search_item(score) for score, rec in ranked[op.offset : need]]
        if complete and len(found) < op.limit:
            # All scored items are known: unscored ones follow, and offset runs on through them.
            scored = {rec.id for _, rec in ranked}
            rest = [r for r in self._filtered(op) if r.id not in scored]
            skip = max(0, op.offset - len(ranked))
            found += [r.search_item() for r in rest[skip : skip + op.limit - len(found)]]
        return found

    def _ranked(
        self, op: SearchOp, query_vector: list[float], need: int
    ) -> tuple[list[tuple[float, _Record]], bool]:
        """At least the best ``need`` scored items, best first; ``complete`` if all are there.

        Chroma's HNSW index can miss vectors (badly so among duplicate vectors), so it only
        proposes candidates, and only in collections above ``exact_search_limit``; scores are
        then computed exactly (:meth:`_score`). Chroma returns vectors, not items, and the
        filter runs in Python, so the number of vectors to ask for is unknown: ask for more
        until enough candidates pass.
        """
        assert self._vectors is not None
        if need <= 0:
            return [], False
        where = _prefix_where(op.namespace_prefix)
        cache: dict[str, _Record] = {}
        total = self._vectors.count()
        n = max(4 * need, 32)
        while total > self.exact_search_limit and n < total:
            got = self._vectors.query(
                query_embeddings=[cast(Sequence[float], query_vector)],
                n_results=n,
                where=where,
                include=["metadatas", "distances"],
            )
            metas = (got["metadatas"] or [[]])[0]
            dists = (got["distances"] or [[]])[0]
            if len(metas) < n:
                break  # the prefix holds fewer vectors: score them all
            candidates: Where = {
                "item": {"$in": list(dict.fromkeys(str(m["item"]) for m in metas))}
            }
            ranked, _ = self._score(op, query_vector, candidates, need, cache)
            # Items beyond the vectors fetched score at most the last one (as far as HNSW
            # knows); a tie group must be whole to be put in creation order.
            if len(ranked) >= need and 1.0 - float(dists[-1]) < ranked[need - 1][0] - _TIE:
                return ranked, False
            n *= 4
        return self._score(op, query_vector, where, need, cache)

    def _score(
        self,
        op: SearchOp,
        query_vector: list[float],
        where: Where | None,
        need: int,
        cache: dict[str, _Record],
    ) -> tuple[list[tuple[float, _Record]], bool]:
        """Exact scores of the items whose vectors match ``where``, best first.

        An item's score is the max cosine over the vectors of its current write. Item records
        are read in order of their best vector, only until no later item can enter the top
        ``need``; ``complete`` says whether every item was read.
        """
        assert self._vectors is not None
        got = self._vectors.get(where=where, include=["embeddings", "metadatas"])
        metas = got["metadatas"] or []
        if not metas:
            return [], True
        # item -> rev -> best similarity; a vector counts only for the write it came from.
        bounds: dict[str, dict[str, float]] = {}
        for meta, sim in zip(metas, _cosine(got["embeddings"], query_vector), strict=True):
            revs = bounds.setdefault(str(meta["item"]), {})
            revs[str(meta["rev"])] = max(sim, revs.get(str(meta["rev"]), -2.0))
        order = sorted(bounds, key=lambda item: -max(bounds[item].values()))
        scored: list[tuple[float, _Record]] = []
        step = max(2 * need, 64)
        for start in range(0, len(order), step):
            if len(scored) >= need:
                kth = sorted((s for s, _ in scored), reverse=True)[need - 1]
                if max(bounds[order[start]].values()) < kth - _TIE:
                    return _rank(scored), False
            chunk = order[start : start + step]
            cache.update(self._fetch([i for i in chunk if i not in cache]))
            for item_id in chunk:
                rec = cache.get(item_id)
                if rec is None or rec.rev not in bounds[item_id]:
                    continue  # deleted, or only vectors of another write of the item
                if op.filter and not _matches(rec.value, op.filter):
                    continue
                scored.append((bounds[item_id][rec.rev], rec))
        return _rank(scored), True

    def _list_namespaces(self, op: ListNamespacesOp) -> list[Namespace]:
        conditions = op.match_conditions or ()
        prefixes = [c.path for c in conditions if c.match_type == "prefix"]
        where = _and([w for p in prefixes if (w := _prefix_where(p, wildcards=True)) is not None])
        got = self._items.get(where=where, include=["metadatas"])
        found = {_namespace_of(m) for m in got["metadatas"] or []}
        namespaces = [ns for ns in found if all(_namespace_matches(c, ns) for c in conditions)]
        if op.max_depth is not None:
            namespaces = list({ns[: op.max_depth] for ns in namespaces})
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    # -- writes ----------------------------------------------------------------------------------

    def _apply_puts(self, puts: Sequence[PutOp], embedded: Mapping[str, list[float]]) -> None:
        """Vectors first, then item records (the commit point), then stale vectors go."""
        ids = [_item_id(op.namespace, op.key) for op in puts]
        existing = self._fetch(ids)
        now = datetime.now(UTC).isoformat()
        item_ids: list[str] = []
        item_docs: list[str] = []
        item_metas: list[Any] = []
        vectors: dict[str, tuple[list[float], dict[str, Any]]] = {}
        revs: dict[str, str] = {}
        for rid, op in zip(ids, puts, strict=True):
            if op.value is None:
                continue
            old = existing.get(rid)
            rev = uuid.uuid4().hex
            revs[rid] = rev
            item_ids.append(rid)
            item_docs.append(
                json.dumps(
                    {
                        "key": op.key,
                        "seq": old.seq if old else _next_seq(),
                        "created_at": old.created_at.isoformat() if old else now,
                        "updated_at": now,
                        "value": dict(op.value),
                    },
                    ensure_ascii=False,
                )
            )
            item_metas.append({"rev": rev, **_ns_fields(op.namespace)})
            for path, text in self._texts(op):
                vector = embedded[text]
                if self._dims is not None and len(vector) != self._dims:
                    raise ConfigurationError(
                        f"index dims is {self._dims} but the embeddings returned {len(vector)}"
                    )
                meta = {"item": rid, "rev": rev, **_ns_fields(op.namespace)}
                vectors[_vector_id(rid, path)] = (vector, meta)
        if vectors and self._vectors is not None:
            vids = list(vectors)
            self._chunked(
                self._vectors.upsert,
                vids,
                embeddings=[vectors[v][0] for v in vids],
                metadatas=[vectors[v][1] for v in vids],
            )
        if item_ids:
            self._chunked(
                self._items.upsert,
                item_ids,
                documents=item_docs,
                metadatas=item_metas,
                embeddings=[DUMMY_VECTOR] * len(item_ids),
            )
        deleted = [rid for rid, op in zip(ids, puts, strict=True) if op.value is None]
        if deleted:
            self._chunked(self._items.delete, deleted)
        if self._vectors is not None:
            stale: list[str] = []
            for start in range(0, len(ids), self._max_batch):
                where: Where = {"item": {"$in": ids[start : start + self._max_batch]}}
                got = self._vectors.get(
                    where=where,
                    include=["metadatas"],
                )
                stale += [
                    vid
                    for vid, meta in zip(got["ids"], got["metadatas"] or [], strict=True)
                    if revs.get(str(meta["item"])) != meta["rev"]
                ]
            if stale:
                self._chunked(self._vectors.delete, stale)

    def _chunked(self, call: Callable[..., Any], ids: list[str], **columns: list[Any]) -> None:
        """Chroma refuses writes larger than the client's max batch size."""
        size = self._max_batch
        for start in range(0, len(ids), size):
            part = slice(start, start + size)
            call(ids=ids[part], **{name: column[part] for name, column in columns.items()})
