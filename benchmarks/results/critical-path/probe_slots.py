"""Probe (#16): is the user's prompt prefix evicted between a turn, preempted sleep-time steps
and the pre-warm? Server level, no chat graph: one llama.cpp server per configuration and a
fixed sequence of requests (two users X and Y, their turns, ~2,600-token sleep-time steps, two
of them preempted, a pre-warm); per request, the prompt tokens llama.cpp served from its cache
(``cache_n``) and evaluated (``prompt_n``).

Usage (on the real model; the team's exclusive wrapper pauses other jobs)::

    python benchmarks/results/critical-path/probe_slots.py one-slot [N_CTX] > one-slot.jsonl
    python benchmarks/results/critical-path/probe_slots.py two-slots > two-slots.jsonl
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

import xllamacpp

from sleeptime_agent.local.server import iter_stream, stream_request
from sleeptime_agent.local.weights import ensure_gguf

WORDS = (
    "harbour turtle cello tram river beagle azores recital lisbon porto sister lyon "
    "shellfish diving june march aquarium biologist marta bolt"
).split()


def text(n: int, seed: int) -> str:
    """``n`` words, the same for the same seed."""
    r = random.Random(seed)
    return " ".join(r.choice(WORDS) for _ in range(n))


def load(config: str, n_ctx: int) -> Any:
    """The local model's server settings; two slots of n_ctx/2 each for "two-slots"."""
    p = xllamacpp.CommonParams()
    p.model.path = str(ensure_gguf())
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    p.n_batch = p.n_ubatch = 16
    p.cache_ram_mib = 1024
    p.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    p.verbosity = -1
    p.n_ctx, p.n_parallel = (n_ctx or 8192, 1) if config == "one-slot" else (n_ctx or 16384, 2)
    return xllamacpp.Server(p)


def main() -> None:
    """Play the sequence and print one JSON line per request."""
    config = sys.argv[1]
    n_ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = load(config, n_ctx)

    def call(
        label: str, system: str, user: str, slot: int, stop_after: float | None = None
    ) -> None:
        request: dict[str, Any] = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": 8,
            "temperature": 0.0,
        }
        if config != "one-slot":
            request["id_slot"] = slot  # 0: the user and the pre-warm; 1: the sleep-time agent
        t0 = time.perf_counter()
        timings: dict[str, Any] = {}
        for chunk in iter_stream(server, stream_request(request)):
            timings = chunk.get("timings") or timings
            if stop_after is not None and time.perf_counter() - t0 > stop_after:
                break  # preempted: closing the stream cancels the request
        row = {
            "config": config,
            "n_ctx": n_ctx or None,
            "call": label,
            "s": round(time.perf_counter() - t0, 2),
            "cached": timings.get("cache_n"),
            "evaluated": timings.get("prompt_n"),
        }
        print(json.dumps(row), flush=True)  # noqa: T201

    blocks = {"X": text(300, 1), "Y": text(300, 2)}
    new_blocks = {"X": blocks["X"] + " " + text(40, 11), "Y": blocks["Y"] + " " + text(40, 12)}
    steps = {"X": text(1800, 101), "Y": text(1800, 102)}

    def step(arm: str, k: int) -> str:
        return steps[arm] + " " + text(120 * k, 200 + k)

    edit = "You edit memory."
    call("X turn", blocks["X"], "Where do I live?", 0)
    for k in range(3):
        call(f"X step{k + 1}", edit, step("X", k), 1)
    call("X after-run turn", new_blocks["X"], "What is my dog's name?", 0)
    call("Y turn (first)", blocks["Y"], "Where do I live?", 0)
    call("Y turn warm", blocks["Y"], "What do I do?", 0)
    call("Y step1 (preempted)", edit, step("Y", 0), 1, stop_after=10)
    call("Y in-flight turn 1", blocks["Y"], "Where does my sister live?", 0)
    call("Y step1 retry", edit, step("Y", 0), 1)
    call("Y step2 (preempted)", edit, step("Y", 1), 1, stop_after=1)
    call("Y in-flight turn 2", blocks["Y"], "What am I allergic to?", 0)
    call("Y step2 retry", edit, step("Y", 1), 1)
    call("Y step3", edit, step("Y", 2), 1)
    call("Y prewarm", new_blocks["Y"], "", 0)
    call("Y after-run turn", new_blocks["Y"], "Which instrument am I learning?", 0)
    call("Y warm", new_blocks["Y"], "When is my birthday?", 0)
    call("X turn again (other user)", new_blocks["X"], "Where am I going diving?", 0)


if __name__ == "__main__":
    main()
