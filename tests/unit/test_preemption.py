"""User turns preempt sleep-time work: at prompt evaluation, in generation, between steps,
during a compare-and-swap write; and pre-warming the primary's prefix after a run.

The llama.cpp side is a fake server that streams prompt-progress chunks, then tokens, and can
stop at a chosen chunk until the test lets it go on, so each preemption point is reached
without sleeps. No timings are asserted: only what was called, in which order, and what the
store holds afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from sleeptime_agent.audit import audit_edits
from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.graphs.chat import build_chat_graph, build_primary_prompt
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.local.chat_model import LocalChatModel
from sleeptime_agent.memory import ReadOptions, SleeptimeMemory
from sleeptime_agent.preemption import ForegroundGate
from sleeptime_agent.prewarm import PrefixPrewarmer, stable_prefix
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call

NS = ("ana",)
WAIT = 20.0  # generous bound on waits for other threads; never a timing assertion


# --- a llama.cpp server that stops where the test says ---------------------------------------


class SteppedServer:
    """Streams 3 prompt-progress chunks, the reply's tokens, then usage.

    On the first request it stops before the chunk ``pause_kind`` ("progress" or "content")
    until ``resume`` is set, having set ``paused``: the test preempts the call right there.
    """

    def __init__(self, content: str, pause_kind: str) -> None:
        self.content = content
        self.pause_kind = pause_kind
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.first_done = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.stopped_at: list[str | None] = []
        """Per request: the kind of chunk at which the callback asked to stop (None: never)."""

    def _chunks(self) -> list[tuple[str, dict[str, Any]]]:
        progress: list[tuple[str, dict[str, Any]]] = [
            ("progress", {"choices": [], "prompt_progress": {"total": 48, "processed": n}})
            for n in (0, 16, 32)
        ]
        tokens: list[tuple[str, dict[str, Any]]] = [
            ("content", {"choices": [{"index": 0, "delta": {"content": self.content[i : i + 2]}}]})
            for i in range(0, len(self.content), 2)
        ]
        usage = {"prompt_tokens": 48, "completion_tokens": len(tokens), "total_tokens": 60}
        end: list[tuple[str, dict[str, Any]]] = [
            ("end", {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            ("end", {"choices": [], "usage": usage, "timings": {"prompt_n": 48}}),
        ]
        return progress + tokens + end

    def handle_chat_completions(
        self, request: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        assert callback is not None, "the sleep-time path always streams"
        first = not self.requests
        self.requests.append(request)
        stopped: str | None = None
        seen: dict[str, int] = {}
        for kind, chunk in self._chunks():
            seen[kind] = seen.get(kind, 0) + 1
            if first and kind == self.pause_kind and seen[kind] == 2:
                self.paused.set()
                self.resume.wait(WAIT)
            if callback(chunk):
                stopped = kind
                break
        self.stopped_at.append(stopped)
        if first:
            self.first_done.set()
        return None


@pytest.fixture
def stepped(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], SteppedServer]:
    def install(content: str, pause_kind: str) -> SteppedServer:
        server = SteppedServer(content, pause_kind)
        monkeypatch.setattr(LocalChatModel, "server", lambda self: server)
        return server

    return install


@pytest.mark.parametrize("point", ["progress", "content"])
async def test_turn_preempts_local_call_and_it_is_retried(
    stepped: Callable[[str, str], SteppedServer], point: str
) -> None:
    """A turn stops the call during prompt evaluation or generation; after it, the same call
    runs again whole and its reply is the one returned."""
    server = stepped("hello there", point)
    gate = ForegroundGate()
    model = LocalChatModel()
    task = asyncio.create_task(gate.run(lambda: model.ainvoke("hi")))
    await asyncio.to_thread(server.paused.wait, WAIT)
    with gate:  # the user's turn arrives here
        while gate.preemptions == 0:  # the call's task is cancelled, its stream told to stop
            await asyncio.sleep(0)
        server.resume.set()
        await asyncio.to_thread(server.first_done.wait, WAIT)
        assert server.stopped_at == [point]
        assert len(server.requests) == 1  # not retried while the turn runs
    reply = await asyncio.wait_for(task, WAIT)
    assert reply.content == "hello there"
    assert server.stopped_at == [point, None]
    assert server.requests[0]["messages"] == server.requests[1]["messages"]
    assert gate.preemptions == 1


def test_stream_requests_report_prompt_progress(
    stepped: Callable[[str, str], SteppedServer],
) -> None:
    """Without progress chunks a long prompt evaluation could not be stopped."""
    server = stepped("ok", "none")
    list(LocalChatModel().stream("hi"))
    assert server.requests[-1]["return_progress"] is True


async def test_without_preemption_the_call_in_flight_finishes() -> None:
    """``preempt=False`` (the old behaviour, kept for benchmarks): only later calls wait."""
    gate = ForegroundGate(preempt=False)
    started, release = asyncio.Event(), asyncio.Event()

    async def call() -> str:
        started.set()
        await release.wait()
        return "done"

    task = asyncio.create_task(gate.run(call))
    await started.wait()
    with gate:
        release.set()
        assert await task == "done"
    assert gate.preemptions == 0


async def test_cancelled_caller_cancels_the_call() -> None:
    """Shutdown cancels the run: the call in flight is cancelled with it, not left running."""
    gate = ForegroundGate()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def call() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(gate.run(call))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


def _first_attempt_waits(
    attempts: list[str], started: asyncio.Event, reply: str
) -> Callable[[], Awaitable[str]]:
    """A call whose first attempt waits until cancelled (logging it); later ones return."""

    async def call() -> str:
        attempts.append("start")
        started.set()
        if len(attempts) == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                attempts.append("cancelled")
                raise
        return reply

    return call


async def test_provider_call_is_cancelled_as_a_task() -> None:
    """A provider model's HTTP call is an awaited coroutine: preempting cancels it."""
    gate = ForegroundGate()
    attempts: list[str] = []
    started = asyncio.Event()
    http_call = _first_attempt_waits(attempts, started, "reply")  # the request in flight
    task = asyncio.create_task(gate.run(http_call))
    await started.wait()
    with gate:
        await asyncio.sleep(0)
        while "cancelled" not in attempts:
            await asyncio.sleep(0)
    assert await task == "reply"
    assert attempts == ["start", "cancelled", "start"]


