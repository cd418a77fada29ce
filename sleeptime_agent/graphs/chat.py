"""The paired chat graph: a primary that reads refined memory, a sleep-time agent after it.

Flow of one turn: ``primary`` appends the user message to the durable transcript, reads memory
(blocks, top-k notes, the unconsolidated tail) and answers; ``after_turn`` records the reply and
notifies the scheduler, which consolidates in the background after the reply is out.

The primary's prompt is bounded: the blocks, a few retrieved notes, the last ``recent_turns``
consolidated turns of this thread, and whatever the sleep-time agent has not consolidated yet
(so no fact is lost while it has not run).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, NotRequired, TypedDict, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph

from sleeptime_agent.blocks import namespace_from_config
from sleeptime_agent.ledger import TurnRecord, count_tokens
from sleeptime_agent.memory import MemoryView, SleeptimeMemory
from sleeptime_agent.prewarm import PrefixPrewarmer, Prewarmable
from sleeptime_agent.tools import create_memory_tools

__all__ = ["ChatState", "build_chat_graph", "build_primary_prompt"]


class ChatState(TypedDict):
    """Conversation state of one thread."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The thread's messages; the user's newest message is last when a turn starts."""
    typing: NotRequired[bool]
    """In a run's input instead of a message (best in a run without a thread): the user has
    started typing. Sleep-time work pauses for them from now, preempting the step in flight,
    until their turn starts or 10 s pass without another such run; so the turn finds the model
    free (#16: on the local model a preempted step takes 0.2-0.5 s to stop). The run answers
    nothing, and clears the flag."""


def _thread_id(config: RunnableConfig) -> str:
    return str(config.get("configurable", {}).get("thread_id", "default"))


def build_primary_prompt(
    view: MemoryView, history: list[AnyMessage], thread_id: str, recent_turns: int = 2
) -> list[BaseMessage]:
    """System prompt from memory, then this thread's recent and unconsolidated messages.

    ``history`` is the thread's checkpointed messages with the current user message last. The
    unconsolidated messages come from the durable transcript, so no fact is lost while the
    sleep-time agent has not run, with or without a checkpointer; the checkpointed history
    only adds the last ``recent_turns`` consolidated turns for coherence.
    """
    system = view.render()
    others = view.other_threads(thread_id)
    if others:
        lines = "\n".join(f"{m.role}: {m.content}" for m in others)
        system += f"\nRecent messages from the user's other conversations:\n{lines}\n"
    # The current message was recorded before memory was read: it is the last pending one.
    own = [m for m in view.pending if m.thread_id == thread_id][:-1]
    pending: list[BaseMessage] = [
        HumanMessage(m.content) if m.role == "user" else AIMessage(m.content) for m in own
    ]
    chat = [m for m in history if m.type in ("human", "ai")]
    current, earlier = chat[-1:], chat[:-1]
    consolidated = earlier[: max(0, len(earlier) - len(own))]
    recent = consolidated[-2 * recent_turns :] if recent_turns > 0 else []
    return [SystemMessage(system), *recent, *pending, *current]


