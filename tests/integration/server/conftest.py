"""`langgraph dev` on 127.0.0.1 with the project's langgraph.json, for the end-to-end tests.

The server runs from a temporary working directory: ``langgraph dev`` keeps its threads there
(``.langgraph_api/``) and resolves the graph paths of its config against it, so the fixture
writes a copy of the project's ``langgraph.json`` with the graph paths made absolute (and, for
the Postgres variant, a ``checkpointer`` section). Analytics and tracing are off, the browser is
not opened and code reloading is off (other edits in the tree must not restart the server).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sleeptime_agent.graphs.checkpointer as _checkpointer

ROOT = Path(__file__).resolve().parents[3]

SCRIPTED_PRIMARY = "scripted:recall?latency=0.05"
SCRIPTED_SLEEPTIME = "scripted:memorize?latency=0.05"
# By path, like the graphs (the dotted form would need "module.attr", not "module:attr").
POSTGRES_CHECKPOINTER = f"{Path(_checkpointer.__file__).resolve()}:postgres_checkpointer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _langgraph_bin() -> str:
    exe = Path(sys.executable).with_name("langgraph")
    return str(exe) if exe.exists() else "langgraph"


def server_config(workdir: Path, *, postgres: bool) -> Path:
    """The project's langgraph.json, graph paths absolute, optionally with Postgres checkpoints."""
    config: dict[str, Any] = json.loads((ROOT / "langgraph.json").read_text())
    config["dependencies"] = [str(ROOT)]
    graphs = {}
    for graph_id, ref in config["graphs"].items():
        path, _, attr = ref.partition(":")
        graphs[graph_id] = f"{(ROOT / path).resolve()}:{attr}"
    config["graphs"] = graphs
    if postgres:
        config["checkpointer"] = {"backend": "custom", "path": POSTGRES_CHECKPOINTER}
    out = workdir / "langgraph.json"
    out.write_text(json.dumps(config, indent=2))
    return out


class LangGraphDev:
    """A ``langgraph dev`` process that a test may stop and start again on the same state."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.config = config
        self.env = env
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "langgraph-dev.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        env = {**os.environ, **self.env}
        env.update(LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false")
        env.pop("LANGCHAIN_TRACING_V2", None)
        cmd = [_langgraph_bin(), "dev", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--no-browser", "--no-reload", "--config", str(self.config)]
        log = open(self.log, "ab")  # noqa: SIM115  # handed to the child process
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"langgraph dev exited with {self.proc.returncode}: {self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/ok", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"langgraph dev did not answer /ok in {timeout:.0f} s: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """Graceful stop (SIGINT, as Ctrl-C: the dev server saves its threads), then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture
def langgraph_dev_factory(
    tmp_path: Path, chroma_server: Any, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Make ``langgraph dev`` servers on the session's Chroma server; all stopped at the end."""
    made: list[LangGraphDev] = []

    def make(*, postgres: bool = False, extra_env: dict[str, str] | None = None) -> LangGraphDev:
        workdir = tmp_path / f"server-{len(made)}"
        workdir.mkdir()
        env = {
            "SLEEPTIME_MODEL": SCRIPTED_PRIMARY,
            "SLEEPTIME_SLEEPTIME_MODEL": SCRIPTED_SLEEPTIME,
            "SLEEPTIME_CONSOLIDATION": "tool-loop",  # the loop scripted:memorize speaks
            "SLEEPTIME_CHROMA_URL": chroma_server.url,
            "SLEEPTIME_HOME": str(workdir / "home"),
        }
        if postgres:
            env["SLEEPTIME_POSTGRES_URI"] = request.getfixturevalue("postgres").uri
        env.update(extra_env or {})
        server = LangGraphDev(workdir, server_config(workdir, postgres=postgres), env)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()