async def test_typing_preempts_the_call_in_flight_and_holds_until_the_turn_takes_over() -> None:
    """An interactive client announces the turn: the step stops while the user still types."""
    gate = ForegroundGate()
    attempts: list[str] = []
    started = asyncio.Event()
    step = _first_attempt_waits(attempts, started, "done")
    task = asyncio.create_task(gate.run(step))
    await started.wait()
    gate.typing("ana")
    gate.typing("ana")  # more keystrokes: still one hold

    async def cancelled() -> None:
        while "cancelled" not in attempts:
            await asyncio.sleep(0)

    await asyncio.wait_for(cancelled(), 5)  # preempted before any turn was sent
    with gate:  # the turn is sent and holds the gate itself ...
        gate.done_typing("ana")  # ... so the typing hold can go
        await asyncio.sleep(0.05)
        assert attempts == ["start", "cancelled"]  # held through the turn
    assert await task == "done"
    assert attempts == ["start", "cancelled", "start"]
    assert gate.preemptions == 1 and not gate.busy
    gate.done_typing("ana")  # without a hold: nothing to end
    assert not gate.busy


def test_typing_holds_are_per_user_and_a_line_left_unsent_goes_idle() -> None:
    gate = ForegroundGate()
    gate.typing("ana", idle_seconds=0.15)
    gate.typing("bo", idle_seconds=5)
    gate.done_typing("bo")  # bo's turn ends bo's hold, not ana's
    assert gate.busy
    threading.Event().wait(0.1)
    gate.typing("ana", idle_seconds=0.15)  # a keystroke pushes the release back
    threading.Event().wait(0.1)
    assert gate.busy  # 0.2 s since the first keystroke, 0.1 s since the last
    for _ in range(100):
        if not gate.busy:
            break
        threading.Event().wait(0.01)
    assert not gate.busy
    assert not gate._typists and not gate._typing_until  # nothing kept per user
    gate.typing("ana", idle_seconds=5)  # a new line starts a new hold
    assert gate.busy
    gate.done_typing("ana")
    assert not gate.busy


