"""sleeptime-agent: sleep-time compute for LangGraph, with versioned memory blocks in Chroma."""

from .blocks import MemoryBlock
from .consolidation import Consolidator
from .errors import (
    BlockLimitExceeded,
    BlockNotFound,
    ConfigurationError,
    MemoryUnavailable,
    ReadOnlyBlock,
    SleeptimeError,
    VersionConflict,
)
from .graphs.chat import build_chat_graph
from .langgraph_store import ChromaStore, offline_index
from .ledger import Ledger, RunRecord
from .local_model import LocalChatModel
from .memory import MemoryView, SleeptimeMemory
from .models import resolve_model
from .scheduler import SleeptimeScheduler
from .store import ChromaBlockStore, Note
from .tools.memory import create_memory_tools

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
    "Note",
    "ReadOnlyBlock",
    "SleeptimeError",
    "VersionConflict",
    "offline_index",
]
