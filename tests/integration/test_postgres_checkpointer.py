"""The chat graph and the drop-in example on Postgres checkpoints (langgraph-checkpoint-postgres).

A real PostgreSQL server (the ``postgres`` fixture) and the session's `chroma run` server; the
models are the scripted ones (``scripted:recall`` answers with the human block it is shown,
``scripted:memorize`` saves each user line). A thread started in one process is resumed by the
next with its checkpointed messages and its consolidated memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.postgres", reason="needs the `server` extra")

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def run_child(postgres: Any, chroma: Any, prefix: str, user: str, thread: str, text: str) -> Any:
    args = [postgres.uri, chroma.host, str(chroma.port), prefix, user, thread, text]
    out = subprocess.run(
        [sys.executable, str(HERE / "pg_child.py"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_new_process_resumes_the_thread_with_state_and_memory(
    postgres: Any, chroma_server: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    prefix, user, monday, friday = f"pg-{tag}", "sam", f"monday-{tag}", f"friday-{tag}"
    first = run_child(postgres, chroma_server, prefix, user, monday, "I am allergic to peanuts.")
    assert first["before"] == []
    assert first["reply"] == "I don't know anything about you yet."
    assert "I am allergic to peanuts." in first["human"]  # the sleep-time run wrote memory

    second = run_child(postgres, chroma_server, prefix, user, monday, "Any snack ideas?")
    assert second["before"] == ["I am allergic to peanuts.", first["reply"]]  # from Postgres
    assert len(second["after"]) == 4
    assert "peanuts" in second["reply"]  # from Chroma, through the consolidated block

    other = run_child(postgres, chroma_server, prefix, user, friday, "Hello again.")
    assert other["before"] == []  # a new thread starts empty...
    assert "peanuts" in other["reply"]  # ...and still knows the user


def test_drop_in_example_runs_on_postgres(postgres: Any) -> None:
    import psycopg

    database = f"dropin_{uuid.uuid4().hex[:8]}"  # the example's fixed thread ids stay its own
    with psycopg.connect(postgres.uri, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    uri = postgres.uri.rsplit("/", 1)[0] + f"/{database}"
    env = {
        **os.environ,
        "SLEEPTIME_MODEL": "scripted:recall",
        "SLEEPTIME_SLEEPTIME_MODEL": "scripted:memorize",
        "SLEEPTIME_POSTGRES_URI": uri,
    }
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "drop_in_node.py")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # The new thread knows Sam through the consolidated block (scripted:recall reads only it).
    assert "allergic to peanuts" in out.stdout.split("new thread bot>")[-1], out.stdout
    with psycopg.connect(uri) as conn:
        rows = conn.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
    assert {r[0] for r in rows} == {"monday", "friday"}


def _checkpoint(thread: str, step: int) -> tuple[Any, Any, Any]:
    from langgraph.checkpoint.base import empty_checkpoint

    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"step": step}
    return config, checkpoint, {"source": "loop", "step": step, "parents": {}}


async def test_pooled_saver_works_while_another_operation_holds_its_slot(postgres: Any) -> None:
    """The saver's own lock used to serialize every operation of the pool (langgraph#7259).

    One slot is held, as a checkpoint write in flight holds it; another write must still go
    through on another connection (with one instance lock it would wait forever: the guard
    below only keeps a regression from hanging the suite).
    """
    import asyncio

    from sleeptime_agent.graphs.checkpointer import postgres_checkpointer

    thread = f"slot-{uuid.uuid4().hex[:8]}"
    async with postgres_checkpointer(postgres.uri, max_size=4) as saver:
        async with saver.lock:
            config, checkpoint, metadata = _checkpoint(thread, 1)
            await asyncio.wait_for(saver.aput(config, checkpoint, metadata, {}), 20)
        stored = await saver.aget_tuple({"configurable": {"thread_id": thread}})
    assert stored is not None and stored.checkpoint["id"] == checkpoint["id"]


async def test_pooled_saver_keeps_every_concurrent_write(postgres: Any) -> None:
    """Forty threads written at once through a pool of four: every checkpoint is stored."""
    import asyncio

    from sleeptime_agent.graphs.checkpointer import postgres_checkpointer

    tag = uuid.uuid4().hex[:8]
    async with postgres_checkpointer(postgres.uri, max_size=4) as saver:
        writes = [_checkpoint(f"many-{tag}-{i}", i) for i in range(40)]
        await asyncio.gather(*(saver.aput(c, cp, md, {}) for c, cp, md in writes))
        for config, checkpoint, _ in writes:
            stored = await saver.aget_tuple(config)
            assert stored is not None and stored.checkpoint["id"] == checkpoint["id"]


def test_sync_pooled_saver_works_while_another_operation_holds_its_slot(postgres: Any) -> None:
    """The same for the synchronous saver of postgres_saver (its lock is a threading.Lock)."""
    import threading

    from sleeptime_agent.graphs.checkpointer import postgres_saver

    thread = f"sync-slot-{uuid.uuid4().hex[:8]}"
    config, checkpoint, metadata = _checkpoint(thread, 1)
    done = threading.Event()
    with postgres_saver(postgres.uri, max_size=4) as saver:

        def write() -> None:
            saver.put(config, checkpoint, metadata, {})
            done.set()

        with saver.lock:
            # A daemon: a regression blocks it forever, and it must not keep pytest alive.
            worker = threading.Thread(target=write, daemon=True)
            worker.start()
            assert done.wait(20)
        stored = saver.get_tuple({"configurable": {"thread_id": thread}})
    assert stored is not None and stored.checkpoint["id"] == checkpoint["id"]