def test_the_chat_graph_ends_the_typing_hold_of_that_user_only() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    graph = build_chat_graph(
        ScriptedChatModel(replies=["Hi!"], repeat_last=True), memory, checkpointer=InMemorySaver()
    )
    try:
        memory.gate.typing(("ana",))
        memory.gate.typing(("bo",))
        graph.invoke(
            {"messages": [HumanMessage("Hello")]},
            {"configurable": {"user_id": "ana", "thread_id": "t"}},
        )
        assert list(memory.gate._typists) == [("bo",)]  # bo still types: still held
        memory.gate.done_typing(("bo",))
        assert not memory.gate.busy
    finally:
        memory.scheduler.shutdown(wait=False)


# --- the sleep-time loop: between steps and during a write ------------------------------------


class _WatchedStore(ChromaBlockStore):
    """Calls ``on_write("before" | "after")`` around the first sleep-time write."""

    on_write: Callable[[str], None]
    wrote: bool

    def put_block(self, namespace: Any, block: Any, **kwargs: Any) -> Any:
        first = kwargs.get("author") == "sleeptime" and not self.wrote
        self.wrote = self.wrote or first
        if first:
            self.on_write("before")
        stored = super().put_block(namespace, block, **kwargs)
        if first:
            self.on_write("after")
        return stored


def _recording(events: list[str], name: str, reply: AIMessage) -> Callable[..., AIMessage]:
    def step(messages: list[BaseMessage]) -> AIMessage:
        events.append(name)
        return reply

    return step


@pytest.mark.parametrize("point", ["during_write", "between_steps"])
async def test_turn_between_steps_or_during_write_holds_the_next_step(point: str) -> None:
    """The write in flight completes (never cancelled); the next model call waits for the turn;
    the edit is in history once and the cursor moves on commit."""
    store = _WatchedStore.ephemeral(embeddings=HashingEmbeddings())
    assert isinstance(store, _WatchedStore)
    store.wrote = False
    Transcript(store).append(NS, "t", "user", "I live in Porto")
    events: list[str] = []
    model = ScriptedChatModel(
        replies=[
            _recording(
                events, "call-1", tool_call("memory_insert", label="human", new_str="Porto")
            ),
            _recording(events, "call-2", tool_call("memory_finish_edits")),
        ]
    )
    paused = threading.Event()
    gate = ForegroundGate(on_event=lambda event, what: paused.set() if event == "paused" else None)
    moment = "before" if point == "during_write" else "after"

    def on_write(now: str) -> None:
        if now == moment:  # the user's turn starts here (from the writing thread)
            gate.__enter__()
            events.append("turn-start")

    store.on_write = on_write
    cons = Consolidator(store, model, gate=gate, grounded=False)
    task = asyncio.create_task(cons.arun(NS))
    await asyncio.to_thread(paused.wait, WAIT)  # the run reached its next model call
    events.append("turn-end")
    gate.__exit__()
    record = await asyncio.wait_for(task, WAIT)
    assert events == ["call-1", "turn-start", "turn-end", "call-2"]
    assert record.status == "ok"
    assert [b.value for b in store.history(NS, "human")][-1] == "Porto"
    assert audit_edits(store, NS, [record]).ok
    assert record.cursor_after > record.cursor_before
    assert gate.preemptions == 0  # nothing was in flight to cancel


