"""Writing a benchmark report: JSON with the exact command, plus small statistics helpers."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["command_line", "percentiles", "set_command", "write_report"]

_argv: list[str] | None = None


def set_command(argv: Sequence[str]) -> None:
    """Remember the arguments ``sleeptime`` was called with (the CLI does this)."""
    global _argv
    _argv = list(argv)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that produced a report, as a user would type it."""
    args = list(argv if argv is not None else _argv if _argv is not None else sys.argv[1:])
    return shlex.join(["sleeptime", *args])


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean / n of a sample (empty sample: zeros)."""
    if not values:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "mean": 0.0}
    arr = np.asarray(values, dtype=float)
    return {
        "n": int(arr.size),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "mean": float(arr.mean()),
    }


def write_report(out_dir: str | Path, name: str, data: dict[str, Any]) -> Path:
    """Write ``<out_dir>/<name>.json`` with the command, time and machine added."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": name,
        "command": command_line(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # Shared machines: the load while the report was written qualifies every timing.
            "load_average_1_5_15": list(os.getloadavg()),
        },
        **data,
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path
