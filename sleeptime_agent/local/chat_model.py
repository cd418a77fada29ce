"""LocalChatModel: the bundled Qwen2.5-Coder-1.5B GGUF on llama.cpp (xllamacpp), no network.

A LangChain chat model over two pieces: the shared llama.cpp server and its streams
(:mod:`sleeptime_agent.local.server`, one server per model file and settings, shared by every
instance) and the constrained-JSON tool-calling protocol (:mod:`sleeptime_agent.local.protocol`).
Each call is planned once (:class:`_Plan`: the request body, and how to read the reply): with
tools bound the reply is grammar-constrained to one JSON call and parsed back into ``tool_calls``;
``with_structured_output`` constrains it to the schema itself. ``ainvoke`` streams internally so
that cancelling the awaiting task stops llama.cpp at the next token.

Roles on one machine (:meth:`LocalChatModel.for_role`): the primary (and its pre-warm) and the
sleep-time agent share one llama.cpp server but are pinned to slots of their own, so each
keeps its prompt's KV in its slot between calls instead of relying on llama.cpp's RAM prompt
cache to restore it after the other role has used the slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.local.protocol import (
    TEXT_REPLY_NAME,
    build_tool_schema,
    normalize_tool_choice,
    parse_tool_reply,
    render_messages,
    render_tools_prompt,
    schema_prompt,
    text_reply_name,
    tool_specs,
)
from sleeptime_agent.local.server import (
    ServerKey,
    StreamAccumulator,
    aiter_stream,
    check_response,
    get_server,
    iter_stream,
    stream_request,
    usage_metadata,
)
from sleeptime_agent.local.weights import QWEN_CODER_1_5B, ensure_gguf

__all__ = ["ROLE_SLOTS", "LocalChatModel", "Role"]

Role = Literal["primary", "sleeptime"]

#: The llama.cpp slot each role is pinned to by :meth:`LocalChatModel.for_role`.
ROLE_SLOTS: dict[Role, int] = {"primary": 0, "sleeptime": 1}


@dataclass
class _Plan:
    """One request to llama.cpp and how to read its reply."""

    request: dict[str, Any]
    tools: list[dict[str, Any]] = field(default_factory=list)
    text_reply: str | None = None

    @property
    def constrained_tools(self) -> bool:
        return bool(self.tools)


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
    slot: int | None = None
    """llama.cpp slot this model's requests run in (``id_slot``; below ``n_parallel``), or
    None to let llama.cpp pick one. A pinned request waits for its slot while it is busy."""
    n_batch: int = 16
    """Prompt tokens per evaluation step. A cancelled request (a user turn preempting a
    sleep-time step) stops within about two steps, so small steps keep the wait short."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy, which suits memory edits."""
    max_tokens: int | None = 1024
    """Most tokens generated per call (None: until the context is full)."""
    disable_streaming: bool | Literal["tool_calling"] = "tool_calling"
    """With tools bound the reply is one JSON object: stream it as one message (see LangChain)."""
    on_chunk: Callable[[dict[str, Any]], None] | None = Field(default=None, exclude=True)
    """Called with every raw llama.cpp chunk of this model's streams (prompt progress, tokens,
    the closing usage), for instrumentation; exceptions propagate to the call."""

    @model_validator(mode="after")
    def _check_slot(self) -> LocalChatModel:
        if self.slot is not None and not 0 <= self.slot < self.n_parallel:
            raise ConfigurationError(
                f"slot {self.slot} does not exist with n_parallel={self.n_parallel} "
                f"(slots 0..{self.n_parallel - 1})"
            )
        return self

    def for_role(self, role: Role) -> LocalChatModel:
        """This model pinned to ``role``'s slot of a server with at least two slots.

        The primary and the sleep-time agent then never evict each other's prompt from the
        slot they run in: a user turn after a sleep-time step finds its prefix where it left
        it, and a preempted step's retry finds what it had evaluated. A model with one slot
        gets two, and ``n_ctx`` grows with them so that each slot keeps the window it had
        (e.g. 8,192 tokens per slot, 16,384 in all: ~28 KB of KV per token for the bundled
        1.5B model). Both roles must come from models with the same settings to share one
        server (see :func:`~sleeptime_agent.local.server.get_server`).

        Args:
            role: "primary" (also the pre-warm, which evaluates the primary's prefix) or
                "sleeptime".
        """
        slots = max(self.n_parallel, len(ROLE_SLOTS))
        n_ctx = self.n_ctx // self.n_parallel * slots
        return self.model_copy(
            update={"slot": ROLE_SLOTS[role], "n_parallel": slots, "n_ctx": n_ctx}
        )

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
        self.server()

    def server(self) -> Any:
        """Return the llama.cpp server this model runs on, loading it on first use.

        The server is shared per process by every model with the same file and settings (see
        :func:`~sleeptime_agent.local.server.get_server`); the GGUF is assembled first if needed.
        Meant for raw requests the chat API does not cover, e.g. ``handle_completions``: pass
        their replies through :func:`~sleeptime_agent.local.server.check_response`.
        """
        path = self.model_path if self.model_path is not None else ensure_gguf()
        key = ServerKey(
            str(Path(path).resolve()), self.n_ctx, self.n_threads, self.n_parallel, self.n_batch
        )
        return get_server(key)

    async def aprewarm(self, messages: Sequence[BaseMessage]) -> None:
        """Evaluate ``messages`` as the start of a prompt and keep them in the prefix cache.

        A later prompt that starts with the same text is then served from llama.cpp's cache
        instead of being evaluated again (one token is generated and dropped). Cancelling the
        awaiting task stops the evaluation at the next prompt batch.

        Args:
            messages: The stable start of a later prompt (e.g. the primary's system prompt).
        """
        plan = self._plan(list(messages), None, max_tokens=1)
        server = await asyncio.to_thread(self.server)
        async for raw in aiter_stream(server, stream_request(plan.request)):
            self._observe(raw)

    def _observe(self, raw: dict[str, Any]) -> None:
        if self.on_chunk is not None:
            self.on_chunk(raw)

    def _watch(self, raw_chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for raw in raw_chunks:
            self._observe(raw)
            yield raw

    async def _awatch(
        self, raw_chunks: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        async for raw in raw_chunks:
            self._observe(raw)
            yield raw

    # -- request building ------------------------------------------------------------------------

    def _plan(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> _Plan:
        tools: list[dict[str, Any]] = list(kwargs.pop("tools", None) or [])
        tool_choice = kwargs.pop("tool_choice", None)
        kwargs.pop("stream", None)
        request: dict[str, Any] = {
            **({"id_slot": self.slot} if self.slot is not None else {}),
            "temperature": self.temperature,
            **({"max_tokens": self.max_tokens} if self.max_tokens is not None else {}),
            **({"stop": stop} if stop else {}),
            **kwargs,
        }
        plan = _Plan(request=request)
        preamble = None
        names = [spec.name for spec in tool_specs(tools)]
        mode, forced = normalize_tool_choice(tool_choice, names) if tools else ("none", None)
        if mode != "none":
            allowed = [t for t in tools if forced is None or t["function"]["name"] == forced]
            text_reply = text_reply_name(names) if mode == "auto" else None
            preamble = render_tools_prompt(
                tools, mode, forced=forced, text_reply=text_reply or TEXT_REPLY_NAME
            )
            schema = build_tool_schema(allowed, text_reply=text_reply)
            request["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
            plan.tools, plan.text_reply = allowed, text_reply
        elif isinstance(fmt := request.get("response_format"), dict) and "json_schema" in fmt:
            preamble = schema_prompt(fmt["json_schema"])
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
        message.usage_metadata = usage_metadata(response)
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
        usage = usage_metadata(raw)
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
        response = check_response(self.server().handle_chat_completions(plan.request))
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
        server = await asyncio.to_thread(self.server)
        acc = StreamAccumulator()
        async for raw in aiter_stream(server, stream_request(plan.request)):
            self._observe(raw)
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
        raw_chunks = self._watch(iter_stream(self.server(), stream_request(plan.request)))
        if plan.constrained_tools:
            # A half-written JSON call is no use to anyone: emit the parsed call once.
            acc = StreamAccumulator()
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
        server = await asyncio.to_thread(self.server)
        raw_chunks = self._awatch(aiter_stream(server, stream_request(plan.request)))
        if plan.constrained_tools:
            acc = StreamAccumulator()
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
        normalize_tool_choice(tool_choice, names)  # fail at bind time, not at the first call
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
