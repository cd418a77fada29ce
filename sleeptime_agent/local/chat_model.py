"""LocalChatModel: the bundled Qwen2.5-Coder-1.5B GGUF on llama.cpp (xllamacpp), no network.

The model does not emit native tool calls that llama.cpp can parse, so tool calling goes through
JSON-schema-constrained output instead: the grammar admits exactly one object
``{"name": <tool>, "arguments": {...}}`` per reply, the tools are described in the system prompt,
and the reply is parsed back into LangChain ``tool_calls`` (or ``invalid_tool_calls``, never an
exception, when it cannot be used). Earlier tool calls and tool results in the history are
rendered back as that JSON and as ``<tool_response>`` user turns, so multi-step loops work.

One llama.cpp server per (model file, context size, threads, slots) is loaded per process and
shared by every :class:`LocalChatModel` instance.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict

from sleeptime_agent.errors import ConfigurationError, SleeptimeError
from sleeptime_agent.local.weights import LOCAL_EXTRA_HINT, QWEN_CODER_1_5B, ensure_gguf
from sleeptime_agent.prompts import (
    STRUCTURED_PROMPT,
    TOOL_CHOICE_AUTO,
    TOOL_CHOICE_FORCED,
    TOOL_CHOICE_REQUIRED,
    TOOL_ENTRY,
    TOOL_RESPONSE,
    TOOLS_PROMPT,
)

__all__ = [
    "TEXT_REPLY_NAME",
    "LocalChatModel",
    "LocalModelError",
    "build_tool_schema",
    "parse_tool_reply",
    "render_messages",
    "render_tools_prompt",
    "require_local_extra",
]

#: Pseudo-tool through which the model answers in text when ``tool_choice="auto"``.
TEXT_REPLY_NAME = "respond"

ToolChoiceMode = Literal["auto", "none", "required"]


class LocalModelError(SleeptimeError, RuntimeError):
    """llama.cpp refused a request (e.g. the prompt exceeds the context size)."""

    code = "local_model_error"


# --- the shared llama.cpp server ------------------------------------------------------------

_ServerKey = tuple[str, int, int, int]
_SERVERS: dict[_ServerKey, Any] = {}
# One lock for lookups and loads: loading is rare and two concurrent first calls must not load
# the 1.1 GB model twice.
_SERVERS_LOCK = threading.Lock()


def require_local_extra() -> None:
    """Check, without importing them, that xllamacpp and the weight packages are installed.

    Raises:
        ConfigurationError: The ``local`` extra is missing.
    """
    spec = QWEN_CODER_1_5B
    modules = ["xllamacpp", *(spec.part_module.format(n) for n in range(1, spec.n_parts + 1))]
    if any(importlib.util.find_spec(name) is None for name in modules):
        raise ConfigurationError(LOCAL_EXTRA_HINT)


def _load_server(key: _ServerKey) -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigurationError(LOCAL_EXTRA_HINT) from exc
    path, n_ctx, n_threads, n_parallel = key
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    params.n_parallel = n_parallel
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    # On CPU flash attention decodes ~37% slower at a 1.5k-token context (OFFLINE.md).
    params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.verbosity = -1  # llama.cpp logs every request at info level otherwise
    return xllamacpp.Server(params)


def _get_server(key: _ServerKey) -> Any:
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = _load_server(key)
        return server


def _check_response(response: Any) -> dict[str, Any]:
    if isinstance(response, dict) and "error" in response:
        err = response["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise LocalModelError(f"llama.cpp refused the request: {msg}")
    if not isinstance(response, dict):
        raise LocalModelError(f"llama.cpp returned {type(response).__name__}, not a response")
    return response


_END = object()


def _iter_stream(server: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield raw chunk dicts of a streaming request; stop generating when abandoned."""
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
            yield _check_response(item)  # errors come as a chunk when streaming
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        if outcome[0] is not None:
            _check_response(outcome[0])
    finally:
        cancel.set()
        worker.join()


