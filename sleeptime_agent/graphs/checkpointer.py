"""Postgres checkpoints for the chat graph, in and out of LangGraph Server.

Two entry points, both reading the connection URI from ``SLEEPTIME_POSTGRES_URI`` unless one is
given:

* :func:`postgres_checkpointer`: an async context manager yielding an ``AsyncPostgresSaver`` on a
  connection pool. LangGraph Server loads it from the ``checkpointer`` section of
  ``langgraph.json`` (``{"backend": "custom", "path":
  "./sleeptime_agent/graphs/checkpointer.py:postgres_checkpointer"}``), so ``langgraph dev``
  keeps checkpoints in Postgres instead of its working directory;
* :func:`postgres_saver`: a context manager yielding a synchronous ``PostgresSaver`` for
  ``build_chat_graph(..., checkpointer=...)`` in an app of your own.

Both create the checkpoint tables on first use (``setup()`` is idempotent). The packages come
with the ``server`` extra (``langgraph-checkpoint-postgres``, ``psycopg[binary]``,
``psycopg-pool``).

Both let the pool's connections work at once. The savers of langgraph-checkpoint-postgres
(3.2) take one instance lock around every database operation, with a pool as with a single
connection (langchain-ai/langgraph#7259, fix proposed in #7269), so every run of the server
waited for every other run's checkpoint writes. Under ``sleeptime bench server-load`` (20 users)
a checkpoint write waited up to 3 s for that lock, the whole of the slow tail of turn latency.
A pool gives each operation a connection of its own, so the lock is replaced by a semaphore of
the pool's size: operations still wait (rather than fail on the pool's timeout) when every
connection is busy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

# Absolute imports: LangGraph Server loads this file by path, outside its package.
from sleeptime_agent import config
from sleeptime_agent.errors import ConfigurationError, MissingExtra

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

__all__ = ["postgres_checkpointer", "postgres_saver", "postgres_uri"]

# What psycopg connections need for the saver: autocommit (its setup runs DDL outside a
# transaction), no server-side prepared statements (poolers such as PgBouncer reject them),
# rows as dicts (the saver reads columns by name).
_CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0}


def postgres_uri(uri: str | None = None) -> str:
    """The connection URI: ``uri``, else ``$SLEEPTIME_POSTGRES_URI``.

    Raises:
        ConfigurationError: Neither is set.
    """
    value = (uri or "").strip() or config.postgres_uri()
    if not value:
        raise ConfigurationError(
            f"no Postgres URI: set {config.POSTGRES_URI_ENV}=postgresql://user@host:port/db"
        )
    return value


def _missing_extra(exc: ImportError) -> MissingExtra:
    return MissingExtra("server", exc.name or "langgraph.checkpoint.postgres")


@asynccontextmanager
async def postgres_checkpointer(
    uri: str | None = None, *, max_size: int = 20
) -> AsyncIterator[AsyncPostgresSaver]:
    """An ``AsyncPostgresSaver`` on a pool of at most ``max_size`` connections, tables created.

    Raises:
        ConfigurationError: No URI.
        MissingExtra: The `server` extra is not installed.
    """
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as exc:
        raise _missing_extra(exc) from exc
    conninfo = postgres_uri(uri)
    kwargs = {**_CONNECTION_KWARGS, "row_factory": dict_row}
    async with AsyncConnectionPool(conninfo, max_size=max_size, kwargs=kwargs, open=False) as pool:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]  # dict rows, as it reads them
        # One slot per connection instead of one lock for the pool (see the module docstring).
        saver.lock = asyncio.Semaphore(max_size)  # type: ignore[assignment]
        await saver.setup()
        yield saver


@contextmanager
def postgres_saver(uri: str | None = None, *, max_size: int = 10) -> Iterator[PostgresSaver]:
    """A synchronous ``PostgresSaver`` on a connection pool, tables created.

    Raises:
        ConfigurationError: No URI.
        MissingExtra: The `server` extra is not installed.
    """
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise _missing_extra(exc) from exc
    conninfo = postgres_uri(uri)
    kwargs = {**_CONNECTION_KWARGS, "row_factory": dict_row}
    with ConnectionPool(conninfo, max_size=max_size, kwargs=kwargs, open=False) as pool:
        saver = PostgresSaver(pool)  # type: ignore[arg-type]  # dict rows, as it reads them
        saver.lock = threading.BoundedSemaphore(max_size)  # type: ignore[assignment]  # as above
        saver.setup()
        yield saver
