"""Between-turn scheduling of sleep-time runs, off the user's critical path.

The scheduler owns one background thread with its own event loop, so it works the same whether
the chat graph is invoked synchronously, from another event loop, or from a CLI. ``notify`` only
counts a turn and returns; a run starts after ``every_n_turns`` turns and ``delay_seconds`` of
quiet (a newer turn restarts the delay: debounce). At most one run is in flight per namespace;
turns that arrive during a run are coalesced into the next one.

Sleep-time work shares the process with user turns (under LangGraph Server, the server process
itself), so it is kept in the background in two more ways:

* at most ``max_concurrent`` runs are in flight at once; namespaces whose run is due wait in
  order. Under load this bounds how much store traffic and CPU the sleep-time side adds at any
  moment, and a namespace that waits coalesces its newer turns into one run (fewer, larger runs);
  when the process is quiet, a run still starts as soon as it is due;
* optionally (``priority``, off by default), its threads (the scheduler's and its worker
  pool's) run at a lower OS priority on Linux, a nice increment for those threads only. Off by
  default because threads inherit it: a thread pool that the sleep-time side happens to start
  first (the embedding model's, llama.cpp's when the local model's first call is a sleep-time
  one) would then serve user turns at the lower priority too; and in the server-load screening
  runs it did not measurably help (p50 2.66 vs 2.68 s).

At interpreter exit a scheduler that is still open cancels its in-flight runs before the
interpreter stops its thread pools, so the runs can still release their leases (a cancelled run
moves no cursor); see :func:`_cancel_open_schedulers`.

After-run hooks (:meth:`SleeptimeScheduler.add_after_run`) run once a run has ended and before
the namespace counts as idle: the chat graph pre-warms the primary's new prompt prefix there, so
the next turn starts warm. User turns go first throughout (see
:class:`~sleeptime_agent.preemption.ForegroundGate`, re-exported here).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # noqa: F401  # before the exit hook below: see there
import contextvars
import logging
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sleeptime_agent.ledger import Ledger, RunRecord
from sleeptime_agent.preemption import ForegroundGate
from sleeptime_agent.storage.block_store import Namespace

__all__ = ["AfterRun", "ForegroundGate", "Runner", "SleeptimeScheduler"]

log = logging.getLogger(__name__)

Runner = Callable[[Namespace], Awaitable[list[RunRecord]]]
EventHook = Callable[[str, Namespace, RunRecord | None], None]
AfterRun = Callable[[Namespace, list[RunRecord]], Awaitable[None]]
"""Awaited after a run has ended (e.g. pre-warming the primary's prompt), still in flight."""

DEFAULT_MAX_CONCURRENT = 2
"""Runs in flight at once per process, by default (see the module docstring)."""
DEFAULT_PRIORITY = 0
"""Nice increment of the scheduler's threads, by default: none (see the module docstring)."""


def _priority_target(increment: int) -> int | None:
    """The nice value ``increment`` above the calling thread's (None: leave priorities alone).

    On Linux ``setpriority(PRIO_PROCESS, tid)`` changes one thread; elsewhere the same call
    would name a process, so priorities are left alone there.
    """
    if increment <= 0 or not sys.platform.startswith("linux"):
        return None
    try:
        return min(19, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + increment)
    except OSError:
        return None


def _lower_thread_priority(target: int | None) -> None:
    """Lower the calling thread's CPU priority to nice ``target`` (best effort, never raises it).

    A thread starts with its creator's value (the worker pool's threads are started by the
    scheduler's thread, already lowered), hence a target rather than an increment. Lowering a
    priority needs no privilege.
    """
    if target is None:
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as exc:  # e.g. a sandbox that forbids it: run at normal priority
        log.debug("could not lower the sleep-time thread's priority: %s", exc)


class SleeptimeScheduler:
    """Decides when sleep-time runs happen and runs them in the background.

    Args:
        every_n_turns: run after this many primary turns of a namespace.
        delay_seconds: wait this long after the latest turn before starting (debounce).
        max_concurrent: runs in flight at once (over all namespaces); more wait in order.
            ``None``: no limit.
        priority: nice increment for the scheduler's threads on Linux (0, the default: normal
            priority; see the module docstring for why).
        ledger: where runs are recorded (shared with the chat graph for turn records).
        on_event: called with ("start" | "end", namespace, record) from the scheduler thread.
    """

    def __init__(
        self,
        every_n_turns: int = 1,
        delay_seconds: float = 0.0,
        *,
        max_concurrent: int | None = DEFAULT_MAX_CONCURRENT,
        priority: int = DEFAULT_PRIORITY,
        ledger: Ledger | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        if every_n_turns < 1 or delay_seconds < 0:
            raise ValueError("every_n_turns must be >= 1 and delay_seconds >= 0")
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1 (or None: no limit)")
        if priority < 0:
            raise ValueError("priority is a nice increment, >= 0")
        self.every_n_turns = every_n_turns
        self.delay_seconds = delay_seconds
        self.max_concurrent = max_concurrent
        self.priority = priority
        self.ledger = ledger or Ledger()
        self.on_event = on_event
        self._runner: Runner | None = None
        self._after_run: list[AfterRun] = []
        self._turns: dict[Namespace, int] = {}
        self._timers: dict[Namespace, asyncio.TimerHandle] = {}
        self._running: dict[Namespace, asyncio.Task[None]] = {}
        self._ready: deque[Namespace] = deque()
        """Namespaces whose run is due, waiting for a free slot (``max_concurrent``)."""
        self._closed = False
        self._nice = _priority_target(priority)  # relative to the thread that builds it
        self._loop = asyncio.new_event_loop()
        # Its own pool for the runs' blocking store calls, so that with ``priority`` they too
        # run lower (each worker lowers itself) and they never queue behind, or ahead of, the
        # host's work in another loop's default executor.
        self._executor = ThreadPoolExecutor(
            thread_name_prefix="sleeptime-worker",
            initializer=_lower_thread_priority,
            initargs=(self._nice,),
        )
        self._loop.set_default_executor(self._executor)
        self._idle = asyncio.Event()
        self._thread = threading.Thread(target=self._serve, name="sleeptime-scheduler", daemon=True)
        self._thread.start()
        _open_schedulers.add(self)

    def _serve(self) -> None:
        _lower_thread_priority(self._nice)
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._idle.set)
        self._loop.run_forever()

    def attach(self, runner: Runner) -> None:
        """Set what a run does (the chat graph attaches its consolidator)."""
        self._runner = runner

    def add_after_run(self, hook: AfterRun) -> None:
        """Await ``hook(namespace, records)`` after each run, before the namespace is idle.

        Hooks run on the scheduler's loop after the "end" event, in the order added; one that
        raises is logged and skipped.
        """
        self._after_run.append(hook)

    @property
    def records(self) -> list[RunRecord]:
        """Every finished sleep-time run, oldest first."""
        return list(self.ledger.runs)

    @property
    def in_flight(self) -> int:
        """How many runs are in flight now (a snapshot)."""
        return len(self._running)

    @property
    def pending(self) -> bool:
        """Whether a run is waiting or in flight (a snapshot; use :meth:`wait_idle` to wait)."""
        return self._busy()

    # -- called from any thread ------------------------------------------------------------------

    def notify(self, namespace: Namespace) -> None:
        """Count one finished primary turn; returns at once."""
        if self._closed:
            return
        # An empty context: call_soon_threadsafe would otherwise copy the caller's, and a run
        # started from it would inherit the user's run (LangGraph's runnable config, callbacks,
        # stream writer): under LangGraph Server the sleep-time graph then ran as a child of
        # the finished turn and failed on locks of the server's event loop.
        self._loop.call_soon_threadsafe(
            self._on_turn, namespace, False, context=contextvars.Context()
        )

    def flush(self, namespace: Namespace | None = None) -> None:
        """Start runs now for namespaces with turns not yet consolidated (ignores N and delay)."""
        if self._closed:
            return

        def go() -> None:
            targets = [namespace] if namespace is not None else list(self._turns)
            for ns in targets:
                if self._turns.get(ns, 0) > 0:
                    self._on_turn(ns, True, count=False)

        self._loop.call_soon_threadsafe(go, context=contextvars.Context())  # see notify()

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until no run is pending or in flight (from any event loop)."""
        fut: Future[None] = asyncio.run_coroutine_threadsafe(self._wait_idle(), self._loop)
        await asyncio.wait_for(asyncio.wrap_future(fut), timeout)

    def wait_idle_sync(self, timeout: float | None = None) -> None:
        """Blocking :meth:`wait_idle` for code with no event loop."""
        asyncio.run_coroutine_threadsafe(self._wait_idle(), self._loop).result(timeout)

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Stop accepting turns; finish (``wait=True``) or cancel in-flight runs; stop the thread.

        A cancelled run does not move the cursor, so its messages are consolidated next time.
        """
        if self._closed:
            return
        self._closed = True
        if wait:
            try:
                self.wait_idle_sync(timeout)
            except TimeoutError:
                log.warning("sleep-time runs still in flight at shutdown; cancelling them")
        fut = asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop)
        fut.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._executor.shutdown(wait=False)
        _open_schedulers.discard(self)

    def __enter__(self) -> SleeptimeScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- scheduler thread only -------------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(self._timers or self._running or self._ready)

    def _on_turn(self, ns: Namespace, now: bool, count: bool = True) -> None:
        if count:
            self._turns[ns] = self._turns.get(ns, 0) + 1
        if not now and self._turns.get(ns, 0) < self.every_n_turns:
            return
        if ns in self._running or ns in self._ready:
            return  # coalesced: the in-flight or waiting run covers this turn
        timer = self._timers.pop(ns, None)
        if timer is not None:
            timer.cancel()  # debounce: a newer turn restarts the delay
        self._idle.clear()
        delay = 0.0 if now else self.delay_seconds
        self._timers[ns] = self._loop.call_later(delay, self._start, ns)

    def _start(self, ns: Namespace) -> None:
        self._timers.pop(ns, None)
        if self._runner is None:
            log.error("SleeptimeScheduler has no runner attached; dropping run for %s", ns)
            self._settle()
            return
        if self.max_concurrent is not None and len(self._running) >= self.max_concurrent:
            self._ready.append(ns)  # started by _next_ready when a run ends
            return
        # Reset when the run starts, not when it became due: turns that arrived while it
        # waited are in the transcript it reads.
        self._turns[ns] = 0
        self._running[ns] = self._loop.create_task(self._run(ns))

    def _next_ready(self) -> None:
        while self._ready and not self._closed:
            if self.max_concurrent is not None and len(self._running) >= self.max_concurrent:
                return
            self._start(self._ready.popleft())

    async def _run(self, ns: Namespace) -> None:
        assert self._runner is not None
        self._emit("start", ns, None)
        try:
            records = await self._runner(ns)
            for rec in records:
                if rec.status == "error":
                    log.error("sleep-time run %s for %s failed: %s", rec.run_id, ns, rec.reason)
            self._emit("end", ns, records[-1] if records else None)
            await self._hooks(ns, records)
        except asyncio.CancelledError:
            self._emit("cancelled", ns, None)
            raise
        except Exception:  # a runner bug must not kill the scheduler thread
            log.exception("sleep-time runner crashed for %s", ns)
            self._emit("end", ns, None)
        finally:
            self._running.pop(ns, None)
            self._next_ready()  # first the namespaces that have waited longest
            if not self._closed and self._turns.get(ns, 0) >= self.every_n_turns:
                self._on_turn(ns, False, count=False)  # turns that arrived meanwhile
            self._settle()

    async def _hooks(self, ns: Namespace, records: list[RunRecord]) -> None:
        for hook in list(self._after_run):
            try:
                await hook(ns, records)
            except Exception:  # a hook (e.g. pre-warming) must not kill the scheduler thread
                log.exception("after-run hook failed for %s", ns)

    def _emit(self, kind: str, ns: Namespace, record: RunRecord | None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, ns, record)
        except Exception:
            log.exception("on_event hook failed")

    def _settle(self) -> None:
        if not self._busy():
            self._idle.set()

    async def _wait_idle(self) -> None:
        while self._busy():
            self._idle.clear()
            await self._idle.wait()

    async def _cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._ready.clear()
        tasks: list[asyncio.Task[Any]] = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._idle.set()


_open_schedulers: weakref.WeakSet[SleeptimeScheduler] = weakref.WeakSet()


def _cancel_open_schedulers() -> None:
    """Cancel the in-flight runs of every scheduler not shut down yet (interpreter exit).

    A host such as LangGraph Server never tells the graph that it stops, and the scheduler's
    thread is a daemon that would otherwise just stop mid-run, its leases held for
    ``lease_seconds``. The runs release their leases through worker threads, so this must run
    before ``concurrent.futures`` refuses new work at exit.
    """
    for scheduler in list(_open_schedulers):
        try:
            scheduler.shutdown(wait=False)
        except Exception:  # exiting anyway: the others still get their chance
            log.exception("cancelling sleep-time runs at exit failed")


# No public hook runs early enough: atexit runs after concurrent.futures has refused new work
# (it registers its own exit hook with threading's, which run first). Threading's exit hooks run
# in reverse order of registration, so ours (registered after concurrent.futures.thread, which is
# imported above for that reason) runs before it. If a future Python drops the private function,
# atexit still cancels the runs; their leases then expire instead of being released.
_register_exit_hook: Callable[[Callable[[], None]], Any] = getattr(
    threading, "_register_atexit", atexit.register
)
_register_exit_hook(_cancel_open_schedulers)
