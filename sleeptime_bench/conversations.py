"""Typed records and loaders for the conversational memory benchmarks: LoCoMo and LongMemEval."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sleeptime_agent.errors import ConfigurationError
from sleeptime_bench.paths import require_file

__all__ = [
    "LOCOMO_CATEGORIES",
    "LOCOMO_FILE",
    "LONGMEMEVAL_FILES",
    "LmeQuestion",
    "LmeSession",
    "LmeTurn",
    "LocomoConversation",
    "LocomoQA",
    "LocomoSession",
    "LocomoTurn",
    "load_locomo",
    "load_longmemeval",
]

LOCOMO_FILE = "locomo/locomo10.json"
#: The community names of LoCoMo's QA categories (the file itself only has the numbers).
LOCOMO_CATEGORIES: dict[int, str] = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
#: LongMemEval splits and their files under ``longmemeval/``.
LONGMEMEVAL_FILES: dict[str, str] = {
    "oracle": "longmemeval_oracle.json",
    "s_subset13": "longmemeval_s_cleaned_subset13.json",
    "s": "longmemeval_s_cleaned.json",
    "m": "longmemeval_m_cleaned.json",
}
_FROZEN = ConfigDict(frozen=True)
_DIA_ID = re.compile(r"^D(\d+):(\d+)$")
_SESSION_KEY = re.compile(r"^session_(\d+)$")


def _as_text(value: object) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- LoCoMo


class LocomoTurn(BaseModel):
    """One dialogue turn. Image turns carry a BLIP caption of the shared photo."""

    model_config = _FROZEN

    dia_id: str
    speaker: str
    text: str
    blip_caption: str | None = None
    img_url: list[str] = Field(default_factory=list)


class LocomoSession(BaseModel):
    """One session of a LoCoMo conversation."""

    model_config = _FROZEN

    index: int
    date_time: str
    turns: list[LocomoTurn]

    @property
    def when(self) -> datetime:
        """``date_time`` parsed; the file's format is ``"1:56 pm on 8 May, 2023"``."""
        return datetime.strptime(self.date_time, "%I:%M %p on %d %B, %Y")


class LocomoQA(BaseModel):
    """One LoCoMo question with its gold answer, evidence turn ids and category (1..5)."""

    model_config = _FROZEN

    question: str
    answer: str | None = None
    evidence: list[str] = Field(default_factory=list)
    category: int
    adversarial_answer: str | None = None

    @field_validator("answer", "adversarial_answer", mode="before")
    @classmethod
    def _number_to_text(cls, value: object) -> str | None:
        return _as_text(value)  # a few answers are ints (2022, 3)

    @property
    def category_name(self) -> str:
        """The community name of the category ("multi-hop", ..., "adversarial")."""
        return LOCOMO_CATEGORIES.get(self.category, str(self.category))

    @property
    def evidence_ids(self) -> list[str]:
        """``evidence`` cleaned up.

        ``"D8:6; D9:17"`` is split, ``"D:11:26"`` and ``"D30:05"`` are fixed, ``"D"`` is dropped.
        Two ids still name no turn (``conv-42`` ``D10:19``, ``conv-47`` ``D4:36``).
        """
        out: list[str] = []
        for raw in self.evidence:
            for part in re.split(r"[;,\s]+", raw):
                m = _DIA_ID.match(part.replace("D:", "D", 1))
                if m:
                    out.append(f"D{int(m.group(1))}:{int(m.group(2))}")
        return out


class LocomoConversation(BaseModel):
    """A LoCoMo conversation: two speakers, dated sessions of turns, and its QA items."""

    model_config = _FROZEN

    sample_id: str
    speaker_a: str
    speaker_b: str
    sessions: list[LocomoSession]
    qa: list[LocomoQA]

    def turn(self, dia_id: str) -> LocomoTurn:
        """Return the turn with this ``dia_id`` (e.g. ``"D1:3"``).

        Raises:
            KeyError: No such turn.
        """
        for session in self.sessions:
            for t in session.turns:
                if t.dia_id == dia_id:
                    return t
        raise KeyError(dia_id)


