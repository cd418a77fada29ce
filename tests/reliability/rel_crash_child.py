"""The process of one crash trial: check and recover the last kill, then run until killed.

Trial processes are children of a forkserver that has imported this module (and so the library)
once, so a trial costs a fork, not an interpreter start. Each opens the store only after the
previous one is dead. Results go back to the test through a pipe.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from multiprocessing.connection import Connection
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, BaseMessage

from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_agent.testing import ScriptedChatModel, tool_call

#: Every value the script can leave in a block, in order: a crash may stop anywhere in between.
HUMAN_STATES = ["", "Name: Ada", "Name: Ada\nLives in Berlin", "Name: Ada\nLives in Lisbon"]
ANTICIPATION_STATES = ["", "Q: Where does Ada live? A: Lisbon."]
NOTE = "Ada moved from Berlin to Lisbon."
MESSAGES = [
    ("user", "Hi, I'm Ada."),
    ("assistant", "Hello Ada!"),
    ("user", "I live in Berlin. Actually, I just moved to Lisbon."),
    ("assistant", "Lisbon, lovely."),
]
LEASE_SECONDS = 0.4


class TinyEmbeddings(Embeddings):
    """Deterministic 8-dim vectors: archival notes without loading an embedding model."""

    model = "tiny-crash-test"

    def _one(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [b / 255 + 0.01 for b in digest[:8]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def _value(prompt: str, label: str) -> str:
    found = re.search(rf"<{label}[^>]*>.*?<value>\n(.*?)\n</value>", prompt, re.S)
    return found.group(1) if found else ""


def plan(prompt: str) -> list[AIMessage]:
    """The edits still needed, read off the blocks the run starts from (so re-runs converge)."""
    human, anticipation = _value(prompt, "human"), _value(prompt, "anticipation")
    steps: list[AIMessage] = []
    if "Name: Ada" not in human:
        steps.append(tool_call("memory_insert", label="human", new_str="Name: Ada"))
        human = "\n".join(x for x in (human, "Name: Ada") if x)
    if "Lives in" not in human:
        steps.append(tool_call("memory_insert", label="human", new_str="Lives in Berlin"))
        human += "\nLives in Berlin"
    if "Lives in Berlin" in human:
        replace = {"old_str": "Lives in Berlin", "new_str": "Lives in Lisbon"}
        steps.append(tool_call("memory_replace", label="human", **replace))
    if anticipation != ANTICIPATION_STATES[-1]:
        steps.append(
            tool_call("memory_rethink", label="anticipation", new_memory=ANTICIPATION_STATES[-1])
        )
    steps.append(tool_call("archival_memory_insert", content=NOTE))
    steps.append(tool_call("memory_finish_edits"))
    return steps


def scripted_sleeptime(messages: list[BaseMessage]) -> AIMessage:
    """Step i of the plan computed from this run's first prompt."""
    done = sum(1 for m in messages if isinstance(m, AIMessage))
    steps = plan(str(messages[1].content))
    return steps[min(done, len(steps) - 1)]


def open_store(path: str) -> ChromaBlockStore:
    return ChromaBlockStore.persistent(path, embeddings=TinyEmbeddings())


def consolidator(store: ChromaBlockStore, latency: float) -> Consolidator:
    model = ScriptedChatModel(replies=[scripted_sleeptime], repeat_last=True, latency=latency)
    return Consolidator(store, model, max_steps=12, lease_seconds=LEASE_SECONDS)


def _recover(store: ChromaBlockStore, ns: Namespace) -> dict[str, Any]:
    """Report what a killed run left, then finish its work and report again."""
    tr = Transcript(store)
    before = _facts(store, tr, ns)
    cons = consolidator(store, 0.0)
    statuses: list[str] = []
    failures: list[Any] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = asyncio.run(cons.arun_until_caught_up(ns))
        statuses += [r.status for r in records]
        failures += [f for r in records for f in r.failures]
        if records[-1].status == "skipped":  # the dead victim's lease: wait for it to expire
            time.sleep(0.1)
            continue
        if tr.cursor(ns).seq >= tr.last_seq(ns):
            break
    return {
        "before": before,
        "after": _facts(store, tr, ns),
        "statuses": statuses,
        "failures": failures,
    }


def trial(path: str, check: str | None, run: str | None, latency: float, conn: Connection) -> None:
    """One process: first check and recover what the previous (killed) process left for user
    ``check``, then consolidate a new conversation of user ``run`` until the test kills it.
    """
    store = open_store(path)
    if check is not None:
        conn.send(("checked", _recover(store, ("crash", check))))
    if run is not None:
        ns: Namespace = ("crash", run)
        tr = Transcript(store)
        for role, text in MESSAGES:
            tr.append(ns, "t1", role, text)
        conn.send(("ready", tr.last_seq(ns)))
        t0 = time.monotonic()
        record = asyncio.run(consolidator(store, latency).arun(ns))
        conn.send(("done", record.status, time.monotonic() - t0))
    conn.close()


def _facts(store: ChromaBlockStore, tr: Transcript, ns: Namespace) -> dict[str, Any]:
    return {
        "history": {
            label: [(b.version, b.value, b.author) for b in store.history(ns, label)]
            for label in ("persona", "human", "anticipation")
        },
        "cursor": tr.cursor(ns).seq,
        "last_seq": tr.last_seq(ns),
        "notes": [n.text for n in store.list_notes(ns)],
        "blocks": sorted(b.label for b in store.list_blocks(ns)),
    }
