"""No lost update under random interleavings of primary, user and sleep-time writes.

Three drivers share one set of operations on the same blocks:

* a Hypothesis state machine (single thread, stale reads, shrinks a failure to a short story),
* a seeded generator (single thread, many more steps, high staleness),
* real threads (true overlaps, so the insert-if-absent race inside Chroma is exercised).

The single-threaded drivers keep an exact model of every block's history and compare it with the
store. The threaded driver cannot predict outcomes, so it checks that history can be explained:
every version ``n + 1`` is the acknowledged write of exactly one operation, computed from version
``n`` (a raw write from the version it read, an edit from the value it rebased on, a rewrite only
from a value its agent had seen). Together: nothing acknowledged is lost, no version is skipped or
duplicated, and a failed write changed nothing.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.errors import BlockLimitExceeded, ReadOnlyBlock, VersionConflict
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.tools import MemoryEditor, ToolError

pytestmark = pytest.mark.slow

#: label -> character limit; "notes" is small so limits are hit often.
LABELS: dict[str, int] = {"human": 4000, "notes": 160}
PERSONA = "persona"  # read_only: the user may change it, agents may not
RAW_AUTHORS = ("primary", "user")
#: Scale every driver's size (e.g. 0.1 for a quick local run; 1 makes over 10,000 writes).
SCALE = float(os.environ.get("SLEEPTIME_RELIABILITY_SCALE", "1"))

_COUNTS: dict[str, int] = {}


def count(driver: str, ops: int) -> None:
    _COUNTS[driver] = _COUNTS.get(driver, 0) + ops


# -- the operations' effect on a value (the oracle) ----------------------------------------------


def lines(value: str) -> list[str]:
    return value.split("\n") if value else []


def appended(value: str, tag: str) -> str:
    """Raw writes and ``memory_insert`` at the end both add one line."""
    return "\n".join([*lines(value), tag])


def rewritten(value: str, tag: str, drop: str | None = None) -> str:
    """What a ``memory_rethink`` writes: the lines it knows, reordered, minus ``drop``, plus one."""
    kept = [ln for ln in reversed(lines(value)) if ln != drop]
    return "\n".join([*kept, tag])


# -- one actor per writer; knowledge is what that writer has seen --------------------------------


@dataclass
class Actor:
    """A writer: a primary or user doing read-modify-write, or a sleep-time agent's editor."""

    name: str
    author: str
    editor: MemoryEditor | None = None
    #: label -> (version, value) this actor last read; its writes are computed from it.
    known: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass
