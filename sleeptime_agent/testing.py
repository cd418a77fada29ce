"""Scripted chat models for tests and benchmarks: fixed replies, fixed latency.

:class:`ScriptedChatModel` can bind tools (it ignores them) so the sleep-time loop runs on it,
reports token usage (4 characters a token) so budgets and the ledger see numbers, and records
every prompt it got. :func:`scripted_model` builds one from a spec such as
``scripted:memorize?latency=0.8``, which :func:`~sleeptime_agent.models.resolve_model` accepts,
so a server configured from the environment (``SLEEPTIME_MODEL``) can run on scripted models.
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
    "SCRIPTED_PREFIX",
    "TRICKY_NAMESPACE_PARTS",
    "HashingEmbeddings",
    "Reply",
    "ScriptedChatModel",
    "memorize_reply",
    "recall_reply",
    "scripted_model",
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
    record: bool = True
    """Keep every prompt in :attr:`calls` (off in long-running servers: it grows per call)."""
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
            if self.record:
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


# -- scripted models selectable from the environment ----------------------------------------------

SCRIPTED_PREFIX = "scripted:"
"""Model specs starting with this resolve to :func:`scripted_model` (tests, load benchmarks)."""

_USER_LINE = re.compile(r"^\[\d+\] user: (.+)$", re.MULTILINE)
_HUMAN_VALUE = re.compile(r"<human\b[^>]*>.*?<value>\n(.*?)\n</value>", re.DOTALL)


def _human_block(text: str) -> list[str]:
    match = _HUMAN_VALUE.search(text)
    return [line for line in match.group(1).split("\n") if line.strip()] if match else []


def recall_reply(messages: list[BaseMessage]) -> str:
    """The primary of ``scripted:recall``: says what the human block in its prompt holds."""
    system = next((str(m.content) for m in messages if m.type == "system"), "")
    facts = _human_block(system)
    return "I remember: " + " | ".join(facts) if facts else "I don't know anything about you yet."


def memorize_reply(messages: list[BaseMessage]) -> AIMessage:
    """The sleep-time agent of ``scripted:memorize``: saves every new user line, then finishes.

    It reads the run's prompt (blocks, then the new transcript), inserts the user's lines that
    the human block does not hold yet in one ``memory_insert``, and finishes on the next step
    (or at once when there is nothing new), so a run is two model calls at most.
    """
    if any(m.type == "tool" for m in messages):
        return tool_call("memory_finish_edits")
    prompt = "\n".join(str(m.content) for m in messages if m.type == "human")
    known = set(_human_block(prompt))
    new: list[str] = []
    for line in _USER_LINE.findall(prompt):
        line = line.strip()
        if line.endswith("?"):
            continue  # a question is not a fact about the user
        if line not in known and line not in new:
            new.append(line)
    if not new:
        return tool_call("memory_finish_edits")
    return tool_call("memory_insert", label="human", new_str="\n".join(new))


_BEHAVIOURS: dict[str, Callable[[list[BaseMessage]], AIMessage | str]] = {
    "recall": recall_reply,
    "memorize": memorize_reply,
}


def scripted_model(spec: str) -> ScriptedChatModel:
    """A scripted model from a spec: ``scripted:<behaviour>[?latency=<seconds>]``.

    Behaviours: ``recall`` (a primary that answers with the human block it was shown) and
    ``memorize`` (a sleep-time agent that saves each new user line into the human block).
    ``latency`` is slept on every call (default 0), standing in for a real model's time.

    Raises:
        ValueError: Unknown behaviour or a malformed option.
    """
    body = spec.removeprefix(SCRIPTED_PREFIX)
    name, _, query = body.partition("?")
    behaviour = _BEHAVIOURS.get(name.strip())
    if behaviour is None:
        known = ", ".join(sorted(_BEHAVIOURS))
        raise ValueError(f"unknown scripted model {name!r}; known: {known}")
    latency = 0.0
    for option in filter(None, query.split("&")):
        key, _, value = option.partition("=")
        if key != "latency":
            raise ValueError(f"unknown option {key!r} in {spec!r}; known: latency")
        try:
            latency = float(value)
        except ValueError:
            raise ValueError(f"latency must be a number of seconds in {spec!r}") from None
        if latency < 0:
            raise ValueError(f"latency must be >= 0 in {spec!r}")
    return ScriptedChatModel(replies=[behaviour], repeat_last=True, latency=latency, record=False)