async def test_preempted_tool_loop_step_applies_its_edit_once() -> None:
    """A step preempted mid-call is retried from the same state: one edit, not two."""
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    Transcript(store).append(NS, "t", "user", "I have a dog")
    started = threading.Event()
    calls: list[list[BaseMessage]] = []

    class Slow(ScriptedChatModel):
        async def _agenerate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> Any:
            calls.append(list(messages))
            started.set()
            if len(calls) == 1:
                await asyncio.Event().wait()  # preempted here
            return await super()._agenerate(messages, *a, **k)

    model = Slow(
        replies=[
            tool_call("memory_insert", label="human", new_str="Has a dog"),
            tool_call("memory_finish_edits"),
        ]
    )
    gate = ForegroundGate()
    cons = Consolidator(store, model, gate=gate, grounded=False)
    task = asyncio.create_task(cons.arun(NS))
    await asyncio.to_thread(started.wait, WAIT)
    with gate:
        while gate.preemptions == 0:
            await asyncio.sleep(0)
    record = await asyncio.wait_for(task, WAIT)
    assert calls[0] == calls[1]  # the retry sent the same prompt
    assert [e["tool"] for e in record.edits] == ["memory_insert"]
    assert audit_edits(store, NS, [record]).ok
    value = store.get_block(NS, "human")
    assert value is not None
    assert value.value.count("Has a dog") == 1


# --- pre-warming ------------------------------------------------------------------------------


class WarmablePrimary(ScriptedChatModel):
    """A primary that records what it was asked to pre-warm; optionally hangs while warming."""

    warmed: list[list[BaseMessage]] = []
    hang: bool = False
    warming: Any = None

    async def aprewarm(self, messages: Sequence[BaseMessage]) -> None:
        self.warmed.append(list(messages))
        if self.hang:
            self.warming.set()
            await asyncio.Event().wait()


def _memory(store: ChromaBlockStore) -> SleeptimeMemory:
    sleeper = ScriptedChatModel(
        replies=[
            tool_call("memory_insert", label="human", new_str="Lives in Porto"),
            tool_call("memory_finish_edits"),
        ],
        repeat_last=True,
    )
    return SleeptimeMemory(
        store,
        sleeper,
        scheduler=SleeptimeScheduler(),
        consolidation="tool-loop",
        consolidator_options={"grounded": False},
    )


def test_prewarm_after_a_run_evaluates_the_primarys_next_prefix() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    primary = WarmablePrimary(replies=["Hi!", "You live in Porto."], warmed=[])
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver())
    config: Any = {"configurable": {"user_id": "ana", "thread_id": "t"}}
    try:
        graph.invoke({"messages": [HumanMessage("I live in Porto")]}, config)
        memory.scheduler.wait_idle_sync(WAIT)
        assert len(primary.warmed) == 1
        warmed = str(primary.warmed[0][0].content)
        assert "Lives in Porto" in warmed
        graph.invoke({"messages": [HumanMessage("Where do I live?")]}, config)
        system = str(primary.calls[-1][0].content)
        assert system.startswith(warmed)  # llama.cpp serves this part from its cache
    finally:
        memory.scheduler.shutdown(wait=False)


