"""``sleeptime bench``: re-measure the paper's claims and the system's own speed.

Each benchmark lives in its own module under ``sleeptime_bench`` and exposes
``register(sub)``, which adds its subcommand(s) to ``sleeptime bench``. A module that fails to
import is a bug of the harness and raises (no silently missing subcommand). Each subcommand
records the exact command line in its report (:func:`~sleeptime_bench.report.set_command`).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from sleeptime_bench.report import set_command

__all__ = ["BENCH_MODULES", "register"]

#: Modules that add ``sleeptime bench`` subcommands, in listing order.
BENCH_MODULES = (
    "stateful",  # stateful-gsm, stateful-aime
    "amortization",
    "predictability",
    "locomo",
    "recall_bench",  # locomo-recall
    "memory_curve",  # memory-curve
    "longmemeval",
    "overhead",
    "store_bench",  # store
    "local_model_bench",  # local-model
    "server_load",  # server-load
    "critical_path",  # critical-path
    "gsm_validate",  # gsm-validate
)


def register(sub: Any) -> None:
    """Add ``bench`` and every available benchmark under it."""
    p = sub.add_parser(
        "bench",
        help="benchmarks: the paper's experiments, memory benchmarks, overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(f"sleeptime_bench.{name}").register(bsub)
    for parser in bsub.choices.values():
        func = parser.get_default("func")
        if func is not None:
            parser.set_defaults(func=_recording(func))


def _recording(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        set_command(getattr(args, "argv", None) or [])
        return func(args)

    return run
