"""sleeptime-agent: sleep-time compute for LangGraph, with versioned memory blocks in Chroma."""

from .blocks import MemoryBlock
from .errors import (
    BlockLimitExceeded,
    BlockNotFound,
    ConfigurationError,
    MemoryUnavailable,
    ReadOnlyBlock,
    SleeptimeError,
    VersionConflict,
)
from .langgraph_store import ChromaStore, offline_index
from .store import ChromaBlockStore, Note

__all__ = [
    "BlockLimitExceeded",
    "BlockNotFound",
    "ChromaBlockStore",
    "ChromaStore",
    "ConfigurationError",
    "MemoryBlock",
    "MemoryUnavailable",
    "Note",
    "ReadOnlyBlock",
    "SleeptimeError",
    "VersionConflict",
    "offline_index",
]
