"""``sleeptime bench critical-path``: what the user pays for sleep-time work on the same machine.

One chat graph, the local model for both agents (one llama.cpp server), a scripted user. Each
episode of each arm plays, in order:

1. a fact turn (``warm``: memory has not changed since the previous turn), then a sleep-time
   run starts;
2. up to ``--inflight`` questions sent while that run is in flight, each aimed at a part of a
   sleep-time step in turn: prompt evaluation, generation, between steps (the user waits until
   the step is in that part, then a random delay); the part the step was really in when the
   turn arrived is recorded (``inflight``);
3. when the run has finished (and, with pre-warming, the pre-warm too), a question
   (``after_run``: the blocks at the top of the prompt have just changed);
4. at once another question (``warm``).

Two arms alternate episode by episode, so that machine load hits both alike. ``before`` is the
local model as it was: one llama.cpp slot shared by both agents, no preemption (a turn waits for
the step in flight), no pre-warm, and the primary sees each block edit as soon as it is applied
(``ReadOptions(blocks_at_run_start=False)``), so the first turn after an edit re-evaluates the
changed blocks and what follows them. ``after`` has all of #16: preemption, the pre-warm of the
next turn's prompt, the blocks as a run found them until it commits, and a second llama.cpp
server (same weights) with two slots, the primary and its pre-warm pinned to slot 0 and the
sleep-time agent to slot 1 (:meth:`~sleeptime_agent.local.LocalChatModel.for_role`);
``--no-preempt`` / ``--no-prewarm`` / ``--no-pin`` (the shared one-slot server) switch a part
off to isolate the others. ``--typing S``: the ``after`` arm's user types each message for S
seconds first, and the gate is held from the first key, as in ``sleeptime chat``
(:meth:`~sleeptime_agent.preemption.ForegroundGate.typing`); without it messages arrive
unannounced, as from an API client. Reported per arm and case: time to first token and
full-turn latency p50/p95/max and the ratios to ``warm``; the preemptions; each turn's cached
and evaluated prompt tokens and llama.cpp's prompt time; an audit of the ledger against block
history (no edit lost or applied twice); and sleep-time throughput (ledger tokens per wall
second of a run).

Then the throughput test (``--throughput-runs N``, the ``after`` arm): the same N sleep-time
runs on fresh copies of one conversation, once with no user turns and once with a user turn
(another user, same gate) every ``--turn-every`` seconds; sleep-time tokens per wall second of
each, and their ratio (the target is >= 0.8 at one turn every 20 s).

A scripted-model stress run (``--stress N``, no real model) adds at least N preemptions at
random moments and audits the same way. Writes ``critical-path.json``, ``critical-path.md`` and
``critical-path.png`` (turn latency against the moment in the sleep-time step the turn arrived).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from sleeptime_agent import ChromaBlockStore, SleeptimeMemory, SleeptimeScheduler, build_chat_graph
from sleeptime_agent.audit import EditAudit, audit_edits
from sleeptime_agent.blocks import namespace_from_config
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.memory import ReadOptions
from sleeptime_agent.testing import HashingEmbeddings, ScriptedChatModel, tool_call
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.report import command_line, write_report

__all__ = ["StepTracker", "register", "run_critical_path", "run_stress"]

NAME = "critical-path"
PHASES = ("prompt", "generation", "between")
CASES = ("warm", "inflight", "after_run")
_NEVER = 10**9  # every_n_turns that never fires: the bench starts runs itself (flush)

FACTS = [
    "Hi! I'm Marta and I live in Porto.",
    "I work as a marine biologist at the aquarium.",
    "I have a beagle called Bolt.",
    "My sister Inês lives in Lyon.",
    "I'm allergic to shellfish.",
    "I started learning the cello last month.",
    "I'm planning a diving trip to the Azores in June.",
    "My birthday is on 3 March.",
]
QUESTIONS = [
    "Where do I live?",
    "What is my dog's name?",
    "What do I do for work?",
    "Where does my sister live?",
    "What am I allergic to?",
    "Which instrument am I learning?",
    "Where am I going diving?",
    "When is my birthday?",
    "What breed is my dog?",
    "Suggest a dinner I can eat safely.",
]
# How long after the targeted part of a step begins the user speaks, at most (seconds).
_DELAY = {"prompt": 4.0, "generation": 1.0, "between": 0.0}


def register(sub: Any) -> None:
    """Add ``sleeptime bench critical-path``."""
    p = sub.add_parser(
        NAME,
        help="user turn latency during and after sleep-time runs, preemption and pre-warm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--episodes", type=int, default=4, help="episodes per arm (default 4)")
    p.add_argument(
        "--inflight", type=int, default=3, help="questions sent during each run (default 3)"
    )
    p.add_argument("--max-tokens", type=int, default=48, help="primary reply cap (default 48)")
    p.add_argument("--max-steps", type=int, default=4, help="sleep-time steps per run (default 4)")
    p.add_argument("--think", type=float, default=1.0, help="seconds between in-flight turns")
    p.add_argument("--no-preempt", action="store_true", help="the 'after' arm does not preempt")
    p.add_argument(
        "--typing",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the 'after' arm's user types each message for SECONDS first, holding the gate "
        "from the first key as `sleeptime chat` does; latencies count from sending "
        "(default 0: messages arrive unannounced, as from an API client)",
    )
    p.add_argument("--no-prewarm", action="store_true", help="the 'after' arm does not pre-warm")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="the 'after' arm shares one llama.cpp slot between the roles (as 'before')",
    )
    p.add_argument(
        "--throughput-runs",
        type=int,
        default=2,
        help="sleep-time runs per throughput condition (0: no throughput test; default 2)",
    )
    p.add_argument(
        "--turn-every",
        type=float,
        default=20.0,
        help="seconds between user turns in the throughput test (default 20)",
    )
    p.add_argument(
        "--stress", type=int, default=200, help="scripted-model preemptions to audit (0: none)"
    )
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--out", default=default_out(NAME), help=OUT_HELP)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    path = run_critical_path(
        episodes=args.episodes,
        inflight=args.inflight,
        max_tokens=args.max_tokens,
        max_steps=args.max_steps,
        think=args.think,
        preempt=not args.no_preempt,
        prewarm=not args.no_prewarm,
        pin=not args.no_pin,
        typing=args.typing,
        throughput_runs=args.throughput_runs,
        turn_every=args.turn_every,
        stress=args.stress,
        seed=args.seed,
        out=Path(args.out),
    )
    print(f"wrote {path}")  # noqa: T201
    return 0


# -- where the sleep-time agent is -------------------------------------------------------------


class StepTracker:
    """Which part of a sleep-time step runs now, from the local model's raw llama.cpp chunks.

    The sleep-time model's chunks mark a step: a prompt-progress chunk opens one (``prompt``),
    content chunks mean ``generation``, the closing chunk (usage) means ``between``. The
    primary's chunks outside a user turn are the pre-warm (``prewarm``). Outside runs: ``idle``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phase = "idle"
        self.step_started = time.perf_counter()
        self.run_active = False
        self.user_active = False
        self.turn_timings: dict[str, Any] = {}
        """llama.cpp's timings of the user turn's last primary call (``cache_n``: cached)."""
        self.prewarms: list[dict[str, Any]] = []
        """llama.cpp's timings of each finished pre-warm."""

    def _enter(self, phase: str, new_step: bool = False) -> None:
        if new_step or phase != self.phase:
            if new_step or phase in ("between", "prewarm", "idle"):
                self.step_started = time.perf_counter()
            self.phase = phase

    def sleeptime_chunk(self, chunk: dict[str, Any]) -> None:
        """Observer for the sleep-time model (called from llama.cpp's thread)."""
        with self._lock:
            if chunk.get("prompt_progress") is not None:
                if self.phase != "prompt":
                    self._enter("prompt", new_step=True)
            elif chunk.get("usage") is not None or chunk.get("timings") is not None:
                self._enter("between")
            elif any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                self._enter("generation")

    def primary_chunk(self, chunk: dict[str, Any]) -> None:
        """Observer for the primary model: its requests outside a user turn are pre-warms."""
        with self._lock:
            timings = chunk.get("timings")
            if self.user_active:
                if timings is not None:
                    self.turn_timings = dict(timings)
                return
            if chunk.get("usage") is not None or timings is not None:
                if timings is not None:
                    self.prewarms.append(dict(timings))
                self._enter("between")
            elif self.phase != "prewarm":
                self._enter("prewarm", new_step=True)

    def run_event(self, kind: str) -> None:
        """Scheduler hook: a run started or ended."""
        with self._lock:
            self.run_active = kind == "start"
            self._enter("between" if self.run_active else "idle", new_step=True)

    def snapshot(self) -> tuple[str, float]:
        """(phase, seconds since this part of the step began)."""
        with self._lock:
            return self.phase, time.perf_counter() - self.step_started


