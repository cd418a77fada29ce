"""Everything the library keeps in Chroma, one module per store, on shared plumbing.

- :mod:`~sleeptime_agent.storage.chroma`: client constructors, settings, error mapping (shared).
- :mod:`~sleeptime_agent.storage.block_store`: :class:`ChromaBlockStore`, versioned memory blocks
  (compare-and-swap, history) and archival notes.
- :mod:`~sleeptime_agent.storage.transcript`: the durable transcript and the consolidation cursor.
- :mod:`~sleeptime_agent.storage.langgraph_store`: :class:`ChromaStore`, a LangGraph ``BaseStore``.
- :mod:`~sleeptime_agent.storage.embeddings`: the offline embedding function.
"""

from __future__ import annotations

from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace, Note
from sleeptime_agent.storage.embeddings import default_embeddings
from sleeptime_agent.storage.langgraph_store import ChromaStore, offline_index
from sleeptime_agent.storage.transcript import Transcript, TranscriptMessage

__all__ = [
    "ChromaBlockStore",
    "ChromaStore",
    "Namespace",
    "Note",
    "Transcript",
    "TranscriptMessage",
    "default_embeddings",
    "offline_index",
]
