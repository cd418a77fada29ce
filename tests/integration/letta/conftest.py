"""A real Letta server for the Letta bridge tests, and helpers to make agents on it.

The server (``letta[server,sqlite]==0.11.7``) lives in its own virtualenv, installed once by
``scripts/letta-server.sh`` at ``${SLEEPTIME_LETTA_VENV:-~/.cache/sleeptime/letta-venv}``; it can
never share the project's environment (its pins conflict with chromadb and langgraph). Each test
session starts it on a free loopback port with a throwaway HOME (SQLite) and stops it at the end.
Set ``SLEEPTIME_LETTA_URL`` to use a server that is already running instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from letta_client import Letta

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "letta-server.sh"
INSTALL_TIMEOUT_S = 900
READY_TIMEOUT_S = 180
MODEL = "letta/letta-free"  # the only model/embedding that server accepts with no provider set


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(config: pytest.Config, line: str) -> None:
    """Print past pytest's capture, so install and start times show in every run's output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def letta_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a real Letta server (installed if needed, started, stopped at the end)."""
    external = os.environ.get("SLEEPTIME_LETTA_URL")
    if external:
        if not _ready(external):
            pytest.fail(f"SLEEPTIME_LETTA_URL={external} does not answer /v1/health/")
        yield external.rstrip("/")
        return

    workdir = tmp_path_factory.mktemp("letta")
    started = time.monotonic()
    install = subprocess.run(
        ["bash", str(SCRIPT), "install"],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    install_s = time.monotonic() - started
    if install.returncode != 0:
        pytest.fail(f"installing the Letta server failed:\n{install.stderr[-3000:]}")
    _say(request.config, f"[letta] install step: {install_s:.1f} s ({install.stderr.strip()})")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "server.log"
    env = {**os.environ, "SLEEPTIME_LETTA_HOME": str(workdir / "home")}
    (workdir / "home").mkdir()
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT), "start", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop the script and the server
        )
    try:
        deadline = started + READY_TIMEOUT_S
        while not _ready(url):
            if proc.poll() is not None:
                pytest.fail(f"letta server exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"letta server not ready in {READY_TIMEOUT_S} s:\n{_tail(log_path)}")
            time.sleep(0.5)
        _say(request.config, f"[letta] server ready at {url} in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def letta(letta_server: str) -> Letta:
    """A letta-client for the test server."""
    return Letta(base_url=letta_server, max_retries=0, timeout=60)


AgentFactory = Callable[..., str]


@pytest.fixture
def make_agent(letta: Letta) -> Iterator[AgentFactory]:
    """``make_agent(blocks, messages=None) -> agent_id``; agents and blocks go at teardown.

    Blocks are created with ``client.blocks.create`` and attached by id, because the server
    drops ``metadata`` of blocks passed inline to ``agents.create(memory_blocks=...)``.
    """
    agents: list[str] = []
    blocks: list[str] = []

    def make(
        block_specs: list[dict[str, Any]], messages: list[dict[str, str]] | None = None
    ) -> str:
        ids = []
        for spec in block_specs:
            created = letta.blocks.create(**spec)
            blocks.append(created.id)
            ids.append(created.id)
        agent = letta.agents.create(
            name=f"test-{uuid.uuid4().hex[:8]}",
            model=MODEL,
            embedding=MODEL,
            block_ids=ids,
            include_base_tools=False,
            initial_message_sequence=messages or [],  # type: ignore[arg-type]
        )
        agents.append(agent.id)
        return str(agent.id)

    yield make
    for agent_id in agents:
        try:
            for block in letta.agents.blocks.list(agent_id, limit=1000).items:
                blocks.append(block.id)
            letta.agents.delete(agent_id)
        except Exception:  # best-effort cleanup
            pass
    for block_id in set(blocks):
        try:
            letta.blocks.delete(block_id)
        except Exception:
            pass
