"""ForegroundGate's starvation bound (``max_hold_seconds``): under constant turns, calls still run.

No timing asserts: a turn is held for the whole test, so without the bound the call would never
run (``wait_for`` only keeps a regression from hanging the suite).
"""

from __future__ import annotations

import asyncio

from sleeptime_agent.preemption import ForegroundGate


async def test_a_call_held_past_the_bound_runs_while_a_turn_is_in_flight() -> None:
    gate = ForegroundGate(max_hold_seconds=0.05)
    with gate:  # a turn that never ends, as with many users on one process
        result = await asyncio.wait_for(gate.run(_answer), 10)
    assert result == 42


async def test_without_a_bound_the_call_waits_for_the_turn() -> None:
    gate = ForegroundGate()
    with gate:
        task = asyncio.create_task(gate.run(_answer))
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not task.done()  # held while the turn runs
    assert await asyncio.wait_for(task, 10) == 42


async def test_an_overdue_call_is_not_preempted_by_a_new_turn() -> None:
    gate = ForegroundGate(max_hold_seconds=0.05)
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return "done"

    with gate:
        task = asyncio.create_task(gate.run(step))
        await asyncio.wait_for(started.wait(), 10)  # running although the turn is in flight
    with gate:  # a new turn arrives while the overdue call runs: it is not cancelled
        await asyncio.sleep(0.05)
        assert not task.done()
        release.set()
        assert await asyncio.wait_for(task, 10) == "done"
    assert calls == 1 and gate.preemptions == 0


async def _answer() -> int:
    return 42