async def _aiter_stream(server: Any, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Async twin of :func:`_iter_stream`: a cancelled consumer stops the generation too."""
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
            yield _check_response(item)
        result = done.result()
        if result is not None:
            _check_response(result)
    finally:
        # On cancellation (e.g. a newer user message supersedes a sleep-time run) this frees the
        # single llama.cpp slot at the next token instead of after the whole reply.
        cancel.set()


class _Accumulator:
    """Folds streamed chunk dicts into the shape of a non-streaming response."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.response: dict[str, Any] = {}
        self.finish_reason: str | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or []:
            if text := (choice.get("delta") or {}).get("content"):
                self.parts.append(text)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        for key in ("id", "model", "usage", "timings"):
            if chunk.get(key) is not None:
                self.response[key] = chunk[key]

    def result(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(self.parts)}
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {**self.response, "choices": [choice]}


# --- tools as constrained JSON --------------------------------------------------------------


@dataclass(frozen=True)
class _ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


def _tool_specs(tools: Sequence[dict[str, Any]]) -> list[_ToolSpec]:
    specs = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        # Tighter grammar and no invented arguments: JSON schema allows extra keys by default.
        params.setdefault("additionalProperties", False)
        specs.append(_ToolSpec(fn["name"], fn.get("description") or "", params))
    return specs


def _text_reply_name(names: Sequence[str]) -> str:
    name = TEXT_REPLY_NAME
    while name in names:  # never shadow a real tool
        name = f"_{name}"
    return name


def build_tool_schema(
    tools: Sequence[dict[str, Any]], *, text_reply: str | None = None
) -> dict[str, Any]:
    """Build the JSON schema that admits exactly one call of one of ``tools``.

    Args:
        tools: OpenAI-format tools (as from ``convert_to_openai_tool``).
        text_reply: If given, also admit ``{"name": text_reply, "arguments": {"content": str}}``,
            the model's way to answer in text.

    Returns:
        A schema whose ``anyOf`` has one ``{"name": {"const": ...}, "arguments": ...}`` branch
        per tool.
    """
    branches = [(spec.name, spec.parameters) for spec in _tool_specs(tools)]
    if text_reply is not None:
        content = {
            "type": "object",
            "properties": {"content": {"type": "string"}},
            "required": ["content"],
            "additionalProperties": False,
        }
        branches.append((text_reply, content))
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for name, params in branches
        ]
    }


def render_tools_prompt(
    tools: Sequence[dict[str, Any]],
    mode: ToolChoiceMode,
    *,
    forced: str | None = None,
    text_reply: str = TEXT_REPLY_NAME,
) -> str:
    """Describe ``tools`` (name, description, argument schema) for the system prompt."""
    entries = "\n\n".join(
        TOOL_ENTRY.format(
            name=spec.name,
            description=spec.description.strip() or "(no description)",
            schema=json.dumps(spec.parameters, ensure_ascii=False),
        )
        for spec in _tool_specs(tools)
    )
    if forced is not None:
        choice = TOOL_CHOICE_FORCED.format(name=forced)
    elif mode == "auto":
        choice = TOOL_CHOICE_AUTO.format(text=text_reply)
    else:
        choice = TOOL_CHOICE_REQUIRED
    return TOOLS_PROMPT.format(choice=choice, tools=entries)


def _new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _argument_problem(args: dict[str, Any], schema: dict[str, Any]) -> str | None:
    # The grammar already enforces the schema; what slips through is a reply cut off early or
    # a schema feature the grammar engine ignored. Check the cheap, common things.
    missing = [k for k in schema.get("required", []) if k not in args]
    if missing:
        return f"missing required argument(s): {', '.join(missing)}"
    props = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        extra = [k for k in args if k not in props]
        if extra:
            return f"unknown argument(s): {', '.join(extra)}"
    return None


