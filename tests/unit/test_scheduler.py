"""SleeptimeScheduler: every N turns, debounce, coalescing, single flight, wait_idle, shutdown.

Events order the tests, not sleeps: a runner tells when a run has started and holds it until
the test releases it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.scheduler import SleeptimeScheduler

NS = ("u1",)


class FakeRunner:
    """Records calls; ``hold=True`` keeps each run in flight until :meth:`release`."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[tuple[tuple[str, ...], float]] = []
        self.active: dict[tuple[str, ...], int] = {}
        self.max_active = 0
        self.lock = threading.Lock()
        self.started = threading.Event()
        self._release = threading.Event()
        if not hold:
            self._release.set()

    def release(self) -> None:
        self._release.set()

    async def __call__(self, ns: tuple[str, ...]) -> list[RunRecord]:
        with self.lock:
            self.calls.append((ns, time.monotonic()))
            self.active[ns] = self.active.get(ns, 0) + 1
            self.max_active = max(self.max_active, self.active[ns])
        self.started.set()
        try:
            while not self._release.is_set():  # cancellable, unlike a blocking Event.wait
                await asyncio.sleep(0.01)
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


def test_notify_returns_while_the_run_is_still_in_flight() -> None:
    runner = FakeRunner(hold=True)
    with make(runner) as s:
        s.notify(NS)  # returns although the run cannot finish until released
        assert runner.started.wait(5)
        assert runner.active[NS] == 1
        runner.release()
        s.wait_idle_sync(5)
        assert len(runner.calls) == 1


def test_debounce_restarts_the_delay() -> None:
    runner = FakeRunner()
    with make(runner, delay_seconds=1.0) as s:
        for _ in range(4):
            s.notify(NS)
        last = time.monotonic()
        s.wait_idle_sync(5)
        assert len(runner.calls) == 1  # four quick turns, one run
        # A lower bound only: the run starts no earlier than the delay after the last turn.
        assert runner.calls[0][1] - last >= 1.0 - 0.01


def test_single_flight_and_coalescing() -> None:
    runner = FakeRunner(hold=True)
    with make(runner) as s:
        s.notify(NS)
        assert runner.started.wait(5)  # run in flight
        for _ in range(5):
            s.notify(NS)  # all coalesce into one follow-up run
        runner.release()
        s.wait_idle_sync(10)
        assert runner.max_active == 1
        assert len(runner.calls) == 2


def test_namespaces_run_independently() -> None:
    runner = FakeRunner()
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
    runner = FakeRunner(hold=True)
    s = make(runner)
    try:
        s.notify(NS)
        assert await asyncio.to_thread(runner.started.wait, 5)
        runner.release()
        await s.wait_idle(timeout=5)
        assert len(runner.calls) == 1 and runner.active[NS] == 0
    finally:
        s.shutdown()


def test_shutdown_without_wait_cancels_in_flight() -> None:
    runner = FakeRunner(hold=True)  # never released: only cancellation ends it
    events: list[str] = []
    s = SleeptimeScheduler(on_event=lambda kind, ns, rec: events.append(kind))
    s.attach(runner)
    s.notify(NS)
    assert runner.started.wait(5)
    s.shutdown(wait=False)
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
    from sleeptime_agent.storage.block_store import ChromaBlockStore
    from sleeptime_agent.storage.transcript import Transcript
    from sleeptime_agent.testing import ScriptedChatModel, tool_call

    store = ChromaBlockStore.ephemeral()
    Transcript(store).append(NS, "t", "user", "I live in Porto")
    model = ScriptedChatModel(replies=[tool_call("memory_finish_edits")])
    gate = ForegroundGate(poll_seconds=0.01)
    cons = Consolidator(store, model, gate=gate)
    with gate:  # a user turn is running
        task = asyncio.create_task(cons.arun(NS))
        for _ in range(50):  # let the run get as far as it can: up to the gate
            await asyncio.sleep(0.01)
        assert model.calls == []  # the sleep-time step waits for the turn
        assert not task.done()
    record = await asyncio.wait_for(task, 10)
    assert record.status == "ok" and len(model.calls) == 1


def test_at_most_max_concurrent_runs_at_once() -> None:
    runner = FakeRunner(hold=True)
    with make(runner, max_concurrent=2) as s:
        for user in ("a", "b", "c", "d"):
            s.notify((user,))
        assert runner.started.wait(5)
        for _ in range(50):  # let the scheduler start whatever it would start
            if len(runner.calls) >= 2:
                break
            time.sleep(0.01)
        time.sleep(0.1)
        assert len(runner.calls) == 2 and s.in_flight == 2  # c and d wait for a slot
        assert s.pending
        runner.release()
        s.wait_idle_sync(10)
    assert sorted(ns for ns, _ in runner.calls) == [("a",), ("b",), ("c",), ("d",)]


def test_a_waiting_namespace_coalesces_its_turns_into_one_run() -> None:
    runner = FakeRunner(hold=True)
    with make(runner, max_concurrent=1) as s:
        s.notify(("a",))
        assert runner.started.wait(5)
        for _ in range(5):
            s.notify(("b",))  # b waits for a's slot; its turns pile up
        runner.release()
        s.wait_idle_sync(10)
    assert [ns for ns, _ in runner.calls] == [("a",), ("b",)]


def test_no_limit() -> None:
    runner = FakeRunner(hold=True)
    with make(runner, max_concurrent=None) as s:  # type: ignore[arg-type]
        for user in ("a", "b", "c"):
            s.notify((user,))
        for _ in range(500):
            if len(runner.calls) == 3:
                break
            time.sleep(0.01)
        assert len(runner.calls) == 3
        runner.release()
        s.wait_idle_sync(10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_sleeptime_threads_run_at_a_lower_priority() -> None:
    seen: list[int] = []

    async def runner(ns: tuple[str, ...]) -> list[RunRecord]:
        here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        worker = await asyncio.to_thread(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        )
        seen.extend([here, worker])
        return []

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with SleeptimeScheduler(priority=5) as s:
        s.attach(runner)
        s.notify(NS)
        s.wait_idle_sync(10)
    assert seen == [min(19, base + 5)] * 2  # the scheduler's thread and its worker pool
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # not ours


def test_open_schedulers_are_cancelled_at_exit() -> None:
    """The exit hook: an open scheduler's in-flight run is cancelled (its lease released)."""
    from sleeptime_agent.scheduler import _cancel_open_schedulers

    runner = FakeRunner(hold=True)  # never released: only cancellation ends it
    events: list[str] = []
    s = SleeptimeScheduler(on_event=lambda kind, ns, rec: events.append(kind))
    s.attach(runner)
    s.notify(NS)
    assert runner.started.wait(5)
    _cancel_open_schedulers()
    assert events == ["start", "cancelled"]
    assert runner.active[NS] == 0


def test_bad_concurrency_and_priority() -> None:
    with pytest.raises(ValueError):
        SleeptimeScheduler(max_concurrent=0)
    with pytest.raises(ValueError):
        SleeptimeScheduler(priority=-1)
