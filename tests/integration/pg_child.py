"""One process of the Postgres restart test: build the chat graph, run one turn, exit.

Each run is a fresh process, so whatever the next one sees of the thread came from Postgres
(checkpoints) and Chroma (memory), not from this process. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from sleeptime_agent import ChromaBlockStore
from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.graphs.checkpointer import postgres_saver
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.testing import scripted_model


def main() -> None:
    uri, host, port, prefix, user, thread, text = sys.argv[1:8]
    store = ChromaBlockStore.http(host, int(port), prefix=prefix)
    with postgres_saver(uri) as saver:
        sleeptime = scripted_model("scripted:memorize")  # speaks the tool loop
        memory = SleeptimeMemory(store, sleeptime, consolidation="tool-loop")
        graph = build_chat_graph(scripted_model("scripted:recall"), memory, checkpointer=saver)
        config: RunnableConfig = {"configurable": {"user_id": user, "thread_id": thread}}
        before = graph.get_state(config).values.get("messages", [])
        out = graph.invoke({"messages": [HumanMessage(text)]}, config)
        memory.scheduler.wait_idle_sync(120)  # let this turn's sleep-time run finish
        memory.scheduler.shutdown()
    human = store.get_block((user,), "human")
    print(
        json.dumps(
            {
                "before": [m.content for m in before],
                "after": [m.content for m in out["messages"]],
                "reply": out["messages"][-1].content,
                "human": human.value if human else None,
            }
        )
    )


if __name__ == "__main__":
    main()
