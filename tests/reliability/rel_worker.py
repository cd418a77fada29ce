"""One worker process for the scale-out test: a chat graph + scheduler serving shared users.

Usage: python rel_worker.py HOST PORT PREFIX NAME TURNS USER [USER ...]

Every turn says two facts: ``F-<name>-<i>`` for the sleep-time agent to consolidate, and
``P-<name>-<i>`` that the primary writes itself with its memory tool (author "primary"), so
primaries and sleep-time agents of different processes write the same blocks at once.
Prints one JSON line: the run records, the primary's acknowledged writes, the facts said.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import ScriptedChatModel, tool_call

ACKS: list[dict[str, Any]] = []


def sleeptime_model(messages: list[BaseMessage]) -> AIMessage:
    """Insert every F-fact of the batch that the human block (as the run saw it) lacks."""
    prompt = str(messages[1].content)
    found = re.search(r"<human[^>]*>.*?<value>\n(.*?)\n</value>", prompt, re.S)
    value = found.group(1) if found else ""
    facts = list(dict.fromkeys(re.findall(r"remember (F-[\w-]+)", prompt)))
    needed = [f for f in facts if f not in value.split("\n")]
    step = sum(1 for m in messages if isinstance(m, AIMessage))
    if step < len(needed):
        return tool_call("memory_insert", label="human", new_str=needed[step])
    return tool_call("memory_finish_edits")


def primary_model(user: str) -> Any:
    def reply(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            ack = re.search(r"now version (\d+)", str(last.content))
            fact = re.search(r"primary-note (P-[\w-]+)", str(messages[-3].content))
            if ack and fact:
                ACKS.append({"user": user, "fact": fact.group(1), "version": int(ack.group(1))})
            return AIMessage("Noted.")
        fact = re.search(r"primary-note (P-[\w-]+)", str(last.content))
        assert fact is not None
        return tool_call("memory_insert", label="human", new_str=fact.group(1))

    return reply


def main() -> None:
    host, port, prefix, name, turns = sys.argv[1:6]
    users = sys.argv[6:]
    store = ChromaBlockStore.http(host, int(port), prefix=prefix)
    scheduler = SleeptimeScheduler(every_n_turns=1)
    sleeper = ScriptedChatModel(replies=[sleeptime_model], repeat_last=True, latency=0.02)
    # A budget large enough for any batch: a run that ends by budget moves the cursor past
    # facts it did not get to (documented), which this test is not about.
    memory = SleeptimeMemory(
        store, sleeper, scheduler=scheduler, notes_k=0, consolidator_options={"max_steps": 64}
    )
    graphs = {
        u: build_chat_graph(
            ScriptedChatModel(replies=[primary_model(u)], repeat_last=True),
            memory=memory,
            primary_memory_tools=True,
        )
        for u in users
    }
    said = []
    for i in range(int(turns)):
        for u in users:
            text = f"Please remember F-{name}-{i} and primary-note P-{name}-{i}."
            config: RunnableConfig = {"configurable": {"user_id": u, "thread_id": f"{name}-{u}"}}
            graphs[u].invoke({"messages": [HumanMessage(text)]}, config)
            said.append({"user": u, "facts": [f"F-{name}-{i}", f"P-{name}-{i}"]})
    scheduler.wait_idle_sync(300)
    scheduler.shutdown()
    records = [r.model_dump(mode="json") for r in memory.ledger.runs]
    print(json.dumps({"name": name, "records": records, "acks": ACKS, "said": said}))


if __name__ == "__main__":
    main()
