"""One small error hierarchy.

Two kinds of errors live here: those a *model* can fix (bad tool arguments) are turned into
tool messages by the tools; those a *developer* must fix (configuration, an unreachable server)
propagate. All of them subclass :class:`SleeptimeError` so callers can catch the family.
"""

from __future__ import annotations

__all__ = [
    "BlockLimitExceeded",
    "BlockNotFound",
    "ConfigurationError",
    "MemoryUnavailable",
    "MissingExtra",
    "ReadOnlyBlock",
    "SleeptimeError",
    "VersionConflict",
]


class SleeptimeError(Exception):
    """Base class of every error this library raises on purpose."""

    code: str = "sleeptime_error"


class VersionConflict(SleeptimeError):
    """A compare-and-swap write lost: the block changed since the writer read it."""

    code = "version_conflict"

    def __init__(self, label: str, expected: int, current: int) -> None:
        super().__init__(
            f"block {label!r} is at version {current}, not {expected}: re-read it and retry"
        )
        self.label = label
        self.expected = expected
        self.current = current


class BlockLimitExceeded(SleeptimeError, ValueError):
    """A value is longer than its block's character limit."""

    code = "block_limit_exceeded"

    def __init__(self, label: str, length: int, limit: int) -> None:
        super().__init__(
            f"block {label!r} would hold {length} characters, over its limit of {limit}"
        )
        self.label = label
        self.length = length
        self.limit = limit


class ReadOnlyBlock(SleeptimeError, PermissionError):
    """An agent tried to write a read_only block."""

    code = "read_only_block"

    def __init__(self, label: str, author: str) -> None:
        super().__init__(f"block {label!r} is read_only; author {author!r} may not change it")
        self.label = label
        self.author = author


class BlockNotFound(SleeptimeError, KeyError):
    """No block (or no such version) under this label in this namespace."""

    code = "block_not_found"

    def __init__(self, label: str, version: int | None = None) -> None:
        what = f"block {label!r}" if version is None else f"version {version} of block {label!r}"
        super().__init__(f"{what} does not exist")
        self.label = label
        self.version = version

    def __str__(self) -> str:
        # KeyError would quote the message; keep it readable.
        return str(self.args[0])


class ConfigurationError(SleeptimeError, ValueError):
    """The developer's configuration is wrong (unknown provider, missing extra, bad option)."""

    code = "configuration_error"


class MissingExtra(ConfigurationError, ImportError):
    """An optional integration was imported without its extra (``local``, ``letta``, ``bench``).

    Also an :class:`ImportError`, so ``except ImportError`` around an optional import still works.
    """

    code = "missing_extra"

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"this needs the '{extra}' extra (cannot import {module}): "
            f"pip install 'sleeptime-agent[{extra}]'"
        )
        self.extra = extra


class MemoryUnavailable(SleeptimeError, ConnectionError):
    """The memory backend (a Chroma server) cannot be reached."""

    code = "memory_unavailable"
