"""The llama.cpp server (xllamacpp) behind the local model: loading, sharing, and stream pumping.

One llama.cpp server per (model file, context size, threads, slots), a :class:`ServerKey`, is
loaded per process by :func:`get_server` and shared by every
:class:`~sleeptime_agent.local.chat_model.LocalChatModel` with those settings (and by raw callers
such as forced decoding in ``sleeptime_bench.logprobs``, through ``LocalChatModel.server()``).
Flash attention is off: on CPU it decodes ~37% slower at a 1.5k-token context (OFFLINE.md).

Requests and replies are llama.cpp's OpenAI-style dicts. ``handle_chat_completions`` blocks the
calling thread; given a callback it streams, calling back once per chunk in that thread, and the
callback's return value asks llama.cpp to stop generating. :func:`iter_stream` and
:func:`aiter_stream` run it aside and hand the chunks to the consumer as they come: when the
consumer goes away (an abandoned generator, a cancelled task) they set the stream's ``cancel``
event, so the slot is freed at the next token instead of after the whole reply. That per-stream
event is the one place a generation can be stopped from outside. llama.cpp reports errors in the
reply (as a chunk when streaming), not as exceptions: :func:`check_response` turns them into
:class:`LocalModelError`. :class:`StreamAccumulator` folds a stream back into the shape of a
non-streaming reply, and :func:`usage_metadata` reads its token counts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

from langchain_core.messages import UsageMetadata

from sleeptime_agent.errors import ConfigurationError, SleeptimeError
from sleeptime_agent.local.weights import LOCAL_EXTRA_HINT, QWEN_CODER_1_5B

__all__ = [
    "PROMPT_CACHE_MIB",
    "LocalModelError",
    "ServerKey",
    "StreamAccumulator",
    "aiter_stream",
    "check_response",
    "get_server",
    "iter_stream",
    "require_local_extra",
    "stream_request",
    "usage_metadata",
]


class LocalModelError(SleeptimeError, RuntimeError):
    """llama.cpp refused a request (e.g. the prompt exceeds the context size)."""

    code = "local_model_error"


def require_local_extra() -> None:
    """Check, without importing them, that xllamacpp and the weight packages are installed.

    Raises:
        ConfigurationError: The ``local`` extra is missing.
    """
    spec = QWEN_CODER_1_5B
    modules = ["xllamacpp", *(spec.part_module.format(n) for n in range(1, spec.n_parts + 1))]
    if any(importlib.util.find_spec(name) is None for name in modules):
        raise ConfigurationError(LOCAL_EXTRA_HINT)


# --- the shared llama.cpp server ------------------------------------------------------------


class ServerKey(NamedTuple):
    """The settings that make two llama.cpp servers different; one server is loaded per key."""

    path: str
    """Resolved path of the GGUF file."""
    n_ctx: int
    """Context size in tokens, shared by all slots."""
    n_threads: int
    """CPU threads for prompt processing and generation."""
    n_parallel: int
    """Slots: requests decoded at once."""
    n_batch: int = 16
    """Prompt tokens evaluated per step; a stream can only be stopped between steps.

    Measured (900-token prompt, 2 threads, one run): 56 prompt tokens/s at 16, 62 at 64, 61 at
    512. 16 gives up ~9% of prompt throughput so that a user turn waits ~0.6 s instead of ~2 s
    for the sleep-time batch in flight (the stop lands after it and one more).
    """


#: RAM for llama.cpp's cache of prompts that slots moved away from (MiB).
PROMPT_CACHE_MIB = 1024

_SERVERS: dict[ServerKey, Any] = {}
# One lock for lookups and loads: loading is rare and two concurrent first calls must not load
# the 1.1 GB model twice.
_SERVERS_LOCK = threading.Lock()


def _load_server(key: ServerKey) -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigurationError(LOCAL_EXTRA_HINT) from exc
    params = xllamacpp.CommonParams()
    params.model.path = key.path
    params.n_ctx = key.n_ctx
    params.n_parallel = key.n_parallel
    params.cpuparams.n_threads = key.n_threads
    params.cpuparams_batch.n_threads = key.n_threads
    # A cancelled stream stops only after the prompt batch in flight and the next one (the
    # progress chunk that carries the cancel comes after a batch, and llama.cpp has started the
    # next by then): small batches let a user turn preempt a long sleep-time prompt quickly.
    params.n_batch = params.n_ubatch = key.n_batch
    # llama.cpp keeps prompts a slot has moved away from in RAM and restores the best match:
    # with one slot, the user's prefix survives a sleep-time request and vice versa (a turn
    # after a preempted step restored its 620 cached tokens; the retried step its 260). A
    # probe of two users, their turns, 2,600-token steps (two preempted) and a pre-warm found
    # no eviction even at n_ctx=4096 (benchmarks/results/critical-path/probe_slots.py); with
    # one slot per role (LocalChatModel.for_role) nothing needs restoring in the first place.
    # Bounded, on a shared machine (llama.cpp's default is 8 GiB).
    params.cache_ram_mib = PROMPT_CACHE_MIB
    # On CPU flash attention decodes ~37% slower at a 1.5k-token context (OFFLINE.md).
    params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.verbosity = -1  # llama.cpp logs every request at info level otherwise
    return xllamacpp.Server(params)


def get_server(key: ServerKey) -> Any:
    """Return the process's llama.cpp server for ``key``, loading it on first use.

    Args:
        key: Model file and settings; the file must exist (see
            :func:`~sleeptime_agent.local.weights.ensure_gguf`).

    Returns:
        An ``xllamacpp.Server``: ``handle_chat_completions`` and ``handle_completions`` take a
        request dict (and, to stream, a chunk callback); ``listening_address`` serves the rest of
        llama.cpp's HTTP API (e.g. ``/tokenize``) on loopback.

    Raises:
        ConfigurationError: xllamacpp is not installed.
    """
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = _load_server(key)
        return server


def check_response(response: Any) -> dict[str, Any]:
    """Return a llama.cpp reply (or streamed chunk) as it is, or raise the error it carries.

    Args:
        response: What ``handle_chat_completions``/``handle_completions`` returned or streamed.

    Returns:
        ``response``, known to be a dict without an ``"error"`` key.

    Raises:
        LocalModelError: llama.cpp refused the request, or returned something else than a dict.
    """
    if isinstance(response, dict) and "error" in response:
        err = response["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise LocalModelError(f"llama.cpp refused the request: {msg}")
    if not isinstance(response, dict):
        raise LocalModelError(f"llama.cpp returned {type(response).__name__}, not a response")
    return response


# --- streams --------------------------------------------------------------------------------


def stream_request(request: dict[str, Any]) -> dict[str, Any]:
    """Return ``request`` set to stream, with the token usage in the last chunk.

    ``return_progress`` makes llama.cpp send a chunk (``prompt_progress``, no content) after
    each prompt batch, so that a long prompt evaluation can be cancelled too, not only the
    generation: the callback only runs when a chunk arrives.
    """
    return {
        **request,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_progress": True,
    }


_END = object()


def iter_stream(server: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the raw chunk dicts of a streaming chat request; stop generating when abandoned.

    Args:
        server: A server from :func:`get_server`.
        request: A chat completion request (see :func:`stream_request`).

    Yields:
        Each chunk, checked by :func:`check_response`.

    Raises:
        LocalModelError: llama.cpp refused the request.
    """
    chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancel = threading.Event()
    outcome: list[Any] = []

    def on_chunk(chunk: dict[str, Any]) -> bool:
        chunks.put(chunk)
        return cancel.is_set()  # True asks llama.cpp to stop generating

    def run() -> None:
        # handle_chat_completions blocks and calls on_chunk in this thread: run it aside so the
        # caller can consume chunks as they come.
        try:
            outcome.append(server.handle_chat_completions(request, on_chunk))
        except BaseException as exc:
            outcome.append(exc)
        finally:
            chunks.put(_END)

    worker = threading.Thread(target=run, name="sleeptime-local-stream", daemon=True)
    worker.start()
    try:
        while (item := chunks.get()) is not _END:
            yield check_response(item)  # errors come as a chunk when streaming
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        if outcome[0] is not None:
            check_response(outcome[0])
    finally:
        cancel.set()
        worker.join()


