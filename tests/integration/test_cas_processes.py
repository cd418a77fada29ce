"""Compare-and-swap holds across processes sharing one real `chroma run` server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sleeptime_agent.storage.block_store import ChromaBlockStore

pytestmark = [pytest.mark.server, pytest.mark.slow]
WORKER = Path(__file__).with_name("cas_worker.py")


def test_two_writer_processes_lose_no_update(chroma_server, run_workers) -> None:  # type: ignore[no-untyped-def]
    prefix = f"cas-{uuid.uuid4().hex[:8]}"
    ChromaBlockStore.http(
        chroma_server.host, chroma_server.port, prefix=prefix
    )  # create collections
    rounds = 150
    host, port = chroma_server.host, str(chroma_server.port)
    results = run_workers(WORKER, [[host, port, prefix, name, str(rounds)] for name in ("A", "B")])

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
