"""Memory editor and LangChain tools: each edit, each error path (memory unchanged), the rebase."""

from __future__ import annotations

import pytest
from langchain_core.runnables import RunnableConfig

from sleeptime_agent.blocks import MemoryBlock, namespace_from_config
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.tools import MemoryEditor, ToolError, create_memory_tools

NS = ("u1",)


@pytest.fixture
def store() -> ChromaBlockStore:
    s = ChromaBlockStore.ephemeral()
    s.put_block(
        NS,
        MemoryBlock(label="human", value="Name: Ada\nLives in Berlin", limit=60),
        expected_version=0,
    )
    s.put_block(
        NS, MemoryBlock(label="persona", value="I am helpful", read_only=True), expected_version=0
    )
    s.put_block(NS, MemoryBlock(label="dup", value="cat\ncat"), expected_version=0)
    return s


def value(store: ChromaBlockStore, label: str = "human") -> str:
    block = store.get_block(NS, label)
    assert block is not None
    return block.value


def editor(store: ChromaBlockStore) -> MemoryEditor:
    return MemoryEditor(store, NS, seen={b.label: b.version for b in store.list_blocks(NS)})


def test_replace_insert_rethink_happy_paths(store: ChromaBlockStore) -> None:
    ed = editor(store)
    ed.memory_replace("human", "Lives in Berlin", "Lives in Lisbon")
    assert value(store) == "Name: Ada\nLives in Lisbon"
    ed.memory_insert("human", "Likes tea")
    assert value(store) == "Name: Ada\nLives in Lisbon\nLikes tea"
    ed.memory_insert("human", "Age 36", insert_line=1)
    assert value(store).split("\n")[1] == "Age 36"
    ed.memory_rethink("human", "Ada, 36, lives in Lisbon, likes tea")
    assert value(store) == "Ada, 36, lives in Lisbon, likes tea"
    assert [e["tool"] for e in ed.edits] == [
        "memory_replace",
        "memory_insert",
        "memory_insert",
        "memory_rethink",
    ]
    hist = store.history(NS, "human")
    assert all(b.author == "sleeptime" for b in hist[1:])
    assert "Lives in Berlin" in hist[0].value  # the old fact is in history


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        (
            "memory_replace",
            {"label": "nope", "old_str": "a", "new_str": "b"},
            "unknown block label",
        ),
        (
            "memory_replace",
            {"label": "human", "old_str": "Paris", "new_str": "b"},
            "does not occur",
        ),
        ("memory_replace", {"label": "dup", "old_str": "cat", "new_str": "dog"}, "occurs 2 times"),
        ("memory_replace", {"label": "human", "old_str": "", "new_str": "x"}, "old_str is empty"),
        (
            "memory_replace",
            {"label": "human", "old_str": "Ada", "new_str": "A" * 80},
            "over its limit",
        ),
        (
            "memory_replace",
            {"label": "persona", "old_str": "helpful", "new_str": "evil"},
            "read_only",
        ),
        ("memory_insert", {"label": "human", "new_str": "x" * 80}, "over its limit"),
        ("memory_insert", {"label": "human", "new_str": "Lives in Berlin"}, "already contains"),
        ("memory_insert", {"label": "human", "new_str": "   "}, "empty"),
        ("memory_rethink", {"label": "human", "new_memory": ""}, "refusing to empty"),
        ("memory_rethink", {"label": "persona", "new_memory": "evil"}, "read_only"),
        ("memory_rethink", {"label": "human", "new_memory": "Name: Ada"}, "would drop"),
        ("memory_insert", {"label": "human"}, "invalid arguments"),
        ("memory_insert", {"label": ["x"], "new_str": "y"}, "invalid arguments"),
        ("delete_everything", {}, "unknown tool"),
        ("archival_memory_insert", {"content": " "}, "empty"),
    ],
)
def test_bad_calls_explain_and_change_nothing(
    store: ChromaBlockStore, tool: str, args: dict[str, object], needle: str
) -> None:
    before = {b.label: b.version for b in store.list_blocks(NS)}
    with pytest.raises(ToolError) as err:
        editor(store).call(tool, args)
    assert needle in str(err.value)
    assert {b.label: b.version for b in store.list_blocks(NS)} == before
    assert store.list_notes(NS) == []


def test_replace_rebases_on_a_concurrent_write(store: ChromaBlockStore) -> None:
    ed = editor(store)
    real_put = store.put_block
    raced = False

    def racing_put(ns, block, *, expected_version, author="user"):  # type: ignore[no-untyped-def]
        nonlocal raced
        if not raced:  # a user edit lands between the agent's read and its write
            raced = True
            cur = store.get_block(ns, block.label)
            assert cur is not None
            real_put(
                ns,
                cur.model_copy(update={"value": cur.value + "\nHas a dog"}),
                expected_version=cur.version,
                author="user",
            )
        return real_put(ns, block, expected_version=expected_version, author=author)

    store.put_block = racing_put  # type: ignore[method-assign]
    ed.memory_replace("human", "Lives in Berlin", "Lives in Lisbon")
    assert value(store) == "Name: Ada\nLives in Lisbon\nHas a dog"  # both writes survive
    assert [b.author for b in store.history(NS, "human")] == ["user", "user", "sleeptime"]


