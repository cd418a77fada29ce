"""What the model adds to an observation: keywords, entities and (optionally) atomic facts.

Each call is one schema-constrained reply (``with_structured_output`` with a JSON schema, so
the local model's grammar bounds list lengths and pins ``about`` to the known speakers). One
call per message: the instructions are a stable system prompt that llama.cpp's prefix cache
reuses, so each call costs the message's own tokens plus a short reply.

A 1.5B model does short spans well and free prose badly, so every reply is checked by code
before it is used: strings only, bounded lengths, subjects among the given options, and a fact
must share its content words with the message it came from (an example sentence of a prompt came
back as a "fact" three times in a probe). A malformed, truncated or refused reply never raises:
the message keeps its code-made rendering and the failure is reported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from sleeptime_agent import prompts
from sleeptime_agent.ledger import count_tokens
from sleeptime_agent.pipeline.dates import resolve_relative
from sleeptime_agent.pipeline.render import Observation, annotate_dates

__all__ = [
    "ExtractedFact",
    "FactReply",
    "Labels",
    "combine_facts",
    "combine_labels",
    "extract_facts",
    "facts_schema",
    "grounded",
    "label_message",
    "labels_schema",
    "structured_call",
]

_MAX_SPAN = 60
_MAX_FACT = 300
_CONTENT = re.compile(r"[a-z0-9]+")
_FILLER = frozenset(
    "a an the and or but of to in on at for with is are was were be been it its this that "
    "he she they them his her their has have had does did do will would can could about "
    "from as by so very also just really".split()
)


@dataclass(frozen=True)
class Labels:
    """Keywords and entities of one message, and what the call cost."""

    keywords: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    failure: str | None = None
    """Why the reply was not usable (``None`` when it was)."""


@dataclass(frozen=True)
class ExtractedFact:
    """One fact the model stated, checked and dated by code."""

    subject: str
    text: str


@dataclass(frozen=True)
class FactReply:
    """The checked facts of one message, what was dropped and why, and the call's cost."""

    facts: tuple[ExtractedFact, ...] = ()
    dropped: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def labels_schema(max_keywords: int = 6, max_entities: int = 4) -> dict[str, Any]:
    """JSON schema of the labelling reply."""
    return {
        "title": "labels",
        "description": "Search labels of one message",
        "type": "object",
        "properties": {
            "keywords": {"type": "array", "items": {"type": "string"}, "maxItems": max_keywords},
            "entities": {"type": "array", "items": {"type": "string"}, "maxItems": max_entities},
        },
        "required": ["keywords", "entities"],
    }


def facts_schema(subjects: Sequence[str], max_facts: int = 3) -> dict[str, Any]:
    """JSON schema of the fact reply; ``about`` is one of ``subjects`` (a choice, not prose)."""
    return {
        "title": "facts",
        "description": "Facts stated in one message",
        "type": "object",
        "properties": {
            "facts": {
                "type": "array",
                "maxItems": max_facts,
                "items": {
                    "type": "object",
                    "properties": {
                        "about": {"type": "string", "enum": list(subjects)},
                        "fact": {"type": "string"},
                    },
                    "required": ["about", "fact"],
                },
            }
        },
        "required": ["facts"],
    }


def _content(text: str) -> set[str]:
    return {w for w in _CONTENT.findall(text.lower()) if w not in _FILLER}


def grounded(fact: str, source: str, *, names: Sequence[str] = (), share: float = 0.6) -> bool:
    """Whether most content words of ``fact`` come from ``source`` (or are the names)."""
    words = _content(fact)
    if not words:
        return False
    known = _content(source) | {w for n in names for w in _content(n)}
    return len(words & known) / len(words) >= share


