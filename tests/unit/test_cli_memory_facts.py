"""`sleeptime memory show` / `memory facts` and the chat's status lines (#14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeptime_agent.cli import main
from sleeptime_agent.cli.chat import _describe
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.facts import Fact, FactStore
from sleeptime_agent.storage.recall import RecallIndex, RecallRecord


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    store = ChromaBlockStore.persistent(path)
    FactStore(store).add(
        ("ada",), [Fact("Ada moved to Lisbon.", "the user", "2024-05-02T10:00:00", "t", (3,))]
    )
    RecallIndex(store).add(
        ("ada",),
        [RecallRecord(3, "[2 May 2024] the user: The user moved to Lisbon.", "u", "t", "")],
    )
    del store
    return path


def test_show_lists_dated_facts_and_recall(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["memory", "show", "--user", "ada", "--store", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert "2024-05-02  the user: Ada moved to Lisbon.  (messages 3)" in out
    assert "1 messages filed for recall" in out


def test_facts_json(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "facts", "--user", "ada", "--store", str(store_dir), "--json"]) == 0
    (fact,) = json.loads(capsys.readouterr().out)
    assert (fact["text"], fact["subject"], fact["sources"]) == (
        "Ada moved to Lisbon.",
        "the user",
        [3],
    )


def test_status_lines_say_what_happened_in_plain_words() -> None:
    record = RunRecord(run_id="r", namespace=("ada",), status="stalled")
    assert "stalled" not in _describe("end", record)
    assert _describe("end", record).startswith("[memory] memory update stopped early")
    ok = RunRecord(
        run_id="r",
        namespace=("ada",),
        status="ok",
        edits=[{"tool": "recall_index", "count": 2}, {"tool": "fact_insert", "count": 0}],
    )
    assert "memory updated: 2 messages filed, 0 facts" in _describe("end", ok)


def test_recall_shows_what_the_assistant_would_read_for_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`memory recall` runs the chat's read: consolidated messages by relevance, then the tail."""
    import asyncio

    from sleeptime_agent.memory import SleeptimeMemory
    from sleeptime_agent.testing import ScriptedChatModel

    path = tmp_path / "store"
    store = ChromaBlockStore.persistent(path)
    # The code-only pipeline never calls its model: a scripted one with no replies proves it.
    memory = SleeptimeMemory(store, ScriptedChatModel(), consolidation="pipeline")
    ns = ("tomasz",)
    # Recorded without notifying the scheduler, so no background run files the last message.
    for role, text in [
        ("user", "I repair vintage motorcycles in Gdansk."),
        ("assistant", "Nice!"),
        ("user", "My daughter Ola studies law."),
        ("assistant", "Great."),
    ]:
        memory.record(ns, "t", role, text)
    asyncio.run(memory.consolidate_now(ns))
    memory.record(ns, "t", "user", "I also keep bees.")  # not consolidated yet
    memory.scheduler.shutdown()
    del memory, store
    argv = ["memory", "recall", "What does Ola study?", "--user", "tomasz", "--store", str(path)]

    assert main([*argv, "--k", "1"]) == 0
    out = capsys.readouterr().out
    recalled = out.split("recalled messages (1, time order):\n")[1].split("\n")[0]
    assert "Ola studies law" in recalled
    assert "not yet consolidated, read as said (1):\n  user: I also keep bees." in out

    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any("Gdansk" in r["line"] for r in data["recalled"])
    assert data["unconsolidated"] == ["I also keep bees."]

    assert main(["memory", "recall", "x", "--user", "nobody", "--store", str(path)]) == 0
    assert "no memory yet for user 'nobody'" in capsys.readouterr().out
    assert ChromaBlockStore.persistent(path).list_blocks(("nobody",)) == []
