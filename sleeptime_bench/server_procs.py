"""Server processes a benchmark starts on 127.0.0.1: `chroma run`, PostgreSQL, `langgraph dev`.

Each one starts in a directory of its own, waits until it answers, and stops on :meth:`stop`
(the benchmark stops all of them in a ``finally``). Nothing listens beyond loopback.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

import sleeptime_agent.graphs.checkpointer as _checkpointer

__all__ = [
    "ChromaProcess",
    "LangGraphDevProcess",
    "PostgresProcess",
    "free_port",
    "rss_bytes",
    "server_config",
]

# By path, like the graphs (the dotted form would need "module.attr", not "module:attr").
POSTGRES_CHECKPOINTER = f"{Path(_checkpointer.__file__).resolve()}:postgres_checkpointer"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _venv_bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (Linux ``/proc``; 0 when gone)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            todo.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


class _Process:
    """A child process in its own session (so a stop reaches its children too)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The child's process id (it must be running)."""
        assert self.proc is not None
        return self.proc.pid

    def tail(self, chars: int = 2000) -> str:
        """The end of the log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _wait_ready(self, probe: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.proc.returncode}: {self.tail()}")
            try:
                if probe():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{what} did not become ready in {timeout:.0f} s: {self.tail()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        """Signal the process group, wait, then SIGKILL it if it does not exit."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class ChromaProcess(_Process):
    """``chroma run`` on 127.0.0.1 with its data under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "chroma")
        self.port = free_port()

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start and wait for the heartbeat."""
        cmd = [_venv_bin("chroma"), "run", "--path", str(self.workdir / "data")]
        self._spawn([*cmd, "--host", "127.0.0.1", "--port", str(self.port)])
        self._wait_ready(
            lambda: httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200,
            "chroma run",
            timeout,
        )


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class PostgresProcess(_Process):
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off).

    As root, ``initdb`` and ``postgres`` run as the ``postgres`` user of Debian's package, which
    must own (and reach) ``workdir``: pick one outside root-only directories.
    """

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "postgres")
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user="postgres", group="postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def uri(self) -> str:
        """A libpq URI for the ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60) -> None:
        """``initdb`` (first time), start, and wait until it accepts connections."""
        import psycopg

        data = self.workdir / "data"
        if not data.exists():
            cmd = [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            subprocess.run(
                [*self._as_user, *cmd, "-E", "UTF8", "--no-sync"],
                check=True,
                capture_output=True,
                timeout=120,
            )
        cmd = [str(self.bindir / "postgres"), "-D", str(data), "-k", str(self.workdir)]
        cmd += ["-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-c", "fsync=off"]
        self._spawn([*self._as_user, *cmd, "-c", "max_connections=200"])

        def ready() -> bool:
            with psycopg.connect(self.uri, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True

        self._wait_ready(ready, "postgres", timeout)


def server_config(root: Path, workdir: Path, *, postgres: bool) -> Path:
    """``root``'s langgraph.json with absolute graph paths (optionally Postgres checkpoints)."""
    config: dict[str, Any] = json.loads((root / "langgraph.json").read_text())
    config["dependencies"] = [str(root)]
    config["graphs"] = {
        gid: f"{(root / ref.partition(':')[0]).resolve()}:{ref.partition(':')[2]}"
        for gid, ref in config["graphs"].items()
    }
    if postgres:
        config["checkpointer"] = {"backend": "custom", "path": POSTGRES_CHECKPOINTER}
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "langgraph.json"
    out.write_text(json.dumps(config, indent=2))
    return out


class LangGraphDevProcess(_Process):
    """``langgraph dev`` (analytics off, no browser, no reload) in ``workdir``.

    ``workdir`` holds the dev server's own state (``.langgraph_api``), so a restart in the same
    directory keeps its threads.
    """

    def __init__(self, workdir: Path, config: Path, env: dict[str, str], *, jobs: int = 10) -> None:
        super().__init__(workdir, "langgraph-dev")
        self.config = config
        self.env = env
        self.jobs = jobs
        self.port = free_port()

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        """Start and wait until ``/ok`` answers."""
        env = {**os.environ, **self.env, "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
        env["LANGSMITH_TRACING"] = "false"
        env.pop("LANGCHAIN_TRACING_V2", None)
        cmd = [_venv_bin("langgraph"), "dev", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--no-browser", "--no-reload", "--config", str(self.config)]
        self._spawn([*cmd, "--n-jobs-per-worker", str(self.jobs)], env)
        self._wait_ready(
            lambda: httpx.get(f"{self.url}/ok", timeout=2).status_code == 200,
            "langgraph dev",
            timeout,
        )
