"""``sleeptime chat``: a chat assistant whose memory is consolidated between turns.

Interactive on a terminal (streaming replies; sleep-time runs are announced above the prompt
without disturbing what you type). With standard input not a terminal it reads one message per
line, prints each reply, and at end of input waits for pending sleep-time runs, then exits 0.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from sleeptime_agent.cli.common import add_model_options, add_store_options, open_store
from sleeptime_agent.cli.memory import fact_lines, read_lines, recall_summary
from sleeptime_agent.config import PRIMARY_MODEL_ENV, SLEEPTIME_MODEL_ENV, model_spec
from sleeptime_agent.graphs.chat import build_chat_graph
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.memory import SleeptimeMemory
from sleeptime_agent.models import for_role, resolve_model
from sleeptime_agent.scheduler import ForegroundGate, SleeptimeScheduler
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace

__all__ = ["register", "run_chat", "watch_typing"]

HELP = """commands:
  /memory            show the memory blocks and the dated facts
  /recall MESSAGE    what the assistant would read for MESSAGE
  /history LABEL     every version of a block
  /runs              sleep-time runs of this session
  /wait              wait for pending sleep-time runs
  /help              this help
  /quit              leave (waits for pending sleep-time runs)"""


def register(sub: Any) -> None:
    """Add the ``chat`` subcommand."""
    p = sub.add_parser(
        "chat",
        help="chat with an assistant that has persistent, consolidated memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_options(p)
    add_model_options(p)
    p.add_argument("--thread", default="default", help="conversation thread id (default: default)")
    p.add_argument(
        "--every", type=int, default=1, metavar="N", help="consolidate every N turns (default 1)"
    )
    p.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="S",
        help="wait S seconds of quiet after a turn before consolidating (default 0)",
    )
    p.set_defaults(func=cmd_chat)


def load_models(args: argparse.Namespace) -> tuple[BaseChatModel, BaseChatModel]:
    """The primary and sleep-time models named by the options and environment."""
    primary = resolve_model(args.model, env_var=PRIMARY_MODEL_ENV)

    if args.sleeptime_model is None and not model_spec(SLEEPTIME_MODEL_ENV):
        # One model for both (the local model: loaded once, a llama.cpp slot per role).
        return for_role(primary, "primary"), for_role(primary, "sleeptime")
    return primary, resolve_model(args.sleeptime_model, env_var=SLEEPTIME_MODEL_ENV)


def cmd_chat(args: argparse.Namespace) -> int:
    """Run the chat loop."""
    store = open_store(args)  # fail fast on a dead Chroma server, before loading a model
    primary, sleeper = load_models(args)
    # The local model's two roles share one server: say it once, load both (the second is free).
    loads = [
        load
        for model in {id(primary): primary, id(sleeper): sleeper}.values()
        if callable(load := getattr(model, "load", None))
    ]
    if loads:
        _err("loading the local model (the first run assembles it) ...")
    for load in loads:
        load()
    return run_chat(
        store,
        primary,
        sleeper,
        user=args.user,
        thread=args.thread,
        every=args.every,
        delay=args.delay,
        interactive=sys.stdin.isatty(),
    )


class _StatusLines:
    """Status lines go to standard error, each on its own line, never inside a reply.

    A background run starts while the reply is still being printed; its line used to be glued
    to the end of the reply. While a reply is printed, lines wait and follow it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.replying = False
        self.waiting: list[str] = []

    def write(self, text: str) -> None:
        with self.lock:
            if self.replying:
                self.waiting.append(text)
                return
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def reply(self, active: bool) -> None:
        with self.lock:
            self.replying = active
            waiting, self.waiting = (self.waiting, []) if not active else ([], self.waiting)
        for text in waiting:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


_STATUS = _StatusLines()


def _err(text: str) -> None:
    _STATUS.write(text)


#: What a finished run means, in words a user understands.
_OUTCOMES = {
    "ok": "memory updated",
    "finished_by_budget": "memory updated as far as its budget allowed; the rest comes next time",
    "stalled": "memory update stopped early (the model kept repeating itself); what it saved "
    "is kept",
    "no_input": "nothing new to remember",
    "skipped": "another process is updating this memory",
    "error": "memory update failed; the messages stay queued and will be tried again",
    "cancelled": "memory update cancelled; it will run again",
}


def _describe(kind: str, record: RunRecord | None) -> str:
    if kind == "start":
        return "[memory] updating memory in the background ..."
    if record is None:
        return f"[memory] {kind}"
    secs = f"{record.duration_s:.1f} s" if record.duration_s is not None else "?"
    counts = {e.get("tool"): e.get("count") for e in record.edits if "count" in e}
    if "recall_index" in counts:  # the pipeline: say what was filed
        done = f"{counts['recall_index']} messages filed, {counts.get('fact_insert', 0)} facts"
    else:
        done = f"{len(record.edits)} edits"
    words = _OUTCOMES.get(record.status, record.status)
    reason = f" ({record.reason})" if record.reason and record.status == "error" else ""
    return f"[memory] {words}: {done}, {record.total_tokens} tokens, {secs}{reason}"


#: A sleep-time run yielding to the user's turn (pre-warms are dropped silently, not paused).
_GATE_LINES = {
    "paused": "[memory] update paused: your message goes first",
    "resumed": "[memory] update resumed",
}


def _gate_event(event: str, what: str) -> None:
    if what == "step" and event in _GATE_LINES:
        _err(_GATE_LINES[event])


def _thread_history(
    memory: SleeptimeMemory, namespace: Namespace, thread: str
) -> list[BaseMessage]:
    """Resume a thread from the durable transcript (the checkpointer is per process)."""
    out: list[BaseMessage] = []
    for m in memory.transcript.since(namespace, 0):
        if m.thread_id == thread:
            out.append(HumanMessage(m.content) if m.role == "user" else AIMessage(m.content))
    return out


