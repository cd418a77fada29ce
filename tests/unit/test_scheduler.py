"""SleeptimeScheduler: every N turns, debounce, coalescing, single flight, wait_idle, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.scheduler import SleeptimeScheduler

NS = ("u1",)


class FakeRunner:
    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[tuple[str, ...], float]] = []
        self.active: dict[tuple[str, ...], int] = {}
        self.max_active = 0
        self.lock = threading.Lock()

    async def __call__(self, ns: tuple[str, ...]) -> list[RunRecord]:
        with self.lock:
            self.calls.append((ns, time.monotonic()))
            self.active[ns] = self.active.get(ns, 0) + 1
            self.max_active = max(self.max_active, self.active[ns])
        try:
            await asyncio.sleep(self.seconds)
        finally:
            with self.lock:
                self.active[ns] -= 1
        return [RunRecord(run_id="r", namespace=ns, status="ok")]


def make(runner: FakeRunner, **kw: float) -> SleeptimeScheduler:
    s = SleeptimeScheduler(**kw)  # type: ignore[arg-type]
    s.attach(runner)
    return s


def test_runs_every_n_turns() -> None:
    runner = FakeRunner()
    with make(runner, every_n_turns=3) as s:
        for _ in range(2):
            s.notify(NS)
        s.wait_idle_sync(5)
        assert runner.calls == []
        s.notify(NS)
        s.wait_idle_sync(5)
        assert len(runner.calls) == 1
        for _ in range(6):
            s.notify(NS)
            s.wait_idle_sync(5)
        assert len(runner.calls) == 3


def test_notify_returns_immediately_and_run_is_in_background() -> None:
    runner = FakeRunner(seconds=1.0)
    with make(runner) as s:
        t0 = time.monotonic()
        s.notify(NS)
        assert time.monotonic() - t0 < 0.2
        s.wait_idle_sync(5)
        assert len(runner.calls) == 1


def test_debounce_restarts_the_delay() -> None:
    runner = FakeRunner()
    with make(runner, delay_seconds=1.0) as s:
        t0 = time.monotonic()
        for _ in range(4):
            s.notify(NS)
            time.sleep(0.05)
        s.wait_idle_sync(5)
        assert len(runner.calls) == 1  # four quick turns, one run
        # A lower bound only: the last turn came >= 0.15 s after t0, the run 1 s after it.
        assert runner.calls[0][1] - t0 >= 0.15 + 1.0 - 0.01


def test_single_flight_and_coalescing() -> None:
    runner = FakeRunner(seconds=0.5)
    with make(runner) as s:
        s.notify(NS)
        time.sleep(0.1)  # run in flight
        for _ in range(5):
            s.notify(NS)  # all coalesce into one follow-up run
        s.wait_idle_sync(10)
        assert runner.max_active == 1
        assert len(runner.calls) == 2


def test_namespaces_run_independently() -> None:
    runner = FakeRunner(seconds=0.3)
    with make(runner) as s:
        s.notify(("a",))
        s.notify(("b",))
        s.wait_idle_sync(5)
        assert sorted(ns for ns, _ in runner.calls) == [("a",), ("b",)]


def test_flush_runs_below_n() -> None:
    runner = FakeRunner()
    with make(runner, every_n_turns=5) as s:
        s.notify(NS)
        s.flush()
        s.wait_idle_sync(5)
        assert len(runner.calls) == 1


async def test_wait_idle_from_an_event_loop() -> None:
    runner = FakeRunner(seconds=0.3)
    s = make(runner)
    try:
        s.notify(NS)
        await asyncio.sleep(0.05)
        await s.wait_idle(timeout=5)
        assert len(runner.calls) == 1 and runner.active[NS] == 0
    finally:
        s.shutdown()


def test_shutdown_without_wait_cancels_in_flight() -> None:
    runner = FakeRunner(seconds=30)
    events: list[str] = []
    s = SleeptimeScheduler(on_event=lambda kind, ns, rec: events.append(kind))
    s.attach(runner)
    s.notify(NS)
    time.sleep(0.2)
    t0 = time.monotonic()
    s.shutdown(wait=False)
    assert time.monotonic() - t0 < 5
    assert events == ["start", "cancelled"]
    s.notify(NS)  # ignored after shutdown, no error
    assert len(runner.calls) == 1


def test_runner_crash_does_not_kill_the_scheduler() -> None:
    calls = 0

    async def flaky(ns: tuple[str, ...]) -> list[RunRecord]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return []

    s = SleeptimeScheduler()
    s.attach(flaky)
    with s:
        s.notify(NS)
        s.wait_idle_sync(5)
        s.notify(NS)
        s.wait_idle_sync(5)
    assert calls == 2


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        SleeptimeScheduler(every_n_turns=0)


async def test_foreground_gate_holds_sleeptime_model_calls() -> None:
    from sleeptime_agent.consolidation import Consolidator
    from sleeptime_agent.scheduler import ForegroundGate
    from sleeptime_agent.store import ChromaBlockStore
    from sleeptime_agent.testing import ScriptedChatModel, tool_call
    from sleeptime_agent.transcript import Transcript

    store = ChromaBlockStore.ephemeral()
    Transcript(store).append(NS, "t", "user", "I live in Porto")
    model = ScriptedChatModel(replies=[tool_call("memory_finish_edits")])
    gate = ForegroundGate(poll_seconds=0.01)
    cons = Consolidator(store, model, gate=gate)
    with gate:  # a user turn is running
        task = asyncio.create_task(cons.arun(NS))
        await asyncio.sleep(0.5)
        assert model.calls == []  # the sleep-time step waits for the turn
    record = await asyncio.wait_for(task, 10)
    assert record.status == "ok" and len(model.calls) == 1