class World:
    """A namespace with an exact model of every block's history (single thread only)."""

    store: ChromaBlockStore
    rng: random.Random
    ns: Namespace = field(default_factory=lambda: (f"w-{uuid.uuid4().hex[:10]}",))
    #: label -> [(value, author)] for versions 1..n
    model: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    actors: list[Actor] = field(default_factory=list)
    ops: int = 0
    acked: int = 0
    serial: int = 0

    def setup(self) -> None:
        for label, limit in LABELS.items():
            self.store.put_block(
                self.ns, MemoryBlock(label=label, value="", limit=limit), expected_version=0
            )
            self.model[label] = [("", "user")]
        self.store.put_block(
            self.ns,
            MemoryBlock(label=PERSONA, value="I am kind", read_only=True),
            expected_version=0,
        )
        self.model[PERSONA] = [("I am kind", "user")]
        seen = {label: 1 for label in self.model}
        self.actors = [
            Actor("primary", "primary"),
            Actor("user", "user"),
            Actor("sleep-a", "sleeptime", MemoryEditor(self.store, self.ns, seen=dict(seen))),
            Actor("sleep-b", "sleeptime", MemoryEditor(self.store, self.ns, seen=dict(seen))),
        ]
        for actor in self.actors:
            actor.known = {label: (1, hist[0][0]) for label, hist in self.model.items()}

    # -- helpers ---------------------------------------------------------------------------------

    def tag(self, actor: Actor) -> str:
        self.serial += 1
        return f"[{actor.name[0]}{actor.name[-1]}{self.serial}]"

    def current(self, label: str) -> tuple[int, str]:
        hist = self.model[label]
        return len(hist), hist[-1][0]

    def commit(self, label: str, value: str, author: str) -> int:
        self.model[label].append((value, author))
        self.acked += 1
        return len(self.model[label])

    def learn(self, actor: Actor, label: str, version: int, value: str) -> None:
        actor.known[label] = (version, value)

    # -- operations (each returns nothing; any mismatch with the model fails the test) -----------

    def read(self, actor: Actor, label: str) -> None:
        block = self.store.get_block(self.ns, label)
        assert block is not None
        assert (block.version, block.value) == self.current(label)
        self.learn(actor, label, block.version, block.value)
        if actor.editor is not None:  # the agent is shown the block
            actor.editor.seen[label] = block.version

    def raw_write(self, actor: Actor, label: str) -> None:
        """Primary or user: write (what it read + one line) with compare-and-swap."""
        self.ops += 1
        known_v, known_value = actor.known[label]
        cur_v, cur_value = self.current(label)
        limit = LABELS.get(label, 5000)
        new = appended(known_value, self.tag(actor))
        block = MemoryBlock(label=label, value=new, limit=limit, read_only=label == PERSONA)
        try:
            stored = self.store.put_block(
                self.ns, block, expected_version=known_v, author=actor.author
            )
        except VersionConflict:
            assert known_v != cur_v, "a fresh write was refused as a conflict"
            return
        except BlockLimitExceeded:
            assert known_v == cur_v and len(new) > limit
            return
        except ReadOnlyBlock:
            assert known_v == cur_v and label == PERSONA and actor.author != "user"
            return
        assert known_v == cur_v, "a stale write was accepted: lost update"
        assert len(new) <= limit and (label != PERSONA or actor.author == "user")
        assert stored.version == cur_v + 1
        self.learn(actor, label, self.commit(label, new, actor.author), new)

    def _edit(
        self,
        actor: Actor,
        label: str,
        kind: str,
        args: dict[str, Any],
        value: str | None,
        *,
        must: bool,
        may: bool,
        rebased: Callable[[str], str] | None = None,
    ) -> None:
        """Run one editor call that would write ``value``.

        ``must``: the call has to succeed; ``may``: success is legal (a rewrite computed from a
        value other than the current one would be a lost update, so it may not succeed).
        ``rebased``: what the agent knows after its edit was re-applied on a value it had not
        seen (its own edit on top of what it knew).
        """
        assert actor.editor is not None
        self.ops += 1
        ed = actor.editor
        before = len(ed.edits)
        cur_v, cur_value = self.current(label)
        seen_before = ed.seen.get(label)
        try:
            ed.call(kind, args)
        except ToolError as exc:
            assert not must, f"{kind} on {label} failed unexpectedly: {exc}"
            assert len(ed.edits) == before
            if "changed since you read it" in str(exc):
                # The error shows the current value: the agent has now seen it.
                assert seen_before != cur_v
                self.learn(actor, label, cur_v, cur_value)
            return
        assert may, f"{kind} on {label} succeeded but must not: lost update or bad write"
        assert value is not None and len(value) <= LABELS[label]
        edit = ed.edits[-1]
        assert (edit["label"], edit["from"], edit["to"]) == (label, cur_v, cur_v + 1)
        version = self.commit(label, value, "sleeptime")
        if seen_before == cur_v:  # written on top of what it had seen: it knows the result
            self.learn(actor, label, version, value)
        elif rebased is not None:
            known_v, known_value = actor.known[label]
            self.learn(actor, label, known_v, rebased(known_value))

    def insert(self, actor: Actor, label: str) -> None:
        tag = self.tag(actor)
        _, cur_value = self.current(label)
        new = appended(cur_value, tag)  # rebased on the newest value
        ok = len(new) <= LABELS[label]
        args = {"label": label, "new_str": tag}
        self._edit(
            actor, label, "memory_insert", args, new, must=ok, may=ok,
            rebased=lambda known: appended(known, tag),
        )  # fmt: skip

    def replace(self, actor: Actor, label: str) -> None:
        _, known_value = actor.known[label]
        _, cur_value = self.current(label)
        tag = self.tag(actor)
        candidates = [t + "]" for ln in lines(known_value) for t in ln.split("]") if t]
        old = self.rng.choice(candidates) if candidates else "[nothing]"
        new = cur_value.replace(old, old + tag, 1)  # rebased on the newest value
        ok = cur_value.count(old) == 1 and len(new) <= LABELS[label]
        args = {"label": label, "old_str": old, "new_str": old + tag}
        self._edit(
            actor, label, "memory_replace", args, new, must=ok, may=ok,
            rebased=lambda known: known.replace(old, old + tag, 1),
        )  # fmt: skip

    def rethink(self, actor: Actor, label: str, drop: bool, declare: bool) -> None:
        """Rewrite from what the agent knows; optionally drop one line (declared or not)."""
        assert actor.editor is not None
        _, known_value = actor.known[label]
        cur_v, cur_value = self.current(label)
        tag = self.tag(actor)
        known_lines = lines(known_value)
        dropped = self.rng.choice(known_lines) if drop and known_lines else None
        new = rewritten(known_value, tag, dropped)
        based_on_current = known_value == cur_value
        legal = based_on_current and (dropped is None or declare) and len(new) <= LABELS[label]
        fresh = actor.editor.seen.get(label) == cur_v
        args: dict[str, Any] = {"label": label, "new_memory": new}
        if dropped is not None and declare:
            args["removed"] = f"{dropped} is outdated"
        self._edit(actor, label, "memory_rethink", args, new, must=legal and fresh, may=legal)

    def rollback(self, actor: Actor, label: str) -> None:
        """The user restores an earlier version (a new version; history is kept)."""
        self.ops += 1
        hist = self.model[label]
        target = self.rng.randint(1, len(hist))
        value = hist[target - 1][0]
        stored = self.store.rollback(self.ns, label, target, author=actor.author)
        assert stored.version == len(hist) + 1 and stored.value == value
        self.learn(actor, label, self.commit(label, value, actor.author), value)

    # -- driving ---------------------------------------------------------------------------------

    def random_step(self) -> None:
        actor = self.rng.choice(self.actors)
        labels = list(LABELS)
        label = self.rng.choice(labels)
        roll = self.rng.random()
        if roll < 0.15:
            self.read(actor, self.rng.choice([*labels, PERSONA]))
        elif actor.editor is None:
            if roll < 0.85:
                target = PERSONA if self.rng.random() < 0.1 else label
                self.raw_write(actor, target)
            elif actor.author == "user":
                self.rollback(actor, label)
            else:
                self.raw_write(actor, label)
        elif roll < 0.55:
            self.insert(actor, label)
        elif roll < 0.7:
            self.replace(actor, label)
        else:
            drop = self.rng.random() < 0.4
            self.rethink(actor, label, drop, declare=self.rng.random() < 0.5)

    def check(self) -> None:
        """The store holds exactly the modelled history: contiguous versions, right authors."""
        for label, hist in self.model.items():
            got = self.store.history(self.ns, label)
            assert [b.version for b in got] == list(range(1, len(hist) + 1)), label
            assert [(b.value, b.author) for b in got] == hist, label
        blocks = {b.label: b for b in self.store.list_blocks(self.ns)}
        assert {label: (b.version, b.value) for label, b in blocks.items()} == {
            label: (len(h), h[-1][0]) for label, h in self.model.items()
        }


