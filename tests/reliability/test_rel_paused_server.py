"""A Chroma server that stops answering without closing its port (SIGSTOP).

The kernel still accepts connections of a paused process, so only a request deadline tells a
hung server from a slow one. chromadb's own HTTP client has none; ours raises
``MemoryUnavailable`` after ``timeout`` seconds, and the same store works again (nothing lost)
once the server resumes.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import MemoryUnavailable
from sleeptime_agent.storage.block_store import ChromaBlockStore

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_a_own_server_times_out_clearly_and_recovers(own_server: Any) -> None:
    store = ChromaBlockStore.http(own_server.host, own_server.port, timeout=2.0)
    store.put_block(
        ("ada",), MemoryBlock(label="human", value="Lives in Porto"), expected_version=0
    )
    os.kill(own_server.proc.pid, signal.SIGSTOP)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            store.get_block(("ada",), "human")
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever came out
            outcome.append(exc)

    # In a thread, so a regression (a hang) fails this test instead of freezing the suite.
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "a request to a paused server never returned"
    assert len(outcome) == 1 and isinstance(outcome[0], MemoryUnavailable)
    assert f"{own_server.port}" in str(outcome[0])

    os.kill(own_server.proc.pid, signal.SIGCONT)
    block = store.get_block(("ada",), "human")
    assert block is not None
    assert block.value == "Lives in Porto"
