"""``sleeptime bench server-load``: many users at once through LangGraph Server.

The deployment under test is the one docs/scale-out.md describes: `langgraph dev` serving the
project's langgraph.json, memory on a `chroma run` server, checkpoints in PostgreSQL (the
``checkpointer`` section; ``--no-postgres`` keeps them in the dev server). Clients use
langgraph-sdk as an app would. The models are the scripted ones of
:mod:`sleeptime_agent.testing`, chosen through the environment, with fixed delays standing in
for real models: ``scripted:recall`` (the primary) and ``scripted:memorize`` (the sleep-time
agent: one ``memory_insert`` of the new user lines, then ``memory_finish_edits``).

Phases, each on a fresh server process, in one run:

* ``off`` and ``on``: N users x M turns, each user in one thread, with think time between turns;
  sleep-time off (``SLEEPTIME_EVERY_N_TURNS=0``) or on (after every turn). Turn latency p50/p95/
  p99 is measured at the client, end to end (``runs.wait``).
* ``restart``: sleep-time on; when half the turns are acknowledged the server is stopped
  (SIGINT, as a rolling deploy does) and started again on the same Postgres, Chroma and working
  directory; clients retry a turn whose request failed, after checking the thread's state so a
  turn that did complete is not sent twice.

Every turn tells a new fact ("My pet's name is Biscuit-0703."). Afterwards each user's facts are
checked against the human block and its whole version history: an acknowledged fact missing from
the final block is a lost write; a fact present twice, or added by two versions, is a duplicated
write; a version that dropped a line of the previous one is a lost update. The sleep-time
backlog (transcript messages past the consolidation cursor, read from Chroma) and the server's
RSS are sampled throughout; the drain time runs from the last turn to an empty backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sleeptime_agent import ChromaBlockStore
from sleeptime_agent.storage.transcript import Transcript
from sleeptime_bench.paths import OUT_HELP, default_out
from sleeptime_bench.report import write_report
from sleeptime_bench.server_procs import (
    ChromaProcess,
    LangGraphDevProcess,
    PostgresProcess,
    rss_bytes,
    server_config,
)

__all__ = ["LoadConfig", "register", "run_server_load"]

GRAPH = "sleeptime_chat"
ROOT = Path(__file__).resolve().parents[1]
CALLS_PER_RUN = 2  # scripted:memorize: one insert, one finish

_FACTS = [
    ("favourite colour", ["teal", "amber", "crimson", "olive", "indigo", "coral"]),
    ("pet's name", ["Biscuit", "Pepper", "Mochi", "Ziggy", "Juniper", "Otis"]),
    ("home town", ["Tromso", "Valparaiso", "Nagoya", "Galway", "Tartu", "Hobart"]),
    ("favourite dish", ["ramen", "paella", "pierogi", "laksa", "tagine", "goulash"]),
    ("car", ["Fiat", "Volvo", "Skoda", "Subaru", "Citroen", "Mazda"]),
    ("job", ["welder", "cartographer", "midwife", "luthier", "actuary", "glazier"]),
    ("sister's name", ["Ines", "Greta", "Amara", "Lotte", "Signe", "Priya"]),
    ("favourite band", ["Wilco", "Portishead", "Khruangbin", "Tinariwen", "Beirut", "Low"]),
    ("allergy", ["penicillin", "shellfish", "pollen", "latex", "sesame", "walnuts"]),
    ("gym locker", ["blue", "green", "red", "grey", "white", "black"]),
    ("bicycle", ["Brompton", "Bianchi", "Cannondale", "Trek", "Moulton", "Raleigh"]),
    ("favourite tree", ["rowan", "larch", "hornbeam", "aspen", "yew", "alder"]),
]


def fact_text(user: int, turn: int, rng: random.Random) -> str:
    """The fact a user tells at a turn: a new attribute each turn, a unique value."""
    attr, words = _FACTS[turn % len(_FACTS)]
    lap = f" number {turn // len(_FACTS) + 1}" if turn >= len(_FACTS) else ""
    return f"My {attr}{lap} is {rng.choice(words)}-{user:02d}{turn:02d}."


@dataclass
class LoadConfig:
    """What one run does (defaults: the issue's 20 users x 10 turns)."""

    users: int = 20
    turns: int = 10
    primary_latency: float = 0.5
    sleeptime_latency: float = 0.8
    think: float = 1.0
    """Mean think time between a user's turns (uniform on [0.5, 1.5] x think)."""
    sleeptime_delay: float = 0.0
    """The server's debounce (``SLEEPTIME_DELAY_SECONDS``) in the phases with sleep-time on."""
    phases: tuple[str, ...] = ("off", "on", "restart")
    postgres: bool = True
    jobs: int = 0
    """Runs the server executes at once (``--n-jobs-per-worker``); 0 means users + 5."""
    sample_every: float = 1.0
    drain_timeout: float = 300.0
    seed: int = 0
    keep_workdir: bool = False
    """Keep the servers' directories and logs (the path is in the report) instead of deleting."""


@dataclass
class Turn:
    """One user turn as the client saw it."""

    phase: str
    user: str
    index: int
    text: str
    started_s: float = 0.0
    """When the turn was sent, in seconds since the phase started (to see stalls in time)."""
    latency_s: float = 0.0
    acked: bool = False
    """The turn's request returned its reply."""
    completed_unacked: bool = False
    """The request failed but the thread's state shows the turn ran (not sent again)."""
    attempts: int = 0
    error: str = ""


@dataclass
class Sample:
    """One sample of the backlog and the server's memory."""

    t: float
    backlog_messages: int
    pending_namespaces: int
    rss_mb: float


@dataclass
class PhaseResult:
    """What one phase measured."""

    phase: str
    turns: list[Turn] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    load_s: float = 0.0
    drain_s: float | None = None
    backlog_at_stop: int = 0
    pending_namespaces_at_stop: int = 0
    restart: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)