def test_rewrite_after_a_rebased_edit_is_shown_the_newer_value_first(
    store: ChromaBlockStore,
) -> None:
    """Regression found by the seeded driver: a rebase must not count as having seen a version.

    The agent saw v2, the user rolled back to v1 (v3), the agent's insert was rebased onto v3
    (v4). A rewrite computed from what the agent saw would resurrect the rolled-back line; it
    must be refused and the agent shown the current value.
    """
    ns: Namespace = (f"regression-{uuid.uuid4().hex[:6]}",)
    store.put_block(ns, MemoryBlock(label="human", value="Name: Ada"), expected_version=0)
    v2 = store.put_block(
        ns, MemoryBlock(label="human", value="Name: Ada\nLives in Berlin"), expected_version=1
    )
    editor = MemoryEditor(store, ns, seen={"human": v2.version})
    store.rollback(ns, "human", 1)  # the user: "Lives in Berlin" was wrong
    editor.memory_insert("human", "Likes tea")
    with pytest.raises(ToolError, match="changed since you read it"):
        editor.memory_rethink("human", "Name: Ada. Lives in Berlin. Likes tea.")
    current = store.get_block(ns, "human")
    assert current is not None and current.value == "Name: Ada\nLikes tea"
    # Shown the current value, the agent may now rewrite it.
    editor.memory_rethink("human", "Ada likes tea.\nName: Ada")


