"""A few turns through LangGraph Server on the bundled local model (the documented real-model run).

The same deployment as ``sleeptime bench server-load`` (`langgraph dev` on the project's
langgraph.json, memory on `chroma run`, checkpoints in PostgreSQL) but with
``SLEEPTIME_MODEL=local``: one user tells a fact in one thread, the sleep-time run consolidates it,
and a second thread asks about it. Writes ``local-model.json`` and ``local-model.md`` with the
replies, the memory blocks, the timings and the command.

    python benchmarks/server_local_model.py --out benchmarks/results/server-load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client

from sleeptime_agent import ChromaBlockStore
from sleeptime_agent.storage.facts import FactStore
from sleeptime_agent.storage.recall import RecallIndex
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_bench.report import write_report
from sleeptime_bench.server_procs import (
    ChromaProcess,
    LangGraphDevProcess,
    PostgresProcess,
    rss_bytes,
    server_config,
)

ROOT = Path(__file__).resolve().parents[1]
USER = "ada"
TOLD = "Hi! My name is Ada and I live in Tartu, where I work as a luthier."
ASKED = "Where do I live, and what is my job?"


async def turn(client: Any, thread_id: str, text: str) -> tuple[str, float]:
    start = time.monotonic()
    out = await client.runs.wait(
        thread_id,
        "sleeptime_chat",
        input={"messages": [{"role": "user", "content": text}]},
        config={"configurable": {"user_id": USER}},
        raise_error=True,
    )
    return str(out["messages"][-1]["content"]), round(time.monotonic() - start, 2)


def wait_consolidated(store: ChromaBlockStore, timeout: float) -> float:
    transcript = Transcript(store)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if transcript.cursor((USER,)).seq >= transcript.last_seq((USER,)) > 0:
            return round(time.monotonic() - start, 2)
        time.sleep(1)
    return -1.0


async def drive(
    server: LangGraphDevProcess, store: ChromaBlockStore, wait: float
) -> dict[str, Any]:
    client = get_client(url=server.url, timeout=(10.0, 900.0, 900.0, 10.0))
    monday = (await client.threads.create())["thread_id"]
    reply1, t1 = await turn(client, monday, TOLD)
    consolidated = await asyncio.to_thread(wait_consolidated, store, wait)
    friday = (await client.threads.create())["thread_id"]
    reply2, t2 = await turn(client, friday, ASKED)
    blocks = {b.label: b.value for b in store.list_blocks((USER,))}
    # The local model consolidates with the pipeline: dated facts and recall memory, besides
    # the blocks (docs/architecture.md); all three are what the primary may read.
    facts = [f.line() for f in FactStore(store).all((USER,))]
    recall = [h.line for h in RecallIndex(store).all((USER,))]
    return {
        "turns": [
            {"thread": "monday", "user": TOLD, "reply": reply1, "latency_s": t1},
            {"thread": "friday", "user": ASKED, "reply": reply2, "latency_s": t2},
        ],
        "sleeptime_caught_up_after_s": consolidated,
        "blocks": blocks,
        "facts": facts,
        "recall": recall,
        "server_rss_mb": round(rss_bytes(server.pid) / 2**20, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="benchmarks/results/server-load")
    p.add_argument("--wait", type=float, default=600, help="max seconds for the sleep-time run")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sleeptime-local-"))
    base.chmod(0o755)
    chroma, postgres = ChromaProcess(base / "chroma"), PostgresProcess(base / "postgres")
    server: LangGraphDevProcess | None = None
    try:
        chroma.start()
        postgres.start()
        env = {
            "SLEEPTIME_MODEL": "local",
            "SLEEPTIME_CHROMA_URL": chroma.url,
            "SLEEPTIME_POSTGRES_URI": postgres.uri,
        }
        config = server_config(ROOT, base / "server", postgres=True)
        server = LangGraphDevProcess(base / "server", config, env)
        started = time.monotonic()
        server.start()
        startup = round(time.monotonic() - started, 2)
        store = ChromaBlockStore.from_url(chroma.url)
        result = asyncio.run(drive(server, store, args.wait))
        result["server_startup_s"] = startup
    finally:
        if server is not None:
            server.stop()
        postgres.stop()
        chroma.stop()
        shutil.rmtree(base, ignore_errors=True)
    result["deployment"] = (
        "langgraph dev + Postgres checkpoints + chroma run, SLEEPTIME_MODEL=local"
    )
    command = shlex.join(["python", "benchmarks/server_local_model.py", *sys.argv[1:]])
    path = write_report(args.out, "local-model", result)
    report = json.loads(path.read_text())
    report["command"] = command  # write_report names the `sleeptime` CLI; this is a script
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [
        "# Through LangGraph Server on the local model (Qwen2.5-Coder-1.5B, llama.cpp)",
        "",
        f"`{command}`",
        "",
        f"{result['deployment']}; server start {startup} s, RSS {result['server_rss_mb']} MB.",
        "",
        "| thread | user | reply | latency s |",
        "| --- | --- | --- | --- |",
    ]
    for t in result["turns"]:
        reply = t["reply"].replace("\n", " ").replace("|", "/")
        lines.append(f"| {t['thread']} | {t['user']} | {reply} | {t['latency_s']} |")
    lines += [
        "",
        f"Sleep-time run caught up {result['sleeptime_caught_up_after_s']} s after the first "
        "reply (-1: not within the wait). Memory afterwards (blocks, dated facts, recall):",
        "",
        "```json",
        json.dumps(
            {k: result[k] for k in ("blocks", "facts", "recall")}, indent=2, ensure_ascii=False
        ),
        "```",
        "",
    ]
    (Path(args.out) / "local-model.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
