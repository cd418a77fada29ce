"""The memory tools the agents call: memory edits and archival notes, with Letta's names.

``schemas`` holds the argument schemas the model sees, ``guards`` the fact-loss and grounding
checks, ``editor`` the :class:`MemoryEditor` that applies edits with compare-and-swap, and
``langchain`` :func:`create_memory_tools`, the editor as LangChain tools.
"""

from sleeptime_agent.tools.editor import MemoryEditor, ToolCallInvalid, ToolError
from sleeptime_agent.tools.guards import dropped_facts, ungrounded_facts
from sleeptime_agent.tools.langchain import create_memory_tools
from sleeptime_agent.tools.schemas import (
    TOOL_ARGS,
    ArchivalInsertArgs,
    ArchivalSearchArgs,
    FinishArgs,
    MemoryInsertArgs,
    MemoryReplaceArgs,
    MemoryRethinkArgs,
    tool_specs,
)

__all__ = [
    "ArchivalInsertArgs",
    "ArchivalSearchArgs",
    "FinishArgs",
    "MemoryEditor",
    "MemoryInsertArgs",
    "MemoryReplaceArgs",
    "MemoryRethinkArgs",
    "TOOL_ARGS",
    "ToolCallInvalid",
    "ToolError",
    "create_memory_tools",
    "dropped_facts",
    "tool_specs",
    "ungrounded_facts",
]