# -- clients ---------------------------------------------------------------------------------------


async def _server_up(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"{url}/ok", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"server at {url} did not come back in {timeout:.0f} s")


def _messages(state: Any) -> list[dict[str, Any]]:
    """The ``messages`` of a thread state as the SDK returns it (empty before any run)."""
    values = state.get("values") if isinstance(state, dict) else None
    return list(values.get("messages", [])) if isinstance(values, dict) else []


def _turn_done(messages: list[dict[str, Any]], text: str) -> bool:
    """Whether the thread holds ``text`` as a user message followed by a reply."""
    for i, m in enumerate(messages):
        if m.get("type") == "human" and m.get("content") == text:
            return any(n.get("type") == "ai" for n in messages[i + 1 :])
    return False


async def _run_turn(client: Any, url: str, thread_id: str, user: str, turn: Turn) -> None:
    """Send one turn; on failure wait for the server, look at the thread, retry if not done."""
    start = time.monotonic()
    for attempt in range(1, 9):
        turn.attempts = attempt
        try:
            await client.runs.wait(
                thread_id,
                GRAPH,
                input={"messages": [{"role": "user", "content": turn.text}]},
                config={"configurable": {"user_id": user}},
                raise_error=True,
            )
            turn.acked = True
            turn.latency_s = time.monotonic() - start
            return
        except Exception as exc:  # the server went away mid-request, or the thread was busy
            turn.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        await _server_up(url)
        for _ in range(120):  # a run re-queued by the restarted server may still be going
            thread = await client.threads.get(thread_id)
            state = await client.threads.get_state(thread_id)
            if _turn_done(_messages(state), turn.text):
                turn.completed_unacked = True
                turn.latency_s = time.monotonic() - start
                return
            if thread["status"] != "busy":
                break
            await asyncio.sleep(0.5)
    turn.latency_s = time.monotonic() - start