async def aiter_stream(server: Any, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Async twin of :func:`iter_stream`: a cancelled consumer stops the generation too.

    Args:
        server: A server from :func:`get_server`.
        request: A chat completion request (see :func:`stream_request`).

    Yields:
        Each chunk, checked by :func:`check_response`.

    Raises:
        LocalModelError: llama.cpp refused the request.
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def on_chunk(chunk: dict[str, Any]) -> bool:
        try:
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
        except RuntimeError:  # the loop is closed: nobody listens any more
            return True
        return cancel.is_set()

    done = loop.run_in_executor(None, server.handle_chat_completions, request, on_chunk)
    # Scheduled after every chunk the worker queued, so it arrives last.
    done.add_done_callback(lambda _: chunks.put_nowait(_END))
    try:
        while (item := await chunks.get()) is not _END:
            yield check_response(item)
        result = done.result()
        if result is not None:
            check_response(result)
    finally:
        # On cancellation (e.g. a newer user message supersedes a sleep-time run) this frees the
        # single llama.cpp slot at the next token instead of after the whole reply.
        cancel.set()


class StreamAccumulator:
    """Folds streamed chunk dicts into the shape of a non-streaming response."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.response: dict[str, Any] = {}
        self.finish_reason: str | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        """Take in one streamed chunk."""
        for choice in chunk.get("choices") or []:
            if text := (choice.get("delta") or {}).get("content"):
                self.parts.append(text)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        for key in ("id", "model", "usage", "timings"):
            if chunk.get(key) is not None:
                self.response[key] = chunk[key]

    def result(self) -> dict[str, Any]:
        """Return the chunks so far as one non-streaming response."""
        message = {"role": "assistant", "content": "".join(self.parts)}
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {**self.response, "choices": [choice]}


def usage_metadata(response: dict[str, Any]) -> UsageMetadata | None:
    """Read the token counts of a response (or of a stream's last chunk).

    Args:
        response: A checked llama.cpp response or chunk.

    Returns:
        The counts, with the prompt tokens served from llama.cpp's prefix cache as
        ``input_token_details["cache_read"]``; None if the response carries no usage.
    """
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens", 0))
    completion = int(usage.get("completion_tokens", 0))
    meta = UsageMetadata(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=int(usage.get("total_tokens", prompt + completion)),
    )
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        meta["input_token_details"] = {"cache_read": int(cached)}
    return meta
