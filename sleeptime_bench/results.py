"""A resumable JSONL results file (one line per item and condition) and its summary.

A record counts once its line, newline included, is on disk: :meth:`ResultsFile.append` writes
the whole line in one ``write`` on a file opened for appending, then flushes and fsyncs. After a
crash the file may end with a partial line; readers ignore it and the next append cuts it off,
so the interrupted item is simply run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from sleeptime_bench.scoring import wilson_interval

__all__ = ["ConditionSummary", "ResultRecord", "ResultsFile", "summarize"]


class ResultRecord(BaseModel):
    """The outcome of one item under one condition. Unknown fields are kept as extras."""

    model_config = ConfigDict(extra="allow")

    item_id: str
    condition: str
    """E.g. ``"sleeptime-v2-k1"``; ``family``/``verbosity``/``k`` carry its parts for plots."""
    benchmark: str = ""
    family: str | None = None
    """Condition family: ``"baseline"`` or ``"sleeptime"`` (or another system's name)."""
    verbosity: int | None = None
    """Test-time prompt verbosity level (0 = answer only .. 4 = step by step)."""
    k: int | None = None
    """Number of parallel sleep-time runs (the paper's scaling axis)."""
    correct: bool | None = None
    """Whether the answer is right; ``None`` for graded-only benchmarks or errors."""
    score: float | None = None
    """A graded score (LoCoMo F1); for exact-match benchmarks, leave ``None``."""
    prediction: str = ""
    gold: str | float | int | None = None
    testtime_completion_tokens: int = 0
    testtime_prompt_tokens: int = 0
    sleeptime_tokens: int = 0
    """Sleep-time tokens attributed to this item (a shared context's tokens divided by its
    queries, or all of them: the harness decides and says so in its report)."""
    wall_time_s: float = 0.0
    error: str | None = None
    """Set when the run failed; errored records do not count as done."""

    @property
    def key(self) -> tuple[str, str]:
        """``(item_id, condition)``: what makes a record unique."""
        return self.item_id, self.condition


class ResultsFile:
    """Append-only JSONL results with crash-tolerant reading, for resumable benchmark runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._repaired = False

    def _parsed(self) -> tuple[list[ResultRecord], int]:
        """Valid records, and the byte length of the valid prefix of the file.

        Raises:
            ValueError: A line other than the last is not a valid record.
        """
        if not self.path.exists():
            return [], 0
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        # The segment after the last newline is unterminated (empty if the file ends cleanly).
        complete, tail = lines[:-1], lines[-1]
        records: list[ResultRecord] = []
        offset = 0
        valid_end = 0
        for number, raw in enumerate(complete, start=1):
            end = offset + len(raw) + 1
            if raw.strip():
                try:
                    records.append(ResultRecord.model_validate_json(raw))
                except ValueError as exc:
                    if number == len(complete) and not tail.strip():
                        break  # a damaged last line: the crash case; ignore it
                    raise ValueError(f"{self.path}:{number}: not a valid result record") from exc
            offset = valid_end = end
        return records, valid_end

    def records(self) -> list[ResultRecord]:
        """All complete records in file order (a rerun key appears once per run).

        Returns:
            The records; a truncated or damaged last line is skipped.
        """
        return self._parsed()[0]

    def latest(self) -> dict[tuple[str, str], ResultRecord]:
        """The last record of each ``(item_id, condition)``, in first-seen key order."""
        out: dict[tuple[str, str], ResultRecord] = {}
        for r in self.records():
            out[r.key] = r
        return out

    def done_keys(self, include_errors: bool = False) -> set[tuple[str, str]]:
        """The ``(item_id, condition)`` pairs that need not be run again.

        Args:
            include_errors: Count keys whose latest record is an error as done too.

        Returns:
            The finished keys.
        """
        return {k for k, r in self.latest().items() if include_errors or r.error is None}

    def append(self, record: ResultRecord | Mapping[str, Any]) -> ResultRecord:
        """Append one record durably (write, flush, fsync).

        The first append also cuts off a partial or damaged last line left by a crash, so the new
        record starts on a line of its own.

        Args:
            record: A :class:`ResultRecord` or a mapping with its fields.

        Returns:
            The validated record that was written.
        """
        rec = record if isinstance(record, ResultRecord) else ResultRecord.model_validate(record)
        line = json.dumps(rec.model_dump(mode="json"), ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._repaired:
            if self.path.exists():
                _, valid_end = self._parsed()
                if valid_end < self.path.stat().st_size:
                    with self.path.open("r+b") as fh:
                        fh.truncate(valid_end)
            self._repaired = True
        with self.path.open("ab") as fh:
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return rec


class ConditionSummary(BaseModel):
    """Aggregate of one condition's records."""

    condition: str
    n: int
    """Records (latest per item)."""
    n_scored: int
    """Records with ``correct`` set."""
    n_errors: int
    accuracy: float | None
    ci_low: float | None
    """Wilson 95% interval of ``accuracy``."""
    ci_high: float | None
    mean_score: float | None
    mean_testtime_completion_tokens: float
    mean_testtime_prompt_tokens: float
    mean_sleeptime_tokens: float
    mean_wall_time_s: float
    benchmark: str = ""
    family: str | None = None
    verbosity: int | None = None
    k: int | None = None


def _common(values: Iterable[Any]) -> Any:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(
    records: Iterable[ResultRecord | Mapping[str, Any]],
) -> dict[str, ConditionSummary]:
    """Summarize records per condition.

    A key that appears more than once (a rerun) counts once, with its last record. Accuracy and
    its Wilson 95% interval use the records where ``correct`` is set; token and time means use
    every non-error record. ``family``/``verbosity``/``k``/``benchmark`` are carried over when
    all of a condition's records agree on them.

    Args:
        records: Records or mappings (e.g. from :meth:`ResultsFile.records`).

    Returns:
        ``{condition: ConditionSummary}``, conditions in first-seen order.
    """
    latest: dict[tuple[str, str], ResultRecord] = {}
    for raw in records:
        r = raw if isinstance(raw, ResultRecord) else ResultRecord.model_validate(raw)
        latest[r.key] = r
    groups: dict[str, list[ResultRecord]] = {}
    for r in latest.values():
        groups.setdefault(r.condition, []).append(r)
    out: dict[str, ConditionSummary] = {}
    for condition, rs in groups.items():
        ok = [r for r in rs if r.error is None]
        scored = [r for r in ok if r.correct is not None]
        k_right = sum(1 for r in scored if r.correct)
        lo, hi = wilson_interval(k_right, len(scored)) if scored else (None, None)
        scores = [r.score for r in ok if r.score is not None]
        out[condition] = ConditionSummary(
            condition=condition,
            n=len(rs),
            n_scored=len(scored),
            n_errors=len(rs) - len(ok),
            accuracy=k_right / len(scored) if scored else None,
            ci_low=lo,
            ci_high=hi,
            mean_score=_mean(scores) if scores else None,
            mean_testtime_completion_tokens=_mean([r.testtime_completion_tokens for r in ok]),
            mean_testtime_prompt_tokens=_mean([r.testtime_prompt_tokens for r in ok]),
            mean_sleeptime_tokens=_mean([r.sleeptime_tokens for r in ok]),
            mean_wall_time_s=_mean([r.wall_time_s for r in ok]),
            benchmark=_common(r.benchmark for r in rs) or "",
            family=_common(r.family for r in rs),
            verbosity=_common(r.verbosity for r in rs),
            k=_common(r.k for r in rs),
        )
    return out