def _spans(value: Any, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            continue
        span = " ".join(item.split())
        if span and len(span) <= _MAX_SPAN and span.lower() not in (s.lower() for s in out):
            out.append(span)
    return tuple(out[:limit])


def _message_prompt(obs: Observation) -> str:
    return prompts.PIPELINE_MESSAGE.format(day=obs.day or "unknown date", line=obs.line())


async def structured_call(
    model: BaseChatModel, schema: dict[str, Any] | type[BaseModel], system: str, user: str
) -> tuple[Any, int, int, str | None]:
    """One structured call: ``(parsed or None, input tokens, output tokens, failure)``.

    ``parsed`` is a dict for a JSON schema and an instance of ``schema`` for a pydantic model;
    anything else (no reply, a reply that does not validate) is a failure, never an exception.
    """
    messages = [SystemMessage(system), HumanMessage(user)]
    try:
        runnable = model.with_structured_output(schema, include_raw=True)
        out: Any = await runnable.ainvoke(messages)
    except Exception as exc:  # a provider error or an unsupported schema: the layer is skipped
        return None, 0, 0, f"{type(exc).__name__}: {exc}"[:300]
    raw = out.get("raw") if isinstance(out, dict) else None
    tin, tout = count_tokens(raw, messages) if isinstance(raw, AIMessage) else (0, 0)
    if not isinstance(out, dict):
        return out, tin, tout, None
    if out.get("parsing_error") is not None:
        return None, tin, tout, f"unparseable reply: {out['parsing_error']}"[:300]
    parsed = out.get("parsed")
    if isinstance(schema, type):
        if not isinstance(parsed, schema):
            return None, tin, tout, "no reply matching the schema"
        return parsed, tin, tout, None
    if not isinstance(parsed, dict):
        return None, tin, tout, "reply is not a JSON object"
    return parsed, tin, tout, None


async def label_message(
    model: BaseChatModel,
    obs: Observation,
    *,
    max_keywords: int = 6,
    max_entities: int = 4,
    system: str = prompts.PIPELINE_LABELS_SYSTEM,
) -> Labels:
    """Ask for the keywords and entities of one message (never raises)."""
    parsed, tin, tout, failure = await structured_call(
        model, labels_schema(max_keywords, max_entities), system, _message_prompt(obs)
    )
    if parsed is None:
        return Labels(input_tokens=tin, output_tokens=tout, failure=failure)
    return Labels(
        keywords=_spans(parsed.get("keywords"), max_keywords),
        entities=_spans(parsed.get("entities"), max_entities),
        input_tokens=tin,
        output_tokens=tout,
    )


async def extract_facts(
    model: BaseChatModel,
    obs: Observation,
    subjects: Sequence[str],
    *,
    max_facts: int = 3,
    system: str = prompts.PIPELINE_FACTS_SYSTEM,
) -> FactReply:
    """Ask for the facts one message states about ``subjects``; checked by code (never raises).

    A fact about a subject not in ``subjects``, a question, a fact that does not name its
    subject, a fact whose words are not in the message, and an over-long fact are dropped (and
    listed in ``dropped``). Relative dates left in a fact
    are resolved against the message's date.
    """
    if not subjects:
        return FactReply(failure="no known subject")
    names = ", ".join(subjects)
    parsed, tin, tout, failure = await structured_call(
        model,
        facts_schema(subjects, max_facts),
        system.format(subjects=names),
        _message_prompt(obs),
    )
    if parsed is None:
        return FactReply(input_tokens=tin, output_tokens=tout, failure=failure)
    items = parsed.get("facts")
    kept: list[ExtractedFact] = []
    dropped: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            dropped.append("not an object")
            continue
        about, text = item.get("about"), item.get("fact")
        if not isinstance(about, str) or about not in subjects:
            dropped.append(f"unknown subject {about!r}")
            continue
        if not isinstance(text, str) or not text.strip() or len(text) > _MAX_FACT:
            dropped.append("empty or over-long fact")
            continue
        text = " ".join(text.split())
        # Questions and fragments ("won first place", "We should plan...") were half of what
        # the 1.5B model returned on LoCoMo conv-30; the prompt asks for sentences naming the
        # person, and code can check that.
        if text.endswith("?"):
            dropped.append(f"a question, not a fact: {text[:80]}")
            continue
        if not re.search(rf"\b{re.escape(about.lower())}\b", text.lower()):
            dropped.append(f"does not name {about}: {text[:80]}")
            continue
        if not grounded(text, f"{obs.rendered} {obs.text}", names=[*subjects, obs.day]):
            dropped.append(f"not in the message: {text[:80]}")
            continue
        text = annotate_dates(text, resolve_relative(text, obs.observed))
        if any(k.text.lower() == text.lower() for k in kept):
            continue
        kept.append(ExtractedFact(about, text))
    return FactReply(tuple(kept), tuple(dropped), tin, tout)


def _needed(samples: int) -> int:
    # At least half the usable samples: k=2 keeps either sample's spans (more recall keys),
    # k=4 keeps what two of the four agree on.
    return max(1, math.ceil(samples / 2))


def combine_labels(samples: Sequence[Labels]) -> Labels:
    """One set of labels from ``k`` samples of the same message: the spans at least half agree on.

    Spans are compared case-insensitively and ordered by votes, then by first appearance
    (sample 0 first). Failed samples do not vote; tokens are the sum of every sample's.
    """
    tin = sum(s.input_tokens for s in samples)
    tout = sum(s.output_tokens for s in samples)
    usable = [s for s in samples if s.failure is None]
    if not usable:
        failure = samples[0].failure if samples else "no sample"
        return Labels(input_tokens=tin, output_tokens=tout, failure=failure)
    need = _needed(len(usable))

    def agreed(spans: list[tuple[str, ...]]) -> tuple[str, ...]:
        votes: dict[str, int] = {}
        first: dict[str, str] = {}
        for sample in spans:
            for span in {x.lower(): x for x in sample}.values():
                votes[span.lower()] = votes.get(span.lower(), 0) + 1
                first.setdefault(span.lower(), span)
        kept = [k for k in first if votes[k] >= need]
        # sorted() is stable: equal votes keep their order of first appearance.
        return tuple(first[k] for k in sorted(kept, key=lambda k: -votes[k]))

    return Labels(
        keywords=agreed([s.keywords for s in usable]),
        entities=agreed([s.entities for s in usable]),
        input_tokens=tin,
        output_tokens=tout,
    )


def _same_fact(a: ExtractedFact, b: ExtractedFact, overlap: float) -> bool:
    if a.subject != b.subject:
        return False
    wa, wb = _content(a.text), _content(b.text)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= overlap


def combine_facts(samples: Sequence[FactReply], *, overlap: float = 0.5) -> FactReply:
    """One set of facts from ``k`` samples of the same message: those at least half agree on.

    Two facts agree when they are about the same subject and share at least ``overlap`` of
    their content words (Jaccard). Each agreed fact is kept in the words of its first sample
    (sample 0, the greedy one, first); the others are listed in ``dropped``.
    """
    tin = sum(s.input_tokens for s in samples)
    tout = sum(s.output_tokens for s in samples)
    dropped = [d for s in samples for d in s.dropped]
    usable = [s for s in samples if s.failure is None]
    if not usable:
        failure = samples[0].failure if samples else "no sample"
        return FactReply((), tuple(dropped), tin, tout, failure)
    need = _needed(len(usable))
    groups: list[tuple[ExtractedFact, set[int]]] = []
    for i, sample in enumerate(usable):
        for fact in sample.facts:
            group = next((g for g in groups if _same_fact(g[0], fact, overlap)), None)
            if group is None:
                groups.append((fact, {i}))
            else:
                group[1].add(i)
    kept = tuple(f for f, voters in groups if len(voters) >= need)
    dropped.extend(
        f"no agreement ({len(v)} of {len(usable)}): {f.text[:80]}"
        for f, v in groups
        if len(v) < need
    )
    return FactReply(kept, tuple(dropped), tin, tout)
