"""The ``sleeptime`` command: chat with persistent memory, inspect and edit memory, Letta, benches.

Exit codes (stable, for scripts): 0 success; 1 unexpected error; 2 usage error; 3 configuration
error (unknown provider, missing API key, missing ``local`` extra); 4 memory backend unreachable;
5 memory operation refused (version conflict, over the limit, read-only, no such block/version).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

from sleeptime_agent.cli import chat, letta, memory
from sleeptime_agent.errors import (
    BlockLimitExceeded,
    BlockNotFound,
    ConfigurationError,
    MemoryUnavailable,
    MissingExtra,
    ReadOnlyBlock,
    SleeptimeError,
    VersionConflict,
)

__all__ = ["EXIT_CODES", "build_parser", "main"]

EXIT_CODES = {"ok": 0, "error": 1, "usage": 2, "config": 3, "unavailable": 4, "refused": 5}

_EPILOG = """\
exit codes: 0 ok, 1 unexpected error, 2 usage, 3 configuration (provider, API key, extra),
4 memory backend unreachable, 5 refused (version conflict, limit, read-only, not found).

environment: SLEEPTIME_MODEL, SLEEPTIME_SLEEPTIME_MODEL (model specs), SLEEPTIME_USER,
SLEEPTIME_HOME (data directory, default ~/.local/share/sleeptime), SLEEPTIME_CHROMA_URL."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (subcommands register themselves)."""
    parser = argparse.ArgumentParser(
        prog="sleeptime",
        description=(
            "Sleep-time compute for LangGraph: a chat assistant whose memory is consolidated "
            "between turns by a background agent, with versioned memory blocks in Chroma."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chat.register(sub)
    memory.register(sub)
    letta.register(sub)
    _register_bench(sub)
    return parser


def _register_bench(sub: Any) -> None:
    """``sleeptime bench`` comes from the ``sleeptime_bench`` package when its extra is installed.

    Without the extra, ``bench`` is still listed and says how to install it. Any other import
    error inside the harness is a bug and propagates (no silently missing subcommand).
    """
    try:
        from sleeptime_bench.cli import register
    except MissingExtra as exc:
        hint = str(exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "sleeptime_bench" or find_spec("sleeptime_bench"):
            raise
        hint = str(MissingExtra("bench", "sleeptime_bench"))
    else:
        register(sub)
        return
    p = sub.add_parser("bench", help="benchmarks (needs the `bench` extra)", description=hint)
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=lambda _args: _missing_bench(hint))


def _missing_bench(hint: str) -> int:
    raise ConfigurationError(f"sleeptime bench: {hint}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # benchmark reports record the exact command that produced them
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return 130
    except ConfigurationError as exc:
        return _fail(exc, "config")
    except MemoryUnavailable as exc:
        return _fail(exc, "unavailable")
    except (VersionConflict, BlockLimitExceeded, ReadOnlyBlock, BlockNotFound) as exc:
        return _fail(exc, "refused")
    except SleeptimeError as exc:
        return _fail(exc, "error")


def _fail(exc: BaseException, kind: str) -> int:
    print(f"sleeptime: error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's own output
    return EXIT_CODES[kind]


if __name__ == "__main__":
    sys.exit(main())
