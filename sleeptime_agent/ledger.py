"""The run ledger: every sleep-time run and every primary turn, with their tokens.

Sleep-time tokens and test-time tokens are the two sides of the paper's trade; the ledger keeps
them apart so they can be reported and priced separately.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field

from sleeptime_agent.blocks import utcnow

__all__ = ["Ledger", "RunRecord", "RunStatus", "TurnRecord", "count_tokens"]

RunStatus = Literal[
    "running",
    "ok",
    "finished_by_budget",
    "stalled",
    "no_input",
    "conflict",
    "error",
    "cancelled",
    "skipped",
]


class RunRecord(BaseModel):
    """One sleep-time run."""

    run_id: str
    namespace: tuple[str, ...]
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    status: RunStatus = "running"
    reason: str = ""
    steps: int = 0
    edits: list[dict[str, Any]] = Field(default_factory=list)
    failures: list[dict[str, Any]] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    versions_before: dict[str, int] = Field(default_factory=dict)
    versions_after: dict[str, int] = Field(default_factory=dict)
    cursor_before: int = 0
    cursor_after: int = 0
    more_pending: int = 0
    """Messages left for the next run (a run consolidates at most one batch)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens of every model call in the run."""
        return self.input_tokens + self.output_tokens

    @property
    def duration_s(self) -> float | None:
        """Wall time of the run in seconds, once finished."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class TurnRecord(BaseModel):
    """One primary (test-time) turn."""

    namespace: tuple[str, ...]
    thread_id: str
    at: datetime = Field(default_factory=utcnow)
    input_tokens: int = 0
    output_tokens: int = 0
    memory_unavailable: bool = False


class Ledger:
    """Thread-safe in-memory ledger, optionally appended to a JSONL file as records finish."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self.runs: list[RunRecord] = []
        self.turns: list[TurnRecord] = []

    def add_run(self, record: RunRecord) -> None:
        """Record a finished sleep-time run."""
        with self._lock:
            self.runs.append(record)
            self._write("run", record)

    def add_turn(self, record: TurnRecord) -> None:
        """Record a primary turn."""
        with self._lock:
            self.turns.append(record)
            self._write("turn", record)

    def _write(self, kind: str, record: BaseModel) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, **record.model_dump(mode="json")}) + "\n")

    def totals(self) -> dict[str, int]:
        """Sleep-time and test-time token totals."""
        with self._lock:
            return {
                "sleeptime_runs": len(self.runs),
                "sleeptime_input_tokens": sum(r.input_tokens for r in self.runs),
                "sleeptime_output_tokens": sum(r.output_tokens for r in self.runs),
                "primary_turns": len(self.turns),
                "testtime_input_tokens": sum(t.input_tokens for t in self.turns),
                "testtime_output_tokens": sum(t.output_tokens for t in self.turns),
            }


def count_tokens(
    message: BaseMessage, prompt: Sequence[BaseMessage] | None = None
) -> tuple[int, int]:
    """(input, output) tokens of a model call: ``usage_metadata`` when reported, else an estimate.

    The estimate (4 characters a token) keeps budgets working with models that report nothing,
    such as scripted fakes.
    """
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    if usage:
        return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    out_chars = len(str(message.content)) + sum(
        len(json.dumps(tc.get("args", {}))) for tc in getattr(message, "tool_calls", []) or []
    )
    in_chars = sum(len(str(m.content)) for m in prompt or [])
    return (in_chars + 3) // 4, (out_chars + 3) // 4