async def _user(
    url: str, phase: str, user_index: int, user: str, cfg: LoadConfig, out: list[Turn], t0: float
) -> str:
    from langgraph_sdk import get_client

    client = get_client(url=url, timeout=(10.0, 600.0, 600.0, 10.0))
    rng = random.Random(f"{cfg.seed}-{phase}-{user_index}")
    thread_id = str(uuid.uuid4())
    await client.threads.create(thread_id=thread_id, metadata={"user": user})
    for i in range(cfg.turns):
        turn = Turn(phase, user, i, fact_text(user_index, i, rng))
        turn.started_s = round(time.monotonic() - t0, 3)
        await _run_turn(client, url, thread_id, user, turn)
        out.append(turn)
        await asyncio.sleep(cfg.think * rng.uniform(0.5, 1.5))
    return thread_id


# -- sampling --------------------------------------------------------------------------------------


class _Sampler:
    """Samples the backlog (from Chroma) and the server's RSS in a thread of its own."""

    def __init__(self, store: ChromaBlockStore, users: list[str], every: float) -> None:
        self.transcript = Transcript(store)
        self.users = users
        self.every = every
        self.pid: int | None = None
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load-sampler", daemon=True)

    def backlog(self) -> tuple[int, int]:
        """(messages past the cursor, namespaces with any) over this phase's users."""
        total = pending = 0
        for user in self.users:
            ns = (user,)
            behind = self.transcript.last_seq(ns) - self.transcript.cursor(ns).seq
            total += max(0, behind)
            pending += behind > 0
        return total, pending

    def sample(self) -> Sample:
        """Take one sample now."""
        try:
            messages, namespaces = self.backlog()
        except Exception:  # Chroma busy or a namespace not created yet: skip this sample
            messages, namespaces = -1, -1
        rss = rss_bytes(self.pid) / 2**20 if self.pid else 0.0
        s = Sample(round(time.monotonic() - self.t0, 2), messages, namespaces, round(rss, 1))
        if messages >= 0:
            self.samples.append(s)
        return s

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=30)


# -- checks ----------------------------------------------------------------------------------------


def check_writes(store: ChromaBlockStore, turns: list[Turn]) -> dict[str, Any]:
    """Compare each user's acknowledged facts with the human block and its version history."""
    by_user: dict[str, list[Turn]] = {}
    for t in turns:
        by_user.setdefault(t.user, []).append(t)
    lost: list[str] = []
    duplicated: list[str] = []
    lost_updates = 0
    version_gaps = 0
    versions = 0
    transcript_dups = 0
    transcript = Transcript(store)
    for user, user_turns in by_user.items():
        ns = (user,)
        history = [b for b in store.history(ns, "human") if b.version > 0]
        versions += len(history)
        final = history[-1].value.split("\n") if history else []
        numbers = [b.version for b in history]
        version_gaps += sum(1 for a, b in zip(numbers, numbers[1:], strict=False) if b != a + 1)
        for prev, cur in zip(history, history[1:], strict=False):
            cur_lines = set(cur.value.split("\n"))
            lost_updates += sum(
                1 for line in prev.value.split("\n") if line and line not in cur_lines
            )
        told = [m.content for m in transcript.since(ns, 0) if m.role == "user"]
        for t in user_turns:
            if not (t.acked or t.completed_unacked):
                continue
            transcript_dups += max(0, told.count(t.text) - 1)
            if t.text not in final:
                lost.append(f"{user}: {t.text}")
                continue
            added = sum(
                1
                for i, b in enumerate(history)
                if t.text in b.value.split("\n")
                and (i == 0 or t.text not in history[i - 1].value.split("\n"))
            )
            if final.count(t.text) > 1 or added > 1:
                duplicated.append(f"{user}: {t.text}")
    return {
        "facts_checked": sum(1 for t in turns if t.acked or t.completed_unacked),
        "lost_writes": len(lost),
        "duplicated_writes": len(duplicated),
        "lost_updates": lost_updates,
        "version_gaps": version_gaps,
        "block_versions": versions,
        "transcript_duplicates": transcript_dups,
        "examples": {"lost": lost[:10], "duplicated": duplicated[:10]},
    }


