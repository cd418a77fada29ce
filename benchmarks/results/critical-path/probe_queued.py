"""Probe (#16): does a user turn that queues behind a sleep-time step keep its cached prefix?

critical-path's one-slot arm lost the user's whole prefix (3 tokens cached) in turns that waited
for a step, while sequential requests (probe_slots.py) kept it. Here a user request is sent while
a sleep-time request is in flight, in its generation or its prompt evaluation, and waits for it
(no preemption); per user request, the prompt tokens served from llama.cpp's cache (``cache_n``)
and evaluated (``prompt_n``). Configurations: one slot shared, or a slot per role (``id_slot``).

Usage: ``python benchmarks/results/critical-path/probe_queued.py one-slot|two-slots``
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from typing import Any

import xllamacpp

from sleeptime_agent.local.server import iter_stream, stream_request
from sleeptime_agent.local.weights import ensure_gguf

WORDS = "harbour turtle cello tram river beagle azores recital lisbon porto sister lyon".split()


def text(n: int, seed: int) -> str:
    """``n`` words, the same for the same seed."""
    r = random.Random(seed)
    return " ".join(r.choice(WORDS) for _ in range(n))


def main() -> None:
    """Play the sequence and print one JSON line per user request."""
    config = sys.argv[1]
    p = xllamacpp.CommonParams()
    p.model.path = str(ensure_gguf())
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    p.n_batch = p.n_ubatch = 16
    p.cache_ram_mib = 1024
    p.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    p.verbosity = -1
    p.n_ctx, p.n_parallel = (8192, 1) if config == "one-slot" else (16384, 2)
    server = xllamacpp.Server(p)

    def request(system: str, user: str, slot: int, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if config != "one-slot":
            body["id_slot"] = slot
        return stream_request(body)

    def user_turn(label: str, question: str) -> None:
        t0 = time.perf_counter()
        timings: dict[str, Any] = {}
        for chunk in iter_stream(server, request(blocks, question, 0, 8)):
            timings = chunk.get("timings") or timings
        row = {
            "config": config,
            "turn": label,
            "s": round(time.perf_counter() - t0, 2),
            "cached": timings.get("cache_n"),
            "evaluated": timings.get("prompt_n"),
        }
        print(json.dumps(row), flush=True)  # noqa: T201

    def step_with_turn(k: int, phase: str, question: str) -> None:
        """A sleep-time step; once it is in ``phase``, a user turn that waits for it."""
        reached = threading.Event()

        def run() -> None:
            body = request("You edit memory.", steps + " " + text(60 * k, 300 + k), 1, 48)
            for chunk in iter_stream(server, body):
                content = any(
                    (c.get("delta") or {}).get("content") for c in chunk.get("choices") or []
                )
                if phase == "prompt" and chunk.get("prompt_progress") is not None:
                    reached.set()
                if phase == "generation" and chunk.get("choices") and content:
                    reached.set()
            reached.set()

        worker = threading.Thread(target=run)
        worker.start()
        reached.wait()
        user_turn(f"queued in step {k} ({phase})", question)
        worker.join()

    blocks = text(350, 1)
    steps = text(900, 2)
    user_turn("first", "Where do I live?")
    user_turn("warm", "What do I do?")
    for k, phase in enumerate(["generation", "prompt", "generation", "prompt", "generation"]):
        step_with_turn(k + 1, phase, f"Question {k}?")
    user_turn("after the steps", "When is my birthday?")


if __name__ == "__main__":
    main()
