"""The served graph's memory: the foreground gate is bounded unless the local engine is shared."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from sleeptime_agent import config
from sleeptime_agent.testing import ScriptedChatModel

SERVER = Path(__file__).resolve().parents[2] / "sleeptime_agent" / "graphs" / "server.py"


def load_server(monkeypatch: pytest.MonkeyPatch, home: Path) -> ModuleType:
    """Import graphs/server.py by path, as LangGraph Server does, on scripted models."""
    monkeypatch.setenv(config.PRIMARY_MODEL_ENV, "scripted:recall")
    monkeypatch.setenv(config.SLEEPTIME_MODEL_ENV, "scripted:memorize")
    monkeypatch.setenv(config.HOME_ENV, str(home))
    monkeypatch.delenv(config.CHROMA_URL_ENV, raising=False)
    name = f"served_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


class EngineModel(ScriptedChatModel):
    """Stands in for LocalChatModel: a model of the `local` package."""


EngineModel.__module__ = "sleeptime_agent.local.chat_model"


def test_gate_is_bounded_for_other_models_and_not_for_the_local_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = load_server(monkeypatch, tmp_path)
    try:
        assert server.memory.gate.max_hold_seconds == server.HOLD_BOUND_SECONDS
        monkeypatch.delenv(config.SLEEPTIME_MODEL_ENV)  # the sleep-time model is the primary
        local = server.make_memory(EngineModel(replies=["hi"]))
        try:
            assert local.gate.max_hold_seconds is None  # #16: turns always preempt it
        finally:
            local.scheduler.shutdown()
    finally:
        server.memory.scheduler.shutdown()


class RoleModel(ScriptedChatModel):
    """A model that, like LocalChatModel, is pinned per role when it serves both agents."""

    role: str = ""

    def for_role(self, role: str) -> RoleModel:
        return self.model_copy(update={"role": role})


def test_one_model_for_both_agents_serves_each_in_its_role(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = load_server(monkeypatch, tmp_path)
    server.memory.scheduler.shutdown()
    monkeypatch.delenv(config.SLEEPTIME_MODEL_ENV)  # the sleep-time model is the primary
    mem = server.make_memory(RoleModel(replies=["hi"]))
    try:
        assert mem.sleeptime_model.role == "sleeptime"
    finally:
        mem.scheduler.shutdown()
    monkeypatch.setenv(config.SLEEPTIME_MODEL_ENV, "scripted:memorize")
    other = server.make_memory(RoleModel(replies=["hi"]))
    try:
        assert not isinstance(other.sleeptime_model, RoleModel)  # its own model, as given
    finally:
        other.scheduler.shutdown()