async def _check_threads(url: str, threads: dict[str, str], turns: list[Turn]) -> dict[str, Any]:
    """Every acknowledged turn is in its thread's checkpointed state, exactly once."""
    from langgraph_sdk import get_client

    client = get_client(url=url)
    missing = doubled = 0
    for user, thread_id in threads.items():
        state = await client.threads.get_state(thread_id)
        texts = [m.get("content") for m in _messages(state)]
        for t in turns:
            if t.user == user and t.acked:
                n = texts.count(t.text)
                missing += n == 0
                doubled += n > 1
    return {"acked_turns_missing_from_thread": missing, "turns_twice_in_thread": doubled}


# -- one phase -------------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    ordered = sorted(values)

    def pct(q: float) -> float:
        k = (len(ordered) - 1) * q
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    return {
        "n": len(values),
        "p50": round(pct(0.50), 4),
        "p95": round(pct(0.95), 4),
        "p99": round(pct(0.99), 4),
        "mean": round(statistics.fmean(values), 4),
        "max": round(ordered[-1], 4),
    }


def _server_env(cfg: LoadConfig, chroma: ChromaProcess, home: Path, on: bool) -> dict[str, str]:
    return {
        "SLEEPTIME_MODEL": f"scripted:recall?latency={cfg.primary_latency}",
        "SLEEPTIME_SLEEPTIME_MODEL": f"scripted:memorize?latency={cfg.sleeptime_latency}",
        "SLEEPTIME_CONSOLIDATION": "tool-loop",  # the loop scripted:memorize speaks
        "SLEEPTIME_CHROMA_URL": chroma.url,
        "SLEEPTIME_HOME": str(home),
        "SLEEPTIME_EVERY_N_TURNS": "1" if on else "0",
        "SLEEPTIME_DELAY_SECONDS": str(cfg.sleeptime_delay),
    }


def _run_phase(
    phase: str, cfg: LoadConfig, workdir: Path, postgres: PostgresProcess | None, tag: str
) -> PhaseResult:
    # A Chroma of its own per phase: the server's start-up catch-up would otherwise consolidate
    # the previous phase's leftovers (the off phase leaves every message unconsolidated).
    chroma = ChromaProcess(workdir / "chroma")
    chroma.start()
    try:
        return _run_phase_on(phase, cfg, workdir, chroma, postgres, tag)
    finally:
        chroma.stop()


def _run_phase_on(
    phase: str,
    cfg: LoadConfig,
    workdir: Path,
    chroma: ChromaProcess,
    postgres: PostgresProcess | None,
    tag: str,
) -> PhaseResult:
    on = phase != "off"
    env = _server_env(cfg, chroma, workdir / "home", on)
    if postgres is not None:
        env["SLEEPTIME_POSTGRES_URI"] = postgres.uri
    config = server_config(ROOT, workdir, postgres=postgres is not None)
    server = LangGraphDevProcess(workdir, config, env, jobs=cfg.jobs or cfg.users + 5)
    users = [f"{phase}-{tag}-u{i:02d}" for i in range(cfg.users)]
    store = ChromaBlockStore.from_url(chroma.url)
    result = PhaseResult(phase)
    sampler = _Sampler(store, users, cfg.sample_every)
    server.start()
    try:
        sampler.pid = server.pid
        sampler.start()
        threads = asyncio.run(_drive(phase, cfg, server, users, result, sampler))
        result.load_s = round(time.monotonic() - sampler.t0, 2)
        stop_t = time.monotonic()
        last = sampler.sample()
        result.backlog_at_stop = last.backlog_messages
        result.pending_namespaces_at_stop = last.pending_namespaces
        if on:
            deadline = stop_t + cfg.drain_timeout
            while time.monotonic() < deadline:
                s = sampler.sample()
                if s.backlog_messages == 0:
                    result.drain_s = round(time.monotonic() - stop_t, 2)
                    break
                time.sleep(0.25)
        time.sleep(1.0)  # let an in-flight finish step settle before reading histories
        sampler.stop()
        result.samples = sampler.samples
        result.checks = {
            **check_writes(store, result.turns),
            **asyncio.run(_check_threads(server.url, threads, result.turns)),
        }
    finally:
        sampler.stop()
        server.stop()
    return result


