"""Tool calling as constrained JSON: the protocol the local model speaks instead of native calls.

The model does not emit native tool calls that llama.cpp can parse, so tool calling goes through
JSON-schema-constrained output instead: the grammar (:func:`build_tool_schema`, one ``anyOf``
branch per tool) admits exactly one object ``{"name": <tool>, "arguments": {...}}`` per reply,
the tools are described in the system prompt (:func:`render_tools_prompt`), and the reply is
parsed back into LangChain ``tool_calls`` (or ``invalid_tool_calls``, never an exception, when it
cannot be used) by :func:`parse_tool_reply`. With ``tool_choice="auto"`` one more branch, the
pseudo-tool :data:`TEXT_REPLY_NAME`, carries a text answer. Earlier tool calls and tool results
in the history are rendered back as that JSON and as ``<tool_response>`` user turns
(:func:`render_messages`), so multi-step loops work.

Everything here is pure: no server, no model. The prompt texts live in
:mod:`sleeptime_agent.prompts`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
)

from sleeptime_agent.errors import ConfigurationError
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
    "ToolChoiceMode",
    "ToolSpec",
    "build_tool_schema",
    "normalize_tool_choice",
    "parse_tool_reply",
    "render_messages",
    "render_tools_prompt",
    "schema_prompt",
    "text_reply_name",
    "tool_specs",
]

#: Pseudo-tool through which the model answers in text when ``tool_choice="auto"``.
TEXT_REPLY_NAME = "respond"

ToolChoiceMode = Literal["auto", "none", "required"]


# --- tools as constrained JSON --------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the protocol sees it: its name, description and closed argument schema."""

    name: str
    description: str
    parameters: dict[str, Any]


def tool_specs(tools: Sequence[dict[str, Any]]) -> list[ToolSpec]:
    """Read OpenAI-format tools (or bare function dicts) into :class:`ToolSpec` s.

    Args:
        tools: OpenAI-format tools (as from ``convert_to_openai_tool``); not modified.

    Returns:
        One spec per tool; argument schemas get ``additionalProperties: false`` unless they say
        otherwise.
    """
    specs = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        # Tighter grammar and no invented arguments: JSON schema allows extra keys by default.
        params.setdefault("additionalProperties", False)
        specs.append(ToolSpec(fn["name"], fn.get("description") or "", params))
    return specs


def text_reply_name(names: Sequence[str]) -> str:
    """Return the name of the text-reply pseudo-tool that shadows none of ``names``."""
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
    branches = [(spec.name, spec.parameters) for spec in tool_specs(tools)]
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
        for spec in tool_specs(tools)
    )
    if forced is not None:
        choice = TOOL_CHOICE_FORCED.format(name=forced)
    elif mode == "auto":
        choice = TOOL_CHOICE_AUTO.format(text=text_reply)
    else:
        choice = TOOL_CHOICE_REQUIRED
    return TOOLS_PROMPT.format(choice=choice, tools=entries)


def normalize_tool_choice(
    tool_choice: Any, names: Sequence[str]
) -> tuple[ToolChoiceMode, str | None]:
    """Map LangChain/OpenAI tool_choice values to (mode, forced tool name).

    Args:
        tool_choice: ``None``/"auto", "none"/False, "any"/"required"/True, a tool name or
            ``{"type": "function", "function": {"name": ...}}``.
        names: The names of the bound tools.

    Returns:
        The mode and, when one tool is forced, its name.

    Raises:
        ConfigurationError: ``tool_choice`` names no bound tool.
    """
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


def schema_prompt(json_schema: dict[str, Any]) -> str:
    """Describe a structured-output schema (``response_format["json_schema"]``) for the prompt."""
    description = json_schema.get("description") or ""
    return STRUCTURED_PROMPT.format(
        description=f"{description.strip()}\n" if description.strip() else "",
        schema=json.dumps(json_schema.get("schema", {}), ensure_ascii=False),
    )


# --- parsing replies ------------------------------------------------------------------------


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
    specs = {spec.name: spec for spec in tool_specs(tools)}

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
