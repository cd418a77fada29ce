"""The sleep-time run: edit loop, budget, malformed output, cursor after success/failure/cancel."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_agent.testing import ScriptedChatModel, tool_call

NS = ("u1",)


def setup(
    replies: list[object], **opts: object
) -> tuple[ChromaBlockStore, Consolidator, Transcript]:
    store = ChromaBlockStore.ephemeral()
    model = ScriptedChatModel(replies=replies)
    cons = Consolidator(store, model, **opts)  # type: ignore[arg-type]
    tr = Transcript(store)
    tr.append(NS, "t1", "user", "Hi, I'm Ada and I live in Berlin.")
    tr.append(NS, "t1", "assistant", "Nice to meet you, Ada!")
    return store, cons, tr


def human(store: ChromaBlockStore) -> str:
    block = store.get_block(NS, "human")
    assert block is not None
    return block.value


async def test_run_edits_blocks_and_advances_cursor() -> None:
    store, cons, tr = setup(
        [
            tool_call("memory_insert", label="human", new_str="Name: Ada"),
            tool_call("memory_insert", label="human", new_str="Lives in Berlin"),
            tool_call(
                "memory_rethink",
                label="anticipation",
                new_memory="Q: Where does Ada live? A: Berlin",
            ),
            tool_call("memory_finish_edits"),
        ]
    )
    rec = await cons.arun(NS)
    assert rec.status == "ok", rec
    assert human(store) == "Name: Ada\nLives in Berlin"
    assert store.get_block(NS, "anticipation").value.startswith("Q: Where")  # type: ignore[union-attr]
    assert (rec.cursor_before, rec.cursor_after) == (0, 2)
    assert tr.cursor(NS).seq == 2
    assert rec.steps == 4 and rec.input_tokens > 0 and rec.output_tokens > 0
    assert len(rec.edits) == 3 and rec.failures == []
    assert rec.versions_before["human"] == 1 and rec.versions_after["human"] == 3
    assert cons.ledger.runs == [rec]
    # The model saw the transcript and the blocks.
    prompt = cons.model.calls[0]  # type: ignore[attr-defined]
    assert "I live in Berlin" in str(prompt[1].content) and "<human" in str(prompt[1].content)


async def test_nothing_new_means_no_model_call() -> None:
    store, cons, tr = setup([tool_call("memory_finish_edits")])
    await cons.arun(NS)
    rec = await cons.arun(NS)
    assert rec.status == "no_input"
    assert len(cons.model.calls) == 1  # type: ignore[attr-defined]


async def test_malformed_and_unknown_calls_are_recorded_and_memory_keeps_only_valid_edits() -> None:
    bad_json = AIMessage(
        content="",
        invalid_tool_calls=[
            {
                "name": "memory_insert",
                "args": "{not json",
                "id": "x",
                "error": "bad json",
                "type": "invalid_tool_call",
            }
        ],
    )
    store, cons, _ = setup(
        [
            bad_json,
            "I think the user is Ada.",  # prose instead of a tool call
            tool_call("format_disk", path="/"),
            tool_call("memory_insert", label="nope", new_str="x"),
            tool_call("memory_replace", label="human", old_str="zzz", new_str="y"),
            tool_call("memory_rethink", label="persona", new_memory="I obey the user blindly"),
            tool_call("memory_insert", label="human", new_str="Name: Ada"),
            tool_call("memory_finish_edits"),
        ],
        max_steps=20,
    )
    rec = await cons.arun(NS)
    assert rec.status == "ok"
    assert human(store) == "Name: Ada"
    assert store.get_block(NS, "persona").value != "I obey the user blindly"  # type: ignore[union-attr]
    assert len(rec.failures) == 6
    assert [e["label"] for e in rec.edits] == ["human"]


async def test_endless_loop_is_ended_by_the_step_budget() -> None:
    n = iter(range(1000))
    model_reply = lambda _m: tool_call("memory_insert", label="human", new_str=f"fact {next(n)}")  # noqa: E731
    # Ungrounded "fact N" lines are allowed here: this test is about the step budget.
    store, cons, tr = setup([model_reply], max_steps=5, grounded=False)
    cons.model.repeat_last = True  # type: ignore[attr-defined]
    rec = await cons.arun(NS)
    assert rec.status == "finished_by_budget" and rec.steps == 5
    assert human(store).count("fact") == 5
    assert tr.cursor(NS).seq == 2  # the work was attempted: do not loop on it forever


async def test_token_budget_ends_a_run() -> None:
    store, cons, _ = setup(
        [tool_call("memory_insert", label="human", new_str="x" * 400)], max_tokens=50, max_steps=50
    )
    cons.model.repeat_last = True  # type: ignore[attr-defined]
    rec = await cons.arun(NS)
    assert rec.status == "finished_by_budget" and rec.steps == 1


async def test_exception_is_recorded_and_cursor_stays() -> None:
    def boom(_m: list[BaseMessage]) -> AIMessage:
        raise RuntimeError("model server down")

    store, cons, tr = setup([boom])
    rec = await cons.arun(NS)
    assert rec.status == "error" and "model server down" in rec.reason
    assert tr.cursor(NS).seq == 0
    assert cons.ledger.runs[-1].status == "error"


async def test_cancellation_keeps_cursor_and_next_run_completes() -> None:
    store, cons, tr = setup([tool_call("memory_insert", label="human", new_str="Name: Ada")])
    cons.model.latency = 5  # type: ignore[attr-defined]
    task = asyncio.create_task(cons.arun(NS))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tr.cursor(NS).seq == 0
    assert cons.ledger.runs[-1].status == "cancelled"
    # The lease was released: a new run does the work.
    cons2 = Consolidator(
        store,
        ScriptedChatModel(
            replies=[
                tool_call("memory_insert", label="human", new_str="Name: Ada"),
                tool_call("memory_finish_edits"),
            ]
        ),
    )
    rec = await cons2.arun(NS)
    assert rec.status == "ok" and tr.cursor(NS).seq == 2 and human(store) == "Name: Ada"


async def test_lease_blocks_a_second_worker() -> None:
    store, cons, tr = setup([tool_call("memory_finish_edits")])
    other = Consolidator(store, ScriptedChatModel(replies=[tool_call("memory_finish_edits")]))
    assert await asyncio.to_thread(other._acquire, NS)
    rec = await cons.arun(NS)
    assert rec.status == "skipped"
    await asyncio.to_thread(other._release, NS)
    assert (await cons.arun(NS)).status == "ok"


async def test_long_backlog_is_split_into_bounded_runs() -> None:
    store, cons, tr = setup([tool_call("memory_finish_edits")], max_transcript_chars=200)
    cons.model.repeat_last = True  # type: ignore[attr-defined]
    for i in range(10):
        tr.append(NS, "t1", "user", f"message number {i} " + "x" * 50)
    records = await cons.arun_until_caught_up(NS)
    assert len(records) > 2
    assert tr.cursor(NS).seq == 12
    for call in cons.model.calls:  # type: ignore[attr-defined]
        assert len(str(call[1].content)) < 2500


async def test_a_model_repeating_a_refused_call_is_stopped_early() -> None:
    store, cons, tr = setup(
        [tool_call("memory_replace", label="human", old_str="zzz", new_str="y")], max_steps=20
    )
    cons.model.repeat_last = True  # type: ignore[attr-defined]
    rec = await cons.arun(NS)
    assert rec.status == "stalled" and rec.steps == 3
    assert tr.cursor(NS).seq == 2  # like a budget end: attempted, not retried forever


async def test_invented_facts_go_back_to_the_model_and_change_nothing() -> None:
    """Seen on the 1.5B model: the user's line saved with made-up elaboration after it."""
    invented = (
        "Ada lives in Berlin. Berliners often work at the Charité hospital and love techno music."
    )
    store, cons, _ = setup(
        [
            tool_call("memory_insert", label="human", new_str=invented),
            tool_call("archival_memory_insert", content="Ada has a cat named Mochi."),
            tool_call("memory_insert", label="human", new_str="Name: Ada\nLives in Berlin"),
            tool_call("memory_insert", label="anticipation", new_str="Ada may ask about flats."),
            tool_call("memory_finish_edits"),
        ],
        max_steps=8,
    )
    rec = await cons.arun(NS)
    assert rec.status == "ok"
    assert human(store) == "Name: Ada\nLives in Berlin"
    assert store.list_notes(NS) == []
    reasons = [f["error"] for f in rec.failures]
    assert len(reasons) == 2 and all("not in the conversation" in r for r in reasons)
    assert "Charité" in reasons[0] and "Mochi" in reasons[1]
    # Predictions are the anticipation block's job: not held to the transcript.
    assert "flats" in store.get_block(NS, "anticipation").value  # type: ignore[union-attr]


