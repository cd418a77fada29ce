"""Crash safety: SIGKILL a consolidation at random points; memory stays whole and the work resumes.

A victim process runs a sleep-time consolidation (a scripted model making several edits with a
small latency) against an embedded, persistent Chroma directory and is killed with SIGKILL after
a seeded random delay. Then a new process opens the same directory (never while the victim
lives: see OFFLINE.md on PersistentClient and several processes), reports and recovers, and
becomes the next victim. The checks:

* every block's history is versions 1..n, each a state the script can produce, in order
  (a killed write left either a whole version or nothing);
* the cursor did not pass unconsolidated messages: it is either unchanged or at the end, and at
  the end only if every edit of the run is in memory;
* a next run completes the work: the cursor reaches the last message and memory is in its final
  state, with no version written twice.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from pathlib import Path
from typing import Any

import pytest
import rel_crash_child as child

pytestmark = pytest.mark.slow

TRIALS = 15
SEED = 20240611
LATENCY = 0.04  # seconds per scripted model call


@pytest.fixture(scope="module")
def ctx() -> mp.context.ForkServerContext:
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["rel_crash_child"])
    return context


class Trial:
    """One process: reports on (and recovers) the previous kill, then runs until killed."""

    def __init__(
        self, ctx: mp.context.ForkServerContext, path: Path, check: str | None, run: str | None
    ) -> None:
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=child.trial, args=(str(path), check, run, LATENCY, send))
        self.proc.start()
        send.close()

    def expect(self, kind: str) -> Any:
        assert self.recv.poll(120), f"no {kind!r} from the trial process"
        msg = self.recv.recv()
        assert msg[0] == kind, msg
        return msg[1]

    def kill_after(self, delay: float) -> tuple[Any, ...] | None:
        """SIGKILL after ``delay`` (unless it ended first): no cleanup, no lease release."""
        self.proc.join(delay)
        self.proc.kill()
        self.proc.join(30)
        done = None
        try:
            while self.recv.poll(0):
                msg = self.recv.recv()
                if msg[0] == "done":
                    done = msg
        except (EOFError, OSError):
            pass
        return done

    def finish(self) -> None:
        self.proc.join(60)
        assert self.proc.exitcode == 0


def assert_states(history: list[tuple[int, str, str]], states: list[str], label: str) -> None:
    """Versions 1..n whose values are the script's states in order (no gap, no repeat)."""
    assert [v for v, _, _ in history] == list(range(1, len(history) + 1)), label
    assert [value for _, value, _ in history] == states[: len(history)], label
    assert all(author == "sleeptime" for _, _, author in history[1:]), label


def check(victim: dict[str, Any], report: dict[str, Any], outcomes: dict[str, int]) -> None:
    """What a new process found after the kill, and after it finished the work."""
    before, after = report["before"], report["after"]
    where = f"trial {victim['user']} (killed after {victim['delay']:.2f}s, done={victim['done']})"
    # 1. Every block holds whole versions the script can produce, contiguous from 1.
    hist = before["history"]
    assert_states(hist["human"], child.HUMAN_STATES, where)
    assert_states(hist["anticipation"], child.ANTICIPATION_STATES, where)
    assert len(hist["persona"]) <= 1, where
    # 2. The cursor never passes unconsolidated messages.
    assert before["last_seq"] == victim["last_seq"] == len(child.MESSAGES), where
    assert before["cursor"] in (0, before["last_seq"]), where
    if before["cursor"]:
        # It moved only after the run's edit loop: every edit is in memory.
        assert hist["human"][-1][1] == child.HUMAN_STATES[-1], where
        assert hist["anticipation"][-1][1] == child.ANTICIPATION_STATES[-1], where
        assert child.NOTE in before["notes"], where
    if victim["done"] is not None:
        assert victim["done"][1] == "ok" and before["cursor"] == before["last_seq"], where
        outcomes["finished_before_kill"] += 1
    else:
        outcomes["killed_mid_run"] += 1  # so the run had not finished: cursor unchanged
        if before["cursor"]:
            outcomes["killed_between_commit_and_reply"] += 1
    # 3. A next run completes the work, without writing any version twice.
    h2 = after["history"]
    assert_states(h2["human"], child.HUMAN_STATES, where)
    assert_states(h2["anticipation"], child.ANTICIPATION_STATES, where)
    assert h2["human"][-1][1] == child.HUMAN_STATES[-1], where
    assert h2["anticipation"][-1][1] == child.ANTICIPATION_STATES[-1], where
    assert after["cursor"] == after["last_seq"] == before["last_seq"], where
    assert after["blocks"] == ["anticipation", "human", "persona"], where
    # Archival notes are at-least-once: a run killed after its insert re-inserts on redo.
    assert 1 <= after["notes"].count(child.NOTE) <= 2, where
    assert set(report["statuses"]) <= {"ok", "skipped", "no_input"}, (where, report)
    assert report["failures"] == [], where


def test_sigkill_at_random_points_leaves_memory_whole_and_resumable(
    ctx: mp.context.ForkServerContext, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "store"  # one directory for every trial: residue of earlier kills stays
    t0 = time.perf_counter()
    outcomes = {
        "killed_mid_run": 0,
        "finished_before_kill": 0,
        "killed_between_commit_and_reply": 0,
    }
    previous: dict[str, Any] | None = None
    run_seconds = 1.0
    for trial in range(TRIALS + 1):
        run = f"t{trial}" if trial < TRIALS else None
        proc = Trial(ctx, path, previous["user"] if previous else None, run)
        if previous is not None:
            check(previous, proc.expect("checked"), outcomes)
        if run is None:
            proc.finish()
            break
        last_seq = proc.expect("ready")
        # Trial 0 runs to the end to time a run on this machine; later kills land anywhere in
        # it (and a little after), whatever the machine's load.
        delay = 60.0 if trial == 0 else rng.uniform(0.0, 1.1) * run_seconds
        done = proc.kill_after(delay)
        if done is not None:
            run_seconds = 0.5 * run_seconds + 0.5 * float(done[2]) if trial else float(done[2])
        previous = {"user": run, "last_seq": last_seq, "done": done, "delay": delay}
    print(f"crash trials: {TRIALS} in {time.perf_counter() - t0:.1f}s; {outcomes}")
    # The seeded delays hit the run itself, not only its end.
    assert outcomes["killed_mid_run"] >= TRIALS // 2
    assert outcomes["finished_before_kill"] >= 1
