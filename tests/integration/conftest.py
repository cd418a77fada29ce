"""A real PostgreSQL server on 127.0.0.1 for the checkpointer tests, started and stopped here.

PostgreSQL comes from Debian's packages (``.ci/run`` installs them when ``initdb`` is missing).
``initdb`` and ``postgres`` refuse to run as root, so as root the fixture runs them as the
``postgres`` user the package creates (``runuser``); the data directory is a fresh temporary
directory that user owns. Trust authentication on loopback only: the server is private to the
test session and stopped at its end, also when a test fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook: the child gets SIGTERM when its parent thread dies (Linux).

    The fixture starts the server from pytest's main thread, so a killed test run leaves no
    server behind (runuser forwards SIGTERM to postgres).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def hook() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


def _pg_bindir() -> Path | None:
    """Where ``initdb`` and ``postgres`` live: on PATH, else Debian's versioned directory."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, no fsync: test data only)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = _free_port()
        # Not under pytest's tmp_path: its parent is private to root, and the server runs as
        # the unprivileged `postgres` user, which must reach its data directory.
        self.root = Path(tempfile.mkdtemp(prefix="sleeptime-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root needs `runuser` to start PostgreSQL")
            shutil.chown(self.root, user="postgres", group="postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def uri(self) -> str:
        """A libpq connection URI for the ``postgres`` database."""
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (``initdb``)."""
        cmd = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        cmd += ["-A", "trust", "-E", "UTF8", "--no-sync"]
        out = subprocess.run(
            [*self._as_user, *cmd], capture_output=True, text=True, timeout=120, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed ({out.returncode}): {out.stderr[-2000:]}")

    def start(self) -> None:
        """Start ``postgres`` on loopback and wait until it accepts connections."""
        import psycopg

        log = open(self.log, "ab")  # noqa: SIM115  # handed to the child process
        cmd = [str(self.bindir / "postgres"), "-D", str(self.data), "-k", str(self.root)]
        cmd += ["-c", f"listen_addresses={self.host}", "-p", str(self.port)]
        cmd += ["-c", "fsync=off", "-c", "max_connections=200"]
        self.proc = subprocess.Popen(
            [*self._as_user, *cmd],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only prctl runs between fork and exec (preexec_fn is unsafe with threads otherwise).
            preexec_fn=_die_with_parent(),  # noqa: PLW1509
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.tail()}")
            try:
                with psycopg.connect(self.uri, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise RuntimeError(f"postgres did not accept connections in 60 s: {self.tail()}")

    def tail(self) -> str:
        """The end of the server log (for error messages)."""
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL of the process group if it hangs."""
        if self.proc is not None and self.proc.poll() is None:
            # To the whole group: runuser does not forward SIGINT, and SIGINT is the fast
            # shutdown (SIGTERM would wait for every client to disconnect).
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (skipped when PostgreSQL is not installed).

    Under CI (``CI`` set) a missing PostgreSQL fails instead: ``.ci/run`` installs it.
    """
    pytest.importorskip("psycopg")
    bindir = _pg_bindir()
    if bindir is None:
        message = "PostgreSQL is not installed (apt-get install -y postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.cleanup()
