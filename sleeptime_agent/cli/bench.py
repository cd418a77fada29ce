"""``sleeptime bench``: re-measure the paper's claims and the system's own speed.

Each benchmark lives in its own module under ``sleeptime_agent.bench`` and exposes
``register(sub)``, which adds its subcommand(s) to ``sleeptime bench``. A module that is not
installed (or fails to import for a missing optional dependency) is left out of the listing.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import Any

__all__ = ["BENCH_MODULES", "register"]

log = logging.getLogger(__name__)

#: Modules that add ``sleeptime bench`` subcommands, in listing order.
BENCH_MODULES = (
    "stateful",  # stateful-gsm, stateful-aime
    "amortization",
    "predictability",
    "locomo",
    "longmemeval",
    "overhead",
    "store_bench",  # store
    "local_model_bench",  # local-model
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
        try:
            module = importlib.import_module(f"sleeptime_agent.bench.{name}")
        except ImportError as exc:
            if exc.name and exc.name.endswith(f"bench.{name}"):
                continue  # not written yet / not shipped
            log.debug("bench %s unavailable: %s", name, exc)
            continue
        module.register(bsub)
