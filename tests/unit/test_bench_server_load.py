"""The server-load benchmark's own logic: facts, write checks, percentiles, report (no server)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sleeptime_agent import ChromaBlockStore, MemoryBlock
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_agent.tools.guards import near_duplicate
from sleeptime_bench.server_load import (
    LoadConfig,
    PhaseResult,
    Turn,
    _percentiles,
    _ratio_interval,
    _turn_done,
    check_writes,
    fact_text,
    write_results,
)


def test_facts_are_unique_and_never_near_duplicates_of_each_other() -> None:
    rng = random.Random(0)
    facts = [fact_text(7, t, rng) for t in range(30)]
    assert len(set(facts)) == len(facts)
    for i, fact in enumerate(facts):
        others = "\n".join(facts[:i])
        assert near_duplicate(fact, others) is None, fact  # the editor would refuse it


def test_check_writes_counts_lost_and_duplicated_facts() -> None:
    store = ChromaBlockStore.ephemeral()
    ns = ("u1",)
    told = ["My car is Fiat-0100.", "My job is welder-0101.", "My allergy is latex-0102."]
    values = ["", told[0], f"{told[0]}\n{told[1]}", f"{told[0]}\n{told[1]}\n{told[1]}"]
    for version, value in enumerate(values):
        block = MemoryBlock(label="human", value=value, limit=5000)
        store.put_block(ns, block, expected_version=version, author="sleeptime")
    transcript = Transcript(store)
    for text in told:
        transcript.append(ns, "t", "user", text)
    turns = [Turn("on", "u1", i, text, acked=True, attempts=1) for i, text in enumerate(told)]
    checks = check_writes(store, turns)
    assert checks["facts_checked"] == 3
    assert checks["lost_writes"] == 1  # the allergy never reached the block
    assert checks["duplicated_writes"] == 1  # the job is in the block twice
    assert checks["lost_updates"] == 0 and checks["version_gaps"] == 0


def test_turn_done_needs_the_reply_after_the_message() -> None:
    human = {"type": "human", "content": "My car is Fiat."}
    assert not _turn_done([human], "My car is Fiat.")
    assert _turn_done([human, {"type": "ai", "content": "ok"}], "My car is Fiat.")


def test_percentiles_and_ratio_interval() -> None:
    stats = _percentiles([float(i) for i in range(1, 101)])
    assert stats["p50"] == 50.5 and stats["n"] == 100 and stats["max"] == 100.0
    same = [1.0 + 0.01 * i for i in range(100)]
    low, high = _ratio_interval(same, same) or [0.0, 0.0]
    assert low <= 1.0 <= high
    assert _ratio_interval(same[:5], same) is None


def test_report_has_the_issue_fields_and_the_ratio_without_first_turns(tmp_path: Path) -> None:
    def phase(name: str, first: float, later: float) -> PhaseResult:
        turns = [
            Turn(name, f"u{u}", i, f"fact {u} {i}", latency_s=first if i == 0 else later + u / 100)
            for u in range(20)
            for i in range(10)
        ]
        for t in turns:
            t.acked, t.attempts = True, 1
        return PhaseResult(name, turns=turns, load_s=30.0, drain_s=5.0 if name == "on" else None)

    # First turns equal in both phases and slow: they set p95; the later turns differ by 2x.
    results = [phase("off", 8.0, 1.0), phase("on", 8.0, 2.0)]
    data = json.loads(write_results(LoadConfig(), results, tmp_path).read_text())
    for key in ("users", "turns_per_user", "lost_writes", "duplicated_writes", "drain_s"):
        assert key in data
    assert data["users"] == 20 and data["turns_per_user"] == 10 and data["drain_s"] == 5.0
    assert data["p95_ratio_on_off"] == 1.0  # the first-turn cluster, identical in both phases
    assert data["p95_ratio_on_off_after_first_turn"] > 1.5  # ~1.85: the later turns decide
    assert data["phases"]["on"]["first_turn_latency_s"]["p50"] == 8.0
    assert "without each user's first turn" in (tmp_path / "server-load.md").read_text()
