"""Hundreds of preemptions at random moments lose no edit and apply none twice.

A scripted sleep-time model inserts one new fact per step, with a little latency; a user thread
enters the foreground gate at random moments meanwhile, so steps are preempted before, during
and after their model call. The ledger is checked against block history
(:func:`~sleeptime_agent.audit.audit_edits`) and the block against the facts every run wrote.
"""

from __future__ import annotations

from sleeptime_bench.critical_path import run_stress


def test_two_hundred_preemptions_lose_and_duplicate_nothing() -> None:
    result = run_stress(200, seed=7)
    assert result["preemptions"] >= 200
    assert result["audit"]["lost"] == []
    assert result["audit"]["duplicated"] == []
    assert result["lost_edits"] == 0
    assert result["duplicated_edits"] == 0
    assert result["edits"] == 4 * result["runs"]  # every run's four facts, once each