async def _drive(
    phase: str,
    cfg: LoadConfig,
    server: LangGraphDevProcess,
    users: list[str],
    result: PhaseResult,
    sampler: _Sampler,
) -> dict[str, str]:
    tasks = [
        asyncio.create_task(_user(server.url, phase, i, user, cfg, result.turns, sampler.t0))
        for i, user in enumerate(users)
    ]
    if phase == "restart":
        total = cfg.users * cfg.turns
        while sum(t.acked for t in result.turns) < total // 2:
            await asyncio.sleep(0.1)
        acked_before = sum(t.acked for t in result.turns)
        t_stop = time.monotonic()
        rss_before = sampler.sample().rss_mb
        await asyncio.to_thread(server.stop)
        stopped = time.monotonic()
        await asyncio.to_thread(server.start)
        sampler.pid = server.pid
        result.restart = {
            "at_s": round(t_stop - sampler.t0, 2),
            "acked_turns_before": acked_before,
            "stop_s": round(stopped - t_stop, 2),
            "downtime_s": round(time.monotonic() - t_stop, 2),
            "rss_mb_before": rss_before,
        }
    thread_ids = await asyncio.gather(*tasks)
    return dict(zip(users, thread_ids, strict=True))


# -- the run ---------------------------------------------------------------------------------------


def _phase_summary(r: PhaseResult, cfg: LoadConfig) -> dict[str, Any]:
    acked = [t.latency_s for t in r.turns if t.acked and t.attempts == 1]
    # Every user's first turn is sent at the same instant and creates that user's memory (the
    # default blocks): 10% of the turns at 10 per user, exactly where p95 falls.
    later = [t.latency_s for t in r.turns if t.acked and t.attempts == 1 and t.index > 0]
    first = [t.latency_s for t in r.turns if t.acked and t.attempts == 1 and t.index == 0]
    rss = [s.rss_mb for s in r.samples if s.rss_mb > 0]
    work = r.pending_namespaces_at_stop * CALLS_PER_RUN * cfg.sleeptime_latency
    return {
        "phase": r.phase,
        "turns": len(r.turns),
        "acked": sum(t.acked for t in r.turns),
        "completed_unacked": sum(t.completed_unacked for t in r.turns),
        "failed": sum(not (t.acked or t.completed_unacked) for t in r.turns),
        "retried": sum(t.attempts > 1 for t in r.turns),
        "latency_s": _percentiles(acked),
        "latency_after_first_turn_s": _percentiles(later),
        "first_turn_latency_s": _percentiles(first),
        "load_s": r.load_s,
        "throughput_turns_per_s": round(len(r.turns) / r.load_s, 2) if r.load_s else 0.0,
        "backlog_at_stop_messages": r.backlog_at_stop,
        "pending_namespaces_at_stop": r.pending_namespaces_at_stop,
        "sleeptime_work_at_stop_s": round(work, 2),
        "drain_s": r.drain_s,
        "drain_over_work": round(r.drain_s / work, 3) if r.drain_s is not None and work else None,
        "rss_mb": {
            "first": rss[0] if rss else 0.0,
            "peak": max(rss) if rss else 0.0,
            "last": rss[-1] if rss else 0.0,
        },
        "restart": r.restart,
        "checks": r.checks,
        "errors": sorted({t.error for t in r.turns if t.error})[:10],
    }


def _first_attempts(results: list[PhaseResult], phase: str, min_index: int = 0) -> list[float]:
    return [
        t.latency_s
        for r in results
        if r.phase == phase
        for t in r.turns
        if t.acked and t.attempts == 1 and t.index >= min_index
    ]


def _ratio_interval(
    on: list[float], off: list[float], draws: int = 2000, seed: int = 0
) -> list[float] | None:
    """Bootstrap 95% interval of p95(on) / p95(off), users' turns resampled with replacement.

    Turns of one run are not independent (they share the server's stalls), so the interval is
    optimistic; it still says when one run cannot tell the two apart.
    """
    if len(on) < 20 or len(off) < 20:
        return None
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(on), np.asarray(off)
    ratios = [
        float(np.percentile(rng.choice(a, a.size), 95) / np.percentile(rng.choice(b, b.size), 95))
        for _ in range(draws)
    ]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return [round(float(lo), 3), round(float(hi), 3)]


