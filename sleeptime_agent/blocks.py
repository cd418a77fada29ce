"""Memory blocks with Letta-compatible field names, plus their version bookkeeping."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["AGENT_AUTHORS", "Author", "MemoryBlock", "diff_values", "order_blocks"]

Author = Literal["user", "primary", "sleeptime", "letta", "system"]
#: Authors that are agents: they may never write a read_only block.
AGENT_AUTHORS: frozenset[str] = frozenset({"primary", "sleeptime"})

DEFAULT_LIMIT = 5000  # Letta's default CORE_MEMORY_BLOCK_CHAR_LIMIT


class MemoryBlock(BaseModel):
    """A labelled block of core memory.

    ``label``, ``value``, ``limit``, ``description``, ``read_only`` and ``metadata`` carry Letta's
    names and meaning; ``version``, ``updated_at`` and ``author`` are set by the store on write.
    """

    label: str = Field(min_length=1, max_length=200)
    value: str = ""
    limit: int = Field(default=DEFAULT_LIMIT, gt=0)
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(default=0, ge=0)
    updated_at: datetime | None = None
    author: str | None = None

    def render(self) -> str:
        """Render the block for a prompt, in the tag shape Letta agents are used to."""
        desc = f"\n<description>{self.description}</description>" if self.description else ""
        ro = " read_only" if self.read_only else ""
        return (
            f'<{self.label} version="{self.version}" chars="{len(self.value)}/{self.limit}"{ro}>'
            f"{desc}\n<value>\n{self.value}\n</value>\n</{self.label}>"
        )


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def diff_values(old: MemoryBlock, new: MemoryBlock) -> str:
    """Return a unified diff from ``old`` to ``new`` (value lines, plus changed fields)."""
    lines = list(
        difflib.unified_diff(
            old.value.splitlines(),
            new.value.splitlines(),
            fromfile=f"{old.label}@v{old.version}",
            tofile=f"{new.label}@v{new.version}",
            lineterm="",
        )
    )
    for name in ("limit", "description", "read_only", "metadata"):
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            lines.append(f"# {name}: {a!r} -> {b!r}")
    return "\n".join(lines)


_ORDER = {"persona": 0, "human": 1, "anticipation": 9}


def order_blocks(blocks: list[MemoryBlock]) -> list[MemoryBlock]:
    """Persona, human, other blocks by label, anticipation last.

    Stable blocks first lets a prefix cache reuse them; the block that changes most (the
    anticipation block) goes last.
    """
    return sorted(blocks, key=lambda b: (_ORDER.get(b.label, 5), b.label))
