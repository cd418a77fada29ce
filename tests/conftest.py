"""Shared fixtures: block stores on every backend, a real `chroma run` server on loopback, and a
spawner of worker processes that report one JSON line each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from sleeptime_agent.storage.block_store import ChromaBlockStore

# Property tests check behaviour, not speed: a per-example deadline fails them on a loaded
# shared machine (a benchmark running beside the suite) without anything being wrong.
settings.register_profile("sleeptime", deadline=None)
settings.load_profile("sleeptime")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chroma_bin() -> str:
    exe = Path(sys.executable).with_name("chroma")
    return str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")


class ChromaServer:
    """A `chroma run` process on 127.0.0.1 that tests may stop and restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        log = open(self.path.parent / f"chroma-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                _chroma_bin(),
                "run",
                "--path",
                str(self.path),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("chroma run did not become ready in 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real Chroma server for the whole session (or `SLEEPTIME_CHROMA_URL` if set)."""
    external = os.environ.get("SLEEPTIME_CHROMA_URL")
    if external:
        srv = ChromaServer(tmp_path_factory.mktemp("unused"))
        url = httpx.URL(external)
        srv.host, srv.port = url.host, url.port or 8000
        yield srv
        return
    srv = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """A private `chroma run` that a test may kill, pause (SIGSTOP) or restart."""
    srv = ChromaServer(tmp_path / "data")
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None:
            os.kill(srv.proc.pid, signal.SIGCONT)  # a paused server would not stop
        srv.stop()


@pytest.fixture(
    params=["ephemeral", "persistent", pytest.param("server", marks=pytest.mark.server)]
)
def block_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChromaBlockStore]:
    """The same ChromaBlockStore tests on every backend."""
    import uuid

    kind = request.param
    if kind == "ephemeral":
        yield ChromaBlockStore.ephemeral()
    elif kind == "persistent":
        yield ChromaBlockStore.persistent(tmp_path / "store")
    else:
        srv: ChromaServer = request.getfixturevalue("chroma_server")
        # A fresh prefix per test keeps tests independent on the shared server.
        yield ChromaBlockStore.http(srv.host, srv.port, prefix=f"t-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def store() -> ChromaBlockStore:
    """A fresh in-memory block store (the default for logic tests)."""
    return ChromaBlockStore.ephemeral()


WorkerRunner = Callable[[Path, Sequence[Sequence[str]]], list[dict[str, object]]]


def _run_workers(
    script: Path, argvs: Sequence[Sequence[str]], timeout: float = 600
) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.fixture
def run_workers() -> WorkerRunner:
    """Start one process per argv on ``script`` at once; each prints its report as a JSON line."""
    return _run_workers
