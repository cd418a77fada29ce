"""SIGKILL in the middle of a pipeline batch: the recall records are written, the cursor is not.

A child process consolidates with the pipeline and kills itself (SIGKILL, no cleanup) right
after the batch's recall records reach Chroma and before the cursor moves. The next process
sees the cursor where it was, reads none of the half-written batch, and its re-run leaves every
message readable exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel

NS = ("rel-kill",)

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
    from sleeptime_agent.storage.block_store import ChromaBlockStore
    from sleeptime_agent.storage.recall import RecallIndex
    from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel

    store = ChromaBlockStore.persistent(sys.argv[1], embeddings=HashingEmbeddings())
    con = PipelineConsolidator(store, ScriptedChatModel(), lease_seconds=0.2)
    ns = ("rel-kill",)
    con.transcript.append(ns, "t", "session", "--- Session 1, 1:56 pm on 8 May, 2023 ---")
    con.transcript.append(ns, "t", "Jon", "I lost my job as a banker yesterday.")
    con.transcript.append(ns, "t", "Gina", "I opened my store last week.")
    real_add = RecallIndex.add

    def add_then_die(self, namespace, records):
        real_add(self, namespace, records)
        os.kill(os.getpid(), signal.SIGKILL)

    RecallIndex.add = add_then_die
    asyncio.run(con.arun_until_caught_up(ns))
    """
)


def test_sigkill_after_the_recall_write_keeps_the_cursor(tmp_path: Path) -> None:
    path = tmp_path / "store"
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL
    store = ChromaBlockStore.persistent(path, embeddings=HashingEmbeddings())
    con = PipelineConsolidator(store, ScriptedChatModel())
    assert con.transcript.cursor(NS).seq == 0
    assert con.recall.search(NS, "banker job", 5, max_seq=0) == []
    time.sleep(0.3)  # the dead child's lease (0.2 s) expires; a live one would keep it
    (record,) = asyncio.run(con.arun_until_caught_up(NS))
    assert record.status == "ok"
    assert con.transcript.cursor(NS).seq == 3
    assert [h.seq for h in con.recall.all(NS)] == [2, 3]
    (hit,) = con.recall.search(NS, "When did Jon lose his banker job?", 1, max_seq=3)
    assert hit.line == "[8 May 2023] Jon: I lost my job as a banker yesterday (7 May 2023)."
