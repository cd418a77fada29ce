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
