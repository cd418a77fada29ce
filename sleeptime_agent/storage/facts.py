"""Dated facts: self-contained archival notes with metadata, written by the sleep-time agent.

A fact is one archival note of the namespace (the block store's notes, so ``archival_memory_search``
and the existing note listing see it) whose metadata says what it is about and where it came from:
``kind`` ("fact"), ``subject`` (who it is about), ``date`` (the observation date, ISO),
``session``, ``sources`` (transcript sequence numbers), ``max_seq`` (the newest source) and
``supersedes`` (ids of facts it replaces).

Nothing is deleted or rewritten: a fact that replaces another links to it, and readers skip
superseded facts. A near-duplicate of a live fact about the same subject is not stored twice
(cosine similarity of the embeddings at or above ``duplicate_threshold``), which also makes a
re-run after a crash idempotent. Readers only see facts whose sources are all at or below the
consolidation cursor, so a batch that was half written when a run died is never read as if it
were complete; the primary reads those messages raw from the transcript tail instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace, Note

__all__ = ["Fact", "FactStore"]

_KIND = "fact"


@dataclass(frozen=True)
class Fact:
    """One dated, attributed statement."""

    text: str
    subject: str
    date: str = ""
    """Observation date, ISO (empty when unknown)."""
    session: str = ""
    sources: tuple[int, ...] = ()
    """Transcript sequence numbers the fact was taken from."""
    supersedes: tuple[str, ...] = ()
    """Ids of the facts this one replaces."""
    id: str = ""
    """Set once stored."""
    score: float = 1.0
    """Similarity to the query when searched."""

    @property
    def max_seq(self) -> int:
        """The newest source message (0 without sources)."""
        return max(self.sources, default=0)

    def metadata(self) -> dict[str, Any]:
        """The note metadata of this fact."""
        return {
            "kind": _KIND,
            "subject": self.subject,
            "date": self.date,
            "session": self.session,
            "sources": list(self.sources),
            "max_seq": self.max_seq,
            "supersedes": list(self.supersedes),
        }

    def line(self) -> str:
        """How the primary reads it: ``[8 May 2023] Jon lost his job.``.

        The day-month-year form of the recalled turns: with ISO dates the 1.5B model answered
        "when" questions with "[2023-01-20]" (LoCoMo conv-30, tuning).
        """
        if not self.date:
            return self.text
        try:
            when = datetime.fromisoformat(self.date)
        except ValueError:
            return f"[{self.date}] {self.text}"
        return f"[{when.day} {when:%B %Y}] {self.text}"


def _fact(note: Note) -> Fact | None:
    meta = note.metadata
    if meta.get("kind") != _KIND:
        return None
    return Fact(
        text=note.text,
        subject=str(meta.get("subject", "")),
        date=str(meta.get("date", "")),
        session=str(meta.get("session", "")),
        sources=tuple(int(s) for s in meta.get("sources", [])),
        supersedes=tuple(str(s) for s in meta.get("supersedes", [])),
        id=note.id,
        score=note.score,
    )


@dataclass
class FactStore:
    """Facts of every namespace of one block store.

    Args:
        store: the block store whose archival notes hold the facts.
        duplicate_threshold: a new fact this similar to a live fact about the same subject is
            not stored.
    """

    store: ChromaBlockStore
    duplicate_threshold: float = 0.93
    _superseded: dict[Namespace, tuple[int, set[str]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def add(self, namespace: Namespace, facts: Sequence[Fact]) -> list[Fact]:
        """Store the facts that are not near-duplicates; returns those stored, with ids.

        A fact that duplicates one earlier in the same call is skipped too.
        """
        kept: list[Fact] = []
        for fact in facts:
            if not fact.text.strip():
                continue
            if self._duplicate(namespace, fact) or any(
                k.subject == fact.subject and k.text.strip() == fact.text.strip() for k in kept
            ):
                continue
            kept.append(fact)
        if not kept:
            return []
        ids = self.store.add_notes(namespace, [f.text for f in kept], [f.metadata() for f in kept])
        with self._lock:
            self._superseded.pop(namespace, None)
        return [
            Fact(f.text, f.subject, f.date, f.session, f.sources, f.supersedes, i)
            for f, i in zip(kept, ids, strict=True)
        ]

    def _duplicate(self, namespace: Namespace, fact: Fact) -> bool:
        for note in self.store.search_notes(namespace, fact.text, 3):
            other = _fact(note)
            if (
                other is not None
                and other.subject == fact.subject
                and note.score >= self.duplicate_threshold
            ):
                return True
        return False

    def all(self, namespace: Namespace, max_seq: int | None = None) -> list[Fact]:
        """Live facts (not superseded, committed up to ``max_seq``), oldest first."""
        facts = [f for n in self.store.list_notes(namespace) if (f := _fact(n)) is not None]
        dead = {s for f in facts for s in f.supersedes}
        return [f for f in facts if f.id not in dead and (max_seq is None or f.max_seq <= max_seq)]

    def _dead(self, namespace: Namespace, cursor: int) -> set[str]:
        with self._lock:
            cached = self._superseded.get(namespace)
        if cached is not None and cached[0] == cursor:
            return cached[1]
        facts = [f for n in self.store.list_notes(namespace) if (f := _fact(n)) is not None]
        dead = {s for f in facts for s in f.supersedes}
        with self._lock:
            self._superseded[namespace] = (cursor, dead)
        return dead

    def search(self, namespace: Namespace, query: str, k: int = 5, *, max_seq: int) -> list[Fact]:
        """The ``k`` live facts most similar to ``query``, best first."""
        if k <= 0 or not query.strip():
            return []
        dead = self._dead(namespace, max_seq)
        out: list[Fact] = []
        for note in self.store.search_notes(namespace, query, 4 * k):
            fact = _fact(note)
            if fact is None or fact.id in dead or fact.max_seq > max_seq:
                continue
            out.append(fact)
            if len(out) >= k:
                break
        return out
