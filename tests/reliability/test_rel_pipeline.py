"""The consolidation pipeline under bad model output, bad dates and failing storage.

What must hold for every case: a model reply that is malformed, truncated, refused or names an
unknown subject never fails the run or loses a message (each message is still indexed for
recall, with its code-made rendering, and the failure is recorded); an unparseable session date
falls back to when the message was recorded; and when storage fails mid-batch the cursor stays
where it was, nothing written for the half-done batch is read, and the re-run indexes each
message once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from sleeptime_agent import ChromaBlockStore, MemoryBlock
from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.storage.recall import RecallIndex, recall_namespace
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call

NS = ("rel-pipeline",)
MESSAGES = [
    ("session", "--- Session 1, 1:56 pm on 8 May, 2023 ---"),
    ("Jon", "I lost my job as a banker yesterday."),
    ("Gina", "Sorry to hear that. I opened my clothing store last week."),
]


def _truncated() -> AIMessage:
    return AIMessage(
        content="",
        invalid_tool_calls=[
            {
                "name": "facts",
                "args": '{"facts": [{"about": "Jon", "fact": "Jon lost',
                "id": "t1",
                "error": "Unterminated string",
                "type": "invalid_tool_call",
            }
        ],
    )


def _raises(_: list[BaseMessage]) -> AIMessage:
    raise RuntimeError("model server went away")


BAD_REPLIES: dict[str, Any] = {
    "plain text": "Sure! Here are the facts: Jon lost his job.",
    "truncated json": _truncated(),
    "wrong types": tool_call("facts", facts="Jon lost his job"),
    "unknown subject": tool_call("facts", facts=[{"about": "Mallory", "fact": "Jon lost a job"}]),
    "invented fact": tool_call("facts", facts=[{"about": "Jon", "fact": "Ana moved to Porto"}]),
    "labels not strings": tool_call("labels", keywords=[1, None, {"x": 1}], entities="Jon"),
    "model raises": _raises,
}


def _store() -> ChromaBlockStore:
    return ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())


def _consolidator(store: ChromaBlockStore, reply: Any) -> PipelineConsolidator:
    blocks = [MemoryBlock(label="jon", value="", limit=500)]
    model = ScriptedChatModel(replies=[reply], repeat_last=True)
    return PipelineConsolidator(store, model, blocks=blocks, keywords=True, facts=True)


def _fill(con: PipelineConsolidator, messages: list[tuple[str, str]] = MESSAGES) -> None:
    for role, text in messages:
        con.transcript.append(NS, "t", role, text)


@pytest.mark.parametrize("case", sorted(BAD_REPLIES))
def test_bad_model_output_never_loses_a_message(case: str) -> None:
    store = _store()
    con = _consolidator(store, BAD_REPLIES[case])
    _fill(con)
    (record,) = asyncio.run(con.arun_until_caught_up(NS))
    assert record.status == "ok", record.reason
    assert con.transcript.cursor(NS).seq == 3
    assert [h.seq for h in con.recall.all(NS)] == [2, 3]
    assert con.fact_store.all(NS) == []
    assert record.failures, "every unusable reply is reported"
    block = store.get_block(NS, "jon")
    assert block is not None
    assert block.value == ""


def test_unparseable_session_date_falls_back_to_the_recorded_time() -> None:
    store = _store()
    con = _consolidator(store, tool_call("labels", keywords=[], entities=[]))
    _fill(con, [("session", "--- Session 1, sometime after the flood ---"), ("Jon", "Hi.")])
    asyncio.run(con.arun_until_caught_up(NS))
    (hit,) = con.recall.all(NS)
    recorded = con.transcript.since(NS, 0)[-1].created_at
    assert hit.date == recorded.isoformat()


def test_storage_failure_mid_batch_keeps_the_cursor_and_hides_the_half_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _store()
    fact = tool_call("facts", facts=[{"about": "Jon", "fact": "Jon lost Jon's job as a banker"}])
    con = PipelineConsolidator(
        store, ScriptedChatModel(replies=[fact], repeat_last=True), keywords=False, facts=True
    )
    _fill(con)
    real_add = RecallIndex.add

    def add_then_die(self: RecallIndex, namespace: Any, records: Any) -> list[str]:
        real_add(self, namespace, records)
        raise ConnectionError("Chroma died after the write")

    monkeypatch.setattr(RecallIndex, "add", add_then_die)
    (failed,) = asyncio.run(con.arun_until_caught_up(NS))
    assert failed.status == "error"
    assert con.transcript.cursor(NS).seq == 0
    assert con.recall.search(NS, "banker job", 5, max_seq=0) == []
    assert con.fact_store.search(NS, "banker job", 5, max_seq=0) == []

    monkeypatch.setattr(RecallIndex, "add", real_add)
    (again,) = asyncio.run(con.arun_until_caught_up(NS))
    assert again.status == "ok"
    assert con.transcript.cursor(NS).seq == 3
    assert [h.seq for h in con.recall.all(NS)] == [2, 3]


def test_cursor_never_passes_messages_left_for_the_next_run() -> None:
    store = _store()
    con = PipelineConsolidator(store, ScriptedChatModel(), keywords=False, max_transcript_chars=70)
    _fill(con)
    records = asyncio.run(con.arun_until_caught_up(NS))
    assert len(records) > 1, "the small batch size splits the backlog"
    indexed = {h.seq for h in con.recall.all(NS)}
    for record in records:
        assert set(range(2, record.cursor_after + 1)) <= indexed
    assert con.transcript.cursor(NS).seq == 3


def test_concurrent_pipeline_workers_index_each_message_once() -> None:
    """Two workers on one namespace: the lease lets one run at a time; none lost or doubled."""
    store = _store()
    first = PipelineConsolidator(store, ScriptedChatModel(), max_transcript_chars=70)
    second = PipelineConsolidator(store, ScriptedChatModel(), max_transcript_chars=70)
    _fill(first)

    async def both() -> None:
        await asyncio.gather(first.arun_until_caught_up(NS), second.arun_until_caught_up(NS))
        # Whoever was skipped by the lease catches up afterwards.
        await second.arun_until_caught_up(NS)

    asyncio.run(both())
    assert first.transcript.cursor(NS).seq == 3
    assert [h.seq for h in first.recall.all(NS)] == [2, 3]
    assert len(store.list_notes(recall_namespace(NS))) == 2, "no message indexed twice"
