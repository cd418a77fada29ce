"""Chroma plumbing shared by every store of this package: clients, errors, the CAS insert.

Clients. :func:`connect_persistent`, :func:`connect_http`, :func:`connect_ephemeral` and
:func:`connect_url` build a chromadb client and say how it was built (:class:`Connection`); each
store's ``persistent`` / ``http`` / ``ephemeral`` / ``from_url`` classmethod is one call of these.
Every client gets :func:`chroma_settings` (no telemetry: this library works offline).

A deadline on every HTTP request. chromadb's own HTTP client waits forever
(``httpx.Client(timeout=None)``), so a server that accepts connections but never answers (paused,
swapping, wedged) would hang a user's turn with no error. :func:`http_client` is chromadb's
client with one change: every request has a deadline, and a request past it raises
``httpx.ReadTimeout``, which :func:`map_backend_errors` reports as ``MemoryUnavailable``.

Insert-if-absent. Chroma has no transactions, but its ``add`` ignores an id that already exists.
:func:`insert_if_absent` adds a record with a fresh write id and reads it back: the writer whose
write id is stored won. The race is decided inside Chroma, so it holds across processes that share
one Chroma server. The block store builds compare-and-swap of versions on it, the transcript the
claim of a sequence number.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.client import Client
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings

from sleeptime_agent.errors import MemoryUnavailable

__all__ = [
    "DEFAULT_HTTP_TIMEOUT",
    "DUMMY_VECTOR",
    "Connection",
    "chroma_settings",
    "connect_ephemeral",
    "connect_http",
    "connect_persistent",
    "connect_url",
    "http_client",
    "insert_if_absent",
    "map_backend_errors",
]

#: Seconds a request to a Chroma server may take. A CAS write is five requests, each well under
#: a second on a loaded server; half a minute only fires on a server that has stopped answering.
DEFAULT_HTTP_TIMEOUT = 30.0

#: The embedding of records that are never searched by vector (Chroma still wants one).
DUMMY_VECTOR = [1.0]


def chroma_settings() -> Settings:
    """Client settings used everywhere: no telemetry calls (this library works offline)."""
    return Settings(anonymized_telemetry=False)


@contextmanager
def map_backend_errors(where: str) -> Iterator[None]:
    """Turn a dead or unreachable Chroma server into one documented error (httpx style).

    Args:
        where: How the client was built (:attr:`Connection.describe`), for the message.

    Raises:
        MemoryUnavailable: the server cannot be reached or did not answer in time.
    """
    try:
        yield
    except (httpx.TransportError, ConnectionError) as exc:
        raise MemoryUnavailable(f"Chroma is unreachable ({where}): {exc}") from exc
    except Exception as exc:
        # chromadb wraps transport failures of its Rust/HTTP layers in its own errors.
        text = str(exc).lower()
        markers = ("refused", "error", "failed", "could not connect")
        if "connect" in text and any(m in text for m in markers):
            raise MemoryUnavailable(f"Chroma is unreachable ({where}): {exc}") from exc
        raise


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------


class _TimeoutClient(Client):
    """chromadb's client; its HTTP session gets a deadline before the first request."""

    def __init__(self, timeout: float | None, **kwargs: Any) -> None:
        self._timeout = timeout
        super().__init__(**kwargs)

    def get_user_identity(self) -> Any:
        # chromadb's constructor makes its first request here, right after building the
        # session; chromadb has no setting for the deadline, so it is set on the session.
        session = getattr(self._server, "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = httpx.Timeout(self._timeout)
        return super().get_user_identity()


def http_client(
    host: str = "127.0.0.1", port: int = 8000, *, timeout: float | None = DEFAULT_HTTP_TIMEOUT
) -> ClientAPI:
    """A client of the Chroma server at ``host:port`` whose requests time out.

    Args:
        host: Server host.
        port: Server port.
        timeout: Seconds per request (``None``: wait forever, chromadb's default).

    Returns:
        The client.
    """
    settings = chroma_settings()
    # What chromadb.HttpClient sets up, minus its wait-forever session.
    settings.chroma_api_impl = "chromadb.api.fastapi.FastAPI"
    settings.chroma_server_host = host
    settings.chroma_server_http_port = port
    return _TimeoutClient(
        timeout, tenant=DEFAULT_TENANT, database=DEFAULT_DATABASE, settings=settings
    )


class Connection(NamedTuple):
    """A chromadb client and how it was built, as a store's constructor takes them."""

    client: ClientAPI
    #: Shown in error messages ("Chroma server at http://127.0.0.1:8000").
    describe: str
    #: The collection prefix to use unless the caller gives one (ephemeral clients only).
    prefix: str | None = None

    def store_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments of a store: ``client``, ``describe``, then the caller's.

        Args:
            kwargs: The caller's arguments; a ``prefix`` among them wins over :attr:`prefix`.

        Returns:
            Keyword arguments for the store's constructor.
        """
        defaults: dict[str, Any] = {} if self.prefix is None else {"prefix": self.prefix}
        return {"client": self.client, "describe": self.describe, **defaults, **kwargs}


def connect_persistent(path: str | Path) -> Connection:
    """Embedded Chroma persisted under ``path`` (one process at a time); creates the directory.

    Args:
        path: The database directory (``~`` is expanded).

    Returns:
        The connection.
    """
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    client = chromadb.PersistentClient(path=str(path), settings=chroma_settings())
    return Connection(client, f"persistent store at {path}")


def connect_http(
    host: str = "127.0.0.1", port: int = 8000, *, timeout: float | None = DEFAULT_HTTP_TIMEOUT
) -> Connection:
    """A Chroma server (``chroma run``), shared by every process that connects to it.

    Args:
        host: Server host.
        port: Server port.
        timeout: Seconds per request; a request unanswered in time raises ``MemoryUnavailable``
            (chromadb's own client would wait forever on a server that accepts but never answers).

    Returns:
        The connection.

    Raises:
        MemoryUnavailable: the server cannot be reached.
    """
    where = f"Chroma server at http://{host}:{port}"
    with map_backend_errors(where):
        client = http_client(host, port, timeout=timeout)
    return Connection(client, where)


def connect_ephemeral() -> Connection:
    """In-memory Chroma, gone when the process ends (tests, notebooks).

    Ephemeral clients in one process share their data, so each connection comes with its own
    collection prefix (used unless the caller gives one).

    Returns:
        The connection.
    """
    client = chromadb.EphemeralClient(settings=chroma_settings())
    return Connection(client, "ephemeral store", prefix=f"eph-{uuid.uuid4().hex[:12]}")


def connect_url(url: str, *, timeout: float | None = DEFAULT_HTTP_TIMEOUT) -> Connection:
    """``http://host:port`` for a server, anything else is a directory for embedded Chroma.

    Args:
        url: The server URL or the database directory.
        timeout: Seconds per request to a server (ignored for a directory).

    Returns:
        The connection.
    """
    if url.startswith(("http://", "https://")):
        parsed = httpx.URL(url)
        return connect_http(parsed.host, parsed.port or 8000, timeout=timeout)
    return connect_persistent(url)


# ---------------------------------------------------------------------------------------------
# Insert-if-absent
# ---------------------------------------------------------------------------------------------


def insert_if_absent(
    collection: Any, record_id: str, document: str, metadata: Mapping[str, Any]
) -> bool:
    """Add one record unless its id exists, then read it back to learn whose record is stored.

    Chroma's ``add`` ignores an id that already exists, so of several writers racing for one id
    exactly one record is stored; its ``write_id`` (a fresh id added to ``metadata``) names the
    writer that won. A crash between the add and the read-back leaves the record written: the
    writer did win, it only did not learn it.

    Args:
        collection: The chromadb collection (typed ``Any``: chromadb's stubs reject plain float
            lists that it accepts at run time).
        record_id: The record's id, derived from what is being claimed (a block version, a
            transcript sequence number).
        document: The record's document.
        metadata: The record's metadata, without ``write_id``.

    Returns:
        ``True`` if this call's record is the stored one, ``False`` if another writer's is.
    """
    write_id = uuid.uuid4().hex
    collection.add(
        ids=[record_id],
        documents=[document],
        metadatas=[{**metadata, "write_id": write_id}],
        embeddings=[DUMMY_VECTOR],
    )
    got = collection.get(ids=[record_id], include=["metadatas"])
    metas = got["metadatas"] or []
    return bool(metas) and metas[0].get("write_id") == write_id
