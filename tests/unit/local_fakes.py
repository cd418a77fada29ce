"""Tools shared by the local model's unit tests (protocol and chat model)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool


@tool
def memory_replace(label: str, old_str: str, new_str: str) -> str:
    """Replace old_str with new_str in the block `label`."""
    return "ok"


@tool
def memory_insert(label: str, new_str: str) -> str:
    """Append new_str to the block `label`."""
    return "ok"


@tool
def memory_finish_edits() -> str:
    """Stop editing: memory is up to date."""
    return "ok"


TOOLS = [memory_replace, memory_insert, memory_finish_edits]


def openai_tools() -> list[dict[str, Any]]:
    return [convert_to_openai_tool(t) for t in TOOLS]
