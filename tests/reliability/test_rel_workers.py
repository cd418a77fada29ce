"""Several worker processes serve the same users against one `chroma run` server.

Each worker (rel_worker.py) has its own SleeptimeMemory, scheduler and scripted models; all of
them append to the same users' transcripts, write the same blocks from their primaries (author
"primary") and consolidate them in the background (author "sleeptime"), at the same time.
Checked afterwards, from the store's own history:

* every block's history is versions 1..n; every acknowledged write (primary tool result, run
  record edit) is the version it claims, by its author, computed from the version before it;
* no update is lost: every fact any primary or sleep-time agent acknowledged is in the final
  value, exactly once;
* the lease held: in the lease's own version history no worker took a namespace while another
  worker's lease on it was live; the cursor only moved forward and ends at the last message;
* the transcript has every message once, numbered 1..n with no gap.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rel_worker

from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.transcript import Transcript, system_namespace
from sleeptime_agent.testing import ScriptedChatModel

pytestmark = [pytest.mark.server, pytest.mark.slow]
WORKER = Path(__file__).with_name("rel_worker.py")
WORKERS = ("w1", "w2", "w3")
USERS = ("alice", "bob")
TURNS = 4


def lease_violations(history: list[Any]) -> list[str]:
    """Takeovers of a live lease: a new holder while the last one neither released nor expired."""
    bad = []
    for prev, cur in zip(history, history[1:], strict=False):
        p, c = json.loads(prev.value), json.loads(cur.value)
        if c["holder"] == p["holder"] or c["until"] == 0:
            continue  # renewal by the holder, or a release
        taken_at = cur.updated_at.timestamp()
        if p["until"] != 0 and taken_at < p["until"]:
            bad.append(f"v{cur.version}: {c['holder']} took a lease {p['holder']} held")
    return bad


def test_workers_share_users_without_lost_updates(chroma_server: Any, run_workers: Any) -> None:
    t0 = time.perf_counter()
    prefix = f"workers-{uuid.uuid4().hex[:8]}"
    store = ChromaBlockStore.http(chroma_server.host, chroma_server.port, prefix=prefix)
    host, port = chroma_server.host, str(chroma_server.port)
    reports = run_workers(
        WORKER, [[host, port, prefix, name, str(TURNS), *USERS] for name in WORKERS]
    )
    elapsed = time.perf_counter() - t0

    # Catch up whatever the workers' last runs left (a run may have been skipped by the lease).
    final = Consolidator(
        store,
        ScriptedChatModel(replies=[rel_worker.sleeptime_model], repeat_last=True),
        max_steps=64,
    )
    tr = Transcript(store)
    for user in USERS:
        asyncio.run(final.arun_until_caught_up((user,)))

    records = [r for rep in reports for r in rep["records"]]
    acks = [a for rep in reports for a in rep["acks"]]
    statuses = [r["status"] for r in records]
    assert set(statuses) <= {"ok", "skipped", "no_input"}, [r["reason"] for r in records]
    assert len(acks) == len(WORKERS) * len(USERS) * TURNS  # every primary write acknowledged

    caught_up_edits = 0
    for user in USERS:
        ns = (user,)
        history = store.history(ns, "human")
        versions = [b.version for b in history]
        assert versions == list(range(1, len(history) + 1)), user
        by_version = {b.version: b for b in history}
        # Each acknowledged primary write is its version, by the primary, on top of the one before.
        for a in (a for a in acks if a["user"] == user):
            block = by_version[a["version"]]
            assert block.author == "primary"
            before = by_version[a["version"] - 1].value.split("\n") if a["version"] > 1 else []
            assert [x for x in block.value.split("\n") if x] == [
                x for x in [*before, a["fact"]] if x
            ]
        # Each acknowledged sleep-time edit likewise.
        sleeptime_facts = []
        catch_up = [r.model_dump(mode="json") for r in final.ledger.runs]
        caught_up_edits += sum(len(r["edits"]) for r in catch_up if tuple(r["namespace"]) == ns)
        for r in records + catch_up:
            if tuple(r["namespace"]) != ns:
                continue
            for e in r["edits"]:
                assert e["label"] == "human" and e["to"] == e["from"] + 1
                block, prev = by_version[e["to"]], by_version[e["from"]]
                assert block.author == "sleeptime"
                added = set(block.value.split("\n")) - set(prev.value.split("\n"))
                assert len(added) == 1 and set(prev.value.split("\n")) <= set(
                    block.value.split("\n")
                )
                sleeptime_facts += list(added)
        # No lost update: every fact said is in the final value exactly once.
        final_lines = [x for x in history[-1].value.split("\n") if x]
        said = {f for rep in reports for s in rep["said"] if s["user"] == user for f in s["facts"]}
        assert sorted(final_lines) == sorted(said), user
        assert set(sleeptime_facts) == {f for f in said if f.startswith("F-")}
        # The lease was never taken from a live holder; the cursor only moved forward.
        lease = store.history(system_namespace(ns), "lease")
        assert lease_violations(lease) == []
        cursor = [int(b.value) for b in store.history(system_namespace(ns), "cursor")]
        assert cursor == sorted(cursor)
        # The transcript has every message once, numbered without gaps.
        messages = tr.since(ns, 0)
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        assert len(messages) == 2 * len(WORKERS) * TURNS
        assert cursor[-1] == tr.last_seq(ns) == len(messages)

    print(
        f"workers: {len(WORKERS)} processes x {len(USERS)} users x {TURNS} turns in "
        f"{elapsed:.1f}s; runs {len(records)} ({statuses.count('skipped')} skipped by the "
        f"lease), primary writes {len(acks)}, sleep-time edits by workers "
        f"{sum(len(r['edits']) for r in records)}, left for the catch-up run {caught_up_edits}"
    )
