"""The chat graph behind the real LangGraph Server (`langgraph dev`), driven with langgraph-sdk.

What a client app does: create threads, run turns with ``user_id`` in the run's config, read
thread state. Memory lives on the session's `chroma run` server; the models are the scripted
ones named in the environment (``scripted:recall`` answers with the human block it is shown,
``scripted:memorize`` saves each user line into it), so a fact can only reach a new thread
through a sleep-time run that wrote memory. Checkpoints live either in the dev server's working
directory or in Postgres (the ``checkpointer`` section of langgraph.json). The server is stopped
and started again on the same state: threads and memory must be intact.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from sleeptime_agent import ChromaBlockStore

pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem] (the `server` extra)")
from langgraph_sdk import get_client  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(600)]

GRAPH = "sleeptime_chat"


async def turn(client: Any, thread_id: str, user: str, text: str) -> str:
    """One acknowledged turn: the run finished and its reply is the thread's last message."""
    out = await client.runs.wait(
        thread_id,
        GRAPH,
        input={"messages": [{"role": "user", "content": text}]},
        config={"configurable": {"user_id": user}},
        raise_error=True,
    )
    return str(out["messages"][-1]["content"])


def wait_for_fact(store: ChromaBlockStore, user: str, fact: str, timeout: float = 120) -> None:
    """Wait until the sleep-time run has put ``fact`` into the user's human block.

    A generous deadline, not a latency assertion: the run starts right after the reply on a
    server that may share two cores with other jobs.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        block = store.get_block((user,), "human")
        if block is not None and fact in block.value:
            return
        time.sleep(0.25)
    block = store.get_block((user,), "human")
    raise AssertionError(f"no sleep-time write of {fact!r} in {timeout:.0f} s; human={block!r}")


@pytest.mark.parametrize("checkpoints", ["dev-server", "postgres"])
def test_memory_crosses_threads_not_users_and_survives_a_restart(
    checkpoints: str, langgraph_dev_factory: Any, chroma_server: Any
) -> None:
    server = langgraph_dev_factory(postgres=checkpoints == "postgres")
    server.start()
    store = ChromaBlockStore.from_url(chroma_server.url)
    ada, bob = f"ada-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    fact = "My favourite colour is teal."

    async def before_restart() -> dict[str, str]:
        client = get_client(url=server.url)
        assistants = await client.assistants.search(graph_id=GRAPH)
        assert assistants, "the server did not register the graph from langgraph.json"
        # What a client sends at its user's first keystroke: a run without a thread.
        typing = await client.runs.wait(
            None,
            GRAPH,
            input={"typing": True},
            config={"configurable": {"user_id": ada}},
            raise_error=True,
        )
        assert isinstance(typing, dict), typing  # the run's final values, not a list of them
        assert not typing.get("messages"), typing  # no reply, nothing said
        monday = (await client.threads.create(metadata={"user": ada}))["thread_id"]
        first = await turn(client, monday, ada, fact)
        assert first == "I don't know anything about you yet."  # memory was empty
        await asyncio.to_thread(wait_for_fact, store, ada, fact)

        friday = (await client.threads.create(metadata={"user": ada}))["thread_id"]
        reply = await turn(client, friday, ada, "What is my favourite colour?")
        assert "teal" in reply, reply  # the other thread's fact, through consolidated memory

        other = (await client.threads.create(metadata={"user": bob}))["thread_id"]
        reply = await turn(client, other, bob, "What do you know about me?")
        assert reply == "I don't know anything about you yet.", reply
        return {"monday": monday, "friday": friday, "other": other}

    threads = asyncio.run(before_restart())
    bob_block = store.get_block((bob,), "human")
    assert bob_block is not None and "teal" not in bob_block.value

    server.stop()
    server.start()

    async def after_restart() -> None:
        client = get_client(url=server.url)
        state = await client.threads.get_state(threads["monday"])
        values = state["values"]
        assert isinstance(values, dict), values  # the graph's state is a dict, not a list
        texts = [m["content"] for m in values["messages"]]
        assert texts[0] == fact and len(texts) == 2, texts  # the thread survived the restart
        reply = await turn(client, threads["monday"], ada, "Do you remember me?")
        assert "teal" in reply, reply
        state = await client.threads.get_state(threads["monday"])
        values = state["values"]
        assert isinstance(values, dict), values
        assert len(values["messages"]) == 4  # resumed, not restarted
        reply = await turn(client, threads["other"], bob, "Anything new about me?")
        assert "teal" not in reply, reply

    asyncio.run(after_restart())
    human = store.get_block((ada,), "human")
    assert human is not None and human.value.count(fact) == 1  # written once, restart or not
    server.stop()