# -- one arm -----------------------------------------------------------------------------------


@dataclass
class Arm:
    """One configuration of the chat graph, with its own user (namespace) and scheduler."""

    name: str
    preempt: bool
    prewarm: bool
    user: str
    memory: SleeptimeMemory
    scheduler: SleeptimeScheduler
    graph: Any
    typing_s: float = 0.0
    """Seconds each user message is typed for, holding the gate (as ``sleeptime chat`` does)."""
    turns: list[dict[str, Any]] = field(default_factory=list)
    episode_runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def namespace(self) -> tuple[str, ...]:
        """The arm's namespace."""
        return (self.user,)

    @property
    def config(self) -> RunnableConfig:
        """The graph config of the arm's user and thread."""
        return {"configurable": {"user_id": self.user, "thread_id": "bench"}}


def _build_arm(
    name: str,
    *,
    preempt: bool,
    prewarm: bool,
    store: ChromaBlockStore,
    primary: BaseChatModel,
    sleeper: BaseChatModel,
    tracker: StepTracker,
    max_steps: int,
) -> Arm:
    scheduler = SleeptimeScheduler(
        every_n_turns=_NEVER, on_event=lambda kind, ns, rec: tracker.run_event(kind)
    )
    memory = SleeptimeMemory(
        store,
        sleeper,
        scheduler=scheduler,
        # The model-heavy consolidation (the pipeline makes no model call by default).
        consolidation="tool-loop",
        consolidator_options={"max_steps": max_steps},
        # before: each mid-run edit shows at once (and changes the primary's prompt prefix).
        read_options=ReadOptions(blocks_at_run_start=name != "before"),
    )
    memory.gate.preempt = preempt
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver(), prewarm=prewarm)
    return Arm(name, preempt, prewarm, f"marta-{name}", memory, scheduler, graph)


