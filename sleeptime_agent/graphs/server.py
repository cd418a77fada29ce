"""The paired chat graph for LangGraph Server (``langgraph dev`` / ``langgraph up``).

``langgraph.json`` at the repository root points at :data:`graph`. The server loads this file by
path, so it imports the package absolutely. Configuration comes from the environment:

* ``SLEEPTIME_MODEL``: the primary model, ``local`` (default) or ``provider:model``;
* ``SLEEPTIME_SLEEPTIME_MODEL``: the sleep-time model (default: the primary one);
* ``SLEEPTIME_CHROMA_URL``: a Chroma server (``http://host:port``), required as soon as more than
  one process serves the graph; without it, the embedded store under ``$SLEEPTIME_HOME``;
* ``SLEEPTIME_EVERY_N_TURNS``: a sleep-time run after every N turns of a user (default 1; 0
  turns background runs off, e.g. to consolidate from a scheduled job instead);
* ``SLEEPTIME_DELAY_SECONDS``: a run starts after this many seconds without a newer turn of the
  user (debounce, default 0): under load, runs wait for a pause instead of following each turn;
* ``SLEEPTIME_CONSOLIDATION``: ``auto``, ``pipeline`` or ``tool-loop`` (default: SleeptimeMemory's
  ``auto``); the scripted test model ``scripted:memorize`` speaks the tool loop.

Checkpoints in Postgres: add ``"checkpointer": {"backend": "custom", "path":
"./sleeptime_agent/graphs/checkpointer.py:postgres_checkpointer"}`` to ``langgraph.json`` and set
``SLEEPTIME_POSTGRES_URI`` (see :mod:`sleeptime_agent.graphs.checkpointer`).

The sleep-time scheduler runs in a thread of the server process, at most two runs at once
(:class:`~sleeptime_agent.scheduler.SleeptimeScheduler`'s default); its model calls wait for
in-flight turns for at most :data:`HOLD_BOUND_SECONDS` unless the sleep-time model is the local
one. Turns go first, and memory still consolidates under load.
Two things tie the scheduler to the process's life: at exit it cancels in-flight runs before
the interpreter closes its thread pools (a cancelled run moves no cursor and releases its
lease, so the next process takes the namespace at once instead of after ``lease_seconds``); at
start this module schedules a run for every user whose transcript is ahead of the cursor
(turns acknowledged just before a restart are consolidated without waiting for that user's
next turn).

Building the graph loads no model: the local model is loaded on its first call, and provider
models only create their clients. The server supplies the checkpointer (Postgres in a
deployment), so the graph is compiled without one; the primary reads what the sleep-time agent
has not consolidated from the durable transcript in Chroma, not from the checkpoint. Each run's
``config["configurable"]`` carries ``user_id`` (and optionally ``agent_id``); the server sets
``thread_id``. See docs/scale-out.md.

A client whose user starts typing can say so with a run without a thread whose input is
``{"typing": true}`` (``user_id`` in the config, as for a turn): sleep-time work pauses for that
user from then, preempting the step in flight, until their turn starts or 10 s pass without
another such run. The turn then finds the model free (#16, measured through the chat graph as
``sleeptime chat`` does it: in-flight TTFT p95 1.01x warm, against 1.62x unannounced).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph

from sleeptime_agent.config import (
    PRIMARY_MODEL_ENV,
    SLEEPTIME_MODEL_ENV,
    chroma_url,
    consolidation,
    default_store_path,
    delay_seconds,
    every_n_turns,
    model_spec,
)
from sleeptime_agent.graphs.chat import ChatState, build_chat_graph
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.models import for_role, resolve_model
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore

__all__ = ["catch_up", "graph", "make_graph", "make_memory", "memory"]

log = logging.getLogger(__name__)

_NEVER = 10**9  # every_n_turns that never fires: background runs off

HOLD_BOUND_SECONDS = 5.0
"""Starvation bound of the foreground gate when the sleep-time model is not the local one.

The gate holds sleep-time model calls back while any user turn runs, and a turn preempts the
call in flight: on the local model the two share one llama.cpp engine, and a turn must not wait
for a sleep-time step. With a provider (or any other) model the gate only defers the run's work
(its store writes and CPU), and with many users on one server a turn is nearly always in
flight: unbounded, the runs then made no progress until the load stopped (server-load, 20 users,
at most two runs at once: the backlog grew to 196 of 200 messages). So a call held back or
preempted for this long runs anyway, and memory still consolidates under constant load.
"""


def _shares_the_local_engine(model: BaseChatModel) -> bool:
    # By module, so that checking does not import the `local` extra.
    return type(model).__module__.startswith("sleeptime_agent.local")


def make_memory(primary: BaseChatModel | None = None) -> SleeptimeMemory:
    """The memory the served graph uses, from the environment (see the module docstring)."""
    primary = primary or resolve_model(None, env_var=PRIMARY_MODEL_ENV)
    sleeptime_spec = model_spec(SLEEPTIME_MODEL_ENV)
    # One model for both agents: each its own role (the local model: a llama.cpp slot each).
    sleeptime_model = (
        resolve_model(sleeptime_spec) if sleeptime_spec else for_role(primary, "sleeptime")
    )
    url = chroma_url()
    store = (
        ChromaBlockStore.from_url(url) if url else ChromaBlockStore.persistent(default_store_path())
    )
    scheduler = SleeptimeScheduler(every_n_turns() or _NEVER, delay_seconds())
    options: dict[str, Any] = {"consolidation": c} if (c := consolidation()) else {}
    mem = SleeptimeMemory(store, sleeptime_model, scheduler=scheduler, **options)
    if not _shares_the_local_engine(sleeptime_model):
        mem.gate.max_hold_seconds = HOLD_BOUND_SECONDS
    return mem


def make_graph(
    primary: BaseChatModel, mem: SleeptimeMemory
) -> CompiledStateGraph[ChatState, None, ChatState, ChatState]:
    """The served chat graph: ``primary`` answering from ``mem``."""
    return build_chat_graph(primary, mem, name="sleeptime_chat")


def catch_up(mem: SleeptimeMemory) -> int:
    """Schedule a run for every namespace whose transcript is ahead of its cursor.

    Returns how many were scheduled. Reads every transcript message's metadata once.
    """
    if mem.scheduler.every_n_turns >= _NEVER:
        return 0
    behind = 0
    for namespace in mem.transcript.namespaces():
        if mem.transcript.last_seq(namespace) > mem.transcript.cursor(namespace).seq:
            mem.scheduler.notify(namespace)
            mem.scheduler.flush(namespace)  # now, whatever every_n_turns says
            behind += 1
    return behind


def _catch_up_in_background(mem: SleeptimeMemory) -> None:
    def run() -> None:
        try:
            n = catch_up(mem)
            if n:
                log.info("scheduled sleep-time runs for %d namespaces left behind", n)
        except Exception:  # memory unreachable at start: the next turns catch up
            log.exception("startup catch-up of sleep-time runs failed")

    threading.Thread(target=run, name="sleeptime-catch-up", daemon=True).start()


_primary = for_role(resolve_model(None, env_var=PRIMARY_MODEL_ENV), "primary")
#: The memory behind :data:`graph` (its scheduler, ledger and store).
memory = make_memory(_primary)
graph = make_graph(_primary, memory)
# At exit the scheduler itself cancels its in-flight runs before the interpreter stops its
# thread pools (see sleeptime_agent.scheduler), so their leases are released.
_catch_up_in_background(memory)
