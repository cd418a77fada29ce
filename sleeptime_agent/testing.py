"""A scripted chat model for tests and overhead benchmarks: fixed replies, fixed latency.

It can bind tools (it ignores them) so the sleep-time loop runs on it, reports token usage
(4 characters a token) so budgets and the ledger see numbers, and records every prompt it got.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = [
    "TRICKY_NAMESPACE_PARTS",
    "HashingEmbeddings",
    "Reply",
    "ScriptedChatModel",
    "tool_call",
]

Reply = AIMessage | str | Callable[[list[BaseMessage]], AIMessage | str]

#: Namespace components that have broken naive stores: separators, quotes, JSON, NUL, operators
#: of Chroma's where syntax, non-ASCII, very long ones. Isolation tests fuzz with them.
TRICKY_NAMESPACE_PARTS: tuple[str, ...] = (
    "a",
    "ab",
    "a.b",
    "a/b",
    "/",
    "a\\b",
    'a"b',
    "a'b",
    "a,b",
    "a:b",
    "a|b",
    '["a"]',
    '["a", "b"]',
    "a b",
    " a",
    "ünï",
    "用户",
    "🙂",
    "a\x00b",
    "\x00",
    "a\nb",
    "%",
    "_",
    "*",
    "$eq",
    "$and",
    "null",
    "x" * 512,
    "é" * 300,
)


def tool_call(name: str, **args: Any) -> AIMessage:
    """An AIMessage that calls one tool."""
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}"}]
    )


class ScriptedChatModel(BaseChatModel):
    """Replies from a script, in order; the last reply repeats when ``repeat_last`` is set.

    A reply is an ``AIMessage``, a string, or a function of the prompt returning either.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[Any] = Field(default_factory=list)
    latency: float = 0.0
    """Seconds each call takes (slept, so other threads and tasks keep running)."""
    repeat_last: bool = False
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _it: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """Every prompt received, in order."""
        return list(self._calls)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        """Accept any tools: the script decides which calls are made."""
        return self

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            self._calls.append(list(messages))
            if self._it is None:
                script = list(self.replies)
                if self.repeat_last and script:
                    script_iter: Any = itertools.chain(script, itertools.repeat(script[-1]))
                else:
                    script_iter = iter(script)
                self._it = script_iter
            try:
                reply = next(self._it)
            except StopIteration:
                raise RuntimeError("ScriptedChatModel ran out of replies") from None
        if callable(reply):
            reply = reply(messages)
        msg = AIMessage(content=reply) if isinstance(reply, str) else reply.model_copy()
        tin = sum(len(str(m.content)) for m in messages) // 4 + 1
        tout = len(str(msg.content)) // 4 + 1 + 10 * len(msg.tool_calls)
        msg.usage_metadata = {
            "input_tokens": tin,
            "output_tokens": tout,
            "total_tokens": tin + tout,
        }
        return msg

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            time.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])


class HashingEmbeddings(Embeddings):
    """Deterministic bag-of-words hashing vectors: fast, offline, good enough for word overlap.

    For tests and for filling a store with many notes in benchmarks.
    """

    def __init__(self, dims: int = 384) -> None:
        self.dims = dims
        self.model = f"hashing-{dims}"

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * self.dims
        for word in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            vec[h % self.dims] += 1.0
        norm = sum(v * v for v in vec) ** 0.5 or 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents."""
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed a query."""
        return self._one(text)