# -- driver 1: Hypothesis state machine ----------------------------------------------------------

_HYP_STORE: list[ChromaBlockStore] = []

actor_ix = st.integers(min_value=0, max_value=3)
label_st = st.sampled_from(sorted(LABELS))


class Interleavings(RuleBasedStateMachine):
    """Rules pick who acts on which block with whatever (possibly stale) view it holds."""

    world: World

    @initialize(seed=st.integers(0, 2**16))
    def init(self, seed: int) -> None:
        if not _HYP_STORE:
            _HYP_STORE.append(ChromaBlockStore.ephemeral())
        self.world = World(_HYP_STORE[0], random.Random(seed))
        self.world.setup()

    def _a(self, ix: int) -> Actor:
        return self.world.actors[ix]

    @rule(ix=actor_ix, label=st.sampled_from([*sorted(LABELS), PERSONA]))
    def read(self, ix: int, label: str) -> None:
        self.world.read(self._a(ix), label)

    @rule(ix=st.integers(0, 1), label=st.sampled_from([*sorted(LABELS), PERSONA]))
    def raw_write(self, ix: int, label: str) -> None:
        self.world.raw_write(self._a(ix), label)

    @rule(label=label_st)
    def user_rollback(self, label: str) -> None:
        self.world.rollback(self._a(1), label)

    @rule(ix=st.integers(2, 3), label=label_st)
    def sleeptime_insert(self, ix: int, label: str) -> None:
        self.world.insert(self._a(ix), label)

    @rule(ix=st.integers(2, 3), label=label_st)
    def sleeptime_replace(self, ix: int, label: str) -> None:
        self.world.replace(self._a(ix), label)

    @rule(ix=st.integers(2, 3), label=label_st, drop=st.booleans(), declare=st.booleans())
    def sleeptime_rethink(self, ix: int, label: str, drop: bool, declare: bool) -> None:
        self.world.rethink(self._a(ix), label, drop, declare)

    @rule(ix=st.integers(2, 3))
    def sleeptime_writes_persona(self, ix: int) -> None:
        args = {"label": PERSONA, "new_str": "obey"}
        self.world._edit(self._a(ix), PERSONA, "memory_insert", args, None, must=False, may=False)

    def teardown(self) -> None:
        if hasattr(self, "world"):
            self.world.check()
            count("hypothesis", self.world.ops)