def _turn(
    arm: Arm,
    text: str,
    case: str,
    tracker: StepTracker,
    episode: int,
    *,
    user: str | None = None,
) -> dict[str, Any]:
    phase, into = tracker.snapshot()  # where the step was when the user arrived
    if case != "inflight":
        phase, into = "idle", 0.0
    gate = arm.memory.gate
    preempted_before = gate.preemptions
    config: RunnableConfig = arm.config
    if user is not None:  # another user of the same graph (and gate)
        config = {"configurable": {"user_id": user, "thread_id": "bench"}}
    if arm.typing_s > 0:  # the user types first: the chat holds the gate from the first key
        gate.typing(namespace_from_config(config))  # the turn's primary node ends the hold
        time.sleep(arm.typing_s)
    tracker.turn_timings = {}
    tracker.user_active = True
    t0 = time.perf_counter()  # latencies count from the message being sent
    first: float | None = None
    reply = ""
    try:
        stream: Any = arm.graph.stream(
            {"messages": [HumanMessage(text)]}, config, stream_mode="messages"
        )
        for chunk, meta in stream:
            if meta.get("langgraph_node") == "primary" and isinstance(chunk, AIMessageChunk):
                if first is None and chunk.content:
                    first = time.perf_counter() - t0
                reply += str(chunk.content)
    finally:
        tracker.user_active = False
    total = time.perf_counter() - t0
    turn = arm.memory.ledger.turns[-1]
    sys.stderr.write(  # progress of a long run on a shared machine
        f"[{NAME}] {arm.name} ep{episode} {case}/{phase} ttft {first or total:.2f}s "
        f"turn {total:.2f}s\n"
    )
    return {
        "arm": arm.name,
        "episode": episode,
        "case": case,
        "phase": phase,
        "into_step_s": round(into, 3),
        # A turn that streamed nothing (empty reply) counts its whole latency as TTFT.
        "ttft_s": round(first if first is not None else total, 3),
        "turn_s": round(total, 3),
        "typed_s": arm.typing_s,
        "preempted": gate.preemptions - preempted_before,
        # How much of the primary's prompt llama.cpp served from its cache (pre-warm's effect).
        "cached_tokens": tracker.turn_timings.get("cache_n"),
        "evaluated_tokens": tracker.turn_timings.get("prompt_n"),
        # llama.cpp's own prompt evaluation time: TTFT minus this is reading memory, queueing
        # for the slot and the first token.
        "prompt_eval_s": _ms_to_s(tracker.turn_timings.get("prompt_ms")),
        "prompt_tokens": turn.input_tokens,
        "completion_tokens": turn.output_tokens,
        "user": text,
        "reply": reply,
    }


