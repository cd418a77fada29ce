"""Namespace fuzz: no read, history, list, note search or transcript read crosses namespaces.

Hypothesis draws namespaces from hostile ids (quotes, slashes, separators, JSON look-alikes,
Chroma operators, unicode, NUL, very long) and writes a unique token for each into one shared
store, so every example also runs against the data of all earlier ones. Every read must return
exactly what was written under its own namespace. The same is checked for ChromaStore, the
LangGraph BaseStore on Chroma, whose search and list_namespaces take namespace *prefixes*.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleeptime_agent.blocks import MemoryBlock, namespace_from_config
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.langgraph_store import ChromaStore, offline_index
from sleeptime_agent.storage.transcript import Transcript, system_namespace
from sleeptime_agent.testing import TRICKY_NAMESPACE_PARTS

RESERVED = system_namespace(("x",))[-1]  # the bookkeeping marker component ("\x00sleeptime")

TRICKY = TRICKY_NAMESPACE_PARTS

component = st.one_of(
    st.sampled_from(TRICKY),
    st.text(min_size=1, max_size=24).filter(lambda s: s != RESERVED),
    st.text(alphabet="ab/\\\"'.:\x00 ", min_size=1, max_size=6),
)
namespace_st = st.lists(component, min_size=1, max_size=3).map(tuple)
FUZZ = settings(
    max_examples=35,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Registry:
    """Everything written, by namespace: the oracle every read is compared with."""

    def __init__(self) -> None:
        self.values: dict[Namespace, list[str]] = defaultdict(list)
        self.notes: dict[Namespace, list[str]] = defaultdict(list)
        self.messages: dict[Namespace, list[str]] = defaultdict(list)


@pytest.fixture(scope="module")
def block_world() -> tuple[ChromaBlockStore, Transcript, Registry]:
    store = ChromaBlockStore.ephemeral()
    return store, Transcript(store), Registry()


@given(namespaces=st.lists(namespace_st, min_size=2, max_size=4, unique=True))
@FUZZ
def test_block_store_and_transcript_never_leak(
    block_world: tuple[ChromaBlockStore, Transcript, Registry], namespaces: list[Namespace]
) -> None:
    store, transcript, seen = block_world
    for ns in namespaces:
        token = uuid.uuid4().hex[:12]
        current = store.get_block(ns, "human")
        version = current.version if current else 0
        store.put_block(
            ns, MemoryBlock(label="human", value=f"secret {token}"), expected_version=version
        )
        seen.values[ns].append(f"secret {token}")
        note = f"note {token} about hiking in the mountains"
        store.add_note(ns, note)
        seen.notes[ns].append(note)
        message = f"message {token}"
        transcript.append(ns, "thread", "user", message)
        seen.messages[ns].append(message)
    for ns in namespaces:
        block = store.get_block(ns, "human")
        assert block is not None and block.value == seen.values[ns][-1]
        assert [(b.label, b.value) for b in store.list_blocks(ns)] == [
            ("human", seen.values[ns][-1])
        ]
        history = store.history(ns, "human")
        assert [b.value for b in history] == seen.values[ns]
        assert [b.version for b in history] == list(range(1, len(history) + 1))
        assert store.get_version(ns, "human", 1).value == seen.values[ns][0]
        assert sorted(n.text for n in store.list_notes(ns)) == sorted(seen.notes[ns])
        found = [n.text for n in store.search_notes(ns, "hiking mountains", k=50)]
        assert sorted(found) == sorted(seen.notes[ns])
        assert [m.content for m in transcript.since(ns, 0)] == seen.messages[ns]
        assert transcript.last_seq(ns) == len(seen.messages[ns])


@pytest.mark.parametrize("bad", [(), ("",), ("a", ""), ["a"], ("a", 1)])
def test_malformed_namespaces_are_refused_not_widened(bad: object) -> None:
    store = ChromaBlockStore.ephemeral()
    store.put_block(("a",), MemoryBlock(label="human", value="secret"), expected_version=0)
    for read in (store.list_blocks, store.list_notes):
        with pytest.raises(ConfigurationError):
            read(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Transcript(store).since(bad, 0)  # type: ignore[arg-type]


def test_bookkeeping_namespace_cannot_be_named_from_a_run_config() -> None:
    """The cursor and lease live in ``(*namespace, "\\x00sleeptime")``: ids with NUL are refused.

    Otherwise ``agent_id="\\x00sleeptime"`` would address user x's bookkeeping and could move
    x's cursor past messages not consolidated yet (hiding them from x's primary).
    """
    for conf in (
        {"user_id": "x", "agent_id": RESERVED},
        {"user_id": "x\x00"},
        {"user_id": "x", "agent_id": "a\x00b"},
    ):
        with pytest.raises(ConfigurationError):
            namespace_from_config({"configurable": conf})
    assert namespace_from_config({"configurable": {"user_id": "x", "agent_id": "a/b"}}) == (
        "x",
        "a/b",
    )


# -- ChromaStore (LangGraph BaseStore) ---------------------------------------------------------

# BaseStore itself refuses labels with "." or NUL, empty labels and a "langgraph" root.
lg_component = st.one_of(
    st.sampled_from([t for t in TRICKY if "." not in t and "\x00" not in t]),
    st.text(min_size=1, max_size=24).filter(lambda s: "." not in s and "\x00" not in s),
).filter(lambda s: s != "langgraph")
lg_namespace = st.lists(lg_component, min_size=1, max_size=3).map(tuple)


@pytest.fixture(scope="module")
def lg_world() -> tuple[ChromaStore, dict[tuple[Namespace, str], str]]:
    return ChromaStore.ephemeral(index=offline_index(["text"])), {}


@given(namespaces=st.lists(lg_namespace, min_size=2, max_size=4, unique=True))
@FUZZ
def test_chroma_store_never_leaks(
    lg_world: tuple[ChromaStore, dict[tuple[Namespace, str], str]], namespaces: list[Namespace]
) -> None:
    store, written = lg_world
    for ns in namespaces:
        token = uuid.uuid4().hex[:12]
        key = f"k-{token[:4]}"
        store.put(ns, key, {"owner": list(ns), "text": f"hiking note {token}"})
        written[(ns, key)] = token
    for ns in namespaces:
        own = {k: t for (n, k), t in written.items() if n == ns}
        for key, token in own.items():
            item = store.get(ns, key)
            assert item is not None and item.value["text"].endswith(token)
            assert tuple(item.value["owner"]) == ns
        # search takes a prefix: everything returned lives under it and is what was put there.
        for query in (None, "hiking note"):
            hits = store.search(ns, query=query, limit=500)
            for hit in hits:
                assert hit.namespace[: len(ns)] == ns
                assert tuple(hit.value["owner"]) == hit.namespace
                assert written[(hit.namespace, hit.key)] in hit.value["text"]
            assert {h.key for h in hits if h.namespace == ns} == set(own)
        # list_namespaces: "*" is LangGraph's wildcard, so only literal prefixes are checked.
        if "*" not in ns:
            listed = store.list_namespaces(prefix=ns, limit=1000)
            assert ns in listed
            assert all(n[: len(ns)] == ns for n in listed)
