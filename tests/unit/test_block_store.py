"""ChromaBlockStore behaviour, run against ephemeral, persistent and server-backed Chroma."""

from __future__ import annotations

from pathlib import Path

import pytest

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import (
    BlockLimitExceeded,
    BlockNotFound,
    ConfigurationError,
    ReadOnlyBlock,
    SleeptimeError,
    VersionConflict,
)
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.chroma import insert_if_absent

NS = ("user-1",)


def human(value: str = "Name: Ada", *, read_only: bool = False) -> MemoryBlock:
    return MemoryBlock(
        label="human", value=value, limit=100, description="about the user", read_only=read_only
    )


def test_create_then_update_bumps_version(block_store: ChromaBlockStore) -> None:
    v1 = block_store.put_block(NS, human(), expected_version=0)
    assert (v1.version, v1.author) == (1, "user")
    assert v1.updated_at is not None
    v2 = block_store.put_block(
        NS, human("Name: Ada Lovelace"), expected_version=1, author="sleeptime"
    )
    assert (v2.version, v2.author) == (2, "sleeptime")
    got = block_store.get_block(NS, "human")
    assert got is not None and got.value == "Name: Ada Lovelace" and got.version == 2
    assert got.description == "about the user" and got.limit == 100


def test_create_twice_is_a_conflict(block_store: ChromaBlockStore) -> None:
    block_store.put_block(NS, human(), expected_version=0)
    with pytest.raises(VersionConflict) as err:
        block_store.put_block(NS, human("other"), expected_version=0)
    assert (err.value.expected, err.value.current) == (0, 1)
    assert block_store.get_block(NS, "human").value == "Name: Ada"  # type: ignore[union-attr]


def test_stale_version_conflicts_and_changes_nothing(block_store: ChromaBlockStore) -> None:
    block_store.put_block(NS, human(), expected_version=0)
    block_store.put_block(NS, human("B"), expected_version=1)
    with pytest.raises(VersionConflict):
        block_store.put_block(NS, human("C"), expected_version=1)
    assert [b.value for b in block_store.history(NS, "human")] == ["Name: Ada", "B"]


def test_limit_is_enforced_and_changes_nothing(block_store: ChromaBlockStore) -> None:
    block_store.put_block(NS, human(), expected_version=0)
    with pytest.raises(BlockLimitExceeded) as err:
        block_store.put_block(NS, human("x" * 101), expected_version=1)
    assert err.value.length == 101 and err.value.limit == 100
    assert block_store.get_block(NS, "human").version == 1  # type: ignore[union-attr]
    with pytest.raises(BlockLimitExceeded):
        block_store.put_block(NS, MemoryBlock(label="new", value="xy", limit=1), expected_version=0)
    assert block_store.get_block(NS, "new") is None


@pytest.mark.parametrize("author", ["primary", "sleeptime"])
def test_agents_cannot_write_read_only(block_store: ChromaBlockStore, author: str) -> None:
    block_store.put_block(NS, human(read_only=True), expected_version=0)
    with pytest.raises(ReadOnlyBlock):
        block_store.put_block(
            NS, human("hacked", read_only=False), expected_version=1, author=author
        )
    assert block_store.get_block(NS, "human").value == "Name: Ada"  # type: ignore[union-attr]
    # The user (or a Letta sync) may still change it.
    assert block_store.put_block(NS, human("ok", read_only=True), expected_version=1).version == 2


def test_errors_share_one_base(block_store: ChromaBlockStore) -> None:
    for cls in (VersionConflict, BlockLimitExceeded, ReadOnlyBlock, BlockNotFound):
        assert issubclass(cls, SleeptimeError)


def test_history_rollback_and_diff(block_store: ChromaBlockStore) -> None:
    for i, value in enumerate(["Lives in Berlin", "Lives in Lisbon", "Lives in Porto"]):
        block_store.put_block(NS, human(value), expected_version=i)
    back = block_store.rollback(NS, "human", 1)
    assert back.version == 4 and back.value == "Lives in Berlin"
    hist = block_store.history(NS, "human")
    assert [b.version for b in hist] == [1, 2, 3, 4]
    assert [b.value for b in hist] == [
        "Lives in Berlin",
        "Lives in Lisbon",
        "Lives in Porto",
        "Lives in Berlin",
    ]
    diff = block_store.diff(NS, "human", 1, 2)
    assert "-Lives in Berlin" in diff and "+Lives in Lisbon" in diff
    with pytest.raises(BlockNotFound):
        block_store.get_version(NS, "human", 9)


def test_rollback_respects_read_only_for_agents(block_store: ChromaBlockStore) -> None:
    block_store.put_block(NS, human("a", read_only=True), expected_version=0)
    block_store.put_block(NS, human("b", read_only=True), expected_version=1)
    with pytest.raises(ReadOnlyBlock):
        block_store.rollback(NS, "human", 1, author="sleeptime")