def test_prewarm_evaluates_the_next_turns_whole_prompt_before_its_message() -> None:
    """Not only the blocks: the conversation after them is re-evaluated too when they change."""
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    sleeper = ScriptedChatModel(
        replies=[
            tool_call("memory_insert", label="human", new_str="Lives in Porto"),
            tool_call("memory_finish_edits"),
        ],
        repeat_last=True,
    )
    memory = SleeptimeMemory(
        store,
        sleeper,
        scheduler=SleeptimeScheduler(every_n_turns=2),  # one run, after the second turn
        consolidation="tool-loop",
        consolidator_options={"grounded": False},
    )
    primary = WarmablePrimary(replies=["Hi!", "Noted.", "Porto."], warmed=[])
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver())
    config: Any = {"configurable": {"user_id": "ana", "thread_id": "t"}}
    try:
        for text in ("I live in Porto", "I have a beagle"):
            graph.invoke({"messages": [HumanMessage(text)]}, config)
        memory.scheduler.wait_idle_sync(WAIT)
        assert len(primary.warmed) == 1
        graph.invoke({"messages": [HumanMessage("Where do I live?")]}, config)
        prompt = primary.calls[-1]
        assert "Lives in Porto" in str(prompt[0].content)  # the run's edit, pre-warmed
        expected = [(m.type, m.content) for m in prompt[:-1]]  # all but the new message
        assert [(m.type, m.content) for m in primary.warmed[0]] == expected
        assert len(expected) == 5  # system, then both earlier turns
    finally:
        memory.scheduler.shutdown(wait=False)


def test_the_primary_reads_a_runs_edits_when_it_commits() -> None:
    """Mid-run edits leave the primary's prompt prefix alone: it sees them with the cursor."""
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    edited, release = threading.Event(), threading.Event()

    def step(messages: list[BaseMessage]) -> AIMessage:
        if not any(m.type == "tool" for m in messages):
            return tool_call("memory_insert", label="human", new_str="Lives in Porto")
        edited.set()  # the first edit is applied: hold the run open
        assert release.wait(WAIT)
        return tool_call("memory_finish_edits")

    sleeper = ScriptedChatModel(replies=[step], repeat_last=True)
    memory = SleeptimeMemory(
        store, sleeper, consolidation="tool-loop", consolidator_options={"grounded": False}
    )
    try:
        memory.record(NS, "t", "user", "I live in Porto")
        before = memory.read(NS).render()
        memory.scheduler.notify(NS)
        assert edited.wait(WAIT)
        applied = store.get_block(NS, "human")
        assert applied is not None and "Lives in Porto" in applied.value
        during = memory.read(NS)
        assert during.render() == before  # blocks as the run found them
        assert [m.content for m in during.pending] == ["I live in Porto"]  # nothing hidden
        memory.read_options = ReadOptions(blocks_at_run_start=False)  # the switch works
        assert "Lives in Porto" in memory.read(NS).render()
        memory.read_options = ReadOptions()
        release.set()
        memory.scheduler.wait_idle_sync(WAIT)
        after = memory.read(NS)
        assert "Lives in Porto" in after.render() and after.pending == []
    finally:
        release.set()
        memory.scheduler.shutdown(wait=False)


def test_stable_prefix_starts_the_primary_prompt_whatever_the_query_retrieves() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    try:
        memory.record(NS, "t", "user", "I live in Porto")
        asyncio.run(memory.consolidate_now(NS))
        store.add_note(NS, "Ana mentioned Porto's bridges", {"author": "sleeptime"})
        view = memory.read(NS, query="Porto bridges")
        prompt = build_primary_prompt(view, [HumanMessage("Porto bridges?")], "t")
        prefix = str(stable_prefix(memory.read(NS))[0].content)
        assert str(prompt[0].content).startswith(prefix)
    finally:
        memory.scheduler.shutdown(wait=False)


def test_turn_drops_a_prewarm_in_flight() -> None:
    """A pre-warm is not retried: the turn's own prompt warms the same prefix."""
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    warming = threading.Event()
    primary = WarmablePrimary(replies=["Hi!"], warmed=[], hang=True, warming=warming)
    warmer = PrefixPrewarmer(primary, memory)
    memory.scheduler.add_after_run(warmer)
    try:
        memory.record(NS, "t", "user", "I live in Porto")
        memory.scheduler.notify(NS)
        assert warming.wait(WAIT)
        with memory.gate:  # the user's next turn
            memory.scheduler.wait_idle_sync(WAIT)
        assert warmer.dropped == 1
        assert warmer.warmed == 0
        assert len(primary.warmed) == 1
    finally:
        memory.scheduler.shutdown(wait=False)


