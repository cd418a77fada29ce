"""``sleeptime bench store``: latency of the memory stores, embedded and on a Chroma server.

Measured side by side in one run, for an embedded (persistent) and a server-backed Chroma:

- ChromaBlockStore ``put_block`` (compare-and-swap write) and ``get_block`` p50/p95;
- ``search_notes`` p50/p95 at each archival-note count (default 1k and 10k);
- ChromaStore (the LangGraph ``BaseStore``) put/get/search against the raw chromadb calls that
  do the same work (one ``upsert``, one ``get`` by id, one ``query``), as an overhead ratio.

Embeddings are a fast hashing function so that the numbers are the stores' own, not the
embedding model's; the MiniLM query embedding time is reported separately.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.storage.embeddings import default_embeddings
from sleeptime_agent.storage.langgraph_store import ChromaStore
from sleeptime_agent.testing import HashingEmbeddings
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.report import percentiles, write_report

__all__ = ["chroma_server", "register", "run_store_bench"]


def register(sub: Any) -> None:
    """Add ``sleeptime bench store``."""
    p = sub.add_parser(
        "store",
        help="block store / ChromaStore latency, embedded and server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ops", type=int, default=200, help="operations per measurement")
    p.add_argument("--notes", default="1000,10000", help="archival note counts")
    p.add_argument(
        "--out",
        default=default_out("store"),
        help=OUT_HELP,
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    path = run_store_bench(
        ops=args.ops, notes=[int(n) for n in args.notes.split(",") if n], out=Path(args.out)
    )
    print(f"wrote {path}")  # noqa: T201
    return 0


@contextmanager
def chroma_server(path: Path) -> Iterator[tuple[str, int]]:
    """A throwaway ``chroma run`` on 127.0.0.1 (stopped on exit)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    exe = Path(sys.executable).with_name("chroma")
    cmd = [
        str(exe) if exe.exists() else (shutil.which("chroma") or "chroma"),
        "run",
        "--path",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _time(fn: Callable[[int], object], n: int, desc: str) -> dict[str, float]:
    samples = []
    for i in tqdm(range(n), desc=desc, leave=False):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def _blocks(store: ChromaBlockStore, ops: int, notes: list[int]) -> dict[str, Any]:
    ns = (f"bench-{uuid.uuid4().hex[:6]}",)
    versions = {"v": 0}

    def put(i: int) -> None:
        block = MemoryBlock(label="human", value=f"fact {i}\n" * 20, limit=5000)
        versions["v"] = store.put_block(ns, block, expected_version=versions["v"]).version

    out: dict[str, Any] = {
        "put_block_s": _time(put, ops, "put_block"),
        "get_block_s": _time(lambda i: store.get_block(ns, "human"), ops, "get_block"),
        "history_length": versions["v"],
    }
    have = 0
    for n in sorted(notes):
        while have < n:
            batch = min(2000, n - have)
            store.add_notes(
                ns, [f"note {have + j} about topic {(have + j) % 997}" for j in range(batch)]
            )
            have += batch
        out[f"search_notes_{n}_s"] = _time(
            lambda i: store.search_notes(ns, f"topic {i % 997}", 5), ops, f"search@{n}"
        )
    return out


def _langgraph(store: ChromaStore, raw: Any, emb: HashingEmbeddings, ops: int) -> dict[str, Any]:
    ns = ("bench", uuid.uuid4().hex[:6])
    docs: list[dict[str, Any]] = [
        {"text": f"memory {i} about topic {i % 97}", "n": i} for i in range(ops)
    ]
    res: dict[str, Any] = {
        "put_s": _time(lambda i: store.put(ns, f"k{i}", docs[i]), ops, "ChromaStore.put"),
        "get_s": _time(lambda i: store.get(ns, f"k{i}"), ops, "ChromaStore.get"),
        "search_s": _time(
            lambda i: store.search(ns, query=f"topic {i % 97}", limit=5), ops, "ChromaStore.search"
        ),
    }
    # The same work as raw chromadb calls: one record per item, embedded the same way.
    res["raw_put_s"] = _time(
        lambda i: raw.upsert(
            ids=[f"k{i}"],
            documents=[docs[i]["text"]],
            metadatas=[{"n": i}],
            embeddings=[emb.embed_query(docs[i]["text"])],
        ),
        ops,
        "raw upsert",
    )
    res["raw_get_s"] = _time(lambda i: raw.get(ids=[f"k{i}"]), ops, "raw get")
    res["raw_search_s"] = _time(
        lambda i: raw.query(query_embeddings=[emb.embed_query(f"topic {i % 97}")], n_results=5),
        ops,
        "raw query",
    )
    for op in ("put", "get", "search"):
        res[f"overhead_ratio_{op}_p50"] = res[f"{op}_s"]["p50"] / res[f"raw_{op}_s"]["p50"]
    return res


def run_store_bench(*, ops: int, notes: list[int], out: Path) -> Path:
    """Run every measurement on embedded and server Chroma; write ``store.json``/``store.png``."""
    emb = HashingEmbeddings()
    index: Any = {"dims": emb.dims, "embed": emb, "fields": ["text"]}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        embedded = ChromaBlockStore.persistent(Path(tmp) / "embedded", embeddings=emb)
        results["embedded"] = {"blocks": _blocks(embedded, ops, notes)}
        lg = ChromaStore.persistent(Path(tmp) / "lg", index=index)
        raw = lg.client.get_or_create_collection("raw-baseline", embedding_function=None)
        results["embedded"]["langgraph_store"] = _langgraph(lg, raw, emb, ops)
        with chroma_server(Path(tmp) / "server") as (host, port):
            server = ChromaBlockStore.http(host, port, embeddings=emb)
            results["server"] = {"blocks": _blocks(server, ops, notes)}
            lgs = ChromaStore.http(host, port, index=index)
            raws = lgs.client.get_or_create_collection("raw-baseline", embedding_function=None)
            results["server"]["langgraph_store"] = _langgraph(lgs, raws, emb, ops)
    minilm = default_embeddings()
    results["minilm_query_embedding_s"] = _time(
        lambda i: minilm.embed_query(f"where does the user live {i}"), 50, "MiniLM query"
    )
    data = {
        "settings": {"ops": ops, "notes": notes, "embeddings": "hashing (store cost only)"},
        **results,
    }
    path = write_report(out, "store", data)
    _plot(results, out / "store.png")
    return path


def _plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    a, b = fig.subplots(1, 2)
    labels, p50, p95 = [], [], []
    for where in ("embedded", "server"):
        r = results[where]["blocks"]
        for name in [k for k in r if k.endswith("_s")]:
            labels.append(f"{where}\n{name[:-2]}")
            p50.append(r[name]["p50"] * 1000)
            p95.append(r[name]["p95"] * 1000)
    xs = range(len(labels))
    a.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    a.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95")
    a.set_xticks(list(xs), labels, rotation=60, fontsize=7)
    a.set(title="ChromaBlockStore latency", ylabel="ms")
    a.legend()
    ops = ["put", "get", "search"]
    for i, where in enumerate(("embedded", "server")):
        r = results[where]["langgraph_store"]
        b.bar(
            [x + 0.4 * i for x in range(3)],
            [r[f"overhead_ratio_{o}_p50"] for o in ops],
            width=0.4,
            label=where,
        )
    b.axhline(1.0, color="k", lw=0.8)
    b.set_xticks([x + 0.2 for x in range(3)], ops)
    b.set(title="ChromaStore / raw chromadb (p50)", ylabel="ratio")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
