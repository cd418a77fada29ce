"""What the served graph reads from the environment: scripted models, the schedule, contexts."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from sleeptime_agent import config
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.models import resolve_model
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.testing import ScriptedChatModel, memorize_reply, recall_reply

PROMPT = """Memory blocks (label, description, current value):
<human version="2" chars="28/5000">
<value>
My favourite colour is teal.
</value>
</human>

New conversation since your last run:
[3] user: My favourite colour is teal.
[4] assistant: Noted.
[5] user: I live in Tartu.
[6] user: Where do I live?"""


def test_scripted_specs_resolve_with_latency() -> None:
    model = resolve_model("scripted:memorize?latency=0.25")
    assert isinstance(model, ScriptedChatModel)
    assert model.latency == 0.25 and not model.record  # a server must not keep every prompt
    with pytest.raises(ConfigurationError, match="unknown scripted model"):
        resolve_model("scripted:poet")
    with pytest.raises(ConfigurationError, match="latency"):
        resolve_model("scripted:recall?latency=soon")


def test_memorize_saves_new_statements_once_then_finishes() -> None:
    reply = memorize_reply([SystemMessage("rules"), HumanMessage(PROMPT)])
    assert isinstance(reply, AIMessage)
    (call,) = reply.tool_calls
    assert call["name"] == "memory_insert"
    assert call["args"] == {"label": "human", "new_str": "I live in Tartu."}  # not the question
    done = memorize_reply([HumanMessage(PROMPT), reply, ToolMessage("ok", tool_call_id="c")])
    assert isinstance(done, AIMessage) and done.tool_calls[0]["name"] == "memory_finish_edits"


def test_recall_answers_from_the_human_block_only() -> None:
    system = SystemMessage('<human version="1">\n<value>\nMy pet is Otis.\n</value>\n</human>')
    assert recall_reply([system, HumanMessage("hi")]) == "I remember: My pet is Otis."
    assert recall_reply([SystemMessage("no memory"), HumanMessage("My pet is Otis.")]) == (
        "I don't know anything about you yet."
    )


def test_every_n_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.EVERY_N_TURNS_ENV, raising=False)
    assert config.every_n_turns() == 1
    monkeypatch.setenv(config.EVERY_N_TURNS_ENV, "0")
    assert config.every_n_turns() == 0
    monkeypatch.setenv(config.EVERY_N_TURNS_ENV, "-2")
    with pytest.raises(ConfigurationError):
        config.every_n_turns()


def test_a_run_does_not_inherit_the_notifying_turns_context() -> None:
    """Under LangGraph Server the turn's context holds the server run's config and callbacks."""
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="clean")
    seen: list[str] = []
    done = threading.Event()

    async def runner(namespace: Any) -> list[Any]:
        seen.append(marker.get())
        done.set()
        return []

    scheduler = SleeptimeScheduler()
    scheduler.attach(runner)
    try:
        marker.set("the user's run")
        scheduler.notify(("ada",))
        assert done.wait(30)
    finally:
        scheduler.shutdown()
    assert seen == ["clean"]
