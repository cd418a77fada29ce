"""Stateful GSM-Symbolic P1 and base-set items, generated at run time from the templates.

The P1 and base-set instance files are not in the data directory (see its ``SOURCE.md``), so the
items come from :mod:`sleeptime_bench.gsm_templates`, restricted to the templates that pass
:mod:`sleeptime_bench.gsm_validate`. Each problem is split into context and question with the
same splitter as P2 (:func:`sleeptime_bench.split.split_context_question`). Nothing is written
to disk: the data is CC BY-NC-ND 4.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sleeptime_bench.data import StatefulItem
from sleeptime_bench.gsm_templates import DEFAULT_SEED, Instance, Split, generate
from sleeptime_bench.gsm_validate import passing_templates
from sleeptime_bench.split import split_context_question

__all__ = ["instance_item", "load_gsm_symbolic"]

_SOURCE = {"p1": "gsm_p1", "symbolic": "gsm_symbolic", "p2": "gsm_p2_generated"}


def instance_item(inst: Instance) -> StatefulItem:
    """Split a generated problem into the stateful item the harness runs.

    Args:
        inst: A generated instance.

    Returns:
        The item: id ``"p1-<template>-<instance>"``, context and question, gold answer.
    """
    context, question = split_context_question(inst.text)
    return StatefulItem(
        id=f"{inst.split}-{inst.index}-{inst.instance}",
        template_id=str(inst.index),
        instance=inst.instance,
        context=context,
        question=question,
        answer=inst.answer,
        source=_SOURCE[inst.split],
        text=inst.text,
    )


def load_gsm_symbolic(
    data_dir: Path,
    split: Split = "p1",
    *,
    templates: Iterable[int] | None = None,
    instances: Iterable[int] = range(50),
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
) -> list[StatefulItem]:
    """Generate Stateful GSM-Symbolic items of the templates that pass validation.

    Items are ordered by (instance, template), as :func:`sleeptime_bench.data.load_gsm_p2`
    orders P2: a prefix covers every template once before any template twice.

    Args:
        data_dir: The data directory (holds ``gsm-symbolic/templates``).
        split: ``"p1"`` or ``"symbolic"`` (``"p2"`` works too, from its templates).
        templates: Template numbers to use (failing ones are left out regardless).
        instances: Instance numbers per template.
        limit: Keep at most this many items.
        seed: The generation seed.

    Returns:
        The items.
    """
    chosen = passing_templates(data_dir, split, templates, seed=seed)
    numbers = list(instances)
    if limit is not None:
        # Generate no more instances than the prefix needs (each takes rejection sampling).
        per = -(-limit // max(1, len(chosen)))
        numbers = numbers[:per]
    items = [instance_item(inst) for inst in generate(chosen, numbers, seed)]
    return items if limit is None else items[:limit]
