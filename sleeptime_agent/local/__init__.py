"""The embedded local model (extra ``local``): Qwen2.5-Coder-1.5B GGUF on llama.cpp, no network.

Importing this package without the extra raises :class:`~sleeptime_agent.errors.MissingExtra`
with the one-line install hint.
"""

from __future__ import annotations

from importlib.util import find_spec

from sleeptime_agent.errors import MissingExtra

if find_spec("xllamacpp") is None:
    raise MissingExtra("local", "xllamacpp")

from sleeptime_agent.local.chat_model import (  # noqa: E402 - after the extra check
    LocalChatModel,
    LocalModelError,
    require_local_extra,
)

__all__ = ["LocalChatModel", "LocalModelError", "require_local_extra"]
