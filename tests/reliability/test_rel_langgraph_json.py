"""langgraph.json: every graph it names loads the way LangGraph Server loads it, and answers.

The server imports ``./path.py`` as a standalone module (not as part of its package) and reads the
attribute after the colon. The test does the same with the models replaced by scripted ones and
the store pointed at a temporary directory or at the test Chroma server.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.graph.state import CompiledStateGraph

import sleeptime_agent.models as models
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import ScriptedChatModel, tool_call

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / "langgraph.json").read_text())


def load(ref: str) -> Any:
    """Import ``./file.py:attr`` by path, under a fresh module name, as the server does."""
    return getattr(load_module(ref), ref.partition(":")[2])


def load_module(ref: str) -> ModuleType:
    """The module of ``./file.py:attr``, imported by path under a fresh name."""
    file, _, attr = ref.partition(":")
    path = (ROOT / file).resolve()
    assert path.is_file() and attr, ref
    name = f"lg_graph_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def sleeptime_reply(messages: list[BaseMessage]) -> AIMessage:
    if any(m.type == "tool" for m in messages):
        return tool_call("memory_finish_edits")
    return tool_call("memory_insert", label="human", new_str="Name: Ada")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[str, ScriptedChatModel]:
    """Make every model spec resolve to a scripted model (the server's env stays as deployed)."""
    made = {
        "primary": ScriptedChatModel(replies=["Hello Ada!"], repeat_last=True),
        "sleeptime": ScriptedChatModel(replies=[sleeptime_reply], repeat_last=True),
    }

    def fake_resolve(spec: Any, *, env_var: str = models.PRIMARY_MODEL_ENV) -> Any:
        return made["sleeptime" if spec == "scripted-sleeptime" else "primary"]

    monkeypatch.setattr(models, "resolve_model", fake_resolve)
    monkeypatch.setenv(models.PRIMARY_MODEL_ENV, "scripted-primary")
    monkeypatch.setenv(models.SLEEPTIME_MODEL_ENV, "scripted-sleeptime")
    return made


def test_config_names_the_chat_graph() -> None:
    assert CONFIG["dependencies"] == ["."]
    assert set(CONFIG["graphs"]) == {"sleeptime_chat"}
    assert all(ref.startswith("./") and ".py:" in ref for ref in CONFIG["graphs"].values())


@pytest.mark.parametrize("backend", ["embedded", "server"])
def test_each_graph_loads_and_answers_one_turn(
    backend: str,
    scripted: dict[str, ScriptedChatModel],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("SLEEPTIME_HOME", str(tmp_path))
    if backend == "server":
        srv = request.getfixturevalue("chroma_server")
        monkeypatch.setenv("SLEEPTIME_CHROMA_URL", srv.url)
    else:
        monkeypatch.delenv("SLEEPTIME_CHROMA_URL", raising=False)
    for graph_id, ref in CONFIG["graphs"].items():
        module = load_module(ref)
        graph = getattr(module, ref.partition(":")[2])
        assert isinstance(graph, CompiledStateGraph), graph_id
        memory: SleeptimeMemory = module.memory
        assert graph.checkpointer is None  # the server brings its own (Postgres when deployed)
        user = f"ada-{uuid.uuid4().hex[:6]}"
        try:
            out = graph.invoke(
                {"messages": [HumanMessage("Hi, I'm Ada.")]},
                {"configurable": {"user_id": user, "thread_id": "t1"}},
            )
            assert out["messages"][-1].content == "Hello Ada!"
            memory.scheduler.wait_idle_sync(60)
            store: ChromaBlockStore = memory.store
            human = store.get_block((user,), "human")
            assert human is not None and human.value == "Name: Ada"
            if backend == "embedded":
                assert (tmp_path / "store").is_dir()
            else:
                assert "Chroma server" in store.describe
        finally:
            memory.scheduler.shutdown()


def test_importing_the_graph_loads_no_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the default local model, building the graph must not load (or assemble) weights."""
    local_model = pytest.importorskip("sleeptime_agent.local.chat_model")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was loaded at import time")

    monkeypatch.setattr(local_model, "ensure_gguf", refuse)
    monkeypatch.setattr(local_model, "get_server", refuse)
    monkeypatch.setenv("SLEEPTIME_HOME", str(tmp_path))
    monkeypatch.delenv(models.PRIMARY_MODEL_ENV, raising=False)
    monkeypatch.delenv(models.SLEEPTIME_MODEL_ENV, raising=False)
    monkeypatch.delenv("SLEEPTIME_CHROMA_URL", raising=False)
    try:
        pytest.importorskip("sleeptime_agent.local").require_local_extra()
    except Exception as exc:  # the `local` extra is not installed here
        pytest.skip(str(exc))
    for ref in CONFIG["graphs"].values():
        memory: SleeptimeMemory = load_module(ref).memory
        try:
            assert type(memory.sleeptime_model).__name__ == "LocalChatModel"
        finally:
            memory.scheduler.shutdown()
