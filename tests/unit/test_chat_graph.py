"""The paired chat graph with scripted models: freshness, bounded prompt, ledger, drop-in node."""

from __future__ import annotations

import re
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.memory import MemoryView, SleeptimeMemory
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import ScriptedChatModel, tool_call


def cfg(thread: str, user: str = "ada") -> RunnableConfig:
    return {"configurable": {"thread_id": thread, "user_id": user}}


def rule_based_sleeptime(messages: list[BaseMessage]) -> AIMessage:
    """A tiny deterministic 'sleep-time model': one edit per step, from the transcript."""
    prompt = str(messages[1].content)
    human = re.search(r"<human[^>]*>.*?<value>\n(.*?)\n</value>", prompt, re.S)
    value = human.group(1) if human else ""
    applied = sum(1 for m in messages if m.type == "tool")
    moved = re.findall(r"moved from (\w+) to (\w+)", prompt)
    lives = re.findall(r"I live in (\w+)", prompt)
    names = re.findall(r"I'm (\w+)", prompt)
    if applied == 0 and names and f"Name: {names[0]}" not in value:
        return tool_call("memory_insert", label="human", new_str=f"Name: {names[0]}")
    if moved:
        old, new = moved[-1]
        if f"Lives in {old}" in value and applied < 3:
            return tool_call(
                "memory_replace",
                label="human",
                old_str=f"Lives in {old}",
                new_str=f"Lives in {new}",
            )
    elif lives and f"Lives in {lives[-1]}" not in value and applied < 3:
        return tool_call("memory_insert", label="human", new_str=f"Lives in {lives[-1]}")
    return tool_call("memory_finish_edits")


def echo_memory(messages: list[BaseMessage]) -> AIMessage:
    """A 'primary' that answers the city question from whatever its prompt holds."""
    text = "\n".join(str(m.content) for m in messages)
    cities = re.findall(r"(?:Lives in|live in|to) (Berlin|Lisbon|Porto)", text)
    return AIMessage(f"You live in {cities[-1]}." if cities else "I don't know.")


def make_graph(store: ChromaBlockStore, scheduler: SleeptimeScheduler | None = None):  # type: ignore[no-untyped-def]
    primary = ScriptedChatModel(replies=[echo_memory], repeat_last=True)
    sleeper = ScriptedChatModel(replies=[rule_based_sleeptime], repeat_last=True)
    memory = SleeptimeMemory(store, sleeper, scheduler=scheduler or SleeptimeScheduler())
    return build_chat_graph(primary, memory, checkpointer=InMemorySaver()), memory


def say(graph, text: str, thread: str = "t1", user: str = "ada") -> str:  # type: ignore[no-untyped-def]
    out = graph.invoke({"messages": [HumanMessage(text)]}, cfg(thread, user))
    return str(out["messages"][-1].content)


def test_six_turns_fact_change_then_new_thread_reads_memory() -> None:
    store = ChromaBlockStore.ephemeral()
    graph, memory = make_graph(store)
    sched = memory.scheduler
    try:
        say(graph, "Hi, I'm Ada.")
        say(graph, "I live in Berlin.")
        say(graph, "I work as a nurse.")
        sched.wait_idle_sync(30)
        say(graph, "Big news: I moved from Berlin to Lisbon last week.")
        say(graph, "The weather is great here.")
        say(graph, "Anyway, how are you?")
        sched.wait_idle_sync(30)
        human = store.get_block(("ada",), "human")
        assert human is not None
        assert "Lives in Lisbon" in human.value and "Berlin" not in human.value
        assert "Name: Ada" in human.value
        assert any("Lives in Berlin" in b.value for b in store.history(("ada",), "human"))
        # A new thread of the same user has none of the conversation, only memory.
        assert say(graph, "Where do I live?", thread="t2") == "You live in Lisbon."
        assert say(graph, "Where do I live?", thread="t9", user="bob") == "I don't know."
        runs = sched.records
        assert runs and all(r.status in ("ok", "no_input") for r in runs)
        assert memory.ledger.totals()["primary_turns"] == 8
    finally:
        sched.shutdown()


def test_fresh_fact_is_seen_before_consolidation() -> None:
    """Freshness: with the sleep-time agent far behind, the primary still sees the new fact."""
    store = ChromaBlockStore.ephemeral()
    graph, memory = make_graph(store, SleeptimeScheduler(every_n_turns=100))
    try:
        say(graph, "I live in Porto.", thread="a")
        assert say(graph, "Where do I live?", thread="b") == "You live in Porto."
    finally:
        memory.scheduler.shutdown()


def test_prompt_is_bounded_once_consolidated() -> None:
    store = ChromaBlockStore.ephemeral()
    graph, memory = make_graph(store)
    try:
        sizes = []
        for i in range(12):
            say(graph, f"Message {i}: " + "blah " * 40)
            memory.scheduler.wait_idle_sync(30)
            sizes.append(memory.ledger.turns[-1].input_tokens)
        assert max(sizes[6:]) - min(sizes[6:]) < 30  # flat, not growing with the turn number
        assert sizes[-1] < 2 * sizes[1]
    finally:
        memory.scheduler.shutdown()


