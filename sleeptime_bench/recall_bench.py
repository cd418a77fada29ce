"""``sleeptime bench locomo-recall``: does memory find the evidence? No model needed.

For every LoCoMo question with evidence turns (the adversarial category left out), the question
is sent to each retriever and we count how many of its evidence turns come back in the top k:
today's raw-turn RAG condition (the turns as ``[date] speaker: text``, by embedding), and the
recall memory the consolidation pipeline builds (code-only: attributed, dated, third person,
relative dates resolved), by embedding, by BM25, hybrid (the product's read), and hybrid with
the named speaker's turns ranked higher (``speaker_boost``). Answers
depend on a model; finding the evidence does not, so this measures the memory itself, on any
split, in minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from sleeptime_agent.pipeline.consolidator import PipelineConsolidator
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.testing import ScriptedChatModel
from sleeptime_bench import prompts
from sleeptime_bench.conversations import LOCOMO_CATEGORIES, LocomoConversation, load_locomo
from sleeptime_bench.locomo import _pick, locomo_dialogue
from sleeptime_bench.paths import data_dir
from sleeptime_bench.report import write_report

__all__ = ["RETRIEVERS", "evidence_recall", "register"]

#: Retrievers compared, in report order.
RETRIEVERS = (
    "raw-rag",
    "pipeline-vector",
    "pipeline-bm25",
    "pipeline-hybrid",
    "pipeline-hybrid-speaker",
)


def _ingest(conv: LocomoConversation, store: ChromaBlockStore) -> tuple[Namespace, dict[str, int]]:
    """Record the conversation session by session and consolidate it (code-only pipeline)."""
    dialogue = locomo_dialogue(conv)
    # The code-only pipeline never calls its model; a scripted one makes that a hard error.
    con = PipelineConsolidator(store, ScriptedChatModel(), keywords=False, facts=False)
    namespace: Namespace = ("locomo-recall", conv.sample_id)
    seqs: dict[str, int] = {}
    for n, (session, raw) in enumerate(zip(dialogue.sessions, conv.sessions, strict=True), 1):
        header = prompts.BENCH_SESSION_HEADER.format(n=n, date=session.date)
        con.transcript.append(namespace, f"session-{n}", "session", header)
        for u, turn in zip(session.utterances, raw.turns, strict=True):
            seqs[turn.dia_id] = con.transcript.append(namespace, f"session-{n}", u.speaker, u.text)
        asyncio.run(con.arun_until_caught_up(namespace))
    return namespace, seqs


def evidence_recall(conv: LocomoConversation, k: int, store: ChromaBlockStore) -> dict[str, Any]:
    """Evidence recall@k of each retriever on one conversation, overall and per category."""
    namespace, seqs = _ingest(conv, store)
    dialogue = locomo_dialogue(conv)
    rag_ns: Namespace = ("locomo-recall-rag", conv.sample_id)
    texts, ids = [], []
    for session, raw in zip(dialogue.sessions, conv.sessions, strict=True):
        for u, turn in zip(session.utterances, raw.turns, strict=True):
            texts.append(f"[{session.date}] {u.speaker}: {u.text}")
            ids.append({"dia_id": turn.dia_id})
    store.add_notes(rag_ns, texts, ids)
    recall = PipelineConsolidator(store, ScriptedChatModel()).recall
    found: dict[str, dict[str, list[int]]] = {r: {} for r in RETRIEVERS}
    for qa in conv.qa:
        if qa.category == 5:
            continue
        evidence = [e for e in qa.evidence_ids if e in seqs]
        if not evidence:
            continue
        cat = qa.category_name
        wanted = {seqs[e] for e in evidence}
        rag = {seqs[str(n.metadata["dia_id"])] for n in store.search_notes(rag_ns, qa.question, k)}
        got = {"raw-rag": rag}
        for name, vector, bm25, boost in (
            ("pipeline-vector", True, False, False),
            ("pipeline-bm25", False, True, False),
            ("pipeline-hybrid", True, True, False),
            ("pipeline-hybrid-speaker", True, True, True),
        ):
            hits = recall.search(
                namespace,
                qa.question,
                k,
                max_seq=10**9,
                vector=vector,
                bm25=bm25,
                speaker_boost=boost,
            )
            got[name] = {h.seq for h in hits}
        for name, seen in got.items():
            pair = found[name].setdefault(cat, [0, 0])
            pair[0] += len(wanted & seen)
            pair[1] += len(wanted)
    out: dict[str, Any] = {}
    for name, cats in found.items():
        hit = sum(h for h, _ in cats.values())
        total = sum(t for _, t in cats.values())
        out[name] = {
            "recall": hit / total if total else None,
            "evidence_turns": total,
            "by_category": {c: h / t for c, (h, t) in cats.items() if t},
        }
    return out


def _table(data: dict[str, Any]) -> str:
    k = data["k"]
    lines = [f"# LoCoMo evidence recall@{k} (no model)", "", f"`{data['command']}`", ""]
    cats = [c for c in LOCOMO_CATEGORIES.values() if c != "adversarial"]
    for conv, res in data["conversations"].items():
        lines += [f"## {conv}", "", "| retriever | recall@k | " + " | ".join(cats) + " |"]
        lines.append("|---" * (len(cats) + 2) + "|")
        for name in RETRIEVERS:
            r = res[name]
            per = [f"{r['by_category'][c]:.2f}" if c in r["by_category"] else "-" for c in cats]
            lines.append(f"| {name} | {r['recall']:.3f} | " + " | ".join(per) + " |")
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Path:
    """Run the comparison and write ``locomo_recall.json`` + ``.md``."""
    convs = _pick(load_locomo(data_dir(args.data)), args.conversations)
    started = time.perf_counter()
    results = {}
    for conv in convs:
        results[conv.sample_id] = evidence_recall(conv, args.k, ChromaBlockStore.ephemeral())
    data = {
        "k": args.k,
        "conversations": results,
        "method": __doc__,
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    path = write_report(Path(args.out), "locomo_recall", data)
    report = json.loads(path.read_text(encoding="utf-8"))
    path.with_suffix(".md").write_text(_table(report), encoding="utf-8")
    return path


def register(sub: Any) -> None:
    """Add ``sleeptime bench locomo-recall``."""
    p = sub.add_parser(
        "locomo-recall",
        help="LoCoMo: how much of the evidence each memory retrieves (no model)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--conversations", default="conv-26", help="comma-separated sample ids")
    p.add_argument("--k", type=int, default=10, help="retrieved turns (default 10)")
    p.add_argument("--data", default=None, help="evaluation data directory")
    p.add_argument("--out", default="benchmarks/results/locomo", help="output directory")

    def command(args: argparse.Namespace) -> int:
        print(f"report: {run(args)}")  # noqa: T201 - the CLI's own output
        return 0

    p.set_defaults(func=command)
