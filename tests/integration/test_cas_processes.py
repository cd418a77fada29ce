"""Compare-and-swap holds across processes sharing one real `chroma run` server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sleeptime_agent.storage.block_store import ChromaBlockStore

pytestmark = [pytest.mark.server, pytest.mark.slow]
WORKER = Path(__file__).with_name("cas_worker.py")


def test_two_writer_processes_lose_no_update(chroma_server) -> None:  # type: ignore[no-untyped-def]
    prefix = f"cas-{uuid.uuid4().hex[:8]}"
    ChromaBlockStore.http(
        chroma_server.host, chroma_server.port, prefix=prefix
    )  # create collections
    rounds = 150
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                chroma_server.host,
                str(chroma_server.port),
                prefix,
                name,
                str(rounds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("A", "B")
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))

    acked = [a for r in results for a in r["acked"]]
    conflicts = sum(r["conflicts"] for r in results)
    assert len(acked) + conflicts == 2 * rounds  # every write either landed or raised
    print(f"acked={len(acked)} conflicts={conflicts}")

    store = ChromaBlockStore.http(chroma_server.host, chroma_server.port, prefix=prefix)
    history = store.history(("shared-user",), "counter")
    # No version skipped or duplicated, and exactly the acknowledged writes are in history.
    assert [b.version for b in history] == list(range(1, len(acked) + 1))
    assert sorted(a["version"] for a in acked) == [b.version for b in history]
    # No lost update: each version extends the one before it, so every acknowledged tag
    # is still in the current value.
    for prev, cur in zip(history, history[1:], strict=False):
        assert cur.value.startswith(prev.value)
    final = history[-1].value
    for a in acked:
        assert a["tag"] in final
    assert final.count(";") == len(acked)
