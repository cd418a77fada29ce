"""ChromaStore side by side with LangGraph's InMemoryStore: same calls, same results.

LangGraph ships no store conformance suite, so InMemoryStore is the reference. Every
deliberate difference (listed in ChromaStore's docstring) has its own test at the end.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import Embeddings
from langgraph.config import get_store
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NamespaceMatchType,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore, _does_match

from sleeptime_agent.errors import ConfigurationError, MemoryUnavailable
from sleeptime_agent.storage.langgraph_store import ChromaStore, offline_index

DIMS = 64


class HashEmbeddings(Embeddings):
    """Bag-of-words counts hashed into 63 buckets, plus a constant bias (never a zero vector).

    Not ``sleeptime_agent.testing.HashingEmbeddings``: that one normalises, and rounding makes
    InMemoryStore order equal scores by float noise. Small integers are exact in float32 and
    float64, so equal scores are exactly equal in both stores and their orders comparable.
    """

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * DIMS
        for word in re.findall(r"\w+", text.lower()):
            vector[zlib.crc32(word.encode()) % (DIMS - 1)] += 1.0
        vector[-1] = 0.5
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def index(fields: list[str] | None = None) -> IndexConfig:
    config: IndexConfig = {"dims": DIMS, "embed": HashEmbeddings()}
    if fields is not None:
        config["fields"] = fields
    return config


FIELDS = ["text", "tags[*]", "meta.title"]


# Marked at collection, so `-m "not server"` deselects the server variants.
@pytest.fixture(
    params=["ephemeral", "persistent", pytest.param("server", marks=pytest.mark.server)]
)
def chroma_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_chroma(
    chroma_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[IndexConfig | None], ChromaStore]:
    """Build ChromaStores on the parametrized backend, each with a fresh collection prefix."""

    def make(index: IndexConfig | None = None) -> ChromaStore:
        prefix = f"t-{uuid.uuid4().hex[:10]}"
        if chroma_kind == "ephemeral":
            return ChromaStore.ephemeral(index)
        if chroma_kind == "persistent":
            return ChromaStore.persistent(tmp_path / "chroma", index, prefix=prefix)
        server = request.getfixturevalue("chroma_server")
        return ChromaStore.http(server.host, server.port, index, prefix=prefix)

    return make


# ---------------------------------------------------------------------------------------------
# Comparing results
# ---------------------------------------------------------------------------------------------


def canon(result: Any) -> Any:
    """Results without timestamps: they differ by construction (and by design on update)."""
    if isinstance(result, SearchItem):
        return ("search", result.namespace, result.key, result.value, result.score)
    if isinstance(result, Item):
        return ("item", result.namespace, result.key, result.value)
    if isinstance(result, list):
        return [canon(r) for r in result]
    return result


def assert_same(expected: Any, got: Any, where: str = "") -> None:
    expected, got = canon(expected), canon(got)
    assert _close(expected, got), f"{where}\nexpected: {expected}\n     got: {got}"


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-5
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check_timestamps(result: Any) -> None:
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, Item):
            assert item.created_at.tzinfo is not None
            assert item.created_at <= item.updated_at


# ---------------------------------------------------------------------------------------------
# One scenario, run through the sync or the async API of any store
# ---------------------------------------------------------------------------------------------


class Calls:
    """The same store calls, made through the sync or the async methods."""

    def __init__(self, store: BaseStore, mode: str) -> None:
        self.store, self.mode = store, mode

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return getattr(self.store, name)(*args, **kwargs)
        method: Callable[..., Awaitable[Any]] = getattr(self.store, f"a{name}")
        return await method(*args, **kwargs)

    async def put(self, *args: Any, **kwargs: Any) -> None:
        await self._call("put", *args, **kwargs)

    async def get(self, *args: Any) -> Any:
        return await self._call("get", *args)

    async def delete(self, *args: Any) -> None:
        await self._call("delete", *args)

    async def search(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("search", *args, **kwargs)

    async def list_namespaces(self, **kwargs: Any) -> Any:
        return await self._call("list_namespaces", **kwargs)

    async def batch(self, ops: list[Any]) -> Any:
        if self.mode == "sync":
            return self.store.batch(ops)
        return await self.store.abatch(ops)


U1, U2, ARCHIVE, OTHER = ("docs", "u1"), ("docs", "u2"), ("docs", "u1", "archive"), ("other",)


async def scenario(calls: Calls) -> list[Any]:
    """Every observable result of a fixed sequence of calls.

    Items are created namespace by namespace, so both stores' orders agree without a query.
    """
    seen: list[Any] = []

    async def look(name: str, *args: Any, **kwargs: Any) -> None:
        result = await getattr(calls, name)(*args, **kwargs)
        check_timestamps(result)
        seen.append((name, args, kwargs, result))

    await calls.put(
        U1,
        "k1",
        {
            "text": "python tutorial for beginners",
            "n": 1,
            "color": "red",
            "tags": ["code", "learning"],
            "meta": {"title": "Py"},
        },
    )
    await calls.put(U1, "k2", {"text": "typescript guide", "n": 2, "color": "blue"})
    await calls.put(
        U1, "k3", {"text": "cooking pasta recipes", "n": 3, "color": "red", "meta": {"title": "x"}}
    )
    await calls.put(U1, "k4", {"text": "python hidden", "n": 9, "color": "red"}, index=False)
    await calls.put(U2, "k1", {"text": "python snakes in the wild", "n": 5, "color": "green"})
    await calls.put(
        U2, "k5", {"text": "ignored", "meta": {"title": "python class"}}, ["meta.title"]
    )
    await calls.put(ARCHIVE, "old", {"text": "old python notes", "n": 0})
    await calls.put(OTHER, "x", {"text": "nothing to see", "n": 7})

    await look("get", U1, "k1")
    await look("get", U2, "k5")
    await look("get", U1, "missing")
    # Without a query: creation order within one namespace, filters, pagination.
    await look("search", U1)
    await look("search", U1, filter={"color": "red"})
    await look("search", U1, filter={"n": {"$gte": 1, "$lt": 3}})
    await look("search", U1, filter={"color": {"$ne": "red"}})
    await look("search", U1, filter={"meta": {"title": "Py"}})
    await look("search", U1, filter={"tags": ["code", "learning"]})
    await look("search", U1, filter={"n": {"$eq": 3}, "color": "red"})
    await look("search", U1, limit=2, offset=1)
    await look("search", U1, limit=1, offset=5)
    # With a query: ranked by the best field, the index=False item last and unscored.
    await look("search", ("docs",), query="python", limit=20)
    await look("search", ("docs",), query="python beginners learning code")
    await look("search", ("docs",), query="python", filter={"color": "red"})
    await look("search", ("docs",), query="python", limit=2, offset=1)
    await look("search", (), query="guide to pasta", limit=3)
    await look("search", ("docs", "u1", "archive"), query="python")
    await look("search", ("nowhere",), query="python")
    # Namespaces.
    await look("list_namespaces")
    await look("list_namespaces", prefix=("docs",))
    await look("list_namespaces", prefix=("docs", "*"))
    await look("list_namespaces", suffix=("u1",))
    await look("list_namespaces", suffix=("*", "archive"))
    await look("list_namespaces", prefix=("docs",), suffix=("u2",))
    await look("list_namespaces", max_depth=1)
    await look("list_namespaces", max_depth=2, prefix=("docs",))
    await look("list_namespaces", limit=2, offset=1)
    # Update, delete, and a mixed batch (its reads see the store as it was before it).
    await calls.put(U1, "k2", {"text": "typescript handbook", "n": 20, "color": "red"})
    await look("get", U1, "k2")
    await look("search", U1)
    await look("search", ("docs",), query="typescript handbook", limit=2)
    await calls.delete(U1, "k3")
    await look("get", U1, "k3")
    await look("search", U1, filter={"color": "red"})
    await look("search", ("docs",), query="pasta")
    await look(
        "batch",
        [
            PutOp(U2, "new", {"text": "first"}),
            GetOp(U2, "new"),
            PutOp(U2, "new", {"text": "second python"}),
            SearchOp(U2, None, 10, 0, "python"),
            ListNamespacesOp((MatchCondition("prefix", ("docs", "u2")),), None, 10, 0),
        ],
    )
    await look("get", U2, "new")
    await look("search", U2, query="python")
    return seen


def _compare_scenarios(expected: list[Any], got: list[Any]) -> None:
    assert len(expected) == len(got)
    for (name, args, kwargs, want), (_, _, _, have) in zip(expected, got, strict=True):
        assert_same(want, have, f"{name}{args} {kwargs}")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_same_results_as_in_memory_store(
    make_chroma: Callable[[IndexConfig | None], ChromaStore], mode: str
) -> None:
    expected = await scenario(Calls(InMemoryStore(index=index(FIELDS)), mode))
    got = await scenario(Calls(make_chroma(index(FIELDS)), mode))
    _compare_scenarios(expected, got)
    # The scenario checks what it should: index=False items are unscored by a query ...
    by_query = {(r.namespace, r.key): r.score for r in got[12][3]}
    assert by_query[(U1, "k4")] is None and by_query[(U1, "k1")] is not None
    assert list(by_query.values())[-1] is None
    # ... and still found by filters.
    assert ("k4" in [r.key for r in got[4][3]]) and got[4][3][-1].key == "k4"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_same_results_without_an_index(
    make_chroma: Callable[[IndexConfig | None], ChromaStore], mode: str
) -> None:
    """No index: a query is ignored and results come unscored, as in InMemoryStore."""
    expected = await scenario(Calls(InMemoryStore(), mode))
    got = await scenario(Calls(make_chroma(None), mode))
    _compare_scenarios(expected, got)
    assert all(r.score is None for r in got[12][3])


async def test_whole_value_default_field(
    make_chroma: Callable[[IndexConfig | None], ChromaStore],
) -> None:
    memory, chroma = InMemoryStore(index=index()), make_chroma(index())
    for store in (memory, chroma):
        store.put(("n",), "a", {"title": "rivers", "body": "boats and fish"})
        store.put(("n",), "b", {"title": "mountains", "body": "snow"})
        await store.aput(("n",), "c", {"title": "lakes", "body": "fish and boats in rivers"})
    for query in ("fish", "snow mountains", "rivers boats"):
        assert_same(memory.search(("n",), query=query), chroma.search(("n",), query=query), query)


# ---------------------------------------------------------------------------------------------
# Random operation sequences
# ---------------------------------------------------------------------------------------------

NAMESPACES = [("r", "a"), ("r", "b"), ("r", "a", "x"), ("s",)]
PREFIXES = [(), ("r",), ("r", "a"), ("r", "b"), ("s",), ("r", "a", "x")]
WORDS = ["python", "snake", "guide", "pasta", "cook", "river", "code", "tea", "garden", "music"]
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"color": "red"},
    {"n": {"$gte": 2}},
    {"n": {"$lt": 3}, "color": {"$ne": "blue"}},
]

values = st.fixed_dictionaries(
    {
        "text": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
        "n": st.integers(0, 4),
        "color": st.sampled_from(["red", "blue", "green"]),
    }
)
namespaces = st.sampled_from(NAMESPACES)
keys = st.sampled_from(["k1", "k2", "k3", "k4"])
op_strategy = st.one_of(
    st.tuples(st.just("put"), namespaces, keys, values),
    st.tuples(st.just("delete"), namespaces, keys),
    st.tuples(st.just("get"), namespaces, keys),
    st.tuples(
        st.just("search"),
        st.sampled_from(PREFIXES),
        st.one_of(
            st.none(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join)
        ),
        st.sampled_from(FILTERS),
        st.integers(1, 5),
        st.integers(0, 3),
    ),
    st.tuples(
        st.just("list"),
        st.sampled_from([None, ("r",), ("r", "*"), ("*", "a")]),
        st.sampled_from([None, ("a",), ("x",)]),
        st.sampled_from([None, 1, 2]),
    ),
    # Distinct texts: InMemoryStore fails a batch that embeds one text twice (see below).
    st.tuples(
        st.just("batch"),
        st.lists(st.tuples(namespaces, keys, values), max_size=3, unique_by=lambda p: p[2]["text"]),
    ),
)


def _check_search(
    memory: InMemoryStore, chroma: ChromaStore, prefix: tuple[str, ...], **kw: Any
) -> None:
    """Equal up to the documented orderings and to ties between equal scores."""
    want = memory.search(prefix, **kw)
    got = chroma.search(prefix, **kw)
    everything = memory.search(prefix, query=kw["query"], filter=kw["filter"], limit=1000)
    by_key = {(r.namespace, r.key): r for r in everything}
    assert len(got) == len(want)
    for item in got:
        ref = by_key[(item.namespace, item.key)]
        assert_same(ref, item, "value and score of a returned item")
    if kw["query"]:
        assert _close([r.score for r in want], [r.score for r in got])
    elif len({r.namespace for r in everything}) == 1:
        assert_same(want, got, "one namespace: same order")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(op_strategy, min_size=1, max_size=25))
def test_random_operations_agree(ops: list[tuple[Any, ...]]) -> None:
    memory, chroma = InMemoryStore(index=index(["text"])), ChromaStore.ephemeral(index(["text"]))
    live: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
    for op in ops:
        kind = op[0]
        if kind == "put":
            _, ns, key, value = op
            memory.put(ns, key, value)
            chroma.put(ns, key, value)
            live[(ns, key)] = value
        elif kind == "delete":
            _, ns, key = op
            memory.delete(ns, key)
            chroma.delete(ns, key)
            live.pop((ns, key), None)
        elif kind == "get":
            _, ns, key = op
            assert_same(memory.get(ns, key), chroma.get(ns, key))
        elif kind == "search":
            _, prefix, query, filter_, limit, offset = op
            _check_search(
                memory, chroma, prefix, query=query, filter=filter_, limit=limit, offset=offset
            )
        elif kind == "list":
            _, prefix, suffix, depth = op
            bounds: tuple[tuple[NamespaceMatchType, Any], ...] = (
                ("prefix", prefix),
                ("suffix", suffix),
            )
            conditions = [MatchCondition(t, p) for t, p in bounds if p]
            # InMemoryStore also lists namespaces that are empty now (a documented difference).
            reachable = {
                ns[:depth] if depth else ns
                for ns, _ in live
                if all(_does_match(c, ns) for c in conditions)
            }
            want = memory.list_namespaces(prefix=prefix, suffix=suffix, max_depth=depth)
            got = chroma.list_namespaces(prefix=prefix, suffix=suffix, max_depth=depth)
            assert got == [ns for ns in want if ns in reachable]
        else:
            batch: list[Any] = []
            for ns, key, value in op[1]:
                batch += [PutOp(ns, key, value), GetOp(ns, key)]
            assert_same(memory.batch(batch), chroma.batch(batch), "batch")
            for ns, key, value in op[1]:
                live[(ns, key)] = value


# ---------------------------------------------------------------------------------------------
# Namespace isolation
# ---------------------------------------------------------------------------------------------

TRICKY = [
    "a",
    "ab",
    "a.b",
    "b",
    "a/b",
    "a\\b",
    'a"b',
    "a'b",
    '["a", "b"]',
    "a,b",
    "a b",
    "ünï",
    "用户",
    "🙂",
    "a\nb",
    "%",
    "*",
    "$eq",
    "ns_0",
    "x" * 3000,
]


def test_namespaces_never_leak() -> None:
    """Prefix-strings, dots, quotes, JSON-looking and long components stay apart.

    Written through batch ops because BaseStore's convenience methods refuse labels with a
    period; stores must still keep ("a.b",) and ("a", "b") apart.
    """
    nss = [(t,) for t in TRICKY] + [("a", "b"), ("a", "b", "c"), ("ab", "c"), ("a.b", "c")]
    nss += [(TRICKY[i], TRICKY[-1 - i]) for i in range(len(TRICKY))]
    nss = list(dict.fromkeys(nss))
    memory, chroma = InMemoryStore(index=index(["text"])), ChromaStore.ephemeral(index(["text"]))
    for store in (memory, chroma):
        store.batch(
            [PutOp(ns, "k", {"text": f"secret {i} hiking", "i": i}) for i, ns in enumerate(nss)]
        )
    for i, ns in enumerate(nss):
        under = sorted(j for j, other in enumerate(nss) if other[: len(ns)] == ns)
        get, plain, ranked, listed = chroma.batch(
            [
                GetOp(ns, "k"),
                SearchOp(ns, None, 1000, 0, None),
                SearchOp(ns, None, 1000, 0, "hiking"),
                ListNamespacesOp((MatchCondition("prefix", ns),), None, 1000, 0),
            ]
        )
        # batch() types each result as the union over all ops; each op fixes its own.
        get = cast(Item | None, get)
        plain = cast(list[SearchItem], plain)
        ranked = cast(list[SearchItem], ranked)
        listed = cast(list[tuple[str, ...]], listed)
        assert get is not None and get.value["i"] == i and get.namespace == ns
        assert sorted(r.value["i"] for r in plain) == under
        assert sorted(r.value["i"] for r in ranked) == under
        if "*" not in ns:  # list_namespaces reads "*" as a wildcard, search does not
            assert sorted(listed) == sorted(nss[j] for j in under)
        want_plain, want_listed = memory.batch(
            [
                SearchOp(ns, None, 1000, 0, None),
                ListNamespacesOp((MatchCondition("prefix", ns),), None, 1000, 0),
            ]
        )
        assert_same(want_plain, plain, repr(ns))
        assert listed == want_listed
    assert chroma.batch([GetOp(("a",), "b")]) == [None]
    assert sorted(chroma.list_namespaces(limit=1000)) == sorted(nss)


# ---------------------------------------------------------------------------------------------
# Persistence, servers, graphs, configuration
# ---------------------------------------------------------------------------------------------


def test_persistent_store_reopens(tmp_path: Path) -> None:
    store = ChromaStore.persistent(tmp_path, index(["text"]))
    store.put(("u",), "a", {"text": "python notes"})
    store.put(("u",), "b", {"text": "garden tea"}, index=False)
    created = store.get(("u",), "a")
    reopened = ChromaStore.persistent(tmp_path, index(["text"]))
    assert reopened.get(("u",), "a") == created
    assert [(r.key, r.score is None) for r in reopened.search(("u",), query="python")] == [
        ("a", False),
        ("b", True),
    ]
    # Without the index the same data is there; a query is then ignored.
    bare = ChromaStore.persistent(tmp_path)
    assert [r.key for r in bare.search(("u",), query="python")] == ["a", "b"]


@pytest.mark.server
def test_server_store_is_shared_between_clients(chroma_server: Any) -> None:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    one = ChromaStore.http(chroma_server.host, chroma_server.port, index(["text"]), prefix=prefix)
    two = ChromaStore.from_url(chroma_server.url, index(["text"]), prefix=prefix)
    one.put(("u",), "a", {"text": "python notes"})
    assert two.get(("u",), "a") == one.get(("u",), "a")
    assert [r.key for r in two.search(("u",), query="python")] == ["a"]


def test_unreachable_server_is_memory_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MemoryUnavailable):
        ChromaStore.http("127.0.0.1", port)


class GraphState(TypedDict):
    text: str
    echoed: str


def test_compiled_graph_uses_the_store() -> None:
    def remember(state: GraphState, runtime: Runtime[None]) -> dict[str, str]:
        assert runtime.store is not None
        runtime.store.put(("users", "1"), "note", {"text": state["text"]})
        return {}

    def recall(state: GraphState) -> dict[str, str]:
        item = get_store().get(("users", "1"), "note")
        assert item is not None
        return {"echoed": item.value["text"]}

    builder = StateGraph(GraphState)
    builder.add_node(remember)
    builder.add_node(recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    store = ChromaStore.ephemeral(index(["text"]))
    graph = builder.compile(store=store)
    assert graph.invoke({"text": "hello", "echoed": ""})["echoed"] == "hello"
    assert [r.key for r in store.search(("users",), query="hello")] == ["note"]


async def test_compiled_graph_uses_the_store_async() -> None:
    async def remember(state: GraphState, runtime: Runtime[None]) -> dict[str, str]:
        assert runtime.store is not None
        await runtime.store.aput(("users", "1"), "note", {"text": state["text"]})
        item = await runtime.store.aget(("users", "1"), "note")
        assert item is not None
        return {"echoed": item.value["text"]}

    builder = StateGraph(GraphState)
    builder.add_node(remember)
    builder.add_edge(START, "remember")
    graph = builder.compile(store=ChromaStore.ephemeral())
    assert (await graph.ainvoke({"text": "hi", "echoed": ""}))["echoed"] == "hi"


async def test_async_embedding_function_works_in_abatch() -> None:
    embedder = HashEmbeddings()

    async def aembed(texts: Sequence[str]) -> list[list[float]]:
        await asyncio.sleep(0)
        return embedder.embed_documents(list(texts))

    store = ChromaStore.ephemeral({"dims": DIMS, "embed": aembed, "fields": ["text"]})
    await store.aput(("u",), "a", {"text": "python"})
    await store.aput(("u",), "b", {"text": "tea"})
    assert [r.key for r in await store.asearch(("u",), query="python")] == ["a", "b"]


def test_offline_index_searches_by_meaning() -> None:
    store = ChromaStore.ephemeral(offline_index(["text"]))
    store.put(("u",), "hike", {"text": "I love hiking in the mountains"})
    store.put(("u",), "tax", {"text": "Quarterly tax forms are due"})
    results = store.search(("u",), query="outdoor trekking trip")
    assert [r.key for r in results] == ["hike", "tax"]
    assert results[0].score is not None and results[1].score is not None
    assert results[0].score > results[1].score


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        ChromaStore.ephemeral(prefix="bad prefix!")
    with pytest.raises(ConfigurationError):
        ChromaStore.ephemeral({"dims": 3})
    wrong_dims = ChromaStore.ephemeral({"dims": 8, "embed": HashEmbeddings()})
    with pytest.raises(ConfigurationError):
        wrong_dims.put(("u",), "a", {"text": "x"})
    assert wrong_dims.get(("u",), "a") is None  # nothing half-written
    with pytest.raises(ValueError):
        ChromaStore.ephemeral().batch([object()])  # type: ignore[list-item]


def test_ttl_is_unsupported_like_in_memory_store() -> None:
    for store in (InMemoryStore(), ChromaStore.ephemeral()):
        assert store.supports_ttl is False
        with pytest.raises(NotImplementedError):
            store.put(("u",), "a", {"x": 1}, ttl=5)


def test_large_batches_are_chunked() -> None:
    store = ChromaStore.ephemeral(index(["text"]))
    store._max_batch = 7  # small, so a modest batch spans several Chroma calls
    store.batch([PutOp(("u",), f"k{i:02d}", {"text": f"w{i}"}) for i in range(30)])
    assert [r.key for r in store.search(("u",), limit=100)] == [f"k{i:02d}" for i in range(30)]
    store.batch([PutOp(("u",), f"k{i:02d}", None) for i in range(30)])
    assert store.search(("u",), limit=100) == []
    assert store._vectors is not None and store._vectors.count() == 0


# ---------------------------------------------------------------------------------------------
# Documented differences from InMemoryStore
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def both() -> Iterator[tuple[InMemoryStore, ChromaStore]]:
    yield InMemoryStore(index=index(["text"])), ChromaStore.ephemeral(index(["text"]))


def test_difference_update_keeps_created_at(both: tuple[InMemoryStore, ChromaStore]) -> None:
    memory, chroma = both
    for store in both:
        store.put(("u",), "a", {"text": "one"})
    first = {id(s): s.get(("u",), "a") for s in both}
    time.sleep(0.005)
    for store in both:
        store.put(("u",), "a", {"text": "two"})
    after = {id(s): s.get(("u",), "a") for s in both}
    m0, m1 = first[id(memory)], after[id(memory)]
    c0, c1 = first[id(chroma)], after[id(chroma)]
    assert m0 and m1 and c0 and c1
    assert m1.created_at > m0.created_at  # InMemoryStore: reset
    assert c1.created_at == c0.created_at and c1.updated_at > c0.updated_at  # ChromaStore: kept


def test_difference_put_replaces_vectors(both: tuple[InMemoryStore, ChromaStore]) -> None:
    memory, chroma = both
    for store in both:
        store.put(("u",), "a", {"text": "python"})
        store.put(("u",), "a", {"text": "tea"}, index=False)
    assert memory.search(("u",), query="python")[0].score is not None  # stale vector
    assert chroma.search(("u",), query="python")[0].score is None
    for store in both:
        store.put(("u",), "a", {"other": "no text field"})
    assert chroma.search(("u",), query="python")[0].score is None


def test_difference_empty_namespaces_are_not_listed(
    both: tuple[InMemoryStore, ChromaStore],
) -> None:
    memory, chroma = both
    for store in both:
        store.put(("kept",), "a", {"text": "x"})
        store.put(("gone",), "a", {"text": "x"})
        store.delete(("gone",), "a")
        store.get(("read-only",), "a")
    assert memory.list_namespaces() == [("gone",), ("kept",), ("read-only",)]
    assert chroma.list_namespaces() == [("kept",)]


def test_difference_order_across_namespaces(both: tuple[InMemoryStore, ChromaStore]) -> None:
    memory, chroma = both
    for store in both:
        store.put(("p", "a"), "1", {"text": "x"})
        store.put(("p", "b"), "2", {"text": "x"})
        store.put(("p", "a"), "3", {"text": "x"})
    assert [r.key for r in memory.search(("p",))] == ["1", "3", "2"]  # namespace by namespace
    assert [r.key for r in chroma.search(("p",))] == ["1", "2", "3"]  # creation order
    assert [r.key for r in chroma.search(("p", "a"))] == [r.key for r in memory.search(("p", "a"))]


def test_difference_offset_runs_through_unscored_items(
    both: tuple[InMemoryStore, ChromaStore],
) -> None:
    memory, chroma = both
    for store in both:
        store.put(("u",), "scored", {"text": "python"})
        store.put(("u",), "u1", {"text": "python"}, index=False)
        store.put(("u",), "u2", {"text": "python"}, index=False)
    pages = {
        name: [
            [r.key for r in s.search(("u",), query="python", limit=1, offset=o)] for o in range(4)
        ]
        for name, s in (("memory", memory), ("chroma", chroma))
    }
    assert pages["memory"] == [["scored"], ["u1"], ["u1"], ["u1"]]
    assert pages["chroma"] == [["scored"], ["u1"], ["u2"], []]


def test_difference_comparison_on_missing_field(
    both: tuple[InMemoryStore, ChromaStore],
) -> None:
    memory, chroma = both
    for store in both:
        store.put(("u",), "with", {"n": 5})
        store.put(("u",), "without", {"m": 5})
        store.put(("u",), "text", {"n": "five"})
    with pytest.raises(TypeError):
        memory.search(("u",), filter={"n": {"$gt": 1}})
    assert [r.key for r in chroma.search(("u",), filter={"n": {"$gt": 1}})] == ["with"]


def test_difference_whole_value_path_in_put(both: tuple[InMemoryStore, ChromaStore]) -> None:
    memory, chroma = both
    for store in both:
        store.put(("u",), "a", {"body": "python"}, index=["$"])
    assert memory.search(("u",), query="python")[0].score is None
    assert chroma.search(("u",), query="python")[0].score is not None


def test_difference_values_are_json(both: tuple[InMemoryStore, ChromaStore]) -> None:
    memory, chroma = both
    for store in both:
        store.put(("u",), "a", {"pair": (1, 2)})
    assert memory.get(("u",), "a").value == {"pair": (1, 2)}  # type: ignore[union-attr]
    assert chroma.get(("u",), "a").value == {"pair": [1, 2]}  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        chroma.put(("u",), "b", {"when": object()})
    assert chroma.get(("u",), "b") is None


def test_difference_batch_may_embed_one_text_twice(
    both: tuple[InMemoryStore, ChromaStore],
) -> None:
    memory, chroma = both
    ops = [PutOp(("u",), "a", {"text": "same"}), PutOp(("u",), "b", {"text": "same"})]
    with pytest.raises(ValueError, match="Number of embeddings"):
        memory.batch(ops)
    chroma.batch(ops)
    assert [r.key for r in chroma.search(("u",), query="same")] == ["a", "b"]


@pytest.mark.parametrize("exact_search_limit", [10_000, 0], ids=["exact", "hnsw"])
def test_many_vectors_and_a_selective_filter(
    exact_search_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact scoring equals InMemoryStore, tied scores included (one namespace, so one order).

    Through HNSW, Chroma is asked for more vectors, round after round, until enough candidates
    pass the filter; the scores of what it returns are still exact.
    """
    memory = InMemoryStore(index=index(FIELDS))
    chroma = ChromaStore.ephemeral(index(FIELDS), exact_search_limit=exact_search_limit)
    ops = [
        PutOp(
            ("many",),
            f"k{i:03d}",
            {
                "text": (f"tea w{i}" if i % 30 == 0 else f"python w{i} ") + "guide " * (i % 7),
                "tags": [f"t{i}", "python"],
                "n": i,
                "rare": i % 30 == 0,
            },
        )
        for i in range(150)
    ]
    for op in ops:  # one at a time: InMemoryStore fails a batch that repeats a text
        memory.batch([op])
    chroma.batch(ops)
    assert chroma._vectors is not None
    rounds: list[int] = []
    query = chroma._vectors.query

    def counted(**kw: Any) -> Any:
        rounds.append(kw["n_results"])
        return query(**kw)

    monkeypatch.setattr(chroma._vectors, "query", counted)
    cases: list[dict[str, Any]] = [
        {"filter": {"rare": True}, "limit": 3},
        {"filter": {"rare": True}, "limit": 2, "offset": 2},
        {"filter": {"n": {"$gte": 140}}, "limit": 4, "offset": 5},
        {"filter": {"n": {"$lt": 200}}, "limit": 5, "offset": 60},
        {"filter": None, "limit": 10},
    ]
    for kw in cases:
        rounds.clear()
        want = memory.search(("many",), query="python guide", **kw)
        got = chroma.search(("many",), query="python guide", **kw)
        if exact_search_limit or kw["filter"] == {"rare": True}:
            # Rare items rank last: HNSW rounds run out and every vector is scored.
            assert_same(want, got, str(kw))
            assert len(rounds) == (2 if not exact_search_limit else 0)
            continue
        exact = {
            r.key: r.score
            for r in memory.search(("many",), query="python guide", filter=kw["filter"], limit=999)
        }
        scores = [r.score for r in got]
        assert len(got) == len(want)
        assert all(a >= b - 1e-6 for a, b in zip(scores, scores[1:], strict=False))  # type: ignore[operator]
        assert all(r.score == pytest.approx(exact[r.key], abs=1e-6) for r in got)


def test_vectors_of_another_write_are_ignored() -> None:
    """A vector counts only while its item still holds the value it was computed from."""
    store = ChromaStore.ephemeral(index(["text"]))
    store.put(("u",), "a", {"text": "python"})
    assert store.search(("u",), query="python")[0].score is not None
    item_id = next(iter(store._items.get(include=[])["ids"]))
    store._items.update(ids=[item_id], metadatas=[{"rev": "a-different-write"}])
    [result] = store.search(("u",), query="python")
    assert (result.key, result.score) == ("a", None)
