"""PipelineConsolidator: the consolidation pipeline behind the existing lease, cursor and ledger.

It is a :class:`~sleeptime_agent.consolidation.Consolidator` whose edit step is the pipeline
graph instead of the Letta-style tool loop: the lease, the batching of the backlog, the cursor
that moves only after the batch is written, the ledger records and the foreground gate are the
same code. The recall records and facts of a batch are written before the cursor moves; readers
ignore records past the cursor, so a run killed half-way leaves nothing half-read, and the re-run
writes the batch again (recall keeps one record per message, facts skip near-duplicates).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from sleeptime_agent.consolidation import Consolidator
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.ledger import RunRecord
from sleeptime_agent.pipeline.graph import (
    DEFAULT_RECALL_LINE,
    PipelineContext,
    RecallLine,
    build_pipeline_graph,
)
from sleeptime_agent.pipeline.render import SESSION_ROLE, session_date
from sleeptime_agent.storage.block_store import Namespace
from sleeptime_agent.storage.facts import FactStore
from sleeptime_agent.storage.recall import RecallIndex
from sleeptime_agent.storage.transcript import TranscriptMessage

__all__ = ["PipelineConsolidator"]


@dataclass
class PipelineConsolidator(Consolidator):
    """Consolidates with the pipeline (see :mod:`sleeptime_agent.pipeline.graph`).

    Args:
        keywords: model-written keywords and entities as recall keys.
        facts: model-written atomic facts (dated archival notes, profile blocks).
        profiles: rewrite each subject's profile block from its facts.
        anticipate: model-written likely next questions with answers in the anticipation block
            (one call per run; off by default, not yet measured).
        anticipate_questions: the most questions the anticipation block gets per run.
        samples: samples per message of each model-written layer, combined by agreement
            (1: one greedy call).
        sample_temperature: temperature of samples 1.. (sample 0 is greedy).
        recall_line: what the primary reads of a recalled turn: the words as ``said``, dated
            (default), or the third-person ``rendered`` line.
        names: display name per transcript role (``{"user": "Tomasz"}``).
        subject_labels: profile block label per subject.
        concurrency: model calls in flight.
    """

    keywords: bool = False
    facts: bool = False
    profiles: bool = True
    anticipate: bool = False
    anticipate_questions: int = 3
    samples: int = 1
    sample_temperature: float = 0.7
    recall_line: RecallLine = DEFAULT_RECALL_LINE
    names: dict[str, str] = field(default_factory=dict)
    subject_labels: dict[str, str] = field(default_factory=dict)
    concurrency: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 1:
            raise ConfigurationError(f"samples must be at least 1, got {self.samples}")
        self.recall = RecallIndex(self.store)
        self.fact_store = FactStore(self.store)
        self.pipeline = build_pipeline_graph()
        self._dates: dict[Namespace, tuple[int, datetime | None]] = {}

    def _start_date(self, namespace: Namespace, first_seq: int) -> datetime | None:
        """The date of the last session header before ``first_seq`` (earlier runs saw it)."""
        cached = self._dates.get(namespace)
        if cached is not None and cached[0] == first_seq:
            return cached[1]
        current: datetime | None = None
        for m in self.transcript.since(namespace, 0):
            if m.seq >= first_seq:
                break
            if m.role == SESSION_ROLE:
                current = session_date(m) or current
        return current

    async def _edit(
        self, namespace: Namespace, batch: list[TranscriptMessage], record: RunRecord
    ) -> None:
        blocks = await self.store.alist_blocks(namespace)
        record.versions_before = {b.label: b.version for b in blocks}
        start = await asyncio.to_thread(self._start_date, namespace, batch[0].seq)
        ctx = PipelineContext(
            store=self.store,
            namespace=namespace,
            recall=self.recall,
            fact_store=self.fact_store,
            model=self.model,
            keywords=self.keywords,
            facts=self.facts,
            profiles=self.profiles,
            anticipate=self.anticipate,
            anticipate_questions=self.anticipate_questions,
            samples=self.samples,
            sample_temperature=self.sample_temperature,
            recall_line=self.recall_line,
            ground_in_assistant=self.ground_in_assistant,
            names=dict(self.names),
            subject_labels=dict(self.subject_labels),
            start_date=start,
            gate=self.gate,
            concurrency=self.concurrency,
        )
        state = await self.pipeline.ainvoke({"messages": batch}, context=ctx)
        last = start
        for m in batch:
            if m.role == SESSION_ROLE:
                last = session_date(m) or last
        self._dates[namespace] = (batch[-1].seq + 1, last)
        record.steps = int(state.get("calls", 0))
        record.input_tokens = int(state.get("input_tokens", 0))
        record.output_tokens = int(state.get("output_tokens", 0))
        record.failures = list(state.get("failures", []))
        record.edits = [
            {"tool": "recall_index", "count": int(state.get("indexed", 0))},
            {"tool": "fact_insert", "count": int(state.get("stored_facts", 0))},
            *({"tool": "profile_rewrite", "label": label} for label in state.get("profiles", [])),
            *(
                [{"tool": "anticipation_rewrite", "count": int(state.get("anticipated", 0))}]
                if state.get("anticipated")
                else []
            ),
        ]
        record.status = "ok"
        after = await self.store.alist_blocks(namespace)
        record.versions_after = {b.label: b.version for b in after}