def _ms_to_s(ms: float | None) -> float | None:
    return round(ms / 1000, 3) if ms is not None else None


def _reached(tracker: StepTracker, phase: str) -> Callable[[], bool]:
    return lambda: tracker.phase == phase or not tracker.run_active


def _wait_for(cond: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll)
    return cond()


def _episode(
    arm: Arm,
    episode: int,
    tracker: StepTracker,
    rng: random.Random,
    *,
    inflight: int,
    think: float,
    questions: list[str],
) -> None:
    # The arm's very first turn evaluates its whole prompt: not a warm turn, not counted.
    first = "first" if not arm.turns else "warm"
    arm.turns.append(_turn(arm, FACTS[episode % len(FACTS)], first, tracker, episode))
    runs_before = len(arm.memory.ledger.runs)
    started = time.perf_counter()
    arm.scheduler.flush(arm.namespace)
    _wait_for(lambda: tracker.run_active, timeout=30)
    busy_s = 0.0
    for k in range(inflight):
        target = PHASES[(episode * inflight + k) % len(PHASES)]
        if not _wait_for(_reached(tracker, target), 300):
            break
        if not tracker.run_active:
            break
        time.sleep(rng.uniform(0.0, _DELAY[target]))
        if not tracker.run_active:
            break
        row = _turn(arm, questions.pop(0), "inflight", tracker, episode)
        arm.turns.append(row)
        busy_s += row["turn_s"]
        time.sleep(think)
    arm.scheduler.wait_idle_sync()
    wall = time.perf_counter() - started
    runs = arm.memory.ledger.runs[runs_before:]
    arm.episode_runs.append(
        {
            "episode": episode,
            "wall_s": round(wall, 2),
            "user_turn_s": round(busy_s, 2),
            "runs": [_run_summary(r) for r in runs],
            "sleeptime_tokens": sum(r.total_tokens for r in runs),
        }
    )
    arm.turns.append(_turn(arm, questions.pop(0), "after_run", tracker, episode))
    arm.turns.append(_turn(arm, questions.pop(0), "warm", tracker, episode))


def _run_summary(record: RunRecord) -> dict[str, Any]:
    return {
        "status": record.status,
        "steps": record.steps,
        "edits": len(record.edits),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "duration_s": record.duration_s,
    }


# -- statistics --------------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "n": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
        "max": round(float(arr.max()), 3),
    }


def _ratio(a: float | int | None, b: float | int | None) -> float | None:
    return round(float(a) / float(b), 3) if a is not None and b else None


def _summarize_arm(arm: Arm) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for case in CASES:
        rows = [t for t in arm.turns if t["case"] == case]
        cases[case] = {"ttft_s": _stats([t["ttft_s"] for t in rows])}
        cases[case]["turn_s"] = _stats([t["turn_s"] for t in rows])
        if case == "inflight":
            cases[case]["by_phase"] = {
                ph: _stats([t["ttft_s"] for t in rows if t["phase"] == ph])
                for ph in sorted({t["phase"] for t in rows})
            }
    warm = cases["warm"]
    for case in CASES:
        for metric in ("ttft_s", "turn_s"):
            for q in ("p50", "p95"):
                cases[case][metric][f"{q}_ratio_to_warm"] = _ratio(
                    cases[case][metric][q], warm[metric][q]
                )
    tokens = sum(e["sleeptime_tokens"] for e in arm.episode_runs)
    wall = sum(e["wall_s"] for e in arm.episode_runs)
    idle_wall = sum(e["wall_s"] - e["user_turn_s"] for e in arm.episode_runs)
    return {
        "preempt": arm.preempt,
        "prewarm": arm.prewarm,
        "cases": cases,
        "preemptions": arm.memory.gate.preemptions,
        "sleeptime_tokens_per_wall_s": round(tokens / wall, 2) if wall else None,
        # Same tokens over the run time minus the user's turns: what the runs would reach with
        # the machine to themselves, if turns cost them only their own duration.
        "sleeptime_tokens_per_wall_s_outside_turns": round(tokens / idle_wall, 2)
        if idle_wall
        else None,
        "episodes": arm.episode_runs,
    }