def run_chat(
    store: ChromaBlockStore,
    primary: BaseChatModel,
    sleeper: BaseChatModel,
    *,
    user: str,
    thread: str,
    every: int = 1,
    delay: float = 0.0,
    interactive: bool = False,
    lines: Iterator[str] | None = None,
    write: Callable[[str], None] | None = None,
    consolidation: str = "auto",
) -> int:
    """The chat loop, terminal or scripted; returns the exit code.

    ``consolidation`` is :class:`~sleeptime_agent.memory.SleeptimeMemory`'s (``auto``: the
    pipeline for the embedded model, the edit loop for others).
    """
    out = write or (lambda s: (sys.stdout.write(s), sys.stdout.flush()) and None)
    namespace = (user,)
    scheduler = SleeptimeScheduler(
        every_n_turns=every,
        delay_seconds=delay,
        on_event=lambda kind, ns, rec: _err(_describe(kind, rec)),
    )
    memory = SleeptimeMemory(store, sleeper, scheduler=scheduler, consolidation=consolidation)
    memory.gate.on_event = _gate_event
    graph = build_chat_graph(primary, memory=memory, checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"user_id": user, "thread_id": thread}}
    history = _thread_history(memory, namespace, thread)
    if history:
        graph.update_state(config, {"messages": history}, as_node="after_turn")
    source = lines if lines is not None else _inputs(interactive, memory.gate, namespace)
    try:
        with _patched(interactive):
            if interactive:
                _err(f"sleeptime chat · user {user!r} · thread {thread!r} · /help for commands")
            for text in source:
                text = text.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    memory.gate.done_typing(namespace)
                    if _slash(text, memory, namespace, out) == "quit":
                        break
                    continue
                _turn(graph, config, text, out)  # the turn ends the typing hold
        if scheduler.pending:
            _err("[memory] waiting for the memory update to finish ...")
        scheduler.wait_idle_sync()
    finally:
        scheduler.shutdown(wait=False)
    return 0


def _inputs(
    interactive: bool, gate: ForegroundGate | None = None, who: Namespace = ()
) -> Iterator[str]:
    if not interactive:
        yield from sys.stdin
        return
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession()
    if gate is not None:
        watch_typing(session.default_buffer, gate, who)
    while True:
        try:
            yield session.prompt("you> ")
        except EOFError:
            return


def watch_typing(buffer: Any, gate: ForegroundGate, who: Namespace) -> None:
    """Hold ``gate`` for ``who`` while they type into ``buffer`` (a prompt_toolkit ``Buffer``).

    The sleep-time step in flight stops at the first keystroke, so the message finds the model
    free when it is sent (the chat graph ends the hold once the turn holds the gate). A cleared
    line is not a release: the buffer is also cleared as a line is accepted, just before the
    turn takes the gate; a line left alone releases it after the gate's idle time.
    """

    def changed(buf: Any) -> None:
        if buf.text:
            gate.typing(who)

    buffer.on_text_changed += changed


def _patched(interactive: bool) -> AbstractContextManager[Any]:
    """Let background messages print above the prompt without breaking the typed line."""
    if not interactive:
        return nullcontext()
    from prompt_toolkit.patch_stdout import patch_stdout

    return patch_stdout(raw=True)


def _turn(graph: Any, config: RunnableConfig, text: str, out: Callable[[str], None]) -> None:
    _STATUS.reply(True)
    try:
        _reply(graph, config, text, out)
    finally:
        _STATUS.reply(False)


def _reply(graph: Any, config: RunnableConfig, text: str, out: Callable[[str], None]) -> None:
    out("assistant> ")
    streamed = False
    final = ""
    for chunk, meta in graph.stream(
        {"messages": [HumanMessage(text)]}, config, stream_mode="messages"
    ):
        if meta.get("langgraph_node") != "primary":
            continue
        if isinstance(chunk, AIMessageChunk) and chunk.content:
            out(str(chunk.content))
            streamed = True
        elif isinstance(chunk, AIMessage):
            final = str(chunk.content)
    if not streamed:
        out(final)
    out("\n")


def _slash(
    text: str, memory: SleeptimeMemory, namespace: Namespace, out: Callable[[str], None]
) -> str:
    cmd, _, arg = text.partition(" ")
    if cmd in ("/quit", "/exit"):
        return "quit"
    if cmd == "/help":
        out(HELP + "\n")
    elif cmd == "/memory":
        for b in memory.store.list_blocks(namespace):
            out(f"--- {b.label} (v{b.version}, {len(b.value)}/{b.limit} chars)\n{b.value}\n")
        facts = fact_lines(memory.facts.all(namespace))
        out(f"--- dated facts ({len(facts)})\n" + "".join(f"{line}\n" for line in facts))
        for line in recall_summary(memory.store, namespace):
            out(line + "\n")
    elif cmd == "/recall":
        if not arg.strip():
            out("usage: /recall MESSAGE\n")
        else:
            out("\n".join(read_lines(memory.read(namespace, query=arg.strip()))) + "\n")
    elif cmd == "/history":
        label = arg.strip() or "human"
        for b in memory.store.history(namespace, label):
            out(f"v{b.version} by {b.author} at {b.updated_at:%H:%M:%S}:\n{b.value}\n")
    elif cmd == "/runs":
        for r in memory.ledger.runs:
            out(_describe("end", r) + "\n")
    elif cmd == "/wait":
        memory.scheduler.wait_idle_sync()
        out("memory is up to date\n")
    else:
        out(f"unknown command {cmd}; /help lists them\n")
    return ""
