"""The sleep-time edit loop: the model calls memory tools until it finishes or the budget ends.

The graph is deliberately small: ``agent`` asks the model for one tool call, ``tools`` runs it
through the run's :class:`MemoryEditor` (given as the run's context, never shown to the model),
and the router stops on ``memory_finish_edits`` or when the step or token budget is spent.
Malformed output never raises: it is recorded as a failure and explained to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from sleeptime_agent.ledger import count_tokens
from sleeptime_agent.scheduler import ForegroundGate
from sleeptime_agent.tools.editor import MemoryEditor, ToolCallInvalid, ToolError
from sleeptime_agent.tools.schemas import tool_specs

__all__ = ["SleeptimeContext", "SleeptimeState", "build_sleeptime_graph"]

_NUDGE = (
    "Your last reply was not a valid tool call ({problem}). Reply with exactly one tool call: "
    "one of {tools}. Call memory_finish_edits when memory is complete."
)


class SleeptimeState(TypedDict, total=False):
    """State of one sleep-time run."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The model's conversation: instructions, blocks + transcript, tool calls and results."""
    steps: int
    """Model calls made so far."""
    input_tokens: int
    output_tokens: int
    failures: list[dict[str, Any]]
    """Every failed step with the reason; ``kind`` is "invalid" (malformed) or "rejected"."""
    status: str
    """``ok`` (finished by the model), ``finished_by_budget``, or ``stalled`` (looping)."""


@dataclass(kw_only=True)
class SleeptimeContext:
    """Run settings for one sleep-time run."""

    editor: MemoryEditor
    """Applies the edits for this run's namespace with compare-and-swap."""
    max_steps: int = 8
    """At most this many model calls."""
    max_tokens: int = 30_000
    """At most this many input + output tokens over the run."""
    gate: ForegroundGate | None = None
    """If set, user turns go first: a turn preempts the model call in flight (retried after
    it) and holds the next one until it ends."""
    labels: list[str] = field(default_factory=list)
    """Labels the agent may edit; the tools' ``label`` argument is pinned to them."""


def _bind(model: BaseChatModel | Runnable[Any, Any], tools: list[Any]) -> Runnable[Any, Any]:
    """Bind the tools, requiring a tool call where the provider supports it."""
    for kwargs in ({"tool_choice": "any"}, {}):
        try:
            return model.bind_tools(tools, **kwargs)  # type: ignore[union-attr]
        except (NotImplementedError, ValueError, TypeError):
            continue
    return model


def _repeating(failures: list[dict[str, Any]], times: int = 3) -> bool:
    """The model made the same refused call ``times`` times: it is looping, stop the run.

    Small models repeat an edit already made ("already contains this text") until the step
    budget ends; stopping early saves the remaining steps' tokens.
    """
    if len(failures) < times:
        return False
    last = [(f.get("tool"), repr(f.get("args")), f.get("error")) for f in failures[-times:]]
    return len(set(last)) == 1


def build_sleeptime_graph(
    model: BaseChatModel, *, tool_names: tuple[str, ...] | None = None
) -> CompiledStateGraph[SleeptimeState, SleeptimeContext, Any, Any]:
    """Compile the edit loop for ``model``.

    Args:
        model: any LangChain chat model that can bind tools.
        tool_names: the tools offered (default: the four Letta edit tools + archival insert).
    """
    names = tool_names or (
        "memory_insert",
        "memory_replace",
        "memory_rethink",
        "archival_memory_insert",
        "memory_finish_edits",
    )

    async def agent(state: SleeptimeState, runtime: Runtime[SleeptimeContext]) -> dict[str, Any]:
        prompt = state["messages"]
        # Bound per run: the schemas pin `label` to this namespace's editable blocks. The model
        # sees the schemas only; execution goes through the run's editor.
        bound = _bind(model, tool_specs(names, runtime.context.labels or None))
        gate = runtime.context.gate
        # Through the gate, a user turn preempts this call; it is retried with the same prompt
        # (the state only changes when it returns), so a preempted step applies no edit.
        reply = await (gate.run(lambda: bound.ainvoke(prompt)) if gate else bound.ainvoke(prompt))
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=str(getattr(reply, "content", reply)))
        tin, tout = count_tokens(reply, prompt)
        return {
            "messages": [reply],
            "steps": state.get("steps", 0) + 1,
            "input_tokens": state.get("input_tokens", 0) + tin,
            "output_tokens": state.get("output_tokens", 0) + tout,
        }

    async def tools(state: SleeptimeState, runtime: Runtime[SleeptimeContext]) -> dict[str, Any]:
        import asyncio

        editor = runtime.context.editor
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        failures = list(state.get("failures", []))
        out: list[AnyMessage] = []
        for call in last.tool_calls:
            cid = call.get("id") or "call"
            if call["name"] not in names:
                failures.append({"tool": call["name"], "kind": "invalid", "error": "unknown tool"})
                msg = f"Error: unknown tool {call['name']!r}; available: {list(names)}"
                out.append(ToolMessage(msg, tool_call_id=cid, status="error"))
                continue
            try:
                result = await asyncio.to_thread(editor.call, call["name"], call["args"])
                status: Literal["success", "error"] = "success"
            except ToolError as exc:
                # "invalid": malformed call; "rejected": a valid call the editor refused.
                kind = "invalid" if isinstance(exc, ToolCallInvalid) else "rejected"
                failures.append(
                    {"tool": call["name"], "kind": kind, "args": call["args"], "error": str(exc)}
                )
                result, status = f"Error: {exc}", "error"
            out.append(ToolMessage(result, tool_call_id=cid, status=status))
            if editor.finished:
                break
        if not last.tool_calls:
            bad = last.invalid_tool_calls
            problem = (
                "; ".join(f"{c.get('name')}: {c.get('error')}" for c in bad)
                if bad
                else "no tool call"
            )
            failures.append(
                {"tool": None, "kind": "invalid", "error": problem, "raw": str(last.content)[:500]}
            )
            out.append(HumanMessage(_NUDGE.format(problem=problem, tools=", ".join(names))))
        elif not editor.finished:
            applied = [e for e in editor.edits if e.get("label")]
            if applied:
                done = ", ".join(f"{e['tool']}({e['label']})" for e in applied)
                out.append(HumanMessage(f"Edits applied so far: {done}. Next tool call?"))
        return {"messages": out, "failures": failures}

    def route(state: SleeptimeState, runtime: Runtime[SleeptimeContext]) -> str:
        ctx = runtime.context
        if ctx.editor.finished:
            return "finish"
        if state.get("steps", 0) >= ctx.max_steps:
            return "budget"
        if state.get("input_tokens", 0) + state.get("output_tokens", 0) >= ctx.max_tokens:
            return "budget"
        if _repeating(state.get("failures", [])):
            return "stalled"
        return "agent"

    def stalled(state: SleeptimeState) -> dict[str, Any]:
        return {"status": "stalled"}

    def finish(state: SleeptimeState) -> dict[str, Any]:
        return {"status": "ok"}

    def budget(state: SleeptimeState) -> dict[str, Any]:
        return {"status": "finished_by_budget"}

    builder = StateGraph(SleeptimeState, context_schema=SleeptimeContext)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_node("finish", finish)
    builder.add_node("budget", budget)
    builder.add_node("stalled", stalled)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_conditional_edges("tools", route, ["agent", "finish", "budget", "stalled"])
    builder.add_edge("finish", END)
    builder.add_edge("budget", END)
    builder.add_edge("stalled", END)
    return builder.compile(name="sleeptime")
