"""The paper's two phases on one stateful problem: sleep-time notes on the context, then answers.

Sleep-time: the sleep-time agent sees only the context ``c``. It first reasons about it in plain
text, then the product's own edit loop (:func:`build_sleeptime_graph` with
:class:`MemoryEditor` on a :class:`ChromaBlockStore`) has it save that analysis as the notes
``c'`` with ``memory_rethink`` and finish, so the write path a benchmark measures is the one
users run. (The paper's agent reasons inside the ``rethink_memory`` call; the bundled 1.5B
model loops or copies the context when asked to, hence the separate reasoning step.)
With ``--notes analysis`` the analysis itself is the notes: code stores it as the block with one
compare-and-swap write, and nothing is rewritten by the model. With ``--notes program`` the model
writes the arithmetic as Python assignments and code computes them
(:mod:`sleeptime_bench.stateful_program`).
Test-time: the primary answers the question from the context, with or without ``c'``, at one
of five verbosity levels (the paper's test-time budget axis).

Scaled sleep-time compute (``k`` notes per context) is combined by :func:`combine_notes`:
first the lines whose computed number a majority of the ``k`` analyses reached (agreement on
the quantities, the combination the paper's scaling needs), then the ``k`` blocks concatenated
in sample order with duplicate lines dropped, so agreeing samples cost little extra prompt and
disagreeing ones are all shown to the primary (``all``). The ``agreed`` combination shows only
the agreed lines, as short as one sample's notes: at ``k = 5`` the ``all`` notes held the gold
number more often (35% vs 22.5% at ``k = 1``) but the 1.5B primary did not use the longer notes.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.graph.state import CompiledStateGraph

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.graphs.sleeptime import SleeptimeContext, SleeptimeState, build_sleeptime_graph
from sleeptime_agent.ledger import count_tokens
from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace
from sleeptime_agent.tools.editor import MemoryEditor
from sleeptime_bench import prompts
from sleeptime_bench.stateful_program import program_notes

__all__ = [
    "COMBINE_MODES",
    "NOTES_MODES",
    "SLEEPTIME_TOOLS",
    "NotesMode",
    "Answer",
    "CombineMode",
    "Notes",
    "NotesWriter",
    "answer_messages",
    "aanswer",
    "agreed_lines",
    "combine_notes",
]

#: The tools the sleep-time agent gets here: one whole-block rewrite, then finish (the paper's
#: ``rethink_memory`` / ``finish_rethinking_memory``). Fewer tools, fewer wrong picks.
SLEEPTIME_TOOLS = ("memory_rethink", "memory_finish_edits")

NotesMode = Literal["edit-loop", "analysis", "program"]
#: How ``k`` samples become one set of notes (:func:`combine_notes`).
CombineMode = Literal["all", "agreed"]
COMBINE_MODES: tuple[CombineMode, ...] = ("all", "agreed")
#: How the sleep-time step's output becomes the notes (``--notes``).
NOTES_MODES: tuple[NotesMode, ...] = ("edit-loop", "analysis", "program")


@dataclass(frozen=True)
class Notes:
    """The outcome of one sleep-time run on a context."""

    text: str
    """The notes ``c'``: the value of every block the agent wrote, in label order."""
    input_tokens: int
    """Prompt tokens over every model call of the run."""
    output_tokens: int
    """Completion tokens over every model call of the run."""
    steps: int
    status: str
    """``ok`` (the agent finished) or ``finished_by_budget``."""
    failures: int
    """Tool calls that did not validate."""
    wall_time_s: float
    problems: tuple[str, ...] = ()
    """What went wrong in each failed call (error and the start of the raw reply)."""


