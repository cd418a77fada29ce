"""critical-path's throughput test on scripted models: same work with and without user turns."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

pytest.importorskip("numpy", reason="needs the 'bench' extra")

from sleeptime_agent import (  # noqa: E402 - after the extra check
    ChromaBlockStore,
    SleeptimeMemory,
    SleeptimeScheduler,
    build_chat_graph,
)
from sleeptime_agent.testing import (  # noqa: E402
    HashingEmbeddings,
    ScriptedChatModel,
    tool_call,
)
from sleeptime_bench.critical_path import (  # noqa: E402
    _NEVER,
    Arm,
    StepTracker,
    _turn,
    run_throughput,
    throughput_summary,
)


def _step(messages: list[BaseMessage]) -> AIMessage:
    # Two edits per run, then finish: the same work whatever preempts it. Each edit names the
    # run's prompt, so that one applied twice (or lost) shows in the block.
    done = sum(1 for m in messages if m.type == "tool")
    if done >= 2:
        return tool_call("memory_finish_edits")
    run = hashlib.sha256(str(messages[1].content).encode()).hexdigest()[:8]
    return tool_call("memory_insert", label="human", new_str=f"fact {run}.{done}")


def _arm() -> Arm:
    store = ChromaBlockStore.ephemeral(embeddings=HashingEmbeddings())
    sleeper = ScriptedChatModel(replies=[_step], repeat_last=True, latency=0.3)
    scheduler = SleeptimeScheduler(every_n_turns=_NEVER)
    memory = SleeptimeMemory(
        store,
        sleeper,
        scheduler=scheduler,
        consolidation="tool-loop",
        consolidator_options={"grounded": False, "max_steps": 4},
    )
    primary = ScriptedChatModel(replies=["Porto."], repeat_last=True)
    graph = build_chat_graph(primary, memory, checkpointer=InMemorySaver())
    return Arm("after", True, False, "marta-after", memory, scheduler, graph)


def test_throughput_runs_the_same_work_with_and_without_turns() -> None:
    arm = _arm()
    try:
        result = run_throughput(arm, StepTracker(), runs=2, turn_every=0.4, rng=random.Random(0))
    finally:
        arm.scheduler.shutdown(wait=False)
    none, some = result["no_turns"], result["with_turns"]
    assert none["runs"] == some["runs"] >= 2
    assert none["sleeptime_tokens"] == some["sleeptime_tokens"] > 0  # the same work
    assert none["user_turns"] == 0 and none["preemptions"] == 0
    assert some["user_turns"] >= 1 and len(result["user_turn_rows"]) == some["user_turns"]
    assert {t["case"] for t in result["user_turn_rows"]} == {"throughput"}
    # The turns come from another user: the consolidated conversations are untouched by them.
    for name in ("no_turns", "with_turns"):
        ns = (f"marta-after-throughput-{name}",)
        block = arm.memory.store.get_block(ns, "human")
        assert block is not None
        facts = [line for line in block.value.split("\n") if line.startswith("fact ")]
        assert len(facts) == len(set(facts)) == 2 * none["runs"]  # none lost, none twice
    spoken = arm.memory.transcript.namespaces()
    assert ("marta-after-throughput-user",) in spoken and ("marta-after",) not in spoken
    expected = some["tokens_per_wall_s"] / none["tokens_per_wall_s"]
    assert result["ratio"] == pytest.approx(expected, abs=1e-3)


def test_throughput_summary_ratio() -> None:
    conditions: dict[str, dict[str, Any]] = {
        "no_turns": {"sleeptime_tokens": 1000, "wall_s": 10.0},
        "with_turns": {"sleeptime_tokens": 1000, "wall_s": 12.5},
    }
    out = throughput_summary(conditions)
    assert out["no_turns"]["tokens_per_wall_s"] == 100.0
    assert out["with_turns"]["tokens_per_wall_s"] == 80.0
    assert out["ratio"] == 0.8


def test_a_typed_turn_preempts_the_step_while_typing_and_counts_from_sending() -> None:
    """With --typing the user's first key preempts the step in flight: by the time the message
    is sent, the step has already been cancelled, and the latency counts from the send."""
    arm = _arm()
    arm.typing_s = 0.5
    tracker = StepTracker()
    try:
        arm.graph.invoke(
            {"messages": [HumanMessage("I live in Porto.")]}, arm.config
        )  # something to consolidate
        arm.scheduler.flush(arm.namespace)
        for _ in range(200):  # until the run's first step (0.3 s) is in flight
            if arm.memory.gate._in_flight:
                break
            threading.Event().wait(0.01)
        assert arm.memory.gate._in_flight
        paused: list[float] = []
        arm.memory.gate.on_event = lambda event, what: (
            paused.append(time.perf_counter()) if event == "paused" else None
        )
        row = _turn(arm, "Where do I live?", "inflight", tracker, 0)
        sent = time.perf_counter() - row["turn_s"]
        arm.scheduler.wait_idle_sync(10)
    finally:
        arm.scheduler.shutdown(wait=False)
    assert row["typed_s"] == 0.5 and row["preempted"] == 1
    assert paused and paused[0] < sent - 0.3  # preempted while the user was still typing
    assert row["turn_s"] < arm.typing_s  # the typing time is not in the latency
    assert not arm.memory.gate.busy  # the typing hold ended with the turn