def run_server_load(cfg: LoadConfig, out: Path) -> Path:
    """Run every phase of ``cfg`` and write ``server-load.json``, ``.md`` and ``.png``."""
    tag = uuid.uuid4().hex[:6]
    # Outside root-only directories: PostgreSQL runs as its own unprivileged user.
    base = Path(tempfile.mkdtemp(prefix="sleeptime-load-"))
    base.chmod(0o755)
    postgres = PostgresProcess(base / "postgres") if cfg.postgres else None
    results: list[PhaseResult] = []
    try:
        if postgres is not None:
            postgres.start()
        for phase in cfg.phases:
            results.append(_run_phase(phase, cfg, base / phase, postgres, tag))
    finally:
        if postgres is not None:
            postgres.stop()
        if not cfg.keep_workdir:
            shutil.rmtree(base, ignore_errors=True)
    return write_results(cfg, results, out, workdir=base if cfg.keep_workdir else None)


def write_results(
    cfg: LoadConfig, results: list[PhaseResult], out: Path, workdir: Path | None = None
) -> Path:
    """The JSON report (issue #17's top-level fields first), its table and its plot."""
    phases = {r.phase: _phase_summary(r, cfg) for r in results}
    on, off = phases.get("on"), phases.get("off")
    ratio = None
    if on and off and off["latency_s"]["p95"]:
        ratio = round(on["latency_s"]["p95"] / off["latency_s"]["p95"], 3)
    ratio_ci = later_ratio = later_ci = None
    if on and off:
        ratio_ci = _ratio_interval(_first_attempts(results, "on"), _first_attempts(results, "off"))
        later_ci = _ratio_interval(
            _first_attempts(results, "on", 1), _first_attempts(results, "off", 1)
        )
        if off["latency_after_first_turn_s"]["p95"]:
            later_ratio = round(
                on["latency_after_first_turn_s"]["p95"] / off["latency_after_first_turn_s"]["p95"],
                3,
            )
    checked = [p for p in phases.values() if p["phase"] != "off"]
    data: dict[str, Any] = {
        "users": cfg.users,
        "turns_per_user": cfg.turns,
        "lost_writes": sum(p["checks"].get("lost_writes", 0) for p in checked),
        "duplicated_writes": sum(p["checks"].get("duplicated_writes", 0) for p in checked),
        "p95_ratio_on_off": ratio,
        "drain_s": on["drain_s"] if on else None,
        "p95_ratio_on_off_ci95": ratio_ci,
        "p95_ratio_on_off_after_first_turn": later_ratio,
        "p95_ratio_on_off_after_first_turn_ci95": later_ci,
        "p50_ratio_on_off": (
            round(on["latency_s"]["p50"] / off["latency_s"]["p50"], 3)
            if on and off and off["latency_s"]["p50"]
            else None
        ),
        "config": asdict(cfg),
        "workdir": str(workdir) if workdir else None,
        "deployment": {
            "server": "langgraph dev (langgraph-cli[inmem]), --no-reload",
            "checkpointer": "postgres (custom, AsyncPostgresSaver)" if cfg.postgres else "dev",
            "memory": "chroma run (a fresh one per phase)",
            "models": "scripted:recall (primary), scripted:memorize (sleep-time)",
        },
        "phases": phases,
        "samples": {r.phase: [asdict(s) for s in r.samples] for r in results},
        "turns": {r.phase: [asdict(t) for t in r.turns] for r in results},
    }
    path = write_report(out, "server-load", data)
    data = json.loads(path.read_text())  # with the command and the machine's load added
    (out / "server-load.md").write_text(render_markdown(data), encoding="utf-8")
    plot_server_load(data, out / "server-load.png")
    return path


