"""The Letta bridge against a real Letta server (letta 0.11.7, started by the fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from letta_client import Letta

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import ConfigurationError, MemoryUnavailable
from sleeptime_agent.letta import LettaBridge, SyncReport, format_report, make_letta_client
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.transcript import TranscriptMessage

pytestmark = pytest.mark.letta
AgentFactory = Callable[..., str]  # the `make_agent` fixture (conftest.py)

NS = ("app", "user-1")
FIELDS = ("value", "limit", "description", "read_only", "metadata")

HUMAN = {
    "label": "human",
    "value": "Name: Ada\nLikes: tea",
    "limit": 300,
    "description": "What we know about the user.",
    "metadata": {"source": "onboarding", "tags": ["a", "b"], "n": 3, "nested": {"ok": True}},
}
PERSONA = {
    "label": "persona",
    "value": "I am a careful assistant.",
    "limit": 200,
    "description": "Who the agent is.",
    "read_only": True,
    "metadata": {"owner": "ops"},
}
NOTES = {"label": "notes", "value": "", "limit": 1000}  # no description, empty value and metadata


@pytest.fixture
def bridge(store: ChromaBlockStore, letta: Letta) -> LettaBridge:
    return LettaBridge(store, letta, namespace=NS)


def letta_fields(letta: Letta, agent_id: str) -> dict[str, dict[str, Any]]:
    """Every synced field of every block of an agent, as Letta reports them."""
    return {
        str(b.label): {
            "value": b.value,
            "limit": b.limit,
            "description": b.description or None,
            "read_only": bool(b.read_only),
            "metadata": dict(b.metadata or {}),
        }
        for b in letta.agents.blocks.list(agent_id, limit=1000).items
    }


def our_fields(store: ChromaBlockStore, ns: Namespace) -> dict[str, dict[str, Any]]:
    return {b.label: {f: getattr(b, f) for f in FIELDS} for b in store.list_blocks(ns)}


def edit(store: ChromaBlockStore, label: str, author: str = "user", **changes: Any) -> MemoryBlock:
    block = store.get_block(NS, label)
    assert block is not None
    return store.put_block(
        NS, block.model_copy(update=changes), expected_version=block.version, author=author
    )


def labels(changes: list[Any]) -> list[str]:
    return sorted(c.label for c in changes)


def test_pull_imports_every_field(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN, PERSONA, NOTES])
    report = bridge.pull(agent)
    assert labels(report.pulled) == ["human", "notes", "persona"]
    assert all(c.created and c.letta_block_id for c in report.pulled)
    assert report.ok and not report.pushed and not report.skipped
    assert our_fields(store, NS) == letta_fields(letta, agent)
    human = store.get_block(NS, "human")
    assert human is not None and human.author == "letta" and human.version == 1
    # A second pull has nothing to do and writes no version.
    again = bridge.pull(agent)
    assert again.unchanged == ["human", "notes", "persona"] and not again.pulled
    assert [b.version for b in store.history(NS, "human")] == [1]


def test_round_trip_of_every_field_to_a_new_agent(
    store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    source = make_agent([HUMAN, PERSONA, NOTES])
    LettaBridge(store, letta, namespace=NS).pull(source)

    target = make_agent([])
    pushed = LettaBridge(store, letta, namespace=NS).push(target)
    assert labels(pushed.pushed) == ["human", "notes", "persona"]
    assert all(c.created for c in pushed.pushed)  # the read_only persona is created, not updated
    assert pushed.ok, format_report(pushed)
    assert letta_fields(letta, target) == letta_fields(letta, source)

    # ... and back into a fresh namespace: nothing lost on the way.
    other = ("app", "copy")
    LettaBridge(store, letta, namespace=other).pull(target)
    assert our_fields(store, other) == our_fields(store, NS)
    for agent in (source, target):
        status = LettaBridge(store, letta, namespace=NS).status(agent)
        assert status.unchanged == ["human", "notes", "persona"], format_report(status)


def test_local_edits_are_pushed(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN, NOTES])
    bridge.pull(agent)
    edit(store, "human", value="Name: Ada Lovelace", description=None, metadata={"v": 2})
    edit(store, "notes", author="sleeptime", value="met on Monday", limit=500)
    store.put_block(NS, MemoryBlock(label="todo", value="call back", limit=77), expected_version=0)

    status = bridge.status(agent)
    assert status.dry_run and labels(status.pushed) == ["human", "notes", "todo"]
    assert letta_fields(letta, agent)["human"]["value"] == HUMAN["value"]  # dry run wrote nothing

    report = bridge.push(agent)
    assert report.ok and labels(report.pushed) == ["human", "notes", "todo"]
    by_label = {c.label: c for c in report.pushed}
    assert by_label["human"].fields == ["value", "description", "metadata"]
    assert by_label["todo"].created
    theirs = letta_fields(letta, agent)
    assert theirs == our_fields(store, NS)
    assert theirs["human"]["description"] is None  # a description can be cleared
    assert bridge.status(agent).unchanged == ["human", "notes", "todo"]


def test_letta_edits_are_pulled_as_new_versions(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN])
    bridge.pull(agent)
    letta.agents.blocks.update("human", agent_id=agent, value="Name: Ada\nLikes: coffee", limit=400)

    push = bridge.push(agent)  # push must not undo Letta's change
    assert not push.pushed and [i.label for i in push.skipped] == ["human"]
    assert "pull takes it" in push.skipped[0].reason

    report = bridge.pull(agent)
    assert [(c.label, c.fields) for c in report.pulled] == [("human", ["value", "limit"])]
    history = store.history(NS, "human")
    assert [(b.version, b.author) for b in history] == [(1, "letta"), (2, "letta")]
    assert history[-1].value.endswith("coffee") and history[-1].limit == 400


def test_each_side_changing_other_fields_merges(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN])
    bridge.pull(agent)
    letta.agents.blocks.update("human", agent_id=agent, description="Edited in Letta")
    edit(store, "human", value="Name: Ada (edited here)")
    pulled = bridge.pull(agent)
    assert [(c.label, c.fields) for c in pulled.pulled] == [("human", ["description"])]
    assert "changed here (value)" in pulled.skipped[0].reason
    pushed = bridge.push(agent)
    assert [(c.label, c.fields) for c in pushed.pushed] == [("human", ["value"])]
    assert letta_fields(letta, agent) == our_fields(store, NS)


def test_conflict_overwrites_neither_side(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN])
    bridge.pull(agent)
    letta.agents.blocks.update("human", agent_id=agent, value="Name: Ada B (Letta)")
    edit(store, "human", value="Name: Ada C (ours)")

    for report in (bridge.push(agent), bridge.pull(agent), bridge.status(agent)):
        assert not report.pulled and not report.pushed
        [conflict] = report.conflicts
        assert conflict.label == "human" and conflict.fields == ["value"]
        assert conflict.ours.value == "Name: Ada C (ours)"
        assert conflict.theirs.value == "Name: Ada B (Letta)"
        dumped = report.model_dump(mode="json")["conflicts"][0]
        assert (dumped["ours"]["value"], dumped["theirs"]["value"]) == (
            "Name: Ada C (ours)",
            "Name: Ada B (Letta)",
        )
    assert letta_fields(letta, agent)["human"]["value"] == "Name: Ada B (Letta)"
    ours = store.get_block(NS, "human")
    assert ours is not None and ours.value == "Name: Ada C (ours)" and ours.version == 2
    text = format_report(bridge.status(agent))
    assert "conflict human" in text and "Ada C (ours)" in text and "Ada B (Letta)" in text

    resolved = bridge.resolve(agent, "human", keep="ours")
    assert [c.label for c in resolved.pushed] == ["human"] and not resolved.conflicts
    assert letta_fields(letta, agent)["human"]["value"] == "Name: Ada C (ours)"
    assert bridge.status(agent).unchanged == ["human"]


def test_same_change_on_both_sides_is_no_conflict(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN])
    bridge.pull(agent)
    letta.agents.blocks.update("human", agent_id=agent, value="same")
    edit(store, "human", value="same")
    assert bridge.status(agent).unchanged == ["human"]


def test_read_only_blocks_are_never_written_by_push(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([PERSONA, HUMAN])
    bridge.pull(agent)
    # A user may edit our copy (only agent authors are barred), but push must not send it:
    edit(store, "persona", value="I am a reckless assistant.")
    # ... nor a block that is read_only on our side only.
    edit(store, "human", value="Name: Ada (ours)", read_only=True)

    report = bridge.push(agent)
    assert not report.pushed
    reasons = {i.label: i.reason for i in report.refused}
    assert reasons["persona"].startswith("read_only in Letta")
    assert reasons["human"].startswith("read_only here")
    theirs = letta_fields(letta, agent)
    assert theirs["persona"]["value"] == PERSONA["value"]
    assert theirs["human"]["value"] == HUMAN["value"] and not theirs["human"]["read_only"]
    # Letta itself would have accepted the write: the refusal is ours.
    letta.agents.blocks.update("persona", agent_id=agent, value="written over REST")
    assert letta_fields(letta, agent)["persona"]["value"] == "written over REST"


def test_over_limit_writes_are_refused_locally(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([{**HUMAN, "value": "short", "limit": 50}])
    bridge.pull(agent)
    letta.agents.blocks.update("human", agent_id=agent, limit=20)  # Letta shrinks the limit
    edit(store, "human", value="x" * 40)  # we grow the value within our limit of 50

    push = bridge.push(agent)
    [refused] = push.refused
    assert refused.label == "human" and "40 characters, over the limit of 20 in Letta" in (
        refused.reason
    )
    assert letta_fields(letta, agent)["human"]["value"] == "short"

    pull = bridge.pull(agent)
    assert [i.label for i in pull.refused] == ["human"] and "over the limit of 20 here" in (
        pull.refused[0].reason
    )
    ours = store.get_block(NS, "human")
    assert ours is not None and (ours.value, ours.limit) == ("x" * 40, 50)


def test_consolidate_runs_sleeptime_on_the_transcript_then_pushes(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent(
        [HUMAN, PERSONA],
        messages=[
            {"role": "user", "content": "By the way, I moved to Lisbon."},
            {"role": "assistant", "content": "Noted, Lisbon it is."},
        ],
    )
    seen: list[list[TranscriptMessage]] = []

    def run_sleeptime(namespace: Namespace, transcript: list[TranscriptMessage]) -> None:
        seen.append(transcript)
        human = store.get_block(namespace, "human")
        assert human is not None and human.author == "letta"  # pulled before we run
        facts = [m.content for m in transcript if m.role == "user" and "Lisbon" in m.content]
        if facts:
            store.put_block(
                namespace,
                human.model_copy(update={"value": human.value + "\nLives in: Lisbon"}),
                expected_version=human.version,
                author="sleeptime",
            )

    report = bridge.consolidate(agent, run_sleeptime)
    [transcript] = seen
    assert [(m.role, m.content) for m in transcript] == [
        ("user", "By the way, I moved to Lisbon."),
        ("assistant", "Noted, Lisbon it is."),
    ]
    assert report.operation == "consolidate" and report.ok, format_report(report)
    assert labels(report.pulled) == ["human", "persona"]
    assert [(c.label, c.fields) for c in report.pushed] == [("human", ["value"])]
    assert letta_fields(letta, agent)["human"]["value"].endswith("Lives in: Lisbon")
    assert store.history(NS, "human")[-1].author == "sleeptime"


def test_consolidate_reports_a_letta_edit_made_meanwhile_as_a_conflict(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN])

    def run_sleeptime(namespace: Namespace, transcript: list[TranscriptMessage]) -> None:
        human = store.get_block(namespace, "human")
        assert human is not None
        store.put_block(
            namespace,
            human.model_copy(update={"value": "sleeptime's version"}),
            expected_version=human.version,
            author="sleeptime",
        )
        letta.agents.blocks.update("human", agent_id=agent, value="the user's live edit")

    report = bridge.consolidate(agent, run_sleeptime)
    assert [c.label for c in report.conflicts] == ["human"] and not report.pushed
    assert letta_fields(letta, agent)["human"]["value"] == "the user's live edit"


def test_async_twins(
    bridge: LettaBridge, store: ChromaBlockStore, letta: Letta, make_agent: AgentFactory
) -> None:
    agent = make_agent([HUMAN])
    calls: list[int] = []

    async def run_sleeptime(namespace: Namespace, transcript: list[TranscriptMessage]) -> None:
        calls.append(len(transcript))

    async def main() -> tuple[SyncReport, SyncReport]:
        return await bridge.astatus(agent), await bridge.aconsolidate(agent, run_sleeptime)

    status, consolidated = asyncio.run(main())
    assert labels(status.pulled) == ["human"] and calls == [0]
    assert labels(consolidated.pulled) == ["human"]


def test_sync_record_is_durable(tmp_path: Path, letta: Letta, make_agent: AgentFactory) -> None:
    agent = make_agent([HUMAN])
    LettaBridge(ChromaBlockStore.persistent(tmp_path / "db"), letta, namespace=NS).pull(agent)
    letta.agents.blocks.update("human", agent_id=agent, value="changed in Letta")
    # A new process (new store object on the same directory) still knows the last sync.
    fresh = LettaBridge(ChromaBlockStore.persistent(tmp_path / "db"), letta, namespace=NS)
    assert [c.label for c in fresh.status(agent).pulled] == ["human"]
    # The record lives outside the namespace: listing our blocks shows only real blocks.
    assert [b.label for b in fresh.store.list_blocks(NS)] == ["human"]


def test_errors_are_mapped(letta_server: str, store: ChromaBlockStore) -> None:
    bridge = LettaBridge.from_env(store, namespace=NS, base_url=letta_server)
    missing = "agent-00000000-0000-4000-8000-000000000000"
    with pytest.raises(ConfigurationError) as err:
        bridge.pull(missing)
    assert missing in str(err.value) and "not found" in str(err.value)
    assert "\n" not in str(err.value)

    dead = LettaBridge(store, make_letta_client("http://127.0.0.1:9", max_retries=0), namespace=NS)
    with pytest.raises(MemoryUnavailable) as down:
        dead.status(missing)
    assert "http://127.0.0.1:9" in str(down.value) and "\n" not in str(down.value)
