"""The memory tools' argument schemas, with Letta's tool names and argument names.

Each schema's docstring is the tool description the model sees; :data:`TOOL_ARGS` maps a tool
name to its schema and :func:`tool_specs` turns them into OpenAI-format specs for ``bind_tools``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ArchivalInsertArgs",
    "ArchivalSearchArgs",
    "FinishArgs",
    "MemoryInsertArgs",
    "MemoryReplaceArgs",
    "MemoryRethinkArgs",
    "TOOL_ARGS",
    "tool_specs",
]


class MemoryReplaceArgs(BaseModel):
    """Replace one exact occurrence of old_str in a memory block with new_str."""

    label: str = Field(description="Label of the block to edit.")
    old_str: str = Field(description="Text copied exactly from the block; must occur once.")
    new_str: str = Field(description="Replacement text (may be empty to delete old_str).")


class MemoryInsertArgs(BaseModel):
    """Insert text as new line(s) into a memory block."""

    label: str = Field(description="Label of the block to edit.")
    new_str: str = Field(description="Text to insert, e.g. one new fact.")
    insert_line: int = Field(
        default=-1, description="Line number to insert after (0 = at the top, -1 = at the end)."
    )


class MemoryRethinkArgs(BaseModel):
    """Rewrite a whole memory block, keeping every fact that is still true."""

    label: str = Field(description="Label of the block to rewrite (created if missing).")
    new_memory: str = Field(description="The complete new value of the block.")
    removed: str = Field(
        default="",
        description="Facts deliberately dropped from the block and why (e.g. outdated).",
    )


class FinishArgs(BaseModel):
    """Finish editing memory for now."""


class ArchivalInsertArgs(BaseModel):
    """Save a detail to long-term archival memory (searchable later)."""

    content: str = Field(description="The text to archive.")


class ArchivalSearchArgs(BaseModel):
    """Search long-term archival memory."""

    query: str = Field(description="What to look for.")
    k: int = Field(default=5, ge=1, le=50, description="How many results.")


TOOL_ARGS: dict[str, type[BaseModel]] = {
    "memory_replace": MemoryReplaceArgs,
    "memory_insert": MemoryInsertArgs,
    "memory_rethink": MemoryRethinkArgs,
    "memory_finish_edits": FinishArgs,
    "archival_memory_insert": ArchivalInsertArgs,
    "archival_memory_search": ArchivalSearchArgs,
}


def tool_specs(
    names: tuple[str, ...] = tuple(TOOL_ARGS), labels: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """OpenAI-format tool specs (name, description, JSON schema) for ``bind_tools``.

    With ``labels``, the ``label`` argument is an enum of them: providers with constrained
    decoding (and the local model's grammar) then cannot name a block that does not exist or
    that the agent may not edit. Small models otherwise invent labels from descriptions.
    """
    specs = []
    for name in names:
        schema = TOOL_ARGS[name]
        params = schema.model_json_schema()
        params.pop("title", None)
        params.pop("description", None)
        if labels and "label" in params.get("properties", {}):
            params["properties"]["label"] = {
                **params["properties"]["label"],
                "enum": list(labels),
            }
        specs.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": (schema.__doc__ or name).strip(),
                    "parameters": params,
                },
            }
        )
    return specs
