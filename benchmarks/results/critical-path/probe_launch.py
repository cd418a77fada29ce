"""Probe (#16): what does a user turn pay when it preempts a sleep-time step just sent?

critical-path's preempted turns "between steps" (the next step had just been sent) took ~0.5 s
more than warm, outside llama.cpp's own prompt time. Suspect: the sleep-time request's start
(its JSON-schema grammar is compiled on llama.cpp's loop when the slot launches). Here, on the
two-slot server the product uses (primary slot 0, sleep-time slot 1), a sleep-time request is
sent, with or without the tool schema, and ``delay`` seconds later a user turn arrives and
cancels it, as the gate does. Per turn: TTFT, llama.cpp's prompt time, and how long the
cancelled request took to end. Also the time from sending a request to its first chunk.

Usage: ``python benchmarks/results/critical-path/probe_launch.py [CACHE_MIB [VERBOSITY [N_BATCH]]]``
(``probe-launch-nbatch{8,12,16}.jsonl``; ``probe-launch-wait.jsonl`` came from an earlier
version that also let the user's request wait until the cancelled one had stopped).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from typing import Any

import xllamacpp

from sleeptime_agent.local.protocol import build_tool_schema
from sleeptime_agent.local.server import iter_stream, stream_request
from sleeptime_agent.local.weights import ensure_gguf
from sleeptime_agent.tools.schemas import tool_specs

WORDS = "harbour turtle cello tram river beagle azores recital lisbon porto sister lyon".split()


def text(n: int, seed: int) -> str:
    """``n`` words, the same for the same seed."""
    r = random.Random(seed)
    return " ".join(r.choice(WORDS) for _ in range(n))


def main() -> None:
    """Print one JSON line per measured request."""
    p = xllamacpp.CommonParams()
    p.model.path = str(ensure_gguf())
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    p.n_batch = p.n_ubatch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    p.cache_ram_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    p.verbosity = int(sys.argv[2]) if len(sys.argv) > 2 else -1
    p.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    p.n_ctx, p.n_parallel = 16384, 2
    server = xllamacpp.Server(p)
    specs = tool_specs()
    schema = build_tool_schema(specs)
    blocks = text(350, 1)
    steps = text(700, 2)

    def body(system: str, user: str, slot: int, max_tokens: int, constrained: bool) -> Any:
        req: dict[str, Any] = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "id_slot": slot,
        }
        if constrained:
            req["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        return stream_request(req)

    def user_turn(label: str, question: str, **extra: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        first = None
        timings: dict[str, Any] = {}
        for chunk in iter_stream(server, body(blocks, question, 0, 8, False)):
            if first is None and any(
                (c.get("delta") or {}).get("content") for c in chunk.get("choices") or []
            ):
                first = time.perf_counter() - t0
            timings = chunk.get("timings") or timings
        row = {
            "turn": label,
            "ttft_s": round(first or 0.0, 3),
            "prompt_s": round((timings.get("prompt_ms") or 0) / 1000, 3),
            "evaluated": timings.get("prompt_n"),
            **extra,
        }
        print(json.dumps(row), flush=True)  # noqa: T201
        return row

    def first_chunk(constrained: bool, seed: int) -> None:
        """Time from sending a step to its first chunk (nothing else running)."""
        t0 = time.perf_counter()
        first = None
        for _chunk in iter_stream(
            server, body("You edit memory.", text(40, seed), 1, 4, constrained)
        ):
            if first is None:
                first = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "turn": "step alone",
                    "constrained": constrained,  # noqa: T201
                    "first_chunk_s": round(first or 0, 3),
                    "total_s": round(time.perf_counter() - t0, 3),
                }
            ),
            flush=True,
        )

    def preempted(delay: float, constrained: bool, k: int, wait: bool = False) -> None:
        cancel = threading.Event()
        ended: list[float] = []

        def run() -> None:
            req = body("You edit memory.", steps + " " + text(40, 300 + k), 1, 48, constrained)
            stream = iter_stream(server, req)
            for _chunk in stream:
                if cancel.is_set():
                    break
            stream.close()  # sets the stream's cancel and waits for llama.cpp to stop
            ended.append(time.perf_counter())

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(delay)
        t_cancel = time.perf_counter()
        cancel.set()
        if wait:  # the user's request goes once the cancelled one has stopped
            worker.join()
        row = user_turn(
            "preempting", f"Question {k}?", delay=delay, constrained=constrained, wait=wait
        )
        if wait:
            print(
                json.dumps(
                    {
                        "turn": "ttft from the cancel",
                        "wait": True,  # noqa: T201
                        "s": round(ended[0] - t_cancel + row["ttft_s"], 3),
                    }
                ),
                flush=True,
            )
        worker.join()
        print(
            json.dumps({"turn": "cancelled step ended after", "s": round(ended[0] - t_cancel, 3)}),  # noqa: T201
            flush=True,
        )

    user_turn("first", "Where do I live?")
    for i in range(3):
        user_turn("warm", f"What do I do {i}?")
    for c in (False, True):
        first_chunk(c, 10 + int(c))
    k = 0
    for delay in (0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1.5):
        for wait in (False,):
            k += 1
            preempted(delay, True, k, wait)
    for i in range(2):
        user_turn("warm after", f"Who am I {i}?")


if __name__ == "__main__":
    main()
