"""``sleeptime bench overhead``: the system's own cost, with scripted models of fixed latency.

Four measurements, side by side in one run (no real model needed):

1. framework overhead per turn: zero-latency models, sleep-time off; the turn's wall time is what
   the graph, the transcript and the memory read cost, compared with the bare model call;
2. the primary's turn latency with a sleep-time run in flight vs none (target ratio <= 1.05);
3. memory read (render blocks + retrieve notes) p50/p95 at 1k / 10k / 100k archival notes;
4. primary prompt tokens vs turn number, refined memory vs raw full history.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from tqdm import tqdm

from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.scheduler import SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.report import percentiles, write_report

__all__ = ["register", "run_overhead"]

NS = ("bench-user",)
_NEVER = 10**9  # every_n_turns that never triggers: sleep-time off


def register(sub: Any) -> None:
    """Add ``sleeptime bench overhead``."""
    p = sub.add_parser(
        "overhead",
        help="framework overhead and latency with scripted models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--turns", type=int, default=50, help="turns per latency condition")
    p.add_argument(
        "--sleeptime-latency",
        type=float,
        default=1.0,
        help="seconds per sleep-time model call (default 1)",
    )
    p.add_argument(
        "--primary-latency",
        type=float,
        default=0.0,
        help="seconds per primary model call (default 0)",
    )
    p.add_argument(
        "--think",
        type=float,
        default=0.5,
        help="user think time between turns, not counted (default 0.5 s)",
    )
    p.add_argument("--notes", default="1000,10000,100000", help="archival note counts")
    p.add_argument(
        "--prompt-turns", default="20,100,500", help="turns at which to read prompt size"
    )
    p.add_argument(
        "--out",
        default=default_out("overhead"),
        help=OUT_HELP,
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    path = run_overhead(
        turns=args.turns,
        sleeptime_latency=args.sleeptime_latency,
        primary_latency=args.primary_latency,
        think=args.think,
        notes=[int(x) for x in args.notes.split(",") if x],
        prompt_turns=[int(x) for x in args.prompt_turns.split(",") if x],
        out=Path(args.out),
    )
    print(f"wrote {path}")  # noqa: T201
    return 0


# -- scripted models ---------------------------------------------------------------------------


def _sleeper(latency: float) -> ScriptedChatModel:
    """Consolidates one fact per user message; keeps the block bounded by declared rewrites."""

    def step(messages: list[BaseMessage]) -> AIMessage:
        prompt = str(messages[1].content)
        block = re.search(r"<human[^>]*>.*?<value>\n(.*?)\n</value>", prompt, re.S)
        value = block.group(1) if block else ""
        done = sum(1 for m in messages if m.type == "tool")
        said = re.findall(r"\] user: (Turn \d+): ([^\n.]{0,60}\.?)", prompt)
        if done < len(said):
            turn, text = said[done]
            line = f"- {turn}: {text}"
            if len(value) + len(line) > 3000:  # bounded memory: keep the newest half
                lines = value.split("\n")
                kept, dropped = lines[len(lines) // 2 :], lines[: len(lines) // 2]
                return tool_call(
                    "memory_rethink",
                    label="human",
                    new_memory="\n".join(kept),
                    removed="older turns, superseded: " + " ".join(dropped),
                )
            return tool_call("memory_insert", label="human", new_str=line)
        return tool_call("memory_finish_edits")

    return ScriptedChatModel(replies=[step], repeat_last=True, latency=latency)


def _primary(latency: float) -> ScriptedChatModel:
    return ScriptedChatModel(replies=["Sure, noted."], repeat_last=True, latency=latency)


def _chat(
    store: ChromaBlockStore, primary: ScriptedChatModel, sleeper: ScriptedChatModel, every: int
) -> tuple[Any, SleeptimeMemory]:
    scheduler = SleeptimeScheduler(every_n_turns=every)
    memory = SleeptimeMemory(
        store, sleeper, scheduler=scheduler, consolidator_options={"max_steps": 12}
    )
    return build_chat_graph(primary, memory), memory


# Word lists of coprime lengths: every turn states a different fact for a long while, so the
# memory tools' near-duplicate check does not (rightly) refuse the scripted sleeper's inserts.
_PEOPLE = ("Ana", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus")
_PLACES = ("Oslo", "Rome", "Lima", "Kyiv", "Pune", "Nice", "Bern", "Doha", "Graz", "Hue", "Ulm")
_FOODS = ("figs", "rice", "soup", "tacos", "pears", "bread", "dates", "plums", "kale", "eggs")


def _say(graph: Any, i: int, thread: str = "t") -> float:
    cfg = {"configurable": {"user_id": NS[0], "thread_id": thread}}
    fact = f"I met {_PEOPLE[i % 7]} in {_PLACES[i % 11]} and ate {_FOODS[i % 10]}."
    text = f"Turn {i}: {fact} Thanks for asking, it went fine."
    t0 = time.perf_counter()
    graph.invoke({"messages": [HumanMessage(text)]}, cfg)
    return time.perf_counter() - t0


# -- the four measurements -------------------------------------------------------------------------


def _framework(turns: int) -> dict[str, Any]:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    primary = _primary(0.0)
    graph, memory = _chat(store, primary, _sleeper(0.0), every=_NEVER)
    turn = [_say(graph, i) for i in tqdm(range(turns), desc="framework", leave=False)]
    bare = []
    for _ in range(turns):
        t0 = time.perf_counter()
        primary.invoke([HumanMessage("hi")])
        bare.append(time.perf_counter() - t0)
    memory.scheduler.shutdown()
    t, b = percentiles(turn), percentiles(bare)
    return {"turn_s": t, "bare_model_call_s": b, "overhead_p50_s": t["p50"] - b["p50"]}


def _in_flight(
    turns: int, sleeptime_latency: float, primary_latency: float, think: float
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, every in (("sleeptime_off", _NEVER), ("sleeptime_on", 1)):
        store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
        graph, memory = _chat(store, _primary(primary_latency), _sleeper(sleeptime_latency), every)
        sched = memory.scheduler
        lat, busy = [], 0
        for i in tqdm(range(turns), desc=name, leave=False):
            busy += int(sched.pending)
            lat.append(_say(graph, i))
            time.sleep(think)
        sched.wait_idle_sync()
        runs = sched.records
        sched.shutdown()
        result[name] = {
            "turn_s": percentiles(lat),
            "turns_with_run_in_flight": busy,
            "sleeptime_runs": len(runs),
            "sleeptime_run_s": percentiles([r.duration_s or 0.0 for r in runs]),
        }
    on, off = result["sleeptime_on"]["turn_s"], result["sleeptime_off"]["turn_s"]
    result["ratio_p50"] = on["p50"] / off["p50"] if off["p50"] else None
    result["ratio_p95"] = on["p95"] / off["p95"] if off["p95"] else None
    result["target_ratio"] = 1.05
    return result


def _memory_read(counts: list[int], queries: int = 50) -> dict[str, Any]:
    out: dict[str, Any] = {}
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    memory = SleeptimeMemory(store, _sleeper(0.0))
    memory.consolidator.ensure_blocks(NS)
    have = 0
    for n in counts:
        with tqdm(total=n - have, desc=f"notes to {n}", leave=False) as bar:
            while have < n:
                batch = min(5000, n - have)
                store.add_notes(
                    NS,
                    [
                        f"note {have + j}: the user mentioned topic {(have + j) % 997}"
                        for j in range(batch)
                    ],
                )
                have += batch
                bar.update(batch)
        times = []
        for q in range(queries):
            t0 = time.perf_counter()
            view = memory.read(NS, query=f"what about topic {q * 13 % 997}?")
            view.render()
            times.append(time.perf_counter() - t0)
        out[str(n)] = percentiles(times)
    memory.scheduler.shutdown()
    return out


def _prompt_growth(checkpoints: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    last = max(checkpoints)
    for name, every in (("refined_memory", 1), ("raw_history", _NEVER)):
        store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
        graph, memory = _chat(store, _primary(0.0), _sleeper(0.0), every)
        sched = memory.scheduler
        series = []
        for i in tqdm(range(1, last + 1), desc=name, leave=False):
            _say(graph, i)
            sched.wait_idle_sync()  # each turn sees the memory consolidated so far
            series.append(memory.ledger.turns[-1].input_tokens)
        sched.shutdown()
        out[name] = {str(t): series[t - 1] for t in checkpoints}
        out[name + "_series"] = series
    return out


def run_overhead(
    *,
    turns: int,
    sleeptime_latency: float,
    primary_latency: float,
    think: float,
    notes: list[int],
    prompt_turns: list[int],
    out: Path,
) -> Path:
    """Run the four measurements and write ``overhead.json`` and ``overhead.png``."""
    data: dict[str, Any] = {
        "settings": {
            "turns": turns,
            "sleeptime_latency_s": sleeptime_latency,
            "primary_latency_s": primary_latency,
            "think_s": think,
            "tokens": "estimated as characters / 4 (scripted models)",
            "embeddings": "hashing bag-of-words (fast fill); store: ephemeral Chroma",
        },
        "framework": _framework(turns),
        "in_flight": _in_flight(turns, sleeptime_latency, primary_latency, think),
        "memory_read_s": _memory_read(sorted(notes)),
        "prompt_tokens": _prompt_growth(sorted(prompt_turns)),
    }
    path = write_report(out, "overhead", data)
    _plot(data, out / "overhead.png")
    return path


def _plot(data: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4))
    a, b, c = fig.subplots(1, 3)
    pt = data["prompt_tokens"]
    for name in ("raw_history", "refined_memory"):
        series = pt[name + "_series"]
        a.plot(range(1, len(series) + 1), series, label=name.replace("_", " "))
    a.set(title="primary prompt tokens per turn", xlabel="turn", ylabel="prompt tokens (est.)")
    a.legend()
    inf = data["in_flight"]
    names = ["sleeptime_off", "sleeptime_on"]
    b.bar(
        [n.replace("_", " ") + " p50" for n in names],
        [inf[n]["turn_s"]["p50"] * 1000 for n in names],
        color=["#999", "#3a7"],
    )
    b.bar(
        [n.replace("_", " ") + " p95" for n in names],
        [inf[n]["turn_s"]["p95"] * 1000 for n in names],
        color=["#bbb", "#6c9"],
    )
    b.set(title=f"primary turn latency (ratio p50 {inf['ratio_p50']:.2f})", ylabel="ms")
    b.tick_params(axis="x", labelrotation=20)
    mr = data["memory_read_s"]
    xs = [int(k) for k in mr]
    c.plot(xs, [mr[k]["p50"] * 1000 for k in mr], "o-", label="p50")
    c.plot(xs, [mr[k]["p95"] * 1000 for k in mr], "s--", label="p95")
    c.set(xscale="log", title="memory read vs archival notes", xlabel="notes", ylabel="ms")
    c.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
