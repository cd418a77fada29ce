"""Add sleep-time memory to an existing LangGraph chatbot in a few lines.

The app below is a plain `MessagesState` chatbot, the shape of LangGraph's quickstart. The three
lines marked `# + sleeptime` give it persistent memory that a sleep-time agent consolidates
between turns, off the user's critical path.

    python examples/drop_in_node.py                       # local model (needs the `local` extra)
    SLEEPTIME_MODEL=openai:gpt-4o-mini python examples/drop_in_node.py

Thread state is checkpointed in memory, or in Postgres when ``SLEEPTIME_POSTGRES_URI`` is set
(the `server` extra: ``langgraph-checkpoint-postgres``), as a deployed app would do:

    SLEEPTIME_POSTGRES_URI=postgresql://user@127.0.0.1:5432/app python examples/drop_in_node.py
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from sleeptime_agent import ChromaBlockStore
from sleeptime_agent.blocks import namespace_from_config
from sleeptime_agent.config import SLEEPTIME_MODEL_ENV, model_spec, postgres_uri
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.models import resolve_model

model = resolve_model(None)  # $SLEEPTIME_MODEL, else the bundled local model
store = ChromaBlockStore.persistent(tempfile.mkdtemp(prefix="dropin-"))
sleeptime_model = resolve_model(model_spec(SLEEPTIME_MODEL_ENV) or model)  # else the same
memory = SleeptimeMemory(store, sleeptime_model=sleeptime_model)  # + sleeptime


def chatbot(state: MessagesState, config: RunnableConfig) -> dict[str, object]:
    question = state["messages"][-1].content
    view = memory.read(namespace_from_config(config), query=str(question))  # + sleeptime
    reply = model.invoke([SystemMessage(view.render()), *state["messages"][-6:]])
    return {"messages": [reply]}


builder = StateGraph(MessagesState)
builder.add_node("chatbot", chatbot)
builder.add_node("remember", memory.node())  # + sleeptime: records the turn, schedules a run
builder.add_edge(START, "chatbot")
builder.add_edge("chatbot", "remember")
resources = ExitStack()
checkpointer: BaseCheckpointSaver[Any] = InMemorySaver()
if postgres_uri():  # $SLEEPTIME_POSTGRES_URI: checkpoints survive the process
    from sleeptime_agent.graphs.checkpointer import postgres_saver

    checkpointer = resources.enter_context(postgres_saver())
app = builder.compile(checkpointer=checkpointer)

if __name__ == "__main__":
    first = {"configurable": {"user_id": "sam", "thread_id": "monday"}}
    for text in ["Hi, I'm Sam. I'm allergic to peanuts.", "I'm planning a trip to Kyoto."]:
        out = app.invoke({"messages": [HumanMessage(text)]}, first)
        print(f"you> {text}\nbot> {out['messages'][-1].content}\n")
    memory.scheduler.wait_idle_sync()  # let consolidation finish
    print("memory after consolidation:")
    for block in store.list_blocks(("sam",)):
        print(f"  [{block.label} v{block.version}] {block.value!r}")
    # A new thread knows Sam from memory alone.
    later = {"configurable": {"user_id": "sam", "thread_id": "friday"}}
    out = app.invoke({"messages": [HumanMessage("Any snack ideas for my flight?")]}, later)
    print(f"\nnew thread bot> {out['messages'][-1].content}")
    memory.scheduler.shutdown()
    resources.close()