def test_a_run_without_edits_still_prewarms_the_moved_conversation() -> None:
    """No block changed, but the cursor moved: the thread's prompt after the blocks changed."""
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    sleeper = ScriptedChatModel(replies=[tool_call("memory_finish_edits")], repeat_last=True)
    memory = SleeptimeMemory(store, sleeper, consolidation="tool-loop")
    primary = WarmablePrimary(replies=["Hi!", "Yes."], warmed=[])
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver())
    config: Any = {"configurable": {"user_id": "ana", "thread_id": "t"}}
    try:
        graph.invoke({"messages": [HumanMessage("Hello")]}, config)
        memory.scheduler.wait_idle_sync(WAIT)
        assert memory.ledger.runs[-1].edits == []
        assert len(primary.warmed) == 1
        graph.invoke({"messages": [HumanMessage("Still there?")]}, config)
        expected = [(m.type, m.content) for m in primary.calls[-1][:-1]]
        assert [(m.type, m.content) for m in primary.warmed[0]] == expected
    finally:
        memory.scheduler.shutdown(wait=False)


def test_no_prewarm_when_a_run_changed_neither_blocks_nor_cursor() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    primary = WarmablePrimary(replies=["Hi!"], warmed=[])
    warmer = PrefixPrewarmer(primary, memory, build=lambda view, history, thread: [])
    warmer.remember(NS, "t", [HumanMessage("Hello"), AIMessage("Hi!")])
    still = RunRecord(
        run_id="r",
        namespace=NS,
        cursor_before=4,
        cursor_after=4,
        versions_before={"human": 2},
        versions_after={"human": 2},
    )
    moved = still.model_copy(update={"cursor_after": 6})
    try:
        asyncio.run(warmer(NS, [still]))
        assert primary.warmed == []
        asyncio.run(warmer(NS, [moved]))
        assert len(primary.warmed) == 1
        # Without a known thread only the blocks are warmed: a moved cursor alone is no reason.
        asyncio.run(PrefixPrewarmer(primary, memory)(NS, [moved]))
        assert len(primary.warmed) == 1
    finally:
        memory.scheduler.shutdown(wait=False)


def test_prewarmer_remembers_a_bounded_number_of_threads_most_recent_kept() -> None:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    primary = WarmablePrimary(replies=["Hi!"], warmed=[])
    warmer = PrefixPrewarmer(primary, memory, max_threads=2)
    try:
        for user in ("ana", "bo", "ana", "cy"):  # ana is used again, so bo is the oldest
            warmer.remember(("users", user), f"t-{user}", [HumanMessage("Hello")])
        assert list(warmer._threads) == [("users", "ana"), ("users", "cy")]
    finally:
        memory.scheduler.shutdown(wait=False)


def test_a_typing_run_of_the_chat_graph_holds_sleeptime_work_for_that_user() -> None:
    """What an API client sends at its user's first keystroke (LangGraph Server: a run without
    a thread): no reply, no message stored, the user's hold until their turn."""
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = _memory(store)
    primary = ScriptedChatModel(replies=["Hi!"], repeat_last=True)
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver())
    served = build_chat_graph(primary, memory)  # as LangGraph Server builds it: no checkpointer
    ana: Any = {"configurable": {"user_id": "ana", "thread_id": "t"}}
    typing: Any = {"typing": True}  # a run input without messages
    try:
        out = served.invoke(typing, {"configurable": {"user_id": "ana"}})
        assert out.get("messages", []) == [] and primary.calls == []
        assert list(memory.gate._typists) == [("ana",)]
        assert memory.transcript.since(("ana",), 0) == []
        graph.invoke(typing, ana)  # sent on the thread instead: the flag is cleared
        graph.invoke({"messages": [HumanMessage("Hello")]}, ana)
        assert len(primary.calls) == 1  # the turn after it was answered, not taken for typing
        assert not memory.gate.busy
    finally:
        memory.scheduler.shutdown(wait=False)