def parse_tool_reply(
    text: str,
    tools: Sequence[dict[str, Any]],
    *,
    text_reply: str | None = None,
    finish_reason: str | None = None,
) -> AIMessage:
    """Turn the model's constrained JSON reply into an AIMessage; never raises.

    Args:
        text: The raw reply.
        tools: The OpenAI-format tools the reply may call.
        text_reply: Name of the pseudo-tool that carries a text answer, if allowed.
        finish_reason: llama.cpp's finish reason, to explain a cut-off reply.

    Returns:
        An AIMessage with one entry in ``tool_calls``, or with text ``content`` (text reply),
        or with one entry in ``invalid_tool_calls`` whose ``error`` tells the model what was
        wrong, so the caller can feed it back.
    """
    call_id = _new_call_id()
    specs = {spec.name: spec for spec in _tool_specs(tools)}

    def invalid(error: str, name: str | None = None) -> AIMessage:
        bad = InvalidToolCall(
            type="invalid_tool_call", name=name, args=text, id=call_id, error=error
        )
        return AIMessage(content="", invalid_tool_calls=[bad])

    try:
        data = json.loads(text)
    except ValueError as exc:
        cut = " (the reply was cut off by max_tokens)" if finish_reason == "length" else ""
        return invalid(f"the reply is not valid JSON{cut}: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return invalid('expected an object {"name": <tool name>, "arguments": {...}}')
    name = data["name"]
    args = data.get("arguments", {})
    if not isinstance(args, dict):
        return invalid("'arguments' must be a JSON object", name)
    if text_reply is not None and name == text_reply:
        content = args.get("content")
        if isinstance(content, str):
            return AIMessage(content=content)
        return invalid("a text reply needs a string 'content' argument", name)
    if name not in specs:
        return invalid(f"unknown tool {name!r}; available: {', '.join(specs)}", name)
    problem = _argument_problem(args, specs[name].parameters)
    if problem is not None:
        return invalid(f"bad arguments for {name}: {problem}", name)
    return AIMessage(content="", tool_calls=[ToolCall(name=name, args=args, id=call_id)])


# --- rendering the history ------------------------------------------------------------------


def _call_json(name: str, args: Any) -> str:
    return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)


def _render_ai(message: AIMessage) -> str:
    # Shown back as the JSON the model wrote, so it sees its own protocol in the history.
    parts = [str(message.text)] if message.text else []
    parts += [_call_json(tc["name"], tc["args"]) for tc in message.tool_calls]
    parts += [str(tc.get("args") or "") for tc in message.invalid_tool_calls]
    return "\n".join(parts)


def render_messages(
    messages: Sequence[BaseMessage], *, preamble: str | None = None
) -> list[dict[str, str]]:
    """Render LangChain messages as OpenAI-style chat turns for llama.cpp.

    Args:
        messages: The conversation, possibly with tool calls and tool results.
        preamble: Text put first in the system turn (tool or schema instructions). Stable text
            goes first so llama.cpp's prefix cache can reuse it across calls.

    Returns:
        ``[{"role": ..., "content": ...}]``: AI tool calls become assistant turns holding the JSON
        call; tool results become user turns with ``<tool_response>`` blocks (consecutive results
        share one turn).
    """
    turns: list[dict[str, str]] = []
    call_names: dict[str, str] = {}
    previous_was_tool = False
    for message in messages:
        is_tool = isinstance(message, ToolMessage)
        if isinstance(message, ToolMessage):
            name = message.name or call_names.get(message.tool_call_id, "tool")
            content = TOOL_RESPONSE.format(name=name, content=message.text)
            if previous_was_tool:
                turns[-1]["content"] += "\n" + content
            else:
                turns.append({"role": "user", "content": content})
        elif isinstance(message, AIMessage):
            for tc in message.tool_calls:
                if tc.get("id"):
                    call_names[str(tc["id"])] = tc["name"]
            turns.append({"role": "assistant", "content": _render_ai(message)})
        elif isinstance(message, SystemMessage):
            turns.append({"role": "system", "content": message.text})
        elif isinstance(message, ChatMessage) and message.role in ("system", "assistant"):
            turns.append({"role": message.role, "content": message.text})
        else:  # HumanMessage, other ChatMessage roles, legacy FunctionMessage
            turns.append({"role": "user", "content": message.text})
        previous_was_tool = is_tool
    if preamble:
        if turns and turns[0]["role"] == "system":
            turns[0]["content"] = f"{preamble}\n\n{turns[0]['content']}"
        else:
            turns.insert(0, {"role": "system", "content": preamble})
    return turns


