"""The pipeline's optional ``anticipate`` layer: likely next questions in the anticipation block.

Every test drives the real graph with a scripted model whose structured replies are tool calls
named after the schema (``anticipation``), as LangChain's ``with_structured_output`` expects.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from sleeptime_agent import ChromaBlockStore, MemoryBlock
from sleeptime_agent.pipeline.anticipate import AnticipatedQuestion, render_anticipation
from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.pipeline.graph import PipelineContext, PipelineState, build_pipeline_graph
from sleeptime_agent.storage.facts import FactStore
from sleeptime_agent.storage.recall import RecallIndex
from sleeptime_agent.storage.transcript import TranscriptMessage
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call

NS = ("u1",)
PROFILE = "- The user adopted a cat named Miso on 7 May 2023."
OLD = "Q: What did the user eat? A: Pancakes"


def _store(*, anticipation: str = "", limit: int = 3000) -> ChromaBlockStore:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    for block in (
        MemoryBlock(label="human", value=PROFILE, limit=500),
        MemoryBlock(label="anticipation", value=anticipation, limit=limit),
    ):
        store.put_block(NS, block, expected_version=0, author="system")
    return store


def _run(
    store: ChromaBlockStore,
    model: ScriptedChatModel,
    messages: list[tuple[str, str]] | None = None,
    **switches: Any,
) -> PipelineState:
    ctx = PipelineContext(
        store=store,
        namespace=NS,
        recall=RecallIndex(store),
        fact_store=FactStore(store),
        model=model,
        **switches,
    )
    batch = [
        TranscriptMessage(i + 1, "t", role, text, datetime(2023, 5, 8, tzinfo=UTC))
        for i, (role, text) in enumerate(messages or [("user", "Miso is a grey tabby cat.")])
    ]
    state = asyncio.run(build_pipeline_graph().ainvoke({"messages": batch}, context=ctx))
    return cast(PipelineState, state)


def _qa(*pairs: tuple[str, str]) -> AIMessage:
    return tool_call("anticipation", questions=[{"question": q, "answer": a} for q, a in pairs])


def _value(store: ChromaBlockStore) -> str:
    block = store.get_block(NS, "anticipation")
    assert block is not None
    return block.value


def _layer(state: PipelineState) -> list[dict[str, Any]]:
    return [f for f in state.get("failures", []) if f.get("layer") == "anticipate"]


def test_block_gets_the_questions_with_their_answers_through_the_consolidator() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    model = ScriptedChatModel(
        replies=[
            tool_call("facts", facts=[{"about": "the user", "fact": "The user adopted a cat."}]),
            _qa(("What is the user's cat called?", "Miso"), ("What did the user adopt?", "A cat")),
        ]
    )
    blocks = [
        MemoryBlock(label="human", value="", limit=500),
        MemoryBlock(label="anticipation", value="", limit=3000),
    ]
    con = PipelineConsolidator(store, model, blocks=blocks, facts=True, anticipate=True)
    con.transcript.append(NS, "t", "user", "I adopted a cat named Miso.")
    asyncio.run(con.arun_until_caught_up(NS))
    assert _value(store) == (
        "Q: What is the user's cat called? A: Miso\nQ: What did the user adopt? A: A cat"
    )
    # It ran after the profile: the anticipation prompt shows the rewritten profile block.
    assert "The user adopted a cat." in str(model.calls[-1][-1].content)
    (run,) = con.ledger.runs
    assert {"tool": "anticipation_rewrite", "count": 2} in run.edits
    assert run.steps == 2


def test_runs_without_the_other_model_layers_and_counts_its_call() -> None:
    store = _store(anticipation=OLD)
    model = ScriptedChatModel(replies=[_qa(("What is Miso?", "A grey tabby cat"))])
    state = _run(store, model, anticipate=True)
    assert _value(store) == "Q: What is Miso? A: A grey tabby cat"
    prompt = str(model.calls[0][-1].content)
    assert PROFILE in prompt
    assert "Pancakes" not in prompt, "last run's answers are not memory"
    assert state["calls"] == 1
    assert state["input_tokens"] > 0
    assert state["anticipated"] == 1


def test_ungrounded_answer_is_dropped_and_reported() -> None:
    store = _store()
    model = ScriptedChatModel(
        replies=[
            _qa(
                ("What is the user's cat called?", "Miso"),
                ("Where does the user live?", "In Lisbon with Marta"),
            )
        ]
    )
    state = _run(store, model, anticipate=True)
    assert _value(store) == "Q: What is the user's cat called? A: Miso"
    (dropped,) = _layer(state)
    assert dropped["kind"] == "dropped"
    assert "Lisbon" in dropped["error"]


def test_empty_answer_is_dropped() -> None:
    store = _store(anticipation=OLD)
    model = ScriptedChatModel(replies=[_qa(("Where does the user work?", " "))])
    state = _run(store, model, anticipate=True)
    assert _value(store) == OLD
    assert [f["kind"] for f in _layer(state)] == ["dropped"]


def test_answer_found_only_in_the_assistants_turn_is_dropped_by_default() -> None:
    messages = [("user", "What breed is Miso?"), ("assistant", "Miso sounds like a Siamese.")]
    reply = _qa(("What breed is Miso?", "Siamese"))
    store = _store()
    _run(store, ScriptedChatModel(replies=[reply]), messages, anticipate=True)
    assert _value(store) == ""
    trusted = _store()
    _run(
        trusted,
        ScriptedChatModel(replies=[reply]),
        messages,
        anticipate=True,
        ground_in_assistant=True,
    )
    assert _value(trusted) == "Q: What breed is Miso? A: Siamese"


@pytest.mark.parametrize(
    "reply",
    [
        tool_call("anticipation", questions=[{"question": "What is Miso?"}]),  # no answer
        tool_call("anticipation", questions="Miso"),  # not a list
        AIMessage(content='{"questions": [{"question": "What is'),  # truncated, no tool call
    ],
    ids=["missing-field", "wrong-type", "truncated"],
)
def test_malformed_output_keeps_the_previous_value_and_is_a_failure(reply: AIMessage) -> None:
    store = _store(anticipation=OLD)
    before = store.get_block(NS, "anticipation")
    assert before is not None
    state = _run(store, ScriptedChatModel(replies=[reply]), anticipate=True)
    after = store.get_block(NS, "anticipation")
    assert after is not None
    assert after.value == OLD
    assert after.version == before.version
    (failure,) = _layer(state)
    assert "kind" not in failure, "a failure of the call, not a dropped question"
    assert failure["error"]


def test_a_provider_error_is_a_failure_not_an_exception() -> None:
    store = _store(anticipation=OLD)
    state = _run(store, ScriptedChatModel(replies=[]), anticipate=True)  # raises when called
    assert _value(store) == OLD
    (failure,) = _layer(state)
    assert "ran out of replies" in failure["error"]


def test_off_by_default_makes_no_model_call_for_it() -> None:
    store = _store()
    model = ScriptedChatModel(
        replies=[
            tool_call("facts", facts=[{"about": "the user", "fact": "Miso is a grey tabby cat."}]),
            _qa(("What is Miso?", "A grey tabby cat")),
        ]
    )
    state = _run(store, model, facts=True)
    assert len(model.calls) == 1, "only the facts call"
    assert _value(store) == ""
    assert "anticipated" not in state
    assert PipelineContext.__dataclass_fields__["anticipate"].default is False
    assert PipelineConsolidator.__dataclass_fields__["anticipate"].default is False


def test_block_stays_within_its_limit() -> None:
    limit = 80
    store = _store(limit=limit)
    long_question = "What kind of cat did the user adopt and what is its colour and name?"
    model = ScriptedChatModel(
        replies=[
            _qa(
                (long_question, "Miso, a grey tabby cat"),
                ("What is Miso?", "A grey tabby cat"),
                ("Which cat is grey?", "Miso"),
            )
        ]
    )
    state = _run(store, model, anticipate=True)
    value = _value(store)
    assert len(value) <= limit
    # Whole lines only: the one that did not fit is skipped, the shorter ones after it kept.
    assert value == "Q: What is Miso? A: A grey tabby cat\nQ: Which cat is grey? A: Miso"
    assert state["anticipated"] == 2


def test_nothing_that_fits_keeps_the_previous_value() -> None:
    assert render_anticipation([AnticipatedQuestion(question="Q" * 50, answer="A")], 20) == ""
    store = _store(anticipation="old", limit=20)
    _run(
        store,
        ScriptedChatModel(replies=[_qa(("What is Miso?", "A grey tabby cat"))]),
        anticipate=True,
    )
    assert _value(store) == "old"


def test_a_concurrent_write_is_not_overwritten_blindly() -> None:
    store = _store(anticipation=OLD)

    def reply(messages: list[BaseMessage]) -> AIMessage:
        # Another writer changes the block while the call is in flight: the CAS write conflicts.
        block = store.get_block(NS, "anticipation")
        assert block is not None
        store.put_block(
            NS, block.model_copy(update={"value": "mine"}), expected_version=block.version
        )
        return _qa(("What is Miso?", "A grey tabby cat"))

    state = _run(store, ScriptedChatModel(replies=[reply]), anticipate=True)
    history = [b.value for b in store.history(NS, "anticipation")]
    assert history == [OLD, "mine", "Q: What is Miso? A: A grey tabby cat"]
    assert state["anticipated"] == 1


def test_without_an_anticipation_block_it_is_skipped_and_reported_not_called() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    model = ScriptedChatModel(replies=[_qa(("What is Miso?", "A grey tabby cat"))])
    state = _run(store, model, anticipate=True)
    assert model.calls == []
    assert [f["kind"] for f in _layer(state)] == ["skipped"]
