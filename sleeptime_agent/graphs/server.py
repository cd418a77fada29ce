"""The paired chat graph for LangGraph Server (``langgraph dev`` / ``langgraph up``).

``langgraph.json`` at the repository root points at :data:`graph`. The server loads this file by
path, so it imports the package absolutely. Configuration comes from the environment:

* ``SLEEPTIME_MODEL``: the primary model, ``local`` (default) or ``provider:model``;
* ``SLEEPTIME_SLEEPTIME_MODEL``: the sleep-time model (default: the primary one);
* ``SLEEPTIME_CHROMA_URL``: a Chroma server (``http://host:port``), required as soon as more than
  one process serves the graph; without it, the embedded store under ``$SLEEPTIME_HOME``.

Building the graph loads no model: the local model is loaded on its first call, and provider
models only create their clients. The server supplies the checkpointer (Postgres in a
deployment), so the graph is compiled without one; the primary reads what the sleep-time agent
has not consolidated from the durable transcript in Chroma, not from the checkpoint. Each run's
``config["configurable"]`` carries ``user_id`` (and optionally ``agent_id``); the server sets
``thread_id``. See docs/scale-out.md.
"""

from __future__ import annotations

import os

from langgraph.graph.state import CompiledStateGraph

from sleeptime_agent.config import default_store_path
from sleeptime_agent.graphs.chat import ChatState, build_chat_graph
from sleeptime_agent.models import PRIMARY_MODEL_ENV, SLEEPTIME_MODEL_ENV, resolve_model
from sleeptime_agent.store import ChromaBlockStore

__all__ = ["CHROMA_URL_ENV", "graph", "make_graph"]

CHROMA_URL_ENV = "SLEEPTIME_CHROMA_URL"


def make_graph() -> CompiledStateGraph[ChatState, None, ChatState, ChatState]:
    """Build the chat graph from the environment (see the module docstring)."""
    model = resolve_model(None, env_var=PRIMARY_MODEL_ENV)
    sleeptime_spec = os.environ.get(SLEEPTIME_MODEL_ENV, "").strip()
    sleeptime_model = resolve_model(sleeptime_spec) if sleeptime_spec else model
    url = os.environ.get(CHROMA_URL_ENV, "").strip()
    store = (
        ChromaBlockStore.from_url(url) if url else ChromaBlockStore.persistent(default_store_path())
    )
    return build_chat_graph(model, sleeptime_model, store=store, name="sleeptime_chat")


graph = make_graph()
