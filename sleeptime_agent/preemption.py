"""User turns go first: a user turn preempts the sleep-time model call in flight.

The primary and the sleep-time agent often share one machine (one llama.cpp server on two
cores). Waiting for the sleep-time step in flight to end before answering cost the user up to a
whole step: one step can evaluate a 2,000-token prompt, ~30 s at ~65 tokens/s. So a user turn
entering the :class:`ForegroundGate` cancels every sleep-time model call in flight (the asyncio
task awaiting it): the local model stops at the next prompt batch or token, an HTTP provider's
request is closed. The call is retried once the turn has left the gate, with the same prompt:
the sleep-time graph's state only changes when a model call returns, and tool calls (block
writes) are never cancelled, so a preempted step applies no edit and loses none, and the cursor
still moves only when the run commits.

Only model calls are preempted, never a compare-and-swap write: a write cancelled from outside
could land after its caller had given up on it, and the retried step would then apply it again.

Measured on the local 1.5B model (2 cores, one slot, 64-token prompt batches): a turn that
arrived 4 s into a 1,500-token sleep-time prompt got its first token in 0.31 s (0.25 s warm);
the cancelled request ended 0.06 s after the cancel, and llama.cpp's prompt cache restored both
the user's prefix and the 260 sleep-time tokens already evaluated, so the retry did not start
over.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

__all__ = ["ForegroundGate", "GateHook"]

log = logging.getLogger(__name__)

T = TypeVar("T")

GateHook = Callable[[str, str], None]
"""Called with (event, what): event "paused" or "resumed"; what names the call ("step", ...)."""


class _Signal:
    """An asyncio event that other threads can set (thread-safe, ignores a closed loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def fire(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass


class ForegroundGate:
    """Lets user turns go first: a turn preempts sleep-time model calls and holds the next ones.

    A user turn runs inside ``with gate:`` (from any thread); a client can also hold the gate
    while its user types (:meth:`typing`). Sleep-time code runs each model
    call through :meth:`run` (retried after the turn if preempted) or :meth:`try_run` (dropped
    if preempted: e.g. pre-warming, which the user's own turn makes moot).

    Args:
        poll_seconds: kept for compatibility; waiting is event-driven.
        preempt: cancel calls in flight when a turn arrives. Off, a turn only holds the next
            call, and waits for the one in flight (the behaviour before preemption; benchmarks
            switch it to compare).
        on_event: called with ("paused" | "resumed", what) from the sleep-time event loop.
        max_hold_seconds: starvation bound for :meth:`run`: once a call has been held back or
            preempted for this long in total, it runs at once and is no longer preempted. With
            many users on one process a turn is nearly always in flight, and sleep-time calls
            would otherwise wait for a moment with none. ``None`` (default): no bound.
    """

    def __init__(
        self,
        poll_seconds: float = 0.05,
        *,
        preempt: bool = True,
        on_event: GateHook | None = None,
        max_hold_seconds: float | None = None,
    ) -> None:
        self.poll_seconds = poll_seconds
        self.preempt = preempt
        self.on_event = on_event
        self.max_hold_seconds = max_hold_seconds
        self.preemptions = 0
        """Model calls cancelled by a user turn so far."""
        self._active = 0
        self._lock = threading.Lock()
        self._in_flight: set[_Signal] = set()
        self._waiting: set[_Signal] = set()
        self._typists: dict[Hashable, threading.Timer] = {}
        self._typing_until: dict[Hashable, float] = {}

    # -- the user's side ---------------------------------------------------------------------

    def __enter__(self) -> ForegroundGate:
        with self._lock:
            targets = self._hold()
        for signal in targets:
            signal.fire()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            targets = self._release()
        for signal in targets:
            signal.fire()

    def _hold(self) -> list[_Signal]:
        """Count one more holder (under the lock); return the calls to preempt."""
        self._active += 1
        return list(self._in_flight) if self.preempt else []

    def _release(self) -> list[_Signal]:
        """Count one holder less (under the lock); return the calls to wake."""
        self._active -= 1
        return list(self._waiting) if self._active == 0 else []

    def typing(self, who: Hashable = None, idle_seconds: float = 10.0) -> None:
        """``who`` is typing: hold sleep-time calls, preempting those in flight, from now.

        Call it on each keystroke (after the first it only pushes the deadline back). The hold
        ends with :meth:`done_typing` (the chat graph calls it once ``who``'s turn holds the
        gate) or after ``idle_seconds`` without a keystroke (a line left unsent). Holds are per
        ``who`` (a namespace, say), so one user's turn does not end another's. A preempted
        local-model step stops one or two prompt batches after the cancel (0.3-0.7 s measured);
        a turn that arrives unannounced waits that long for its first token, one announced by
        typing finds the model already free.
        """
        with self._lock:
            self._typing_until[who] = time.monotonic() + idle_seconds
            if who in self._typists:
                return
            targets = self._hold()
            self._typists[who] = self._start_timer(who, idle_seconds)
        for signal in targets:
            signal.fire()

    def done_typing(self, who: Hashable = None) -> None:
        """End the hold :meth:`typing` started for ``who`` (a no-op without one)."""
        with self._lock:
            timer = self._typists.pop(who, None)
            self._typing_until.pop(who, None)
            targets = self._release() if timer is not None else []
        if timer is not None:
            timer.cancel()
        for signal in targets:
            signal.fire()

    def _start_timer(self, who: Hashable, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self._typing_idle, args=(who,))
        timer.daemon = True  # a pending idle check never keeps the process alive
        timer.start()
        return timer

    def _typing_idle(self, who: Hashable) -> None:
        with self._lock:
            if self._typists.get(who) is not threading.current_thread():
                return  # ended meanwhile, or this timer was replaced
            left = self._typing_until[who] - time.monotonic()
            if left > 0:  # keystrokes since: check again when the latest one goes idle
                self._typists[who] = self._start_timer(who, left)
                return
            del self._typists[who], self._typing_until[who]
            targets = self._release()
        for signal in targets:
            signal.fire()

    @property
    def busy(self) -> bool:
        """Whether a user turn is running now."""
        return self._active > 0

    # -- the sleep-time side -----------------------------------------------------------------

    async def wait_clear(self) -> None:
        """Return once no user turn is running."""
        while True:
            signal = _Signal()
            with self._lock:
                if self._active == 0:
                    return
                self._waiting.add(signal)
            try:
                await signal.event.wait()
            finally:
                with self._lock:
                    self._waiting.discard(signal)

    async def run(self, call: Callable[[], Awaitable[T]], *, what: str = "step") -> T:
        """Await ``call()`` when no turn runs; if a turn preempts it, wait and call again.

        Args:
            call: makes a fresh awaitable each time (the same request, retried whole).
            what: names the call in ``on_event``.

        Returns:
            The result of the attempt that was not preempted.
        """
        paused = False
        bound = self.max_hold_seconds
        deadline = None if bound is None else time.monotonic() + bound
        while True:
            done, result = await self._attempt(call, what, paused, deadline)
            paused = True
            if done:
                return result  # type: ignore[return-value]  # set whenever done is True

    async def try_run(self, call: Callable[[], Awaitable[T]], *, what: str = "prewarm") -> T | None:
        """Like :meth:`run`, but a preempted call is dropped: returns None instead of retrying."""
        done, result = await self._attempt(call, what, False)
        return result if done else None

    async def _attempt(
        self,
        call: Callable[[], Awaitable[T]],
        what: str,
        paused: bool,
        deadline: float | None = None,
    ) -> tuple[bool, T | None]:
        """One try: wait for the gate, run ``call``; (False, None) when preempted.

        Past ``deadline`` (the starvation bound) the call runs at once and is not preempted.
        """
        while True:
            overdue = deadline is not None and time.monotonic() >= deadline
            if self.busy and not overdue:
                if not paused:
                    self._emit("paused", what)
                    paused = True
                if deadline is None:
                    await self.wait_clear()
                else:
                    try:
                        await asyncio.wait_for(self.wait_clear(), deadline - time.monotonic())
                    except TimeoutError:
                        pass  # the bound: go ahead
                    continue
            if not self.preempt or overdue:
                if paused:
                    self._emit("resumed", what)
                return True, await call()
            signal = _Signal()
            with self._lock:
                if self._active == 0:
                    self._in_flight.add(signal)
                    break
            # A turn slipped in between wait_clear and here: wait again.
        if paused:
            self._emit("resumed", what)
        task = asyncio.ensure_future(call())
        preempted = asyncio.ensure_future(signal.event.wait())
        try:
            await asyncio.wait({task, preempted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Reached on preemption and when our own caller is cancelled (shutdown): either
            # way the call in flight must stop, and be awaited so its resources are freed
            # (the local model's slot) before anything else starts.
            with self._lock:
                self._in_flight.discard(signal)
            preempted.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled():
            return True, task.result()  # raises the call's own error, if any
        self.preemptions += 1
        self._emit("paused", what)
        return False, None

    def _emit(self, event: str, what: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event, what)
        except Exception:
            log.exception("ForegroundGate on_event hook failed")
