"""Every environment variable the project reads, in one place, read when asked (never at import).

==============================  ============================================================
``SLEEPTIME_HOME``              data directory (default ``~/.local/share/sleeptime``): the
                                embedded store and the assembled local model live under it
``SLEEPTIME_MODEL``             the primary model spec (``local`` or ``provider:model``)
``SLEEPTIME_SLEEPTIME_MODEL``   the sleep-time model spec (default: the primary one)
``SLEEPTIME_USER``              whose memory the CLI opens (default: the login name)
``SLEEPTIME_CHROMA_URL``        a Chroma server (``http://host:port``) instead of the
                                embedded store; required once several processes share memory
``SLEEPTIME_POSTGRES_URI``      a Postgres checkpointer for the server graph (optional)
``SLEEPTIME_EVERY_N_TURNS``     the server graph's sleep-time schedule: a run after every N
                                turns of a user (default 1); 0 turns background runs off
``SLEEPTIME_DELAY_SECONDS``     the server graph's debounce: a run starts after this many
                                seconds without a newer turn of the user (default 0)
``SLEEPTIME_CONSOLIDATION``     how the server graph consolidates (``auto``, ``pipeline`` or
                                ``tool-loop``; default: SleeptimeMemory's, ``auto``)
``SLEEPTIME_DATA``              evaluation data for ``sleeptime bench`` (``../shared/data``)
``LETTA_BASE_URL``              the Letta server the bridge talks to
``LETTA_API_KEY``               its API key (Letta Cloud)
==============================  ============================================================

An unset or blank variable counts as unset.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

__all__ = [
    "CHROMA_URL_ENV",
    "CONSOLIDATION_ENV",
    "DATA_ENV",
    "DELAY_SECONDS_ENV",
    "EVERY_N_TURNS_ENV",
    "HOME_ENV",
    "LETTA_API_KEY_ENV",
    "LETTA_BASE_URL_ENV",
    "POSTGRES_URI_ENV",
    "PRIMARY_MODEL_ENV",
    "SLEEPTIME_MODEL_ENV",
    "USER_ENV",
    "chroma_url",
    "consolidation",
    "data_path",
    "default_store_path",
    "delay_seconds",
    "env",
    "every_n_turns",
    "letta_api_key",
    "letta_base_url",
    "model_spec",
    "postgres_uri",
    "sleeptime_home",
    "user_id",
]

HOME_ENV = "SLEEPTIME_HOME"
PRIMARY_MODEL_ENV = "SLEEPTIME_MODEL"
SLEEPTIME_MODEL_ENV = "SLEEPTIME_SLEEPTIME_MODEL"
USER_ENV = "SLEEPTIME_USER"
CHROMA_URL_ENV = "SLEEPTIME_CHROMA_URL"
POSTGRES_URI_ENV = "SLEEPTIME_POSTGRES_URI"
EVERY_N_TURNS_ENV = "SLEEPTIME_EVERY_N_TURNS"
CONSOLIDATION_ENV = "SLEEPTIME_CONSOLIDATION"
DELAY_SECONDS_ENV = "SLEEPTIME_DELAY_SECONDS"
DATA_ENV = "SLEEPTIME_DATA"
LETTA_BASE_URL_ENV = "LETTA_BASE_URL"
LETTA_API_KEY_ENV = "LETTA_API_KEY"


def env(name: str) -> str | None:
    """The variable's value stripped of blanks, or ``None`` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def sleeptime_home() -> Path:
    """The data directory: the embedded store and the assembled local model live under it."""
    return Path(env(HOME_ENV) or "~/.local/share/sleeptime").expanduser()


def default_store_path() -> Path:
    """The embedded Chroma directory used when no ``--store`` / ``--chroma-url`` is given."""
    return sleeptime_home() / "store"


def model_spec(env_var: str = PRIMARY_MODEL_ENV) -> str | None:
    """The model spec in ``env_var`` (:data:`PRIMARY_MODEL_ENV` or :data:`SLEEPTIME_MODEL_ENV`)."""
    return env(env_var)


def user_id() -> str:
    """Whose memory the CLI opens: ``SLEEPTIME_USER``, else the login name."""
    return env(USER_ENV) or getpass.getuser()


def chroma_url() -> str | None:
    """The Chroma server to use instead of the embedded store, if any."""
    return env(CHROMA_URL_ENV)


def postgres_uri() -> str | None:
    """The Postgres connection string of the server graph's checkpointer, if any."""
    return env(POSTGRES_URI_ENV)


def consolidation() -> str | None:
    """The server graph's consolidation (``auto`` / ``pipeline`` / ``tool-loop``), if set."""
    return env(CONSOLIDATION_ENV)


def every_n_turns() -> int:
    """Turns of a user between sleep-time runs of the server graph (0: no background runs).

    Raises:
        ConfigurationError: The value is not a whole number >= 0.
    """
    value = env(EVERY_N_TURNS_ENV)
    if value is None:
        return 1
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        from sleeptime_agent.errors import ConfigurationError

        raise ConfigurationError(f"{EVERY_N_TURNS_ENV} must be a whole number >= 0, got {value!r}")
    return n


def delay_seconds() -> float:
    """Seconds of quiet after a user's turn before the server graph's sleep-time run starts.

    Raises:
        ConfigurationError: The value is not a number >= 0.
    """
    value = env(DELAY_SECONDS_ENV)
    if value is None:
        return 0.0
    try:
        delay = float(value)
    except ValueError:
        delay = -1.0
    if not delay >= 0:  # also refuses nan
        from sleeptime_agent.errors import ConfigurationError

        raise ConfigurationError(f"{DELAY_SECONDS_ENV} must be a number >= 0, got {value!r}")
    return delay


def data_path() -> Path | None:
    """The evaluation data directory named by ``SLEEPTIME_DATA``, if set."""
    value = env(DATA_ENV)
    return Path(value).expanduser() if value else None


def letta_base_url() -> str | None:
    """The Letta server's URL, if set."""
    return env(LETTA_BASE_URL_ENV)


def letta_api_key() -> str | None:
    """The Letta API key, if set."""
    return env(LETTA_API_KEY_ENV)