def test_rethink_refuses_to_overwrite_a_newer_version(store: ChromaBlockStore) -> None:
    ed = editor(store)
    cur = store.get_block(NS, "human")
    assert cur is not None
    store.put_block(
        NS,
        cur.model_copy(update={"value": cur.value + "\nHas a dog"}),
        expected_version=cur.version,
    )
    with pytest.raises(ToolError, match="changed since you read it"):
        ed.memory_rethink("human", "Name: Ada\nLives in Berlin\nLikes tea")
    assert value(store).endswith("Has a dog")
    # Having been shown the new value, the agent may rewrite from it.
    ed.memory_rethink("human", "Name: Ada\nLives in Berlin\nHas a dog\nLikes tea")
    assert value(store).endswith("Likes tea")


def test_rethink_may_not_drop_several_facts_even_if_declared(store: ChromaBlockStore) -> None:
    ed = editor(store)
    with pytest.raises(ToolError, match="drop 2 facts at once"):
        ed.memory_rethink("human", "Likes tea", removed="Name: Ada; Lives in Berlin")
    ed.memory_rethink("human", "Name: Ada\nLives in Lisbon", removed="Lives in Berlin (moved)")
    assert value(store) == "Name: Ada\nLives in Lisbon"


def test_rethink_creates_missing_block(store: ChromaBlockStore) -> None:
    editor(store).memory_rethink("anticipation", "Q: where does Ada live? A: Berlin")
    assert value(store, "anticipation").startswith("Q:")


def test_archival_insert_and_search(store: ChromaBlockStore) -> None:
    ed = editor(store)
    ed.archival_memory_insert("Ada's cat is called Lovelace")
    assert "Lovelace" in ed.archival_memory_search("pet name")


def test_finish_sets_flag(store: ChromaBlockStore) -> None:
    ed = editor(store)
    assert not ed.finished
    ed.call("memory_finish_edits", {})
    assert ed.finished


def test_langchain_tools_read_namespace_from_config(store: ChromaBlockStore) -> None:
    tools = {t.name: t for t in create_memory_tools(store)}
    assert set(tools) == {
        "memory_replace",
        "memory_insert",
        "memory_rethink",
        "memory_finish_edits",
        "archival_memory_insert",
        "archival_memory_search",
    }
    assert "store" not in str(tools["memory_insert"].args)  # the store is never model-visible
    cfg: RunnableConfig = {"configurable": {"user_id": "u1"}}
    out = tools["memory_insert"].invoke({"label": "human", "new_str": "Likes tea"}, cfg)
    assert "inserted" in out and value(store).endswith("Likes tea")
    err = tools["memory_insert"].invoke({"label": "nope", "new_str": "x"}, cfg)
    assert err.startswith("Error: unknown block label")
    with pytest.raises(ConfigurationError):
        tools["memory_insert"].invoke({"label": "human", "new_str": "y"}, {"configurable": {}})


async def test_langchain_tools_async(store: ChromaBlockStore) -> None:
    tools = {t.name: t for t in create_memory_tools(store)}
    cfg: RunnableConfig = {"configurable": {"user_id": "u1"}}
    out = await tools["memory_replace"].ainvoke(
        {"label": "human", "old_str": "Berlin", "new_str": "Lisbon"}, cfg
    )
    assert "replaced" in out and "Lisbon" in value(store)


def test_namespace_from_config_with_agent() -> None:
    assert namespace_from_config({"configurable": {"user_id": "u", "agent_id": "a"}}) == ("u", "a")
    assert namespace_from_config({"configurable": {"user_id": "u"}}) == ("u",)


def test_insert_refuses_a_restatement_of_an_existing_line(store: ChromaBlockStore) -> None:
    ed = editor(store)
    ed.memory_insert("dup", "Interested in marine biology and ecosystems")
    with pytest.raises(ToolError, match="already holds this"):
        ed.memory_insert("dup", "Interested in marine biology and ecosystems and animals")
    ed.memory_insert("dup", "Has a beagle called Bolt")  # a new fact still goes in
    assert value(store, "dup").endswith("ecosystems\nHas a beagle called Bolt")


def test_insert_past_the_end_appends(store: ChromaBlockStore) -> None:
    editor(store).memory_insert("human", "Likes tea", insert_line=9)
    assert value(store).endswith("\nLikes tea")


def test_editor_without_sources_accepts_anything(store: ChromaBlockStore) -> None:
    other = ("grounding",)
    store.put_block(other, MemoryBlock(label="human", value=""), expected_version=0)
    free = MemoryEditor(store, other)
    free.memory_insert("human", "Dog: Max")
    held = MemoryEditor(store, other, sources="my dog is called Bolt")
    with pytest.raises(ToolError, match="not in the conversation"):
        held.memory_replace("human", "Dog: Max", "Dog: Rex")
    held.memory_replace("human", "Dog: Max", "Dog: Bolt")
    assert store.get_block(other, "human").value == "Dog: Bolt"  # type: ignore[union-attr]


def test_replace_with_nothing_is_refused_while_guarded(store: ChromaBlockStore) -> None:
    other = ("deleting",)
    store.put_block(other, MemoryBlock(label="human", value="Dog: Bolt\n"), expected_version=0)
    with pytest.raises(ToolError, match="would delete a fact"):
        MemoryEditor(store, other).memory_replace("human", "Dog: Bolt", "")
    assert store.get_block(other, "human").value == "Dog: Bolt\n"  # type: ignore[union-attr]
    MemoryEditor(store, other).memory_replace("human", "\n", "")  # whitespace is not a fact
    MemoryEditor(store, other, guard=False).memory_replace("human", "Dog: Bolt", "")
    assert store.get_block(other, "human").value == ""  # type: ignore[union-attr]
