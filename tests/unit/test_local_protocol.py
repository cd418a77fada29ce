"""The constrained-JSON tool protocol: schemas, tool prompts, reply parsing, history rendering."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from local_fakes import openai_tools

from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.local.protocol import (
    build_tool_schema,
    normalize_tool_choice,
    parse_tool_reply,
    render_messages,
    render_tools_prompt,
)

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


# --- tool_choice ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ("auto", None)),
        ("none", ("none", None)),
        (True, ("required", None)),
        ("any", ("required", None)),
        ("memory_insert", ("required", "memory_insert")),
        (
            {"type": "function", "function": {"name": "memory_insert"}},
            ("required", "memory_insert"),
        ),
    ],
)
def test_normalize_tool_choice(choice: object, expected: tuple[str, str | None]) -> None:
    assert normalize_tool_choice(choice, ["memory_insert"]) == expected


def test_normalize_unknown_tool_choice() -> None:
    with pytest.raises(ConfigurationError, match="memory_insert"):
        normalize_tool_choice("memory_delete", ["memory_insert"])
