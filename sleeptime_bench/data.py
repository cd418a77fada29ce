"""Loaders for the stateful math benchmarks (GSM-Symbolic P2, AIME) and the data directory.

The GSM-Symbolic license (CC BY-NC-ND 4.0) forbids redistributing derived files, so the stateful
split is computed here at load time and never written anywhere. The conversational benchmarks
(LoCoMo, LongMemEval) live in :mod:`sleeptime_bench.conversations` and are re-exported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sleeptime_bench.conversations import (
    LmeQuestion,
    LmeSession,
    LmeTurn,
    LocomoConversation,
    LocomoQA,
    LocomoSession,
    LocomoTurn,
    load_locomo,
    load_longmemeval,
)
from sleeptime_bench.paths import DATA_ENV, data_dir, require_file
from sleeptime_bench.split import split_context_question, split_sentences

__all__ = [
    "DATA_ENV",
    "GSM_P2_FILE",
    "LmeQuestion",
    "LmeSession",
    "LmeTurn",
    "LocomoConversation",
    "LocomoQA",
    "LocomoSession",
    "LocomoTurn",
    "StatefulItem",
    "data_dir",
    "gsm_gold",
    "load_aime",
    "load_gsm_p2",
    "load_locomo",
    "load_longmemeval",
    "split_context_question",
    "split_sentences",
]

#: GSM-Symbolic P2 inside the data directory.
GSM_P2_FILE = "gsm-symbolic/generated_data/GSM_p2.jsonl"
_GOLD = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")


class StatefulItem(BaseModel):
    """One problem split into a context (seen at sleep time) and a question (seen at test time)."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Unique id: ``"p2-<template>-<instance>"`` for GSM P2, ``"2024-I-1"`` for AIME."""
    template_id: str
    """The GSM-Symbolic template (``"0"``..``"49"``), or the AIME id (one instance each)."""
    instance: int
    """The instance of the template (0..49 for P2; Apple scores each instance as a dataset)."""
    context: str
    """Every sentence but the question, in order."""
    question: str
    """The sentence that asks (see :func:`split_context_question`)."""
    answer: float
    """The gold answer as a number."""
    source: str
    """``"gsm_p2"``, ``"aime_2024"`` or ``"aime_2025"``."""
    text: str
    """The whole, unsplit problem (for no-split baselines)."""


def gsm_gold(answer: str) -> float:
    """Parse the gold number after ``####`` on the last line of a GSM8K-style answer.

    Args:
        answer: The ``answer`` field, whose last line is e.g. ``#### 1,234``.

    Returns:
        The number (thousands separators removed).

    Raises:
        ValueError: There is no ``#### <number>`` at the end.
    """
    m = _GOLD.search(answer.strip())
    if m is None:
        raise ValueError(f"no '#### <number>' at the end of the answer: {answer[-80:]!r}")
    return float(m.group(1).replace(",", ""))


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def load_gsm_p2(
    data_dir: Path,
    limit: int | None = None,
    templates: Iterable[int] | None = None,
    instances: Iterable[int] | None = None,
) -> list[StatefulItem]:
    """Load Stateful GSM-Symbolic P2 (2,500 problems: 50 templates x 50 instances).

    Items are ordered by (instance, template), so any prefix taken with ``limit`` spreads over
    all templates, and ``limit=50 * k`` is exactly the first ``k`` complete instances (Apple
    reports accuracy per instance).

    Args:
        data_dir: The data directory (see :func:`data_dir`).
        limit: Keep at most this many items, after filtering.
        templates: Keep only these template ids (0..49).
        instances: Keep only these instances (0..49).

    Returns:
        The items, split into context and question.

    Raises:
        ConfigurationError: The file is missing.
    """
    path = require_file(data_dir, GSM_P2_FILE)
    keep_t = None if templates is None else set(templates)
    keep_i = None if instances is None else set(instances)
    items: list[StatefulItem] = []
    for row in _jsonl(path):
        tid, inst = int(row["id"]), int(row["instance"])
        if (keep_t is not None and tid not in keep_t) or (
            keep_i is not None and inst not in keep_i
        ):
            continue
        context, question = split_context_question(row["question"])
        items.append(
            StatefulItem(
                id=f"p2-{tid}-{inst}",
                template_id=str(tid),
                instance=inst,
                context=context,
                question=question,
                answer=gsm_gold(row["answer"]),
                source="gsm_p2",
                text=row["question"],
            )
        )
    items.sort(key=lambda it: (it.instance, int(it.template_id)))
    return items if limit is None else items[:limit]


def load_aime(data_dir: Path, years: Iterable[int] = (2024, 2025)) -> list[StatefulItem]:
    """Load Stateful AIME from ``aime/aime_<year>.jsonl`` (30 problems a year, integer answers).

    Letta's own AIME split is not public on GitHub; this one uses :func:`split_context_question`
    with LaTeX protection, so the question is usually the final "Find ..." sentence and figures
    (Asymptote, TikZ) stay in the context.

    Args:
        data_dir: The data directory (see :func:`data_dir`).
        years: Which contest years to load.

    Returns:
        The items in file order (I-1..I-15, II-1..II-15 per year).

    Raises:
        ConfigurationError: A year's file is missing.
    """
    items: list[StatefulItem] = []
    for year in years:
        path = require_file(data_dir, f"aime/aime_{year}.jsonl")
        for row in _jsonl(path):
            context, question = split_context_question(row["problem"], latex=True)
            items.append(
                StatefulItem(
                    id=str(row["id"]),
                    template_id=str(row["id"]),
                    instance=0,
                    context=context,
                    question=question,
                    answer=float(int(row["answer"])),
                    source=f"aime_{year}",
                    text=row["problem"],
                )
            )
    return items