def build_chat_graph(
    model: BaseChatModel,
    memory: SleeptimeMemory,
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    recent_turns: int = 2,
    primary_memory_tools: bool = False,
    prewarm: bool = True,
    max_concurrent_turns: int = 32,
    name: str = "sleeptime_chat",
) -> CompiledStateGraph[ChatState, None, ChatState, ChatState]:
    """Compile the paired graph; ``user_id`` and ``thread_id`` come from the run's config.

    The caller keeps ``memory`` (its store, scheduler and ledger); the graph only uses it::

        memory = SleeptimeMemory(store, sleeptime_model, scheduler=SleeptimeScheduler())
        graph = build_chat_graph(model, memory)

    Args:
        model: the primary (test-time) model.
        memory: the refined memory the primary reads and the sleep-time agent consolidates.
        checkpointer: LangGraph checkpointer for thread state (e.g. ``InMemorySaver``).
        recent_turns: consolidated turns of the thread kept verbatim in the prompt.
        primary_memory_tools: give the primary the edit tools too (default: single writer).
        prewarm: after each sleep-time run that changed the blocks, evaluate the primary's new
            prompt prefix in the background (models with ``aprewarm``, e.g. the local model;
            not with ``primary_memory_tools``, whose prompt starts with the tools).
        max_concurrent_turns: turns of the async graph (``ainvoke``, LangGraph Server) that run
            at once; each runs in a thread of the graph's own pool. The event loop's default
            pool has min(32, CPUs + 4) threads (6 on two cores), which under load made turns
            queue behind each other's model calls, and the checkpointer behind them (#17).
        name: the compiled graph's name.
    """
    mem = memory
    turns = ThreadPoolExecutor(max_concurrent_turns, thread_name_prefix="sleeptime-turn")

    async def in_turn_thread(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        # What asyncio.to_thread does, on the graph's pool: context variables (LangChain's
        # callbacks and config) follow the call into the thread.
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(turns, call)

    tools = create_memory_tools(mem.store, author="primary") if primary_memory_tools else []
    primary_model: Any = model.bind_tools(tools) if tools else model
    by_name = {t.name: t for t in tools}
    prewarmer: PrefixPrewarmer | None = None
    if prewarm and not tools and isinstance(model, Prewarmable):

        def build(
            view: MemoryView, history: list[BaseMessage], thread_id: str
        ) -> list[BaseMessage]:
            messages = cast(list[AnyMessage], history)  # a turn's history holds only these
            return build_primary_prompt(view, messages, thread_id, recent_turns)

        prewarmer = PrefixPrewarmer(model, mem, build=build)
        mem.scheduler.add_after_run(prewarmer)

    def primary(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        namespace = namespace_from_config(config)
        thread_id = _thread_id(config)
        user = state["messages"][-1]
        if not isinstance(user, HumanMessage):
            raise ValueError("a chat turn starts with a user message (HumanMessage) last")
        with mem.gate:  # sleep-time steps pause while the user's turn runs
            mem.gate.done_typing(namespace)  # the turn holds the gate now, not the typing
            return _answer(state, config, namespace, thread_id, user)

    def _answer(
        state: ChatState,
        config: RunnableConfig,
        namespace: tuple[str, ...],
        thread_id: str,
        user: HumanMessage,
    ) -> dict[str, Any]:
        mem.record(namespace, thread_id, "user", user.text)
        view = mem.read(namespace, query=user.text)
        prompt = build_primary_prompt(view, state["messages"], thread_id, recent_turns)
        reply = primary_model.invoke(prompt, config)
        tin, tout = count_tokens(reply, prompt)
        for _ in range(3):  # only with primary_memory_tools: a short tool loop inside the turn
            if not getattr(reply, "tool_calls", None):
                break
            prompt = [*prompt, reply]
            for call in reply.tool_calls:
                tool = by_name.get(call["name"])
                out = tool.invoke(call["args"], config) if tool else f"unknown tool {call['name']}"
                prompt.append(ToolMessage(str(out), tool_call_id=call.get("id") or "call"))
            reply = primary_model.invoke(prompt, config)
            more_in, more_out = count_tokens(reply, prompt)
            tin, tout = tin + more_in, tout + more_out
        mem.ledger.add_turn(
            TurnRecord(
                namespace=namespace, thread_id=thread_id, input_tokens=tin, output_tokens=tout
            )
        )
        return {"messages": [reply]}

    def after_turn(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        namespace = namespace_from_config(config)
        mem.record(namespace, _thread_id(config), "assistant", state["messages"][-1].text)
        if prewarmer is not None:  # before the run it may start: its pre-warm needs the thread
            prewarmer.remember(namespace, _thread_id(config), list(state["messages"]))
        mem.after_turn(namespace)
        return {}

    async def aprimary(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        return await in_turn_thread(primary, state, config)

    async def aafter_turn(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        return await in_turn_thread(after_turn, state, config)

    def typing(state: ChatState, config: RunnableConfig) -> dict[str, Any]:
        mem.gate.typing(namespace_from_config(config))
        return {"typing": False}  # on a thread, the next run is a turn again

    def route(state: ChatState) -> str:
        return "typing" if state.get("typing") else "primary"

    builder = StateGraph(ChatState)
    builder.add_node("typing", typing)
    builder.add_node("primary", RunnableLambda(primary, afunc=aprimary, name="primary"))
    builder.add_node("after_turn", RunnableLambda(after_turn, afunc=aafter_turn, name="after_turn"))
    builder.add_conditional_edges(START, route, ["typing", "primary"])
    builder.add_edge("typing", END)
    builder.add_edge("primary", "after_turn")
    builder.add_edge("after_turn", END)
    return builder.compile(checkpointer=checkpointer, name=name)
