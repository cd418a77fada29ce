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

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph

from sleeptime_agent.config import (
    PRIMARY_MODEL_ENV,
    SLEEPTIME_MODEL_ENV,
    chroma_url,
    default_store_path,
    model_spec,
)
from sleeptime_agent.graphs.chat import ChatState, build_chat_graph
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.models import resolve_model
from sleeptime_agent.storage.block_store import ChromaBlockStore

__all__ = ["graph", "make_graph", "make_memory", "memory"]


def make_memory(primary: BaseChatModel | None = None) -> SleeptimeMemory:
    """The memory the served graph uses, from the environment (see the module docstring)."""
    primary = primary or resolve_model(None, env_var=PRIMARY_MODEL_ENV)
    sleeptime_spec = model_spec(SLEEPTIME_MODEL_ENV)
    sleeptime_model = resolve_model(sleeptime_spec) if sleeptime_spec else primary
    url = chroma_url()
    store = (
        ChromaBlockStore.from_url(url) if url else ChromaBlockStore.persistent(default_store_path())
    )
    return SleeptimeMemory(store, sleeptime_model)


def make_graph(
    primary: BaseChatModel, mem: SleeptimeMemory
) -> CompiledStateGraph[ChatState, None, ChatState, ChatState]:
    """The served chat graph: ``primary`` answering from ``mem``."""
    return build_chat_graph(primary, mem, name="sleeptime_chat")


_primary = resolve_model(None, env_var=PRIMARY_MODEL_ENV)
#: The memory behind :data:`graph` (its scheduler, ledger and store).
memory = make_memory(_primary)
graph = make_graph(_primary, memory)