def test_delete_keeps_history_and_allows_recreate(block_store: ChromaBlockStore) -> None:
    block_store.put_block(NS, human(), expected_version=0)
    assert block_store.delete_block(NS, "human", expected_version=1) == 2
    assert block_store.get_block(NS, "human") is None
    assert block_store.list_blocks(NS) == []
    assert len(block_store.history(NS, "human")) == 2
    again = block_store.put_block(NS, human("new"), expected_version=2)
    assert again.version == 3 and block_store.get_block(NS, "human").value == "new"  # type: ignore[union-attr]


def test_list_blocks_sorted_and_isolated(block_store: ChromaBlockStore) -> None:
    block_store.put_block(NS, MemoryBlock(label="persona", value="helpful"), expected_version=0)
    block_store.put_block(NS, human(), expected_version=0)
    block_store.put_block(NS, human("v2"), expected_version=1)
    block_store.put_block(("user-2",), human("someone else"), expected_version=0)
    blocks = block_store.list_blocks(NS)
    assert [(b.label, b.version) for b in blocks] == [("human", 2), ("persona", 1)]
    assert [b.value for b in block_store.list_blocks(("user-2",))] == ["someone else"]


def test_metadata_and_fields_round_trip(block_store: ChromaBlockStore) -> None:
    block = MemoryBlock(
        label="notes",
        value="line1\nline2 ünïcödé",
        limit=50,
        description=None,
        read_only=True,
        metadata={"source": "letta", "n": 3, "nested": {"a": [1, 2]}},
    )
    stored = block_store.put_block(NS, block, expected_version=0)
    got = block_store.get_block(NS, "notes")
    assert got == stored
    assert got is not None and got.metadata == {"source": "letta", "n": 3, "nested": {"a": [1, 2]}}
    assert got.description is None and got.read_only is True


def test_notes_search_is_semantic_and_isolated(block_store: ChromaBlockStore) -> None:
    block_store.add_note(NS, "The user goes hiking in the Alps every summer", {"turn": 3})
    block_store.add_note(NS, "The user's favourite dish is sushi")
    block_store.add_note(("user-2",), "user-2 climbs mountains")
    hits = block_store.search_notes(NS, "mountain walks", k=5)
    assert [h.text for h in hits][0].startswith("The user goes hiking")
    assert all("user-2" not in h.text for h in hits)
    assert hits[0].metadata == {"turn": 3}
    assert hits[0].score > hits[-1].score
    assert len(block_store.list_notes(NS)) == 2


def test_bad_namespace_is_a_configuration_error(block_store: ChromaBlockStore) -> None:
    for bad in [(), ("",), "user-1", ("a", 1)]:
        with pytest.raises(ConfigurationError):
            block_store.get_block(bad, "human")  # type: ignore[arg-type]


async def test_async_twins(block_store: ChromaBlockStore) -> None:
    v1 = await block_store.aput_block(NS, human(), expected_version=0)
    v2 = await block_store.aput_block(NS, human("B"), expected_version=v1.version)
    with pytest.raises(VersionConflict):
        await block_store.aput_block(NS, human("C"), expected_version=1)
    assert (await block_store.aget_block(NS, "human")) == v2
    assert [b.version for b in await block_store.ahistory(NS, "human")] == [1, 2]
    assert (await block_store.arollback(NS, "human", 1)).value == "Name: Ada"
    assert "+B" in await block_store.adiff(NS, "human", 1, 2)
    await block_store.aadd_note(NS, "likes tea")
    assert (await block_store.asearch_notes(NS, "tea", 1))[0].text == "likes tea"
    assert [b.label for b in await block_store.alist_blocks(NS)] == ["human"]


def test_insert_if_absent_lets_one_writer_win(block_store: ChromaBlockStore) -> None:
    """The CAS primitive of the block store and the transcript: a taken id is never overwritten."""
    col = block_store.collection("cas-probe")
    assert insert_if_absent(col, "r-1", "first", {"n": 1})
    assert not insert_if_absent(col, "r-1", "second", {"n": 2})
    got = col.get(ids=["r-1"], include=["documents", "metadatas"])
    assert got["documents"] == ["first"]
    assert got["metadatas"][0]["n"] == 1


def test_ephemeral_stores_are_apart_unless_given_one_prefix() -> None:
    one, two = ChromaBlockStore.ephemeral(), ChromaBlockStore.ephemeral()
    one.put_block(NS, human(), expected_version=0)
    assert two.get_block(NS, "human") is None
    shared = ChromaBlockStore.ephemeral(prefix=one.prefix)
    assert shared.get_block(NS, "human") == one.get_block(NS, "human")


def test_from_url_takes_a_directory(tmp_path: Path) -> None:
    store = ChromaBlockStore.from_url(str(tmp_path / "db"), timeout=1.0)
    assert store.describe == f"persistent store at {tmp_path / 'db'}"
    store.put_block(NS, human(), expected_version=0)
    assert ChromaBlockStore.persistent(tmp_path / "db").get_block(NS, "human") is not None
