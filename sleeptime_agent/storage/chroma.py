"""A Chroma HTTP client whose requests time out.

chromadb's own HTTP client waits forever (``httpx.Client(timeout=None)``), so a server that
accepts connections but never answers (paused, swapping, wedged) would hang a user's turn with
no error. This client is chromadb's, with one change: every request has a deadline, and a
request past it raises ``httpx.ReadTimeout``, which the stores report as ``MemoryUnavailable``.
"""

from __future__ import annotations

from typing import Any

import httpx
from chromadb.api import ClientAPI
from chromadb.api.client import Client
from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings

__all__ = ["DEFAULT_HTTP_TIMEOUT", "http_client"]

#: Seconds a request to a Chroma server may take. A CAS write is five requests, each well under
#: a second on a loaded server; half a minute only fires on a server that has stopped answering.
DEFAULT_HTTP_TIMEOUT = 30.0


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
    settings = Settings(anonymized_telemetry=False)
    # What chromadb.HttpClient sets up, minus its wait-forever session.
    settings.chroma_api_impl = "chromadb.api.fastapi.FastAPI"
    settings.chroma_server_host = host
    settings.chroma_server_http_port = port
    return _TimeoutClient(
        timeout, tenant=DEFAULT_TENANT, database=DEFAULT_DATABASE, settings=settings
    )