def render_markdown(data: dict[str, Any]) -> str:
    """A table per phase: latency, backlog, drain, checks, memory."""
    cfg = data["config"]
    lines = [
        "# Server load: LangGraph Server + Postgres checkpoints + Chroma server",
        "",
        f"`{data.get('command', '')}`",
        "",
        f"{data['users']} concurrent users x {data['turns_per_user']} turns per phase; scripted "
        f"models (primary {cfg['primary_latency']} s, sleep-time {cfg['sleeptime_latency']} s "
        f"per call), think time ~{cfg['think']} s, sleep-time debounce "
        f"{cfg.get('sleeptime_delay', 0.0)} s.",
        "",
        f"- lost writes: **{data['lost_writes']}**, duplicated writes: "
        f"**{data['duplicated_writes']}** (phases with sleep-time on)",
        f"- turn latency p95, sleep-time on / off: **{data['p95_ratio_on_off']}** (bootstrap 95% "
        f"interval {data.get('p95_ratio_on_off_ci95')}; p50 ratio "
        f"{data.get('p50_ratio_on_off')})",
        "- the same without each user's first turn (all users send it at the same instant, and "
        "it creates the user's memory): **"
        f"{data.get('p95_ratio_on_off_after_first_turn')}** (interval "
        f"{data.get('p95_ratio_on_off_after_first_turn_ci95')})",
        f"- drain after the load stopped (phase on): **{data['drain_s']} s**",
        "",
        "| phase | turns acked | p50 s | p95 s | p99 s | after 1st turn p50 / p95 s "
        "| 1st turns p50 s | backlog at stop (msgs / users) "
        "| work held s | drain s | lost | dup | lost updates | RSS peak MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in data["phases"].values():
        lat, chk = p["latency_s"], p["checks"]
        later, first = p.get("latency_after_first_turn_s", {}), p.get("first_turn_latency_s", {})
        if p["phase"] == "off":  # nothing is consolidated by design: no write to check
            chk = {"lost_writes": "n/a", "duplicated_writes": "n/a", "lost_updates": "n/a"}
        lines.append(
            f"| {p['phase']} | {p['acked']}/{p['turns']} | {lat['p50']:.3f} | {lat['p95']:.3f} "
            f"| {lat['p99']:.3f} | {later.get('p50', 0):.3f} / {later.get('p95', 0):.3f} "
            f"| {first.get('p50', 0):.3f} | {p['backlog_at_stop_messages']} / "
            f"{p['pending_namespaces_at_stop']} | {p['sleeptime_work_at_stop_s']} "
            f"| {p['drain_s']} | {chk.get('lost_writes')} | {chk.get('duplicated_writes')} "
            f"| {chk.get('lost_updates')} | {p['rss_mb']['peak']} |"
        )
    restart = data["phases"].get("restart")
    if restart:
        r, chk = restart["restart"], restart["checks"]
        lines += [
            "",
            "Restart mid-load: the server was stopped (SIGINT) after "
            f"{r.get('acked_turns_before')} acknowledged turns, {r.get('downtime_s')} s down. "
            f"Acknowledged turns missing from their thread: "
            f"{chk.get('acked_turns_missing_from_thread')}; turns twice in a thread: "
            f"{chk.get('turns_twice_in_thread')}; retried turns: {restart['retried']}; turns "
            f"that ran but whose reply was lost: {restart['completed_unacked']}; failed: "
            f"{restart['failed']}; lost memory writes: {chk.get('lost_writes')}; duplicated: "
            f"{chk.get('duplicated_writes')}; transcript duplicates: "
            f"{chk.get('transcript_duplicates')}.",
        ]
    lines += [
        "",
        "Work held = users with a backlog at stop x 2 model calls x the sleep-time latency (the "
        "model time the backlog needs, run one after another). Latency is measured at the "
        "client (`runs.wait`), first attempts only. Load average while the report was "
        f"written: {data.get('machine', {}).get('load_average_1_5_15')} (2 cores, shared).",
        "",
    ]
    return "\n".join(lines)


def plot_server_load(data: dict[str, Any], path: Path) -> Path:
    """Latency distribution on vs off, backlog over time, server RSS over time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colors = {"off": "tab:blue", "on": "tab:orange", "restart": "tab:green"}
    fig = Figure(figsize=(13, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax_lat, ax_backlog, ax_rss = fig.subplots(1, 3)
    for phase, turns in data["turns"].items():
        lat = sorted(t["latency_s"] for t in turns if t["acked"] and t["attempts"] == 1)
        if lat:
            ys = [(i + 1) / len(lat) for i in range(len(lat))]
            p95 = data["phases"][phase]["latency_s"]["p95"]
            ax_lat.plot(lat, ys, label=f"{phase} (p95 {p95:.2f} s)", color=colors.get(phase))
    ax_lat.set_title("Turn latency (client, end to end)")
    ax_lat.set_xlabel("seconds")
    ax_lat.set_ylabel("share of turns")
    ax_lat.legend(fontsize=8)
    for phase, samples in data["samples"].items():
        if phase == "off" or not samples:
            continue
        ax_backlog.plot(
            [s["t"] for s in samples],
            [s["backlog_messages"] for s in samples],
            label=phase,
            color=colors.get(phase),
        )
        load_s = data["phases"][phase]["load_s"]
        ax_backlog.axvline(load_s, ls="--", lw=0.8, color="grey")
        restart = data["phases"][phase].get("restart") or {}
        if restart.get("at_s") is not None:
            ax_backlog.axvline(restart["at_s"], ls=":", lw=0.8, color="red")
    ax_backlog.set_title("Sleep-time backlog (-- load stops, : restart)")
    ax_backlog.set_xlabel("seconds since phase start")
    ax_backlog.set_ylabel("messages not consolidated")
    ax_backlog.legend(fontsize=8)
    for phase, samples in data["samples"].items():
        pts = [(s["t"], s["rss_mb"]) for s in samples if s["rss_mb"] > 0]
        if pts:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax_rss.plot(xs, ys, label=phase, color=colors.get(phase))
    ax_rss.set_title("Server RSS")
    ax_rss.set_xlabel("seconds since phase start")
    ax_rss.set_ylabel("MB")
    ax_rss.legend(fontsize=8)
    for ax in (ax_lat, ax_backlog, ax_rss):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# -- CLI -------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add ``sleeptime bench server-load``."""
    p = sub.add_parser(
        "server-load",
        help="N users x M turns through LangGraph Server (Postgres, Chroma server)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    p.add_argument("--turns", type=int, default=10, help="turns per user (default 10)")
    p.add_argument("--primary-latency", type=float, default=0.5, help="s per primary call")
    p.add_argument("--sleeptime-latency", type=float, default=0.8, help="s per sleep-time call")
    p.add_argument("--think", type=float, default=1.0, help="mean think time between turns")
    p.add_argument(
        "--sleeptime-delay",
        type=float,
        default=0.0,
        help="server debounce SLEEPTIME_DELAY_SECONDS with sleep-time on (default 0)",
    )
    p.add_argument(
        "--phases", default="off,on,restart", help="phases in order (default off,on,restart)"
    )
    p.add_argument(
        "--no-postgres", action="store_true", help="keep checkpoints in the dev server instead"
    )
    p.add_argument("--jobs", type=int, default=0, help="server runs at once (default users+5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-workdir", action="store_true", help="keep server dirs and logs")
    p.add_argument("--out", default=default_out("server-load"), help=OUT_HELP)
    p.set_defaults(func=_cmd)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks that stop the servers


def _cmd(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    cfg = LoadConfig(
        users=args.users,
        turns=args.turns,
        primary_latency=args.primary_latency,
        sleeptime_latency=args.sleeptime_latency,
        think=args.think,
        sleeptime_delay=args.sleeptime_delay,
        phases=tuple(p for p in args.phases.split(",") if p),
        postgres=not args.no_postgres,
        jobs=args.jobs,
        seed=args.seed,
        keep_workdir=args.keep_workdir,
    )
    path = run_server_load(cfg, Path(args.out))
    print(f"wrote {path}")  # noqa: T201
    return 0