@pytest.mark.parametrize("ground_in_assistant", [False, True])
async def test_the_assistants_own_elaboration_is_not_a_user_fact(ground_in_assistant: bool) -> None:
    """Seen on the 1.5B model: its reply's elaboration was saved into the human block."""
    said_by_assistant = "Marine biologists develop new technologies for conservation."
    store, cons, tr = setup(
        [
            tool_call("memory_insert", label="human", new_str=said_by_assistant),
            tool_call("memory_finish_edits"),
        ],
        ground_in_assistant=ground_in_assistant,
    )
    tr.append(NS, "t1", "user", "I work as a marine biologist.")
    tr.append(NS, "t1", "assistant", f"Great! {said_by_assistant}")
    rec = await cons.arun(NS)
    assert rec.status == "ok"
    if ground_in_assistant:
        assert human(store) == said_by_assistant and not rec.failures
    else:
        assert human(store) == "" and "not in the conversation" in rec.failures[0]["error"]


async def test_a_run_cancelled_while_taking_the_lease_releases_it() -> None:
    """Seen under server load: the lease write landed after the cancel and stayed for 600 s."""
    import threading

    store, cons, tr = setup([tool_call("memory_finish_edits")])
    entered, proceed = threading.Event(), threading.Event()
    take = cons._acquire

    def slow_acquire(namespace: tuple[str, ...]) -> bool:
        entered.set()
        proceed.wait(5)
        return take(namespace)

    cons._acquire = slow_acquire  # type: ignore[method-assign]
    run = asyncio.create_task(cons.arun(NS))
    await asyncio.to_thread(entered.wait, 5)
    run.cancel()
    await asyncio.sleep(0.05)
    proceed.set()  # the lease write lands after the cancel
    with pytest.raises(asyncio.CancelledError):
        await run
    other = Consolidator(store, ScriptedChatModel(replies=[tool_call("memory_finish_edits")]))
    assert await asyncio.to_thread(other._acquire, NS)  # released, not held until expiry
    assert tr.cursor(NS).seq == 0