def _locomo_conversation(raw: dict[str, Any]) -> LocomoConversation:
    conv = raw["conversation"]
    sessions: list[LocomoSession] = []
    for key, turns in conv.items():
        m = _SESSION_KEY.match(key)
        # conv-26 has date_time keys for sessions 20..35 with no turns: those are skipped.
        if m is None or not turns:
            continue
        n = int(m.group(1))
        sessions.append(
            LocomoSession(index=n, date_time=conv[f"session_{n}_date_time"], turns=turns)
        )
    sessions.sort(key=lambda s: s.index)
    return LocomoConversation(
        sample_id=raw["sample_id"],
        speaker_a=conv["speaker_a"],
        speaker_b=conv["speaker_b"],
        sessions=sessions,
        qa=raw["qa"],
    )


def load_locomo(data_dir: Path) -> list[LocomoConversation]:
    """Load LoCoMo10 (10 conversations, 272 sessions, 5,882 turns, 1,986 QA items).

    The generated annotations (``event_summary``, ``observation``, ``session_summary``) are not
    loaded: they are model output, not ground truth.

    Args:
        data_dir: The data directory.

    Returns:
        The conversations, in file order.

    Raises:
        ConfigurationError: ``locomo/locomo10.json`` is missing.
    """
    path = require_file(data_dir, LOCOMO_FILE)
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [_locomo_conversation(c) for c in raw]


# --------------------------------------------------------------------------- LongMemEval


class LmeTurn(BaseModel):
    """One chat turn; ``has_answer`` marks the turns holding the evidence (oracle split)."""

    model_config = _FROZEN

    role: Literal["user", "assistant"]
    content: str
    has_answer: bool = False


class LmeSession(BaseModel):
    """One dated haystack session."""

    model_config = _FROZEN

    session_id: str
    date: str
    turns: list[LmeTurn]

    @property
    def when(self) -> datetime:
        """``date`` parsed; the format is ``"2023/05/21 (Sun) 19:50"``."""
        return datetime.strptime(self.date, "%Y/%m/%d (%a) %H:%M")


class LmeQuestion(BaseModel):
    """One LongMemEval question with its haystack."""

    model_config = _FROZEN

    question_id: str
    question_type: str
    question: str
    answer: str
    question_date: str
    sessions: list[LmeSession]
    answer_session_ids: list[str]

    @field_validator("answer", mode="before")
    @classmethod
    def _number_to_text(cls, value: object) -> str | None:
        return _as_text(value)  # 32 oracle answers are ints

    @property
    def is_abstention(self) -> bool:
        """Abstention questions (id suffix ``_abs``) have no answer in the history."""
        return self.question_id.endswith("_abs")


def _lme_question(raw: dict[str, Any]) -> LmeQuestion:
    sessions = [
        LmeSession(session_id=sid, date=date, turns=turns)
        for sid, date, turns in zip(
            raw["haystack_session_ids"],
            raw["haystack_dates"],
            raw["haystack_sessions"],
            strict=True,
        )
    ]
    return LmeQuestion(
        question_id=raw["question_id"],
        question_type=raw["question_type"],
        question=raw["question"],
        answer=raw["answer"],
        question_date=raw["question_date"],
        sessions=sessions,
        answer_session_ids=raw["answer_session_ids"],
    )


def load_longmemeval(data_dir: Path, split: str = "oracle") -> list[LmeQuestion]:
    """Load a LongMemEval split.

    Args:
        data_dir: The data directory.
        split: ``"oracle"`` (500 questions, evidence sessions only), ``"s_subset13"`` (13
            LongMemEval_S questions with ~50-session haystacks), or ``"s"``/``"m"`` when the full
            cleaned files have been put in ``longmemeval/``.

    Returns:
        The questions, in file order.

    Raises:
        ConfigurationError: Unknown split, or its file is missing.
    """
    if split not in LONGMEMEVAL_FILES:
        raise ConfigurationError(
            f"unknown LongMemEval split {split!r}; choose one of {sorted(LONGMEMEVAL_FILES)}"
        )
    path = require_file(data_dir, f"longmemeval/{LONGMEMEVAL_FILES[split]}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [_lme_question(q) for q in raw]