# --- the chat model -------------------------------------------------------------------------


@dataclass
class _Plan:
    """One request to llama.cpp and how to read its reply."""

    request: dict[str, Any]
    tools: list[dict[str, Any]] = field(default_factory=list)
    text_reply: str | None = None

    @property
    def constrained_tools(self) -> bool:
        return bool(self.tools)


def _normalize_tool_choice(
    tool_choice: Any, names: Sequence[str]
) -> tuple[ToolChoiceMode, str | None]:
    """Map LangChain/OpenAI tool_choice values to (mode, forced tool name)."""
    if tool_choice is None or tool_choice == "auto":
        return "auto", None
    if tool_choice is False or tool_choice == "none":
        return "none", None
    if tool_choice is True or tool_choice in ("any", "required"):
        return "required", None
    name = tool_choice
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if isinstance(name, str) and name in names:
        return "required", name
    raise ConfigurationError(
        f"tool_choice {tool_choice!r} is not 'auto', 'none', 'any', 'required' or one of the "
        f"bound tools: {', '.join(names)}"
    )


def _usage(response: dict[str, Any]) -> UsageMetadata | None:
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


class LocalChatModel(BaseChatModel):
    """Chat model on the bundled Qwen2.5-Coder-1.5B-Instruct GGUF, run in-process by llama.cpp.

    Tool calling (``bind_tools``) and ``with_structured_output`` use grammar-constrained JSON.
    Extra keyword arguments given at call or bind time (``seed``, ``top_p``, ``grammar``,
    ``logprobs``...) go into llama.cpp's request body as they are.

    Example:
        >>> model = LocalChatModel(max_tokens=64)
        >>> model.invoke("Say hi").content  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: Path | None = None
    """GGUF file; default: the bundled model, assembled on first use under $SLEEPTIME_HOME."""
    n_ctx: int = 8192
    """Context size in tokens (shared by all slots)."""
    n_threads: int = 2
    """CPU threads for prompt processing and generation."""
    n_parallel: int = 1
    """Requests decoded at once; more queue. Each slot gets ``n_ctx / n_parallel`` tokens."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy, which suits memory edits."""
    max_tokens: int | None = 1024
    """Most tokens generated per call (None: until the context is full)."""
    disable_streaming: bool | Literal["tool_calling"] = "tool_calling"
    """With tools bound the reply is one JSON object: stream it as one message (see LangChain)."""

    @property
    def _llm_type(self) -> str:
        return "sleeptime-local-llamacpp"

    @property
    def model_name(self) -> str:
        """Name of the GGUF file this model runs."""
        return self.model_path.name if self.model_path else QWEN_CODER_1_5B.filename

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "n_ctx": self.n_ctx,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "llamacpp"
        params["ls_model_name"] = self.model_name
        return params

    def load(self) -> None:
        """Load the model now instead of on the first call (assembling the GGUF if needed)."""
        self._server()

    def _server(self) -> Any:
        path = self.model_path if self.model_path is not None else ensure_gguf()
        key = (str(Path(path).resolve()), self.n_ctx, self.n_threads, self.n_parallel)
        return _get_server(key)

    # -- request building ------------------------------------------------------------------------

    def _plan(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> _Plan:
        tools: list[dict[str, Any]] = list(kwargs.pop("tools", None) or [])
        tool_choice = kwargs.pop("tool_choice", None)
        kwargs.pop("stream", None)
        request: dict[str, Any] = {
            "temperature": self.temperature,
            **({"max_tokens": self.max_tokens} if self.max_tokens is not None else {}),
            **({"stop": stop} if stop else {}),
            **kwargs,
        }
        plan = _Plan(request=request)
        preamble = None
        names = [spec.name for spec in _tool_specs(tools)]
        mode, forced = _normalize_tool_choice(tool_choice, names) if tools else ("none", None)
        if mode != "none":
            allowed = [t for t in tools if forced is None or t["function"]["name"] == forced]
            text_reply = _text_reply_name(names) if mode == "auto" else None
            preamble = render_tools_prompt(
                tools, mode, forced=forced, text_reply=text_reply or TEXT_REPLY_NAME
            )
            schema = build_tool_schema(allowed, text_reply=text_reply)
            request["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
            plan.tools, plan.text_reply = allowed, text_reply
        elif isinstance(fmt := request.get("response_format"), dict) and "json_schema" in fmt:
            preamble = _schema_prompt(fmt["json_schema"])
        request["messages"] = render_messages(messages, preamble=preamble)
        return plan

    # -- reading replies -------------------------------------------------------------------------

    def _message(self, response: dict[str, Any], plan: _Plan) -> AIMessage:
        choice = (response.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
        finish_reason = choice.get("finish_reason")
        if plan.constrained_tools:
            message = parse_tool_reply(
                text, plan.tools, text_reply=plan.text_reply, finish_reason=finish_reason
            )
        else:
            message = AIMessage(content=text)
        message.usage_metadata = _usage(response)
        message.response_metadata = {
            "model_name": self.model_name,
            "finish_reason": finish_reason,
            **({"timings": response["timings"]} if "timings" in response else {}),
        }
        if response.get("id"):
            message.id = str(response["id"])
        return message

    def _result(self, response: dict[str, Any], plan: _Plan) -> ChatResult:
        message = self._message(response, plan)
        llm_output: dict[str, Any] = {"model_name": self.model_name}
        if message.usage_metadata:
            llm_output["token_usage"] = dict(message.usage_metadata)
        if "timings" in response:
            llm_output["timings"] = response["timings"]
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output=llm_output)

    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None]) -> dict[str, Any]:
        # generate() over several prompts: add the token counts up (LangChain returns {}).
        totals: dict[str, int] = {}
        for output in llm_outputs:
            for key, value in ((output or {}).get("token_usage") or {}).items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
        return {"model_name": self.model_name, "token_usage": totals}

    def _text_chunk(self, raw: dict[str, Any]) -> ChatGenerationChunk | None:
        choice = (raw.get("choices") or [{}])[0]
        text = (choice.get("delta") or {}).get("content") or ""
        metadata: dict[str, Any] = {}
        if choice.get("finish_reason"):
            metadata["finish_reason"] = choice["finish_reason"]
        usage = _usage(raw)
        if usage is not None:  # the last chunk: keep per-call metadata out of earlier ones
            metadata["model_name"] = self.model_name
            if "timings" in raw:
                metadata["timings"] = raw["timings"]
        if not text and not metadata and usage is None:
            return None
        chunk = AIMessageChunk(
            content=text,
            usage_metadata=usage,
            response_metadata=metadata,
            chunk_position="last" if usage is not None else None,
        )
        return ChatGenerationChunk(message=chunk)

    @staticmethod
    def _whole_chunk(message: AIMessage) -> ChatGenerationChunk:
        chunk = AIMessageChunk(
            content=message.content,
            tool_calls=message.tool_calls,
            invalid_tool_calls=message.invalid_tool_calls,
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            id=message.id,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=chunk)

    # -- BaseChatModel ---------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        plan = self._plan(messages, stop, **kwargs)
        response = _check_response(self._server().handle_chat_completions(plan.request))
        return self._result(response, plan)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Streams internally so that cancelling the awaiting task stops llama.cpp too.
        plan = self._plan(messages, stop, **kwargs)
        server = await asyncio.to_thread(self._server)
        acc = _Accumulator()
        async for raw in _aiter_stream(server, _stream_request(plan.request)):
            acc.add(raw)
        return self._result(acc.result(), plan)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        plan = self._plan(messages, stop, **kwargs)
        raw_chunks = _iter_stream(self._server(), _stream_request(plan.request))
        if plan.constrained_tools:
            # A half-written JSON call is no use to anyone: emit the parsed call once.
            acc = _Accumulator()
            for raw in raw_chunks:
                acc.add(raw)
            yield self._whole_chunk(self._message(acc.result(), plan))
            return
        for raw in raw_chunks:
            if (chunk := self._text_chunk(raw)) is not None:
                if run_manager and chunk.text:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        plan = self._plan(messages, stop, **kwargs)
        server = await asyncio.to_thread(self._server)
        raw_chunks = _aiter_stream(server, _stream_request(plan.request))
        if plan.constrained_tools:
            acc = _Accumulator()
            async for raw in raw_chunks:
                acc.add(raw)
            yield self._whole_chunk(self._message(acc.result(), plan))
            return
        async for raw in raw_chunks:
            if (chunk := self._text_chunk(raw)) is not None:
                if run_manager and chunk.text:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools, called through JSON-schema-constrained output.

        Args:
            tools: LangChain tools, functions, pydantic models or OpenAI tool dicts.
            tool_choice: ``None``/"auto": a tool call or a text reply; "any"/"required"/True:
                one of the tools; a tool name (or ``{"type": "function", "function":
                {"name": ...}}``): that tool; "none"/False: plain text.
            **kwargs: Further request parameters to bind.

        Raises:
            ConfigurationError: ``tool_choice`` names no bound tool.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [t["function"]["name"] for t in formatted]
        _normalize_tool_choice(tool_choice, names)  # fail at bind time, not at the first call
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling"] = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Return a runnable whose output matches ``schema``.

        Args:
            schema: A pydantic model class, a TypedDict, a JSON schema or an OpenAI tool dict.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of raising on a
                parse error.
            method: "json_schema" constrains the reply to the schema itself (default);
                "function_calling" goes through :meth:`bind_tools` with ``tool_choice="any"``.
            **kwargs: Accepted for LangChain compatibility (``strict`` is ignored: the grammar
                is always strict).
        """
        kwargs.pop("strict", None)
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if kwargs:
            raise ConfigurationError(f"unsupported arguments: {sorted(kwargs)}")
        fn = convert_to_openai_tool(schema)["function"]
        params = dict(fn.get("parameters") or {})
        params.setdefault("additionalProperties", False)
        json_schema = {"name": fn["name"], "description": fn.get("description"), "schema": params}
        llm = self.bind(
            response_format={"type": "json_schema", "json_schema": json_schema},
            ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
        )
        parser: Runnable[Any, Any]
        if isinstance(schema, type) and is_basemodel_subclass(schema):
            parser = PydanticOutputParser(pydantic_object=schema)
        else:
            parser = JsonOutputParser()
        if not include_raw:
            return llm | parser
        with_parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        with_none = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | with_parsed.with_fallbacks(
            [with_none], exception_key="parsing_error"
        )


def _stream_request(request: dict[str, Any]) -> dict[str, Any]:
    return {**request, "stream": True, "stream_options": {"include_usage": True}}


def _schema_prompt(json_schema: dict[str, Any]) -> str:
    description = json_schema.get("description") or ""
    return STRUCTURED_PROMPT.format(
        description=f"{description.strip()}\n" if description.strip() else "",
        schema=json.dumps(json_schema.get("schema", {}), ensure_ascii=False),
    )