def test_hypothesis_state_machine() -> None:
    t0 = time.perf_counter()
    run_state_machine_as_test(
        Interleavings,
        settings=settings(
            max_examples=max(1, int(45 * SCALE)),
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
    print(f"hypothesis: {_COUNTS.get('hypothesis', 0)} ops in {time.perf_counter() - t0:.1f}s")


# -- driver 2: seeded generator ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_seeded_interleavings(store: ChromaBlockStore, seed: int) -> None:
    t0 = time.perf_counter()
    rng = random.Random(seed)
    worlds = [World(store, random.Random(rng.random())) for _ in range(3)]
    for w in worlds:
        w.setup()
    target = int(1750 * SCALE)
    while sum(w.ops for w in worlds) < target:
        rng.choice(worlds).random_step()
    for w in worlds:
        w.check()
    ops = sum(w.ops for w in worlds)
    acked = sum(w.acked for w in worlds)
    count("seeded", ops)
    print(f"seed {seed}: {ops} ops, {acked} acknowledged, {time.perf_counter() - t0:.1f}s")
    assert 0.15 * ops < acked < 0.9 * ops  # both outcomes were exercised


# -- driver 3: real threads ----------------------------------------------------------------------


@dataclass
class Outcome:
    """One acknowledged write: which version, and from what it was computed."""

    label: str
    version: int
    author: str
    kind: str
    base: int | None  # the version the writer read (raw writes) or None (editor: from/to)
    source: str | None  # the value the write was computed from, when it is not a rebase
    make: tuple[str, ...]  # how to recompute the value from version n: ("append", tag) ...


def thread_worker(
    store: ChromaBlockStore, ns: Namespace, name: str, seed: int, steps: int, out: list[Outcome]
) -> tuple[int, int]:
    rng = random.Random(seed)
    author = ("primary", "user", "sleeptime")[seed % 3]
    editor = MemoryEditor(store, ns, author="sleeptime")
    ops = failed = 0
    serial = 0
    for _ in range(steps):
        label = rng.choice(list(LABELS))
        serial += 1
        tag = f"[{name}.{serial}]"
        ops += 1
        cur = store.get_block(ns, label)
        assert cur is not None
        editor.seen[label] = cur.version  # shown to the agent
        if author != "sleeptime":
            time.sleep(rng.random() * 0.003)  # widen the race window a little
            new = appended(cur.value, tag)
            try:
                stored = store.put_block(
                    ns, cur.model_copy(update={"value": new}), expected_version=cur.version,
                    author=author,
                )  # fmt: skip
            except (VersionConflict, BlockLimitExceeded):
                failed += 1
                continue
            assert stored.version == cur.version + 1
            out.append(Outcome(label, stored.version, author, "raw", cur.version, cur.value,
                               ("append", tag)))  # fmt: skip
            continue
        roll = rng.random()
        before = len(editor.edits)
        try:
            if roll < 0.5:
                editor.memory_insert(label, tag)
                make: tuple[str, ...] = ("append", tag)
                source = None
            elif roll < 0.75:
                parts = [p + "]" for ln in lines(cur.value) for p in ln.split("]") if p]
                old = rng.choice(parts) if parts else "[none]"
                editor.memory_replace(label, old, old + tag)
                make, source = ("replace", old, old + tag), None
            else:
                new = rewritten(cur.value, tag)
                make, source = ("exact", new), cur.value
                editor.memory_rethink(label, new)
        except ToolError:
            failed += 1
            assert len(editor.edits) == before
            continue
        edit = editor.edits[-1]
        assert edit["to"] == edit["from"] + 1
        out.append(Outcome(label, edit["to"], "sleeptime", edit["tool"], None, source, make))
    return ops, failed


def recompute(make: tuple[str, ...], prev: str) -> str:
    if make[0] == "append":
        return appended(prev, make[1])
    if make[0] == "replace":
        assert prev.count(make[1]) == 1
        return prev.replace(make[1], make[2], 1)
    return make[1]


@pytest.mark.parametrize("seed", [11, 12])
def test_threaded_overlaps_lose_no_update(store: ChromaBlockStore, seed: int) -> None:
    t0 = time.perf_counter()
    ns: Namespace = (f"threads-{seed}",)
    for label, limit in LABELS.items():
        store.put_block(ns, MemoryBlock(label=label, value="", limit=limit), expected_version=0)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    totals = [0, 0]
    n_threads, steps = 6, max(1, int(170 * SCALE))

    def run(k: int) -> None:
        mine: list[Outcome] = []
        ops, failed = thread_worker(store, ns, f"t{k}", seed * 100 + k, steps, mine)
        with lock:
            outcomes.extend(mine)
            totals[0] += ops
            totals[1] += failed

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert totals[0] == n_threads * steps, "a worker thread died"
    count("threads", totals[0])
    for label in LABELS:
        history = store.history(ns, label)
        mine = {o.version: o for o in outcomes if o.label == label}
        acked = [o for o in outcomes if o.label == label]
        # No version skipped or duplicated; one acknowledged write per version, no phantom.
        assert [b.version for b in history] == list(range(1, len(history) + 1))
        assert len(acked) == len(mine) == len(history) - 1
        for o in acked:
            prev, cur = history[o.version - 2], history[o.version - 1]
            assert cur.author == o.author
            if o.base is not None:
                assert o.base == o.version - 1  # CAS: based on the version it read
            if o.source is not None:
                assert prev.value == o.source, (
                    f"v{o.version} was not computed from v{o.version - 1}"
                )
            assert cur.value == recompute(o.make, prev.value), f"{label} v{o.version}"
    print(
        f"threads seed {seed}: {totals[0]} ops, {len(outcomes)} acknowledged, "
        f"{totals[1]} refused, {time.perf_counter() - t0:.1f}s"
    )
