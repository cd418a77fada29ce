"""``sleeptime bench longmemeval``: LongMemEval, three memory conditions, accuracy by type.

Every question comes with its own history (the haystack sessions: only the evidence sessions in
the ``oracle`` split, ~50 sessions in ``s_subset13``). Each history is ingested session by
session into sleep-time memory (default blocks persona / human / anticipation, one namespace per
question), then the question is answered three ways with the same model in the same run: from
the refined memory, from the whole history in the prompt (its most recent turns when it does not
fit), and from the top-k raw turns retrieved by embedding. Answers are graded by the rule-based
:func:`~sleeptime_bench.scoring.judge_longmemeval`, not the official GPT-4o judge; its
limits are listed in the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sleeptime_agent.consolidation import default_blocks
from sleeptime_agent.errors import ConfigurationError
from sleeptime_bench import prompts
from sleeptime_bench.conversations import LmeQuestion, load_longmemeval
from sleeptime_bench.memqa import (
    Dialogue,
    DialogueSession,
    Question,
    Utterance,
    add_options,
    config_from_args,
    round_robin,
    run_from_args,
)
from sleeptime_bench.paths import data_dir, default_out
from sleeptime_bench.scoring import judge_longmemeval

__all__ = ["QUESTION_TYPES", "lme_dialogue", "register", "run_longmemeval", "score_question"]

#: LongMemEval's question types, in report order.
QUESTION_TYPES = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "knowledge-update",
    "temporal-reasoning",
)

_NOTES = [
    "Accuracy is judged by the rule-based judge_longmemeval, a stand-in for LongMemEval's "
    "GPT-4o judge, so it is not comparable with published LongMemEval accuracies. Its limits: "
    "single-session-preference gold answers are rubrics that only a model can judge (token "
    "recall against a rubric is a weak proxy); a prediction that lists the gold among wrong "
    "alternatives, or states it then negates it, counts as correct; paraphrases with other "
    "words count as wrong; numbers must match literally after word-to-digit mapping ('1.5 "
    "hours' vs '90 minutes' fails); a first sentence that refuses makes a non-abstention "
    "answer wrong; any refusal phrase makes an abstention (_abs) answer right.",
    "Each question has its own history, so its sleep-time tokens are amortized over one "
    "question: the worst case for sleep-time compute (in a deployment one memory serves many "
    "questions).",
    "Abstention questions (_abs) are counted in their question type; no condition is told to "
    "abstain (abstention_rate is reported per condition).",
]


def lme_dialogue(question: LmeQuestion) -> Dialogue:
    """One LongMemEval question and its history as a :class:`Dialogue` (default blocks).

    Args:
        question: The question.

    Returns:
        The dialogue.
    """
    sessions = [
        DialogueSession(
            date=s.date,
            utterances=tuple(Utterance(t.role, t.content) for t in s.turns),
        )
        for s in question.sessions
    ]
    return Dialogue(
        key=question.question_id,
        sessions=sessions,
        questions=[
            Question(
                item_id=question.question_id,
                text=question.question,
                gold=question.answer,
                category=question.question_type,
                today=question.question_date,
                meta={"abstention": question.is_abstention},
            )
        ],
        persona=prompts.BENCH_LME_PERSONA,
        instructions=prompts.BENCH_LME_INSTRUCTIONS,
        blocks=[
            b.model_copy(update={"value": prompts.BENCH_LME_PERSONA}) if b.label == "persona" else b
            for b in default_blocks()
        ],
        sleeptime_system=prompts.BENCH_LME_SLEEPTIME_SYSTEM,
    )


def score_question(question: Question, prediction: str) -> tuple[float | None, bool | None]:
    """Rule-based LongMemEval judgement of one prediction."""
    return None, judge_longmemeval(question.item_id, prediction, question.gold or "")


def run_longmemeval(args: argparse.Namespace) -> Path:
    """Run the benchmark from parsed ``sleeptime bench longmemeval`` options."""
    questions = load_longmemeval(data_dir(args.data), args.split)
    span = ""
    if args.range:
        first, last = _span(args.range)
        questions = questions[first : last + 1]
        span = f"questions {first}-{last} of the file, "
    chosen = round_robin(questions, key=lambda q: q.question_type, limit=args.limit)
    dialogues = [lme_dialogue(q) for q in chosen]
    selection = f"split {args.split}: {span}" + (
        f"{len(chosen)} questions taken in turn from each question type in file order"
        if args.limit
        else f"all {len(chosen)} questions"
    )
    notes = list(_NOTES)
    if args.memory_assistant_chars is not None:
        notes.append(
            f"The sleep-time agent read each assistant turn clipped to "
            f"{args.memory_assistant_chars} characters (user turns in full); full-context and "
            "RAG read the turns in full. This bounds ingestion cost; it hurts "
            "single-session-assistant questions about details deep in an assistant reply."
        )
    cfg = config_from_args(args, "longmemeval", selection=selection, notes=notes)
    return run_from_args(
        args, cfg, dialogues, score_question, categories=QUESTION_TYPES, score_kind="accuracy"
    )


def _span(text: str) -> tuple[int, int]:
    """``"50-149"`` -> ``(50, 149)`` (file indexes, both included)."""
    first, sep, last = text.partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        raise ConfigurationError(f"--range wants FIRST-LAST, e.g. 50-149, got {text!r}") from None
    if lo < 0 or hi < lo:
        raise ConfigurationError(f"--range wants 0 <= FIRST <= LAST, got {text!r}")
    return lo, hi


def register(sub: Any) -> None:
    """Add ``sleeptime bench longmemeval``."""
    p = sub.add_parser(
        "longmemeval",
        help="LongMemEval: sleep-time memory vs full context vs raw-turn RAG (accuracy by type)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--split",
        default="oracle",
        choices=["oracle", "s_subset13", "s", "m"],
        help="LongMemEval split (default oracle)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="at most N questions, in turn from each question type",
    )
    p.add_argument(
        "--range",
        default=None,
        metavar="FIRST-LAST",
        help="only the questions with these file indexes (tuning 0-49, report 50-149)",
    )
    p.add_argument(
        "--memory-assistant-chars",
        type=int,
        default=None,
        metavar="N",
        help="clip assistant turns to N characters in the sleep-time transcript only",
    )
    p.add_argument(
        "--rag-chars", type=int, default=600, help="clip each retrieved turn (default 600)"
    )
    add_options(p, rag_k=5, out=default_out("longmemeval"), run=run_longmemeval)
