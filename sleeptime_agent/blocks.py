"""Memory blocks with Letta-compatible field names, their version bookkeeping, and namespaces.

A namespace is a tuple of strings, ``(user_id,)`` or ``(user_id, agent_id)``, read from a run's
config by :func:`namespace_from_config`; the agent authors (:data:`AGENT_AUTHORS`) are the ones
that may never write a read_only block.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from sleeptime_agent.errors import ConfigurationError

__all__ = [
    "AGENT_AUTHORS",
    "Author",
    "MemoryBlock",
    "Namespace",
    "diff_values",
    "namespace_from_config",
    "order_blocks",
]

Namespace: TypeAlias = tuple[str, ...]

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


def namespace_from_config(config: RunnableConfig | None) -> Namespace:
    """``(user_id,)`` or ``(user_id, agent_id)`` from ``config["configurable"]``."""
    conf = (config or {}).get("configurable", {})
    user_id = conf.get("user_id")
    if not user_id:
        raise ConfigurationError("set config['configurable']['user_id'] to choose whose memory")
    agent_id = conf.get("agent_id")
    namespace = (str(user_id), str(agent_id)) if agent_id else (str(user_id),)
    if any("\x00" in part for part in namespace):
        # NUL is reserved: (user_id, "\x00sleeptime") holds that user's cursor and lease.
        raise ConfigurationError("user_id and agent_id may not contain NUL characters")
    return namespace