async def test_async_invoke() -> None:
    store = ChromaBlockStore.ephemeral()
    graph, memory = make_graph(store)
    try:
        out = await graph.ainvoke({"messages": [HumanMessage("I live in Berlin.")]}, cfg("t1"))
        assert out["messages"][-1].content == "You live in Berlin."
        await memory.scheduler.wait_idle(30)
        assert "Lives in Berlin" in store.get_block(("ada",), "human").value  # type: ignore[union-attr]
    finally:
        memory.scheduler.shutdown()


class State(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]


def test_drop_in_node_in_someone_elses_graph() -> None:
    store = ChromaBlockStore.ephemeral()
    memory = SleeptimeMemory(
        store, ScriptedChatModel(replies=[rule_based_sleeptime], repeat_last=True)
    )
    bot = ScriptedChatModel(replies=[echo_memory], repeat_last=True)

    def answer(state: State, config) -> dict[str, object]:  # type: ignore[no-untyped-def]
        from sleeptime_agent.blocks import namespace_from_config

        view = memory.read(namespace_from_config(config), query=str(state["messages"][-1].content))
        return {"messages": [bot.invoke([("system", view.render()), *state["messages"]])]}

    g = StateGraph(State)
    g.add_node("answer", answer)
    g.add_node("memory", memory.node())
    g.add_edge(START, "answer")
    g.add_edge("answer", "memory")
    app = g.compile(checkpointer=InMemorySaver())
    try:
        app.invoke({"messages": [HumanMessage("I live in Berlin.")]}, cfg("x"))
        memory.scheduler.wait_idle_sync(30)
        assert "Lives in Berlin" in store.get_block(("ada",), "human").value  # type: ignore[union-attr]
        out = app.invoke({"messages": [HumanMessage("Where?")]}, cfg("y"))
        assert out["messages"][-1].content == "You live in Berlin."
    finally:
        memory.scheduler.shutdown()


def test_freshness_without_a_checkpointer() -> None:
    """The thread's unconsolidated messages come from the durable transcript, not the state."""
    store = ChromaBlockStore.ephemeral()
    primary = ScriptedChatModel(replies=[echo_memory], repeat_last=True)
    sleeper = ScriptedChatModel(replies=[tool_call("memory_finish_edits")], repeat_last=True)
    memory = SleeptimeMemory(store, sleeper, scheduler=SleeptimeScheduler(every_n_turns=100))
    graph = build_chat_graph(primary, memory)
    try:
        say(graph, "I live in Porto.")
        assert say(graph, "Where do I live?") == "You live in Porto."
        prompt = primary.calls[-1]
        assert [m.type for m in prompt] == ["system", "human", "ai", "human"]
    finally:
        memory.scheduler.shutdown()


async def test_async_turns_run_at_once_up_to_the_graph_limit() -> None:
    """#17: on the loop's default pool (6 threads on 2 cores) turns queued behind each other."""
    import asyncio
    import threading

    met = threading.Condition()
    running = peak = want = 0

    def slow_reply(messages: list[BaseMessage]) -> str:
        nonlocal running, peak
        with met:  # wait (at most 2 s) until `want` turns are in their model call at once
            running += 1
            peak = max(peak, running)
            met.notify_all()
            met.wait_for(lambda: peak >= want, timeout=2.0)
            running -= 1
        return "ok"

    async def peak_with(limit: int, users: int) -> int:
        nonlocal peak, want
        peak, want = 0, min(limit, users)
        store = ChromaBlockStore.ephemeral()
        sleeper = ScriptedChatModel(replies=[tool_call("memory_finish_edits")], repeat_last=True)
        mem = SleeptimeMemory(store, sleeper, scheduler=SleeptimeScheduler(every_n_turns=10**6))
        primary = ScriptedChatModel(replies=[slow_reply], repeat_last=True)
        graph = build_chat_graph(primary, mem, max_concurrent_turns=limit)
        turns = [
            graph.ainvoke({"messages": [HumanMessage("hi")]}, cfg(f"t{i}", f"u{i}"))
            for i in range(users)
        ]
        await asyncio.gather(*turns)
        mem.scheduler.shutdown()
        return peak

    assert await peak_with(limit=12, users=12) == 12
    assert await peak_with(limit=2, users=5) == 2


def test_the_primary_reads_only_blocks_that_hold_something() -> None:
    persona = MemoryBlock(label="persona", value="I am Bo.", description="who I am")
    empty = MemoryBlock(label="human", value="", description="Facts about the user.")
    full = MemoryBlock(label="projects", value="Writes a compiler.", description="Projects.")
    before = MemoryView([persona, empty], [], [], 0).render()
    assert before.startswith("I am Bo.")
    assert "<memory>" not in before and "Facts about the user." not in before
    after = MemoryView([persona, empty, full], [], [], 0).render()
    assert "Writes a compiler." in after and "<projects" in after
    assert "<human" not in after  # still empty: left out
