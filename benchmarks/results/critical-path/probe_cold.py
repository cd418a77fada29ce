"""Probe (#16): prompt evaluation speed of the local model by n_batch (one slot, cache off).

Usage: ``python benchmarks/results/critical-path/probe_cold.py 8 16 32 64`` (probe-cold.txt).
"""

from __future__ import annotations

import random
import sys
import time

import xllamacpp

from sleeptime_agent.local.server import iter_stream, stream_request
from sleeptime_agent.local.weights import ensure_gguf

WORDS = "harbour turtle cello tram river beagle azores recital lisbon porto sister lyon".split()
r = random.Random(1)
t = " ".join(r.choice(WORDS) for _ in range(350))
for nb in map(int, sys.argv[1:]):
    p = xllamacpp.CommonParams()
    p.model.path = str(ensure_gguf())
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 2
    p.n_batch = p.n_ubatch = nb
    p.cache_ram_mib = 0
    p.verbosity = -1
    p.n_ctx, p.n_parallel = 8192, 1
    p.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    s = xllamacpp.Server(p)
    for i in range(2):
        t0 = time.perf_counter()
        tim = {}
        for c in iter_stream(
            s,
            stream_request(
                {"messages": [{"role": "user", "content": f"{i} " + t}], "max_tokens": 1}
            ),
        ):
            tim = c.get("timings") or tim
        print(
            nb, tim.get("prompt_n"), round(tim.get("prompt_per_second", 0), 1), "tok/s", flush=True
        )
    del s
