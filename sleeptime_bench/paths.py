"""Where the evaluation data lives: resolution of the data directory and required files."""

from __future__ import annotations

from pathlib import Path

from sleeptime_agent.config import DATA_ENV, data_path, sleeptime_home
from sleeptime_agent.errors import ConfigurationError

__all__ = ["DATA_ENV", "OUT_HELP", "data_dir", "default_out", "require_file"]

OUT_HELP = "output directory (default: $SLEEPTIME_HOME/bench/<benchmark>)"

_DEFAULT = Path("..") / "shared" / "data"
_REPO_ROOT = Path(__file__).resolve().parents[1]  # a checkout: sleeptime_bench/ at its top


def data_dir(explicit: str | Path | None = None) -> Path:
    """Resolve the evaluation data directory.

    The first of these wins: ``explicit`` (the ``--data`` option), the ``SLEEPTIME_DATA``
    environment variable, ``../shared/data`` relative to the current directory, then
    ``../shared/data`` relative to the repository root. An explicit path or a set environment
    variable that does not exist is an error, not a reason to fall through to the defaults.

    Args:
        explicit: A path given by the caller, or ``None``.

    Returns:
        The resolved, absolute directory.

    Raises:
        ConfigurationError: The directory cannot be found.
    """
    if explicit is not None and str(explicit) != "":
        return _existing(Path(explicit).expanduser(), "--data")
    env = data_path()
    if env is not None:
        return _existing(env, DATA_ENV)
    candidates = [Path.cwd() / _DEFAULT, _REPO_ROOT / _DEFAULT]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c.resolve()) for c in candidates)
    raise ConfigurationError(
        f"evaluation data not found (tried {tried}): pass --data DIR or set {DATA_ENV}=DIR"
    )


def _existing(path: Path, origin: str) -> Path:
    if not path.is_dir():
        raise ConfigurationError(
            f"evaluation data directory {str(path)!r} (from {origin}) does not exist: "
            f"pass --data DIR or set {DATA_ENV}=DIR to the folder holding gsm-symbolic/, aime/, ..."
        )
    return path.resolve()


def require_file(root: Path, relative: str) -> Path:
    """Return ``root / relative`` or raise a :class:`ConfigurationError` naming what is missing.

    Args:
        root: The data directory from :func:`data_dir`.
        relative: The file's path inside it, e.g. ``"locomo/locomo10.json"``.

    Returns:
        The file's path.

    Raises:
        ConfigurationError: The file does not exist.
    """
    path = Path(root) / relative
    if not path.is_file():
        raise ConfigurationError(
            f"{relative} not found under the data directory {str(root)!r}: pass --data DIR or "
            f"set {DATA_ENV}=DIR to a directory that holds it"
        )
    return path


def default_out(bench: str) -> str:
    """Where ``bench`` writes when no ``--out`` is given: ``$SLEEPTIME_HOME/bench/<bench>``.

    Not the current directory: an installed harness must not assume a repository checkout.
    Committed reports name their ``--out`` (``benchmarks/results/<bench>``) in their command.
    """
    return str(sleeptime_home() / "bench" / bench)
