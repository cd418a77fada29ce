"""LocalChatModel on a fake llama.cpp server (no weights), and resolve_model's choice of it."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from collections.abc import Callable, Generator
from typing import Any, cast

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.tools import tool
from local_fakes import TOOLS
from pydantic import BaseModel, Field

import sleeptime_agent.local
from sleeptime_agent import models
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.local.chat_model import LocalChatModel
from sleeptime_agent.local.server import LocalModelError
from sleeptime_agent.models import resolve_model

# --- the chat model on a fake llama.cpp server ----------------------------------------------


def _response(content: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
        "timings": {"prompt_n": 8, "predicted_n": 5, "cache_n": 4},
    }


class FakeServer:
    """Replays one reply, streamed token by token when a callback is given."""

    def __init__(self, content: str, finish: str = "stop", delay: float = 0.0) -> None:
        self.content = content
        self.delay = delay
        self.finish = finish
        self.requests: list[dict[str, Any]] = []
        self.cancelled = False

    def handle_chat_completions(
        self, request: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        self.requests.append(request)
        if callback is None:
            return _response(self.content, self.finish)
        full = _response(self.content, self.finish)
        pieces = [self.content[i : i + 3] for i in range(0, len(self.content), 3)]
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}]
        chunks += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
        chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": self.finish}]}]
        chunks += [{"choices": [], "usage": full["usage"], "timings": full["timings"]}]
        for chunk in chunks:
            time.sleep(self.delay)
            if callback(chunk):
                self.cancelled = True
                return None
        return None


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeServer]:
    def install(content: str, finish: str = "stop", delay: float = 0.0) -> FakeServer:
        server = FakeServer(content, finish, delay)
        monkeypatch.setattr(LocalChatModel, "server", lambda self: server)
        return server

    return install


def test_generate_reports_usage_and_timings(fake: Callable[..., FakeServer]) -> None:
    server = fake("Hello!")
    model = LocalChatModel(max_tokens=7, temperature=0.3)
    result = model.generate([[HumanMessage("hi")]])
    generation = result.generations[0][0]
    assert isinstance(generation, ChatGeneration)
    msg = generation.message
    assert msg.content == "Hello!"
    assert isinstance(msg, AIMessage) and msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 12
    assert msg.usage_metadata["output_tokens"] == 5
    assert msg.usage_metadata["total_tokens"] == 17
    assert msg.usage_metadata.get("input_token_details") == {"cache_read": 4}
    assert msg.response_metadata["timings"]["cache_n"] == 4
    assert msg.response_metadata["finish_reason"] == "stop"
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["total_tokens"] == 17
    req = server.requests[0]
    assert req["max_tokens"] == 7 and req["temperature"] == 0.3
    assert req["messages"] == [{"role": "user", "content": "hi"}]
    assert "response_format" not in req


def test_call_kwargs_pass_through(fake: Callable[..., FakeServer]) -> None:
    server = fake("x")
    LocalChatModel().invoke("hi", stop=["\n"], seed=7)
    assert server.requests[0]["stop"] == ["\n"] and server.requests[0]["seed"] == 7


def test_stream_yields_chunks_with_usage_last(fake: Callable[..., FakeServer]) -> None:
    fake("Hello there, friend")
    chunks = list(LocalChatModel().stream("hi"))
    assert len(chunks) > 3
    assert "".join(str(c.content) for c in chunks) == "Hello there, friend"
    total = chunks[0]
    for c in chunks[1:]:
        total += c
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 5
    assert total.response_metadata["finish_reason"] == "stop"


def test_abandoned_stream_cancels_generation(fake: Callable[..., FakeServer]) -> None:
    server = fake("a long reply " * 20, delay=0.01)
    stream = cast(Generator[Any, None, None], LocalChatModel().stream("hi"))
    next(stream)
    stream.close()  # returns once the worker has stopped
    assert server.cancelled


async def test_cancelled_ainvoke_cancels_generation(fake: Callable[..., FakeServer]) -> None:
    server = fake("a long reply " * 20, delay=0.01)
    task = asyncio.create_task(LocalChatModel().ainvoke("hi"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if server.cancelled:
            break
        await asyncio.sleep(0.01)
    assert server.cancelled


async def test_async_paths(fake: Callable[..., FakeServer]) -> None:
    fake("Hello there, friend")
    model = LocalChatModel()
    msg = await model.ainvoke("hi")
    assert msg.content == "Hello there, friend"
    assert msg.usage_metadata is not None and msg.usage_metadata["total_tokens"] == 17
    chunks = [c async for c in model.astream("hi")]
    assert len(chunks) > 3
    assert "".join(str(c.content) for c in chunks) == "Hello there, friend"


async def test_ainvoke_does_not_block_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    class SlowServer(FakeServer):
        def handle_chat_completions(self, request: Any, callback: Any = None) -> Any:
            release.wait(5)
            return super().handle_chat_completions(request, callback)

    server = SlowServer("ok")
    monkeypatch.setattr(LocalChatModel, "server", lambda self: server)
    task = asyncio.create_task(LocalChatModel().ainvoke("hi"))
    await asyncio.sleep(0.05)  # the loop runs while the model "computes"
    assert not task.done()
    release.set()
    assert (await task).content == "ok"


def test_server_error_raises_local_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class ErrorServer:
        def handle_chat_completions(self, request: Any, callback: Any = None) -> Any:
            error = {"error": {"code": 400, "message": "request exceeds the context size"}}
            if callback is not None:
                callback(error)
                return None
            return error

    monkeypatch.setattr(LocalChatModel, "server", lambda self: ErrorServer())
    with pytest.raises(LocalModelError, match="exceeds the context size"):
        LocalChatModel().invoke("hi")
    with pytest.raises(LocalModelError, match="exceeds the context size"):
        list(LocalChatModel().stream("hi"))


def test_bind_tools_required_uses_closed_schema(fake: Callable[..., FakeServer]) -> None:
    server = fake('{"name": "memory_insert", "arguments": {"label": "human", "new_str": "x"}}')
    bound = LocalChatModel().bind_tools(TOOLS, tool_choice="any")
    msg = bound.invoke([SystemMessage("Keep memory."), HumanMessage("I like tea.")])
    assert msg.tool_calls[0]["name"] == "memory_insert"
    assert msg.usage_metadata is not None
    req = server.requests[0]
    names = [
        b["properties"]["name"]["const"]
        for b in req["response_format"]["json_schema"]["schema"]["anyOf"]
    ]
    assert names == ["memory_replace", "memory_insert", "memory_finish_edits"]
    system = req["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("# Tools") and system["content"].endswith("Keep memory.")
    assert "tools" not in req and "tool_choice" not in req


def test_bind_tools_auto_adds_text_branch(fake: Callable[..., FakeServer]) -> None:
    server = fake('{"name": "respond", "arguments": {"content": "Sure."}}')
    msg = LocalChatModel().bind_tools(TOOLS).invoke("hello")
    assert msg.content == "Sure." and msg.tool_calls == []
    names = [
        b["properties"]["name"]["const"]
        for b in server.requests[0]["response_format"]["json_schema"]["schema"]["anyOf"]
    ]
    assert names[-1] == "respond"


def test_text_branch_never_shadows_a_tool(fake: Callable[..., FakeServer]) -> None:
    @tool
    def respond(content: str) -> str:
        """A real tool that happens to be called respond."""
        return content

    server = fake('{"name": "respond", "arguments": {"content": "a"}}')
    msg = LocalChatModel().bind_tools([respond], tool_choice="auto").invoke("hello")
    assert msg.tool_calls[0]["name"] == "respond"
    names = [
        b["properties"]["name"]["const"]
        for b in server.requests[0]["response_format"]["json_schema"]["schema"]["anyOf"]
    ]
    assert names == ["respond", "_respond"]


def test_bind_tools_forced_and_none(fake: Callable[..., FakeServer]) -> None:
    server = fake('{"name": "memory_finish_edits", "arguments": {}}')
    model = LocalChatModel()
    msg = model.bind_tools(TOOLS, tool_choice="memory_finish_edits").invoke("done?")
    assert msg.tool_calls[0]["name"] == "memory_finish_edits"
    forced = {"type": "function", "function": {"name": "memory_finish_edits"}}
    model.bind_tools(TOOLS, tool_choice=forced).invoke("done?")
    for req in server.requests:
        [branch] = req["response_format"]["json_schema"]["schema"]["anyOf"]
        assert branch["properties"]["name"] == {"const": "memory_finish_edits"}
    msg = model.bind_tools(TOOLS, tool_choice="none").invoke("hi")
    assert "response_format" not in server.requests[-1]
    assert msg.content == '{"name": "memory_finish_edits", "arguments": {}}'  # plain text


def test_bind_tools_unknown_choice_fails_at_bind_time() -> None:
    with pytest.raises(ConfigurationError, match="tool_choice"):
        LocalChatModel().bind_tools(TOOLS, tool_choice="memory_delete")


def test_invalid_reply_is_returned_not_raised(fake: Callable[..., FakeServer]) -> None:
    fake('{"name": "memory_insert", "arguments": {"label": "hu', finish="length")
    bound = LocalChatModel().bind_tools(TOOLS, tool_choice="required")
    msg = bound.invoke("x")
    assert msg.tool_calls == []
    assert "cut off" in (msg.invalid_tool_calls[0]["error"] or "")
    # Streamed (tools disable streaming by default) and async: the same message.
    [chunk] = list(bound.stream("x"))
    assert chunk.invalid_tool_calls and "cut off" in (chunk.invalid_tool_calls[0]["error"] or "")


async def test_async_tool_call(fake: Callable[..., FakeServer]) -> None:
    fake('{"name": "memory_finish_edits", "arguments": {}}')
    msg = await LocalChatModel().bind_tools(TOOLS, tool_choice="any").ainvoke("x")
    assert msg.tool_calls[0]["name"] == "memory_finish_edits"


def test_stream_with_tools_when_streaming_enabled(fake: Callable[..., FakeServer]) -> None:
    fake('{"name": "memory_finish_edits", "arguments": {}}')
    model = LocalChatModel(disable_streaming=False)
    chunks = list(model.bind_tools(TOOLS, tool_choice="any").stream("x"))
    assert len(chunks) == 1  # one parsed call, never half a JSON object
    assert chunks[0].tool_calls[0]["name"] == "memory_finish_edits"


class Answer(BaseModel):
    """A numeric answer."""

    answer: int = Field(description="the number")


def test_structured_output_pydantic(fake: Callable[..., FakeServer]) -> None:
    server = fake('{"answer": 42}')
    result = LocalChatModel().with_structured_output(Answer).invoke("17+25?")
    assert result == Answer(answer=42)
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["answer"]
    assert "matches this JSON schema" in server.requests[0]["messages"][0]["content"]


def test_structured_output_json_schema_and_raw(fake: Callable[..., FakeServer]) -> None:
    fake('{"city": "Oslo"}')
    schema = {
        "title": "Place",
        "description": "A place.",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    assert LocalChatModel().with_structured_output(schema).invoke("where?") == {"city": "Oslo"}
    fake("{broken")
    out = LocalChatModel().with_structured_output(Answer, include_raw=True).invoke("x")
    assert isinstance(out, dict)
    assert out["parsed"] is None and out["parsing_error"] is not None
    assert isinstance(out["raw"], AIMessage)


def test_structured_output_function_calling(fake: Callable[..., FakeServer]) -> None:
    fake('{"name": "Answer", "arguments": {"answer": 7}}')
    model = LocalChatModel()
    assert model.with_structured_output(Answer, method="function_calling").invoke("x") == Answer(
        answer=7
    )


# --- resolve_model --------------------------------------------------------------------------


def test_resolve_model_passthrough_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sleeptime_agent.local, "require_local_extra", lambda: None)
    model = LocalChatModel(max_tokens=3)
    assert resolve_model(model, env_var=models.PRIMARY_MODEL_ENV) is model
    monkeypatch.delenv(models.SLEEPTIME_MODEL_ENV, raising=False)
    assert isinstance(resolve_model(None, env_var=models.SLEEPTIME_MODEL_ENV), LocalChatModel)
    monkeypatch.setenv(models.SLEEPTIME_MODEL_ENV, "  ")
    assert isinstance(resolve_model(None, env_var=models.SLEEPTIME_MODEL_ENV), LocalChatModel)
    monkeypatch.setenv(models.SLEEPTIME_MODEL_ENV, "nosuchprovider:some-model")
    with pytest.raises(ConfigurationError, match="unknown model provider"):
        resolve_model(None, env_var=models.SLEEPTIME_MODEL_ENV)


@pytest.mark.parametrize("spec", ["nosuchprovider:x", "weird-model-name", ""])
def test_resolve_model_unknown_provider(spec: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_model(spec, env_var="UNUSED_ENV_VAR")
    assert "\n" not in str(info.value)
    assert "'local', 'provider:model'" in str(info.value)


def test_resolve_model_missing_package_or_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # langchain-openai is not a dependency: either it is missing (ImportError) or, where it is
    # installed, the API key is missing. Both must be one clear line.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError) as info:
        resolve_model("openai:gpt-4o-mini", env_var="UNUSED_ENV_VAR")
    assert "\n" not in str(info.value)
    assert "openai" in str(info.value).lower()


def test_resolve_model_maps_other_construction_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    class OpenAIError(Exception):
        pass

    def boom(spec: str) -> BaseChatModel:
        raise OpenAIError("The api_key client option must be set\nsecond line")

    fake_module = types.SimpleNamespace(init_chat_model=boom)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", fake_module)
    with pytest.raises(ConfigurationError, match="api_key client option must be set$"):
        resolve_model("openai:gpt-4o-mini", env_var="UNUSED_ENV_VAR")


# --- roles pinned to slots ------------------------------------------------------------------


def test_a_pinned_model_sends_its_slot_and_an_unpinned_one_none(
    fake: Callable[..., FakeServer],
) -> None:
    server = fake("x")
    LocalChatModel(n_parallel=2, n_ctx=8192, slot=1).invoke("hi")
    LocalChatModel().invoke("hi")
    assert server.requests[0]["id_slot"] == 1
    assert "id_slot" not in server.requests[1]  # llama.cpp picks the slot


def test_roles_get_their_own_slots_of_one_server_with_the_same_window_each() -> None:
    base = LocalChatModel(n_ctx=8192, max_tokens=48)
    primary, sleeper = base.for_role("primary"), LocalChatModel().for_role("sleeptime")
    assert (primary.slot, sleeper.slot) == (0, 1)
    assert primary.n_parallel == sleeper.n_parallel == 2
    assert primary.n_ctx == sleeper.n_ctx == 2 * 8192  # llama.cpp splits n_ctx across slots
    assert primary.max_tokens == 48  # the rest of the settings are kept
    # Same settings, so one llama.cpp server (one ServerKey) holds both slots.
    key = {k: v for k, v in vars(primary).items() if k in {"n_ctx", "n_threads", "n_batch"}}
    assert key == {k: v for k, v in vars(sleeper).items() if k in key}
    assert LocalChatModel(n_parallel=4, n_ctx=16384).for_role("sleeptime").n_ctx == 16384


async def test_prewarm_runs_in_the_primarys_slot(fake: Callable[..., FakeServer]) -> None:
    server = fake("x")
    await LocalChatModel().for_role("primary").aprewarm([SystemMessage("blocks")])
    assert server.requests[0]["id_slot"] == 0
    assert server.requests[0]["max_tokens"] == 1


@pytest.mark.parametrize("slot", [-1, 2])
def test_a_slot_the_server_does_not_have_is_refused_at_construction(slot: int) -> None:
    # pydantic wraps the ConfigurationError (a ValueError) into its ValidationError.
    with pytest.raises(ValueError, match="slot .* does not exist"):
        LocalChatModel(n_parallel=2, slot=slot)
