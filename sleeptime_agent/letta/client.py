"""The letta-client boundary: building the client, mapping its errors, reading pages.

Everything the bridge knows about letta-client (``letta_client.Letta``, never the ``letta``
package) beyond the calls themselves lives here:

* :func:`make_letta_client` reads ``LETTA_BASE_URL`` / ``LETTA_API_KEY`` through
  :mod:`sleeptime_agent.config` when no argument is given.
* :func:`map_letta_errors` is the one boundary where letta-client errors become this library's
  errors (the way httpx's ``map_exceptions`` does it): unreachable servers and 5xx answers raise
  :class:`~sleeptime_agent.errors.MemoryUnavailable`; bad credentials, unknown agents and
  rejected requests raise :class:`~sleeptime_agent.errors.ConfigurationError`. A write the
  server refuses (:data:`REFUSED_WRITE`) is reported by the bridge instead.
* :func:`list_agent_blocks` and :func:`list_recent_messages` read one page only: the server
  (letta 0.11.7) ignores the ``after`` cursor, so letta-client's auto-pagination would never end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import letta_client
from letta_client import Letta

from sleeptime_agent import config
from sleeptime_agent.errors import ConfigurationError, MemoryUnavailable

__all__ = [
    "REFUSED_WRITE",
    "error_detail",
    "get_agent_block",
    "list_agent_blocks",
    "list_recent_messages",
    "make_letta_client",
    "map_letta_errors",
]

_BLOCK_PAGE = 1000  # blocks read per agent; the server ignores `after`, so one page only

#: letta-client errors meaning the server refused one block write (reported, not raised).
REFUSED_WRITE: tuple[type[letta_client.APIStatusError], ...] = (
    letta_client.BadRequestError,
    letta_client.UnprocessableEntityError,
)


def make_letta_client(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    timeout: float = 30.0,
    max_retries: int = 2,
) -> Letta:
    """Build a letta-client ``Letta`` from arguments or ``LETTA_BASE_URL`` / ``LETTA_API_KEY``.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8283``; defaults to ``$LETTA_BASE_URL``.
            With neither but an API key, letta-client's default (Letta Cloud) is used.
        api_key: defaults to ``$LETTA_API_KEY``; a self-hosted server usually needs none.
        timeout: seconds per request.
        max_retries: letta-client's retries on connection errors and 5xx answers.

    Raises:
        ConfigurationError: no server URL and no API key: nothing says where Letta is.
    """
    base_url = base_url or config.letta_base_url()
    api_key = api_key or config.letta_api_key()
    if base_url is None and api_key is None:
        raise ConfigurationError(
            "no Letta server configured: pass base_url or set LETTA_BASE_URL "
            "(and LETTA_API_KEY if the server needs one)"
        )
    if base_url is None:
        return Letta(api_key=api_key, timeout=timeout, max_retries=max_retries)
    return Letta(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def error_detail(exc: letta_client.APIStatusError) -> str:
    """The server's ``detail`` (or the error's message) on one line."""
    body = exc.body
    detail = body.get("detail") if isinstance(body, dict) else None
    text = str(detail if detail is not None else exc.message)
    return " ".join(text.split())


@contextmanager
def map_letta_errors(base_url: str, agent_id: str) -> Iterator[None]:
    """The one boundary where letta-client errors become this library's errors (httpx style).

    Raises:
        MemoryUnavailable: the server is unreachable or failed (HTTP 5xx).
        ConfigurationError: bad credentials, unknown agent, a rejected request or an unexpected
            response.
    """
    where = f"Letta server at {base_url}"
    try:
        yield
    except letta_client.APIConnectionError as exc:
        cause = exc.__cause__ or exc
        raise MemoryUnavailable(f"{where} is unreachable: {' '.join(str(cause).split())}") from exc
    except (letta_client.AuthenticationError, letta_client.PermissionDeniedError) as exc:
        raise ConfigurationError(
            f"{where} refused the credentials (HTTP {exc.status_code}): check LETTA_API_KEY"
        ) from exc
    except letta_client.NotFoundError as exc:
        raise ConfigurationError(
            f"agent {agent_id!r} not found on {where}: {error_detail(exc)}"
        ) from exc
    except letta_client.InternalServerError as exc:
        raise MemoryUnavailable(
            f"{where} failed (HTTP {exc.status_code}): {error_detail(exc)}"
        ) from exc
    except letta_client.APIStatusError as exc:
        raise ConfigurationError(
            f"{where} rejected a request (HTTP {exc.status_code}): {error_detail(exc)}"
        ) from exc
    except letta_client.APIResponseValidationError as exc:
        raise ConfigurationError(f"{where} sent an unexpected response: {exc}") from exc


def list_agent_blocks(client: Letta, agent_id: str) -> list[Any]:
    """The agent's core-memory blocks (letta-client ``BlockResponse`` objects), one page only."""
    return list(client.agents.blocks.list(agent_id, limit=_BLOCK_PAGE).items)


def get_agent_block(client: Letta, agent_id: str, label: str) -> Any | None:
    """The agent's block under ``label`` as the server has it now, or None if it has none."""
    try:
        return client.agents.blocks.retrieve(label, agent_id=agent_id)
    except letta_client.NotFoundError:
        return None


def list_recent_messages(client: Letta, agent_id: str, limit: int) -> list[Any]:
    """The agent's ``limit`` most recent messages, newest first where the server honours it.

    First page only: ``after`` is unreliable. Older servers ignore ``order="desc"`` too, so the
    page may come oldest first; the caller orders it by date.
    """
    page = client.agents.messages.list(agent_id, limit=limit, order="desc")
    return list(page.items)
