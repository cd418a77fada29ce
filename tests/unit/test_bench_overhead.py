"""`sleeptime bench overhead` on a tiny scale: the scripted sleeper's memory really grows."""

from __future__ import annotations

import json
from pathlib import Path

from sleeptime_bench.overhead import run_overhead

PNG_MAGIC = b"\x89PNG"


def test_overhead_report_has_the_four_measurements(tmp_path: Path) -> None:
    path = run_overhead(
        turns=3,
        sleeptime_latency=0.01,
        primary_latency=0.0,
        think=0.0,
        notes=[50],
        prompt_turns=[2, 15],
        out=tmp_path,
    )
    report = json.loads(path.read_text())
    assert report["framework"]["turn_s"]["n"] == 3
    inflight = report["in_flight"]
    assert inflight["sleeptime_off"]["sleeptime_runs"] == 0
    assert inflight["sleeptime_on"]["sleeptime_runs"] >= 1
    assert inflight["target_ratio"] == 1.05 and inflight["ratio_p50"] > 0
    assert report["memory_read_s"]["50"]["n"] == 50
    tokens = report["prompt_tokens"]
    refined = tokens["refined_memory_series"]
    # Every turn's fact was consolidated into the block the primary reads (a refused insert,
    # e.g. by the near-duplicate check, would leave the prompt flat).
    assert all(b > a for a, b in zip(refined[1:], refined[2:], strict=False))
    assert tokens["raw_history"]["15"] > tokens["refined_memory"]["15"]
    assert (tmp_path / "overhead.png").read_bytes().startswith(PNG_MAGIC)
