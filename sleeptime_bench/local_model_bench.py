"""``sleeptime bench local-model``: the chat loop on a real model, refined memory vs raw history.

One scripted conversation (a user who shares personal facts and asks about them) is played
twice with the same model:

- ``refined``: the sleep-time agent consolidates every N turns (the run finishes before the
  next turn, so the primary's numbers are its own; the turns in between stay verbatim in the
  prompt until consolidated, by the freshness rule);
- ``raw``: no consolidation: the primary's prompt carries the full history.

Reported: the primary's time to first token and turn latency (p50 over windows of turns ending
at each checkpoint), its prompt tokens, and per sleep-time run the duration, tokens, steps and
the share of steps whose tool call validated on the first try.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from tqdm import tqdm

from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.models import PRIMARY_MODEL_ENV, resolve_model
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.report import percentiles, write_report

__all__ = ["SCRIPT", "register", "run_local_model_bench"]

# Our own scripted user: facts, small talk, a change of fact, and questions that need memory.
SCRIPT = [
    "Hi! I'm Marta, I live in Porto.",
    "I work as a marine biologist at the aquarium.",
    "I have a dog called Bolt, he's a beagle.",
    "My sister Inês lives in Lyon.",
    "I'm allergic to shellfish, which is ironic for my job.",
    "Today I tagged three sea turtles.",
    "What's a good name for a turtle?",
    "I usually cycle to work.",
    "My favourite book is The Old Man and the Sea.",
    "Where do I live and what's my dog's name?",
    "I'm planning a diving trip to the Azores in June.",
    "I started learning the cello last month.",
    "My birthday is on 3 March.",
    "Bolt ate my cello rosin, can you believe it?",
    "Any tips for keeping a beagle out of trouble?",
    "I moved from Porto to Lisbon last week!",
    "The new flat has a view of the river.",
    "My commute is now by tram.",
    "What should I pack for the Azores?",
    "Remind me, where does my sister live?",
    "I just adopted a second dog, a greyhound named Nina.",
    "I've decided to become vegetarian.",
    "Work is busy: we have a whale stranding to study.",
    "Suggest a dinner I can cook tonight.",
    "I'm nervous about my cello recital on Friday.",
    "My recital went well!",
    "I might apply for a job in Madeira.",
    "What are my dogs called?",
    "Which city do I live in now?",
    "Thanks for all the help lately.",
]


def register(sub: Any) -> None:
    """Add ``sleeptime bench local-model``."""
    p = sub.add_parser(
        "local-model",
        help="primary latency refined vs raw history, sleep-time runs, on a real model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="'local' (default) or provider:model")
    p.add_argument("--checkpoints", default="10,30", help="turn numbers to report at")
    p.add_argument("--window", type=int, default=3, help="turns per latency sample window")
    p.add_argument(
        "--every", type=int, default=3, help="refined: consolidate every N turns (default 3)"
    )
    p.add_argument("--max-tokens", type=int, default=64, help="primary reply cap (local model)")
    p.add_argument(
        "--out",
        default=default_out("local_model"),
        help=OUT_HELP,
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    sleeper = resolve_model(args.model, env_var=PRIMARY_MODEL_ENV)
    model = sleeper  # the primary's replies are capped; the sleep-time agent's edits are not
    if hasattr(sleeper, "max_tokens"):
        model = sleeper.model_copy(update={"max_tokens": args.max_tokens})
    checkpoints = [int(x) for x in args.checkpoints.split(",") if x]
    path = run_local_model_bench(
        model,
        sleeper=sleeper,
        checkpoints=checkpoints,
        window=args.window,
        every=args.every,
        out=Path(args.out),
    )
    print(f"wrote {path}")  # noqa: T201
    return 0


def _play(
    model: BaseChatModel,
    sleeper: BaseChatModel,
    turns: int,
    every: int | None,
    store: ChromaBlockStore,
) -> dict[str, Any]:
    refined = every is not None
    scheduler = SleeptimeScheduler(every_n_turns=every or 10**9)
    memory = SleeptimeMemory(store, sleeper, scheduler=scheduler)
    graph = build_chat_graph(model, memory=memory, checkpointer=InMemorySaver())
    cfg: RunnableConfig = {"configurable": {"user_id": "marta", "thread_id": "bench"}}
    rows = []
    label = "refined" if refined else "raw"
    for i, text in enumerate(tqdm(SCRIPT[:turns], desc=label), start=1):
        t0 = time.perf_counter()
        first: float | None = None
        reply = ""
        stream: Any = graph.stream({"messages": [HumanMessage(text)]}, cfg, stream_mode="messages")
        for chunk, meta in stream:
            if meta.get("langgraph_node") == "primary" and isinstance(chunk, AIMessageChunk):
                if first is None and chunk.content:
                    first = time.perf_counter() - t0
                reply += str(chunk.content)
        latency = time.perf_counter() - t0
        turn = memory.ledger.turns[-1]
        rows.append(
            {
                "turn": i,
                "ttft_s": first if first is not None else latency,
                "latency_s": latency,
                "prompt_tokens": turn.input_tokens,
                "completion_tokens": turn.output_tokens,
                "user": text,
                "reply": reply,
            }
        )
        scheduler.wait_idle_sync()  # consolidation finishes before the next turn
    runs = [r.model_dump(mode="json") | {"duration_s": r.duration_s} for r in memory.ledger.runs]
    scheduler.shutdown()
    blocks = {b.label: b.value for b in store.list_blocks(("marta",))}
    return {"turns": rows, "sleeptime_runs": runs, "final_blocks": blocks}


def _window(rows: list[dict[str, Any]], end: int, width: int, key: str) -> dict[str, float]:
    return percentiles([r[key] for r in rows if end - width < r["turn"] <= end])


def run_local_model_bench(
    model: BaseChatModel,
    *,
    sleeper: BaseChatModel | None = None,
    checkpoints: list[int],
    window: int,
    every: int,
    out: Path,
) -> Path:
    """Play the script in both conditions and write ``local_model.json`` / ``.png``."""
    turns = max(checkpoints)
    data: dict[str, Any] = {
        "settings": {
            "checkpoints": checkpoints,
            "window": window,
            "consolidate_every_n_turns": every,
            "model": getattr(model, "model_name", str(model)),
        }
    }
    for refined in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            store = ChromaBlockStore.persistent(Path(tmp) / "store")
            played = _play(model, sleeper or model, turns, every if refined else None, store)
        rows = played["turns"]
        summary = {
            str(c): {
                "ttft_s": _window(rows, c, window, "ttft_s"),
                "latency_s": _window(rows, c, window, "latency_s"),
                "prompt_tokens": _window(rows, c, window, "prompt_tokens"),
            }
            for c in checkpoints
        }
        data["refined" if refined else "raw"] = {"at_turn": summary, **played}
    runs = data["refined"]["sleeptime_runs"]
    steps = sum(r["steps"] for r in runs)
    invalid = sum(1 for r in runs for f in r["failures"] if f.get("kind") == "invalid")
    rejected = sum(1 for r in runs for f in r["failures"] if f.get("kind") == "rejected")
    data["sleeptime"] = {
        "runs": len(runs),
        "duration_s": percentiles([r["duration_s"] or 0.0 for r in runs]),
        "tokens_per_run": percentiles([r["input_tokens"] + r["output_tokens"] for r in runs]),
        "steps": steps,
        "invalid_steps": invalid,
        "rejected_steps": rejected,
        # A step is one model call; "valid" = it parsed into a known tool with schema-valid
        # arguments on the first try. "rejected" = valid, but the edit was refused (no match,
        # duplicate insert, guard) and explained to the model.
        "first_try_valid_share": (steps - invalid) / steps if steps else None,
        "accepted_share": (steps - invalid - rejected) / steps if steps else None,
        "statuses": {
            s: sum(1 for r in runs if r["status"] == s) for s in {r["status"] for r in runs}
        },
    }
    path = write_report(out, "local_model", data)
    _plot(data, out / "local_model.png")
    return path


def _plot(data: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    a, b = fig.subplots(1, 2)
    for name in ("raw", "refined"):
        rows = data[name]["turns"]
        a.plot([r["turn"] for r in rows], [r["prompt_tokens"] for r in rows], label=name)
        b.plot([r["turn"] for r in rows], [r["ttft_s"] for r in rows], label=f"{name} TTFT")
    a.set(title="primary prompt tokens per turn", xlabel="turn", ylabel="tokens")
    b.set(title="primary time to first token", xlabel="turn", ylabel="seconds")
    a.legend()
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
