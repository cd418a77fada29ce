"""The tools' argument schemas as OpenAI-format specs, Letta-shaped."""

from __future__ import annotations

from sleeptime_agent.tools.schemas import tool_specs


def test_tool_specs_can_pin_labels() -> None:
    specs = {s["function"]["name"]: s["function"] for s in tool_specs(labels=["human", "notes"])}
    assert specs["memory_insert"]["parameters"]["properties"]["label"]["enum"] == ["human", "notes"]
    assert "label" not in specs["archival_memory_insert"]["parameters"]["properties"]


def test_tool_specs_are_letta_shaped() -> None:
    specs = {s["function"]["name"]: s["function"] for s in tool_specs()}
    assert set(specs["memory_replace"]["parameters"]["properties"]) == {
        "label",
        "old_str",
        "new_str",
    }
    assert set(specs["memory_insert"]["parameters"]["required"]) == {"label", "new_str"}
