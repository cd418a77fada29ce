"""A Chroma server that dies (SIGKILL) and restarts on the same --path.

The behaviour documented in docs/reliability.md:

* a turn while the server is down raises ``MemoryUnavailable`` (a ``ConnectionError``) at once,
  naming the server, instead of answering without memory;
* a sleep-time run that loses the server mid-run is recorded as ``error``; the scheduler's thread
  lives on and the cursor does not move;
* after a restart with the same ``--path`` everything acknowledged before is there, the same
  client objects reconnect, and the next run consolidates the messages that were pending.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from sleeptime_agent.errors import MemoryUnavailable
from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_agent.testing import ScriptedChatModel, tool_call

pytestmark = [pytest.mark.server, pytest.mark.slow]
NS: Namespace = ("ada",)
CFG: RunnableConfig = {"configurable": {"user_id": "ada", "thread_id": "t1"}}


def kill(srv: Any) -> None:
    srv.proc.kill()  # SIGKILL: no shutdown, no flush beyond what Chroma did per request
    srv.proc.wait(10)
    srv.proc = None


def facts_sleeptime(messages: list[BaseMessage]) -> AIMessage:
    """Insert each 'I'm X' / 'I live in Y' fact the run's human block lacks, then finish."""
    prompt = str(messages[1].content)
    found = re.search(r"<human[^>]*>.*?<value>\n(.*?)\n</value>", prompt, re.S)
    value = found.group(1) if found else ""
    facts = [f"Name: {n}" for n in re.findall(r"I'm (\w+)", prompt)]
    facts += [f"Lives in {c}" for c in re.findall(r"I live in (\w+)", prompt)]
    needed = [f for f in dict.fromkeys(facts) if f not in value]
    step = sum(1 for m in messages if isinstance(m, AIMessage))
    if step < len(needed):
        return tool_call("memory_insert", label="human", new_str=needed[step])
    return tool_call("memory_finish_edits")


def test_dead_server_fails_the_turn_clearly_loses_nothing_and_resumes(own_server: Any) -> None:
    prefix = f"dead-{uuid.uuid4().hex[:8]}"
    store = ChromaBlockStore.http(own_server.host, own_server.port, prefix=prefix)
    started = threading.Event()
    records: list[RunRecord] = []

    def on_event(kind: str, ns: Namespace, record: RunRecord | None) -> None:
        if kind == "start":
            started.set()
        if record is not None:
            records.append(record)

    scheduler = SleeptimeScheduler(on_event=on_event)
    sleeper = ScriptedChatModel(replies=[facts_sleeptime], repeat_last=True, latency=0.6)
    primary = ScriptedChatModel(replies=["Noted."], repeat_last=True)
    memory = SleeptimeMemory(store, sleeper, scheduler=scheduler)
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver())
    tr = Transcript(store)
    try:
        # 1. A turn is answered; its sleep-time run starts in the background.
        out = graph.invoke({"messages": [HumanMessage("Hi, I'm Ada.")]}, CFG)
        assert out["messages"][-1].content == "Noted."
        assert started.wait(30)
        acknowledged = [m.content for m in tr.since(NS, 0)]
        assert acknowledged == ["Hi, I'm Ada.", "Noted."]

        # 2. The server dies while the run waits for its model (it holds the lease).
        time.sleep(0.2)
        kill(own_server)
        scheduler.wait_idle_sync(60)
        failed = records[-1]
        assert failed.status == "error"
        assert "MemoryUnavailable" in failed.reason and "Chroma is unreachable" in failed.reason

        # 3. A turn while it is down fails at once, with a clear, catchable error.
        t0 = time.monotonic()
        with pytest.raises(MemoryUnavailable) as err:
            graph.invoke({"messages": [HumanMessage("I live in Berlin.")]}, CFG)
        assert time.monotonic() - t0 < 10
        assert isinstance(err.value, ConnectionError)
        assert f"http://{own_server.host}:{own_server.port}" in str(err.value)
        # So does a consolidation asked for directly: recorded, not raised.
        direct = asyncio.run(memory.consolidate_now(NS))
        assert [r.status for r in direct] == ["error"]
        # A new client cannot even connect: the same error, from the constructor.
        with pytest.raises(MemoryUnavailable):
            ChromaBlockStore.http(own_server.host, own_server.port, prefix=prefix)

        # 4. Restart on the same --path: what was acknowledged is there; the cursor did not move.
        own_server.start()
        assert [m.content for m in tr.since(NS, 0)] == acknowledged
        assert tr.cursor(NS).seq == 0
        history = store.history(NS, "human")
        assert [b.version for b in history] == list(range(1, len(history) + 1))
        assert all(b.value in ("", "Name: Ada") for b in history)

        # 5. The same graph and client work again; the pending work is consolidated.
        sleeper.latency = 0.0
        out = graph.invoke({"messages": [HumanMessage("I live in Berlin.")]}, CFG)
        assert out["messages"][-1].content == "Noted."
        scheduler.wait_idle_sync(60)
        assert records[-1].status == "ok", records[-1]
        assert tr.cursor(NS).seq == tr.last_seq(NS) == 4
        human = store.get_block(NS, "human")
        assert human is not None
        assert human.value.split("\n") == ["Name: Ada", "Lives in Berlin"]
    finally:
        scheduler.shutdown(wait=False)