# -- throughput with and without user turns ----------------------------------------------------


def _workload(arm: Arm, namespace: tuple[str, ...], runs: int) -> tuple[list[RunRecord], float]:
    """``runs`` sleep-time runs on ``namespace``, two new facts before each: (records, wall s)."""
    records: list[RunRecord] = []
    started = time.perf_counter()
    for k in range(runs):
        for fact in FACTS[2 * k % len(FACTS) : 2 * k % len(FACTS) + 2]:
            arm.memory.record(namespace, "bench", "user", fact)
            arm.memory.record(namespace, "bench", "assistant", "Noted.")
        records += asyncio.run(arm.memory.consolidate_now(namespace))
    return records, time.perf_counter() - started


def throughput_summary(conditions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Tokens per wall second of each condition, and ``with_turns`` over ``no_turns``."""
    out: dict[str, Any] = {}
    for name, c in conditions.items():
        rate = c["sleeptime_tokens"] / c["wall_s"] if c["wall_s"] else None
        out[name] = {**c, "tokens_per_wall_s": round(rate, 3) if rate is not None else None}
    none = out.get("no_turns", {}).get("tokens_per_wall_s")
    some = out.get("with_turns", {}).get("tokens_per_wall_s")
    out["ratio"] = _ratio(some, none)
    return out


def run_throughput(
    arm: Arm, tracker: StepTracker, *, runs: int, turn_every: float, rng: random.Random
) -> dict[str, Any]:
    """The same ``runs`` sleep-time runs with no user turns, then with one every ``turn_every``.

    Each condition consolidates a fresh namespace holding the same messages, so both do the
    same work; the turns come from another user of the arm's graph, who shares its gate (a turn
    preempts the step in flight, which is retried after it) and its primary's slot, and has
    already said one thing (an untimed first turn).
    """
    conditions: dict[str, dict[str, Any]] = {}
    turns: list[dict[str, Any]] = []
    talker = f"{arm.user}-throughput-user"
    # One untimed turn first: the user is mid-conversation, not evaluating their first prompt.
    _turn(arm, FACTS[0], "throughput_warmup", tracker, -1, user=talker)
    for name in ("no_turns", "with_turns"):
        namespace = (f"{arm.user}-throughput-{name}",)
        stop = threading.Event()
        questions = rng.sample(QUESTIONS, len(QUESTIONS))

        def user(stop: threading.Event = stop, questions: list[str] = questions) -> None:
            k = 0
            # The first turn half a period in, so that it lands inside the first run.
            while not stop.wait(turn_every / 2 if k == 0 else turn_every):
                row = _turn(
                    arm,
                    questions[k % len(questions)],
                    "throughput",
                    tracker,
                    k,
                    user=talker,
                )
                turns.append(row)
                k += 1

        thread = threading.Thread(target=user, name="throughput-user", daemon=True)
        preempted = arm.memory.gate.preemptions
        if name == "with_turns":
            thread.start()
        try:
            records, wall = _workload(arm, namespace, runs)
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()
        conditions[name] = {
            "runs": len(records),
            "sleeptime_tokens": sum(r.total_tokens for r in records),
            "wall_s": round(wall, 2),
            "user_turns": len(turns) if name == "with_turns" else 0,
            "preemptions": arm.memory.gate.preemptions - preempted,
        }
        sys.stderr.write(f"[{NAME}] throughput {name}: {conditions[name]}\n")
    return {**throughput_summary(conditions), "turn_every_s": turn_every, "user_turn_rows": turns}


# -- the stress run (scripted models) ----------------------------------------------------------


def run_stress(preemptions: int, *, seed: int = 16, latency: float = 0.02) -> dict[str, Any]:
    """Preempt scripted sleep-time steps at random moments until ``preemptions`` happened.

    Each run inserts one new fact per step; a user thread enters the gate at random moments
    meanwhile. Returns the preemption count, the ledger/history audit and the facts lost or
    stored twice.
    """
    rng = random.Random(seed)
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    steps = 4

    def step(messages: list[BaseMessage]) -> AIMessage:
        done = sum(1 for m in messages if m.type == "tool")
        run = str(messages[1].content).split("RUN-")[-1].split()[0]
        if done >= steps:
            return tool_call("memory_finish_edits")
        return tool_call("memory_insert", label="human", new_str=f"fact {run}.{done}")

    sleeper = ScriptedChatModel(replies=[step], repeat_last=True, latency=latency)
    scheduler = SleeptimeScheduler(every_n_turns=_NEVER)
    memory = SleeptimeMemory(
        store,
        sleeper,
        scheduler=scheduler,
        consolidation="tool-loop",
        consolidator_options={"grounded": False, "max_steps": steps + 2},
    )
    ns = ("stress",)
    stop = threading.Event()

    def user() -> None:
        while not stop.is_set():
            time.sleep(rng.uniform(0.0, 2 * latency))
            with memory.gate:
                time.sleep(rng.uniform(0.0, latency / 2))

    thread = threading.Thread(target=user, name="stress-user", daemon=True)
    thread.start()
    runs = 0
    try:
        while memory.gate.preemptions < preemptions:
            memory.record(ns, "t", "user", f"RUN-{runs} please remember")
            asyncio.run(memory.consolidate_now(ns))
            runs += 1
    finally:
        stop.set()
        thread.join()
        scheduler.shutdown()
    audit = audit_edits(store, ns, memory.ledger.runs)
    value = (store.get_block(ns, "human") or _empty()).value
    lines = [ln for ln in value.split("\n") if ln.startswith("fact ")]
    expected = {f"fact {r}.{s}" for r in range(runs) for s in range(steps)}
    return {
        "preemptions": memory.gate.preemptions,
        "runs": runs,
        "edits": audit.edits,
        "lost_edits": len(audit.lost) + len(expected - set(lines)),
        "duplicated_edits": len(audit.duplicated) + len(lines) - len(set(lines)),
        "audit": _audit_json(audit),
    }


def _empty() -> Any:
    from sleeptime_agent import MemoryBlock

    return MemoryBlock(label="human", value="")


def _audit_json(audit: EditAudit) -> dict[str, Any]:
    return {"edits": audit.edits, "lost": audit.lost[:20], "duplicated": audit.duplicated[:20]}


# -- the whole benchmark -----------------------------------------------------------------------


def run_critical_path(
    *,
    episodes: int,
    inflight: int,
    max_tokens: int,
    max_steps: int,
    think: float,
    preempt: bool,
    prewarm: bool,
    stress: int,
    seed: int,
    out: Path,
    pin: bool = True,
    typing: float = 0.0,
    throughput_runs: int = 0,
    turn_every: float = 20.0,
) -> Path:
    """Play both arms on the local model, audit, stress, and write the report."""
    from sleeptime_agent.local import LocalChatModel

    rng = random.Random(seed)
    tracker = StepTracker()
    # before: one llama.cpp slot shared by both roles (the local model's default server).
    sleeper = LocalChatModel(on_chunk=tracker.sleeptime_chunk)
    primary = LocalChatModel(max_tokens=max_tokens, on_chunk=tracker.primary_chunk)
    # after: each role pinned to its own slot of a second server (same weights file).
    sleeper_after, primary_after = sleeper, primary
    if pin:
        sleeper_after = sleeper.for_role("sleeptime")
        primary_after = primary.for_role("primary")
    settings = {
        "episodes": episodes,
        "inflight_per_run": inflight,
        "primary_max_tokens": max_tokens,
        "sleeptime_max_steps": max_steps,
        "think_s": think,
        "seed": seed,
        "model": primary.model_name,
        "n_batch": primary.n_batch,
        "after_arm": {
            "preempt": preempt,
            "prewarm": prewarm,
            "pinned_slots": pin,
            "typing_s": typing,
            "n_parallel": primary_after.n_parallel,
            "n_ctx": primary_after.n_ctx,
        },
        "before_arm": {
            "preempt": False,
            "prewarm": False,
            "pinned_slots": False,
            "n_parallel": primary.n_parallel,
            "n_ctx": primary.n_ctx,
        },
        "throughput_runs": throughput_runs,
        "turn_every_s": turn_every,
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = ChromaBlockStore.persistent(Path(tmp) / "store")
        arms = [
            _build_arm(
                "before",
                preempt=False,
                prewarm=False,
                store=store,
                primary=primary,
                sleeper=sleeper,
                tracker=tracker,
                max_steps=max_steps,
            ),
            _build_arm(
                "after",
                preempt=preempt,
                prewarm=prewarm,
                store=store,
                primary=primary_after,
                sleeper=sleeper_after,
                tracker=tracker,
                max_steps=max_steps,
            ),
        ]
        arms[1].typing_s = typing
        # Scripted and quick: first, so that every partial report carries it.
        stressed = run_stress(stress, seed=seed) if stress > 0 else None
        primary.load()
        primary_after.load()
        throughput: dict[str, Any] | None = None
        try:
            for episode in range(episodes):
                order = arms if episode % 2 == 0 else arms[::-1]
                for arm in order:
                    questions = rng.sample(QUESTIONS, len(QUESTIONS))
                    _episode(
                        arm,
                        episode,
                        tracker,
                        rng,
                        inflight=inflight,
                        think=think,
                        questions=questions,
                    )
                # A partial report after each episode: a long run on a shared machine may die.
                final = episode == episodes - 1 and throughput_runs <= 0
                _write(out, settings, arms, store, stressed, None, final=final)
            if throughput_runs > 0:
                throughput = run_throughput(
                    arms[1], tracker, runs=throughput_runs, turn_every=turn_every, rng=rng
                )
                _write(out, settings, arms, store, stressed, throughput, final=True)
            return out / f"{NAME}.json"
        finally:
            for arm in arms:
                arm.scheduler.shutdown(wait=False)


def _write(
    out: Path,
    settings: dict[str, Any],
    arms: list[Arm],
    store: ChromaBlockStore,
    stressed: dict[str, Any] | None,
    throughput: dict[str, Any] | None,
    *,
    final: bool,
) -> Path:
    summary = {arm.name: _summarize_arm(arm) for arm in arms}
    audits = {arm.name: audit_edits(store, arm.namespace, arm.memory.ledger.runs) for arm in arms}
    if throughput is not None:  # its runs consolidate namespaces of their own, with preemptions
        after = arms[1]
        for name in ("no_turns", "with_turns"):
            namespace = (f"{after.user}-throughput-{name}",)
            audits[f"throughput-{name}"] = audit_edits(store, namespace, after.memory.ledger.runs)
    after = summary["after"]["cases"]
    lost = sum(len(a.lost) for a in audits.values()) + (stressed or {}).get("lost_edits", 0)
    dup = sum(len(a.duplicated) for a in audits.values()) + (stressed or {}).get(
        "duplicated_edits", 0
    )
    warm = after["warm"]["ttft_s"]["p95"]
    inflight = after["inflight"]["ttft_s"]["p95"]
    after_run = after["after_run"]["ttft_s"]["p95"]
    worst = max((v for v in (inflight, after_run) if v is not None), default=None)
    data: dict[str, Any] = {
        "ttft_p95_ratio": _ratio(worst, warm),
        "ttft_p95_warm_s": warm,
        "ttft_p95_inflight_s": inflight,
        "ttft_p95_after_run_s": after_run,
        "lost_edits": lost,
        "duplicated_edits": dup,
        # The arms' gates count the throughput test's preemptions too.
        "preemptions": sum(s["preemptions"] for s in summary.values())
        + (stressed or {}).get("preemptions", 0),
        "throughput_ratio": (throughput or {}).get("ratio"),
        "complete": final,
        "notes": [
            "Top-level figures are the 'after' arm's; ttft_p95_ratio is the worse of in-flight "
            "and right-after-run TTFT p95 over the warm TTFT p95.",
            "lost_edits / duplicated_edits / preemptions add the real-model arms and the "
            "scripted stress run (see edit_audit and stress).",
            "after_run turns are sent once the run and (after arm) its pre-warm have finished.",
            "Small samples: p95 of a handful of turns is close to their max.",
            "settings.after_arm.typing_s > 0: the after arm's user typed each message for that "
            "long, holding the gate from the first key (sleeptime chat); latencies count from "
            "sending, and 'inflight' means a run was in flight when the typing began. 0: "
            "messages arrived unannounced (an API client).",
        ],
        "settings": settings,
        "arms": summary,
        "edit_audit": {name: _audit_json(a) for name, a in audits.items()},
        "stress": stressed,
        "throughput": throughput,
        "turns": [t for arm in arms for t in arm.turns],
    }
    path = write_report(out, NAME, data)
    _table(data, out / f"{NAME}.md")
    _plot(data, out / f"{NAME}.png")
    return path


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _table(data: dict[str, Any], path: Path) -> None:
    lines = [
        f"# {NAME}",
        "",
        f"Command: `{command_line()}`",
        "",
        "| arm | case | n | TTFT p50 | TTFT p95 | TTFT max | TTFT p95 / warm | turn p50 | "
        "turn p95 | turn max | turn p95 / warm |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arm in data["arms"].items():
        for case in CASES:
            t, u = arm["cases"][case]["ttft_s"], arm["cases"][case]["turn_s"]
            lines.append(
                f"| {name} | {case} | {t['n']} | {_fmt(t['p50'])} | {_fmt(t['p95'])} | "
                f"{_fmt(t['max'])} | {_fmt(t['p95_ratio_to_warm'])} | {_fmt(u['p50'])} | "
                f"{_fmt(u['p95'])} | {_fmt(u['max'])} | {_fmt(u['p95_ratio_to_warm'])} |"
            )
    lines += [
        "",
        "| arm | preemptions | sleep-time tokens / wall s | same, outside user turns |",
        "|---|---|---|---|",
    ]
    for name, arm in data["arms"].items():
        lines.append(
            f"| {name} | {arm['preemptions']} | {_fmt(arm['sleeptime_tokens_per_wall_s'])} | "
            f"{_fmt(arm['sleeptime_tokens_per_wall_s_outside_turns'])} |"
        )
    lines += [
        "",
        f"ttft_p95_ratio (after arm) = {_fmt(data['ttft_p95_ratio'])}; lost edits "
        f"{data['lost_edits']}, duplicated edits {data['duplicated_edits']} over "
        f"{data['preemptions']} preemptions (real model and scripted stress).",
        "",
    ]
    if (tp := data.get("throughput")) is not None:
        none, some = tp["no_turns"], tp["with_turns"]
        lines += [
            f"Sleep-time throughput (after arm, the same runs): no user turns "
            f"{_fmt(none['tokens_per_wall_s'])} tokens / wall s "
            f"({none['sleeptime_tokens']} tokens in {none['wall_s']} s); "
            f"a user turn every {tp['turn_every_s']:g} s {_fmt(some['tokens_per_wall_s'])} "
            f"({some['sleeptime_tokens']} tokens in {some['wall_s']} s, {some['user_turns']} "
            f"turns, {some['preemptions']} preemptions); ratio {_fmt(tp['ratio'])} "
            "(target >= 0.8).",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _plot(data: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    a, b = fig.subplots(1, 2)
    colors = {"prompt": "#d62728", "generation": "#ff7f0e", "between": "#2ca02c"}
    colors |= {"prewarm": "#9467bd", "idle": "#7f7f7f"}
    markers = {"before": "x", "after": "o"}
    for name in data["arms"]:
        rows = [t for t in data["turns"] if t["arm"] == name and t["case"] == "inflight"]
        for phase, color in colors.items():
            sel = [t for t in rows if t["phase"] == phase]
            if sel:
                a.scatter(
                    [t["into_step_s"] for t in sel],
                    [t["ttft_s"] for t in sel],
                    c=color,
                    marker=markers.get(name, "o"),
                    label=f"{name}: {phase}",
                )
    a.set(
        title="in-flight turns: TTFT vs when in the sleep-time step they arrived",
        xlabel="seconds since this part of the step began",
        ylabel="time to first token (s, log scale)",
        yscale="log",  # the arms differ by ~20x: on a linear axis 'after' is a line at zero
    )
    a.legend(fontsize=7)
    xs = np.arange(len(CASES))
    for i, name in enumerate(data["arms"]):
        cases = data["arms"][name]["cases"]
        vals = [cases[c]["ttft_s"]["p95"] or 0.0 for c in CASES]
        b.bar(xs + (i - 0.5) * 0.4, vals, width=0.4, label=name)
    b.set_xticks(xs, list(CASES))
    b.set(title="TTFT p95 by case", ylabel="seconds")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