@dataclass(frozen=True)
class Answer:
    """The outcome of one test-time answer."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    wall_time_s: float


class NotesWriter:
    """Runs the sleep-time phase in two steps, both on the context alone.

    First the model reasons about the context in plain text (the sleep-time compute); then the
    product's edit loop (:func:`build_sleeptime_graph`, :class:`MemoryEditor`, one fresh
    namespace per run) has it save that analysis as the notes block with ``memory_rethink``.
    Tokens of both steps count as sleep-time tokens.

    Args:
        model: The sleep-time model (binds tools).
        store: Where the notes blocks live; an ephemeral store is enough for a benchmark.
        max_steps: Model calls per run (one rethink and one finish is the plan; spare steps
            let the agent recover from a malformed call).
        max_tokens: Prompt + completion tokens per run.
        system_prompt: Edit-loop instructions; ``{label}`` is the notes block's label.
        user_prompt: The edit loop's input; ``{context}``, ``{analysis}`` and ``{label}`` are
            filled in.
        think_prompt: Instructions of the reasoning step (its user turn is the context).
        mode: ``edit-loop``: the edit loop saves the analysis (the model rewrites it into at
            most 8 short lines). ``analysis``: code stores the analysis itself as the block,
            cut to the block limit, with one compare-and-swap write and no second model call.
            ``program``: the model writes the arithmetic as Python assignments instead of an
            analysis, and code runs them (:func:`program_notes`) and stores the quantities.
    """

    def __init__(
        self,
        model: BaseChatModel,
        store: ChromaBlockStore,
        *,
        max_steps: int = 4,
        max_tokens: int = 12_000,
        system_prompt: str = prompts.STATEFUL_SLEEPTIME_SYSTEM,
        user_prompt: str = prompts.STATEFUL_SLEEPTIME_USER,
        think_prompt: str = prompts.STATEFUL_THINK_SYSTEM,
        mode: NotesMode = "edit-loop",
    ) -> None:
        self.model = model
        self.mode = mode
        self.think_prompt = think_prompt
        self.store = store
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.user_prompt = user_prompt
        self.graph: CompiledStateGraph[SleeptimeState, SleeptimeContext, Any, Any] = (
            build_sleeptime_graph(model, tool_names=SLEEPTIME_TOOLS)
        )

    async def arun(self, context: str, namespace: Namespace) -> Notes:
        """Write notes on ``context`` into a fresh block in ``namespace``.

        Args:
            context: The problem's context (never its question).
            namespace: A namespace no other run uses.

        Returns:
            The notes and the run's token counts.
        """
        started = time.perf_counter()
        label = prompts.STATEFUL_NOTES_LABEL
        system = prompts.STATEFUL_PROGRAM_SYSTEM if self.mode == "program" else self.think_prompt
        think = [SystemMessage(system), HumanMessage(context)]
        thought = await self.model.ainvoke(think)
        think_in, think_out = count_tokens(thought, think)
        analysis = str(thought.text).strip()
        block = MemoryBlock(label=label, description=prompts.STATEFUL_NOTES_DESCRIPTION)
        if self.mode != "edit-loop":
            # Code writes the block: the 1.5B model's rewrite into short lines kept a guessed
            # final answer and dropped the steps that let the primary check it.
            program = program_notes(analysis) if self.mode == "program" else None
            value = program.text if program else analysis
            block = block.model_copy(update={"value": value[: block.limit]})
            written = await self.store.aput_block(
                namespace, block, expected_version=0, author="sleeptime"
            )
            return Notes(
                text=written.value.strip(),
                input_tokens=think_in,
                output_tokens=think_out,
                steps=1,
                status="ok",
                failures=len(program.problems) if program else 0,
                wall_time_s=time.perf_counter() - started,
                problems=program.problems if program else (),
            )
        created = await self.store.aput_block(namespace, block, expected_version=0, author="system")
        editor = MemoryEditor(
            self.store, namespace, author="sleeptime", seen={label: created.version}
        )
        user = self.user_prompt.format(context=context, analysis=analysis, label=label)
        messages = [SystemMessage(self.system_prompt.format(label=label)), HumanMessage(user)]
        ctx = SleeptimeContext(editor=editor, max_steps=self.max_steps, max_tokens=self.max_tokens)
        state = await self.graph.ainvoke(
            {"messages": messages},
            context=ctx,
            config={"recursion_limit": 4 * self.max_steps + 10},
        )
        blocks = await self.store.alist_blocks(namespace)
        text = "\n".join(b.value.strip() for b in sorted(blocks, key=lambda b: b.label))
        return Notes(
            text=text.strip(),
            input_tokens=think_in + int(state.get("input_tokens", 0)),
            output_tokens=think_out + int(state.get("output_tokens", 0)),
            steps=int(state.get("steps", 0)),
            status="ok" if state.get("status") == "ok" else "finished_by_budget",
            failures=len(state.get("failures", [])),
            wall_time_s=time.perf_counter() - started,
            problems=tuple(
                f"{f.get('tool')}: {f.get('error')} {str(f.get('raw', ''))[:200]}".strip()
                for f in state.get("failures", [])
            ),
        )


def combine_notes(notes: list[str], mode: CombineMode = "all") -> str:
    """Combine ``k`` independent notes into one ``c'``.

    ``all``: the results most samples reached come first (:func:`agreed_lines`); then the
    samples are concatenated with duplicate lines dropped. Lines are compared after collapsing
    whitespace and case, so two samples that computed the same quantity the same way show it
    once, and samples that disagree all show their line. ``agreed``: the agreed lines only; when
    the samples agree on nothing, the greedy sample's notes (the ``k = 1`` notes).

    Args:
        notes: The notes of each sleep-time sample, in sample order (sample 0 greedy).
        mode: ``all`` or ``agreed``.

    Returns:
        The combined notes (a single sample's notes come back unchanged).
    """
    if len(notes) == 1:
        return notes[0]
    if mode == "agreed":
        return "\n".join(agreed_lines(notes)) or notes[0]
    seen: set[str] = set()
    parts: list[str] = []
    agreed = agreed_lines(notes)
    if agreed:
        parts.append(f"[agreed by most of the {len(notes)} analyses]\n" + "\n".join(agreed))
    for i, text in enumerate(notes, start=1):
        kept: list[str] = []
        for line in text.splitlines():
            key = " ".join(line.lower().split())
            if not key or key in seen:
                continue
            seen.add(key)
            kept.append(line)
        if kept:
            parts.append(f"[notes {i}]\n" + "\n".join(kept))
    return "\n".join(parts)


_RESULT = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")


def agreed_lines(notes: list[str]) -> list[str]:
    """Lines stating a result (``... = N``) that most of the ``k`` analyses reached.

    A result counts once per analysis; it is agreed when more than half of the analyses wrote
    it. Each agreed result is shown by the first line (in sample order) that states it.

    Args:
        notes: The notes of each sleep-time sample.

    Returns:
        One line per agreed result, in order of first appearance.
    """
    per_sample = [
        {m.replace(",", "") for m in _RESULT.findall(text)} for text in notes if text.strip()
    ]
    votes = Counter(n for found in per_sample for n in found)
    agreed = {n for n, c in votes.items() if c * 2 > len(notes)}
    out: list[str] = []
    shown: set[str] = set()
    for text in notes:
        for line in text.splitlines():
            results = {m.replace(",", "") for m in _RESULT.findall(line)}
            new = (results & agreed) - shown
            if new:
                out.append(line.strip())
                shown |= results & agreed
    return out


def answer_messages(
    context: str, question: str, *, notes: str | None, verbosity: int
) -> list[SystemMessage | HumanMessage]:
    """The test-time prompt: context, notes (sleep-time condition only), question, instruction.

    Args:
        context: The problem's context.
        question: The question.
        notes: ``c'``, or ``None`` for the no-sleep baseline.
        verbosity: 0 (answer only) .. 4 (step by step).

    Returns:
        The messages.

    Raises:
        ValueError: ``verbosity`` is not 0..4.
    """
    if not 0 <= verbosity < len(prompts.STATEFUL_VERBOSITY):
        raise ValueError(f"verbosity must be 0..{len(prompts.STATEFUL_VERBOSITY) - 1}")
    section = prompts.STATEFUL_NOTES_SECTION.format(notes=notes.strip()) if notes else ""
    user = prompts.STATEFUL_ANSWER_USER.format(
        context=context,
        notes=section,
        question=question,
        instruction=prompts.STATEFUL_VERBOSITY[verbosity],
    )
    return [SystemMessage(prompts.STATEFUL_ANSWER_SYSTEM), HumanMessage(user)]


async def aanswer(
    model: BaseChatModel,
    context: str,
    question: str,
    *,
    notes: str | None,
    verbosity: int,
    max_tokens: int | None = None,
) -> Answer:
    """Answer one question at test time and count its tokens.

    Args:
        model: The primary model.
        context: The problem's context.
        question: The question.
        notes: ``c'``, or ``None`` for the baseline.
        verbosity: 0 (answer only) .. 4 (step by step).
        max_tokens: Cap on completion tokens (passed to the model call as ``max_tokens``).

    Returns:
        The reply text and its prompt and completion tokens.
    """
    messages = answer_messages(context, question, notes=notes, verbosity=verbosity)
    runnable = model.bind(max_tokens=max_tokens) if max_tokens is not None else model
    started = time.perf_counter()
    reply = await runnable.ainvoke(messages)
    elapsed = time.perf_counter() - started
    if not isinstance(reply, AIMessage):
        reply = AIMessage(content=str(getattr(reply, "content", reply)))
    prompt_tokens, completion_tokens = count_tokens(reply, messages)
    return Answer(str(reply.text), prompt_tokens, completion_tokens, elapsed)
