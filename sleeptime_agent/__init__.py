"""sleeptime-agent: sleep-time compute for LangGraph, with versioned memory blocks in Chroma.

``import sleeptime_agent`` loads neither the local model's runtime nor letta-client nor the
benchmark harness: :class:`LocalChatModel` is imported on first use (extra ``local``), the Letta
bridge lives in :mod:`sleeptime_agent.letta` (extra ``letta``).
"""

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.errors import (
    BlockLimitExceeded,
    BlockNotFound,
    ConfigurationError,
    MemoryUnavailable,
    MissingExtra,
    ReadOnlyBlock,
    SleeptimeError,
    VersionConflict,
)
from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.ledger import Ledger, RunRecord
from sleeptime_agent.memory import MemoryView, SleeptimeMemory
from sleeptime_agent.models import resolve_model
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage import ChromaBlockStore, ChromaStore, Note, offline_index
from sleeptime_agent.tools import create_memory_tools

__all__ = [
    "Consolidator",
    "Ledger",
    "LocalChatModel",
    "MemoryView",
    "RunRecord",
    "SleeptimeMemory",
    "SleeptimeScheduler",
    "build_chat_graph",
    "create_memory_tools",
    "resolve_model",
    "BlockLimitExceeded",
    "BlockNotFound",
    "ChromaBlockStore",
    "ChromaStore",
    "ConfigurationError",
    "MemoryBlock",
    "MemoryUnavailable",
    "MissingExtra",
    "Note",
    "ReadOnlyBlock",
    "SleeptimeError",
    "VersionConflict",
    "offline_index",
]


def __getattr__(name: str) -> object:
    # Lazy so that importing the library does not need (or load) the `local` extra.
    if name == "LocalChatModel":
        from sleeptime_agent.local import LocalChatModel

        return LocalChatModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
