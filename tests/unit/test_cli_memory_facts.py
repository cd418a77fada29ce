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
