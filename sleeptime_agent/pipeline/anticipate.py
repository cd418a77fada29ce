"""The anticipation block (the paper's c'): likely next questions with answers worked out ahead.

One schema-constrained call per run, after the profile blocks are rewritten: the model reads the
subjects' profile blocks, the batch's messages and the facts extracted from them, and proposes up
to N questions, each with a short answer. Code keeps a question only if its answer is non-empty,
short, and supported by what the model was shown (the edit tools' grounding guard,
:func:`~sleeptime_agent.tools.guards.ungrounded_facts`): a 1.5B model fills an answer slot with a
guess as readily as with a fact, and the primary would read a guess as memory. The kept pairs are
rendered as ``Q: ... A: ...`` lines within the block's limit. A malformed, truncated or refused
reply never raises: it is reported, and the caller keeps the block's previous value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, create_model

from sleeptime_agent import prompts
from sleeptime_agent.pipeline.enrich import structured_call
from sleeptime_agent.tools.guards import ungrounded_facts

__all__ = [
    "ANTICIPATION_LABEL",
    "AnticipatedQuestion",
    "Anticipation",
    "AnticipationReply",
    "anticipate",
    "anticipation_schema",
    "render_anticipation",
]

ANTICIPATION_LABEL = "anticipation"
"""The block the questions go to (one of :func:`~sleeptime_agent.consolidation.default_blocks`)."""

_MAX_QUESTION = 200
_MAX_ANSWER = 300


class AnticipatedQuestion(BaseModel):
    """One question the user may ask next and its answer from memory."""

    question: str = Field(description="A question the user may ask next")
    answer: str = Field(description="Its short answer, from the memory only (empty if unknown)")


class AnticipationReply(BaseModel):
    """Likely next questions with their answers."""

    model_config = ConfigDict(title="anticipation")

    questions: list[AnticipatedQuestion]


@lru_cache(maxsize=8)
def anticipation_schema(max_questions: int = 3) -> type[AnticipationReply]:
    """The reply schema with at most ``max_questions`` items.

    The bound is a ``maxItems`` in the JSON schema, not a validation rule: the local model's
    grammar stops there, and a provider that ignores it gets its extra questions cut by code
    rather than the whole reply refused.
    """
    return create_model(
        "anticipation",
        __base__=AnticipationReply,
        __doc__=AnticipationReply.__doc__,
        questions=(
            list[AnticipatedQuestion],
            Field(json_schema_extra={"maxItems": max_questions}),
        ),
    )


@dataclass(frozen=True)
class Anticipation:
    """The checked questions of one call, what was dropped and why, and the call's cost."""

    questions: tuple[AnticipatedQuestion, ...] = ()
    dropped: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    failure: str | None = None
    """Why the reply was not usable (``None`` when it was)."""


def _clean(text: str) -> str:
    return " ".join(text.split())


async def anticipate(
    model: BaseChatModel,
    memory: str,
    subjects: Sequence[str],
    *,
    sources: str | None = None,
    max_questions: int = 3,
    system: str = prompts.PIPELINE_ANTICIPATE_SYSTEM,
) -> Anticipation:
    """Ask for up to ``max_questions`` likely questions answered from ``memory`` (never raises).

    Args:
        model: the sleep-time model.
        memory: the prompt's memory text (:data:`~sleeptime_agent.prompts.PIPELINE_ANTICIPATE_USER`
            filled in).
        subjects: who the conversation is between (named in the instructions).
        sources: what an answer must be grounded in (default: ``memory``).
        max_questions: the most questions kept.
        system: the instructions (``{subjects}`` and ``{count}`` are filled in).
    """
    who = ", ".join(subjects) or "a user and an assistant"
    parsed, tin, tout, failure = await structured_call(
        model,
        anticipation_schema(max_questions),
        system.format(subjects=who, count=max_questions),
        memory,
    )
    if not isinstance(parsed, AnticipationReply):
        return Anticipation(input_tokens=tin, output_tokens=tout, failure=failure or "no reply")
    ground = memory if sources is None else sources
    kept: list[AnticipatedQuestion] = []
    dropped: list[str] = []
    for item in parsed.questions:
        question, answer = _clean(item.question), _clean(item.answer)
        if not question or not answer:
            dropped.append(f"empty question or answer: {question[:80]!r}")
            continue
        if len(question) > _MAX_QUESTION or len(answer) > _MAX_ANSWER:
            dropped.append(f"over-long: {question[:80]!r}")
            continue
        if ungrounded_facts(answer, ground):
            dropped.append(f"answer not in memory: {answer[:80]!r}")
            continue
        if any(k.question.lower() == question.lower() for k in kept):
            continue
        kept.append(AnticipatedQuestion(question=question, answer=answer))
        if len(kept) == max_questions:
            break
    return Anticipation(tuple(kept), tuple(dropped), tin, tout)


def render_anticipation(questions: Sequence[AnticipatedQuestion], limit: int) -> str:
    """One ``Q: ... A: ...`` line per question, in the model's order, the ones that fit ``limit``.

    A line that does not fit is skipped, not cut: half an answer reads as a whole wrong one.
    """
    lines: list[str] = []
    size = 0
    for q in questions:
        line = f"Q: {q.question} A: {q.answer}"
        if size + len(line) + (1 if lines else 0) > limit:
            continue
        size += len(line) + (1 if lines else 0)
        lines.append(line)
    return "\n".join(lines)
