"""Recall memory: every transcript message, indexed under the keys the sleep-time agent wrote.

Each message is one archival note of a hidden per-namespace recall namespace (the block store's
notes, one Chroma collection per namespace): the document is the message rendered in the third
person with its date, followed by its keys (model-written keywords and entities, resolved
dates), so a search finds it by what it means, not only by its words (LongMemEval's
"fact-augmented key expansion": +9.4% recall@k). The metadata keeps the sequence number, the
speaker, the session, the observation date and the line the primary reads.

Search is hybrid: Chroma's vector ranking and a BM25 ranking (``bm25s``) over the same records,
fused by reciprocal rank. mem0 reports that semantic + BM25 beats either alone in every LoCoMo
category. Only messages at or below the consolidation cursor are returned: anything after it
is an uncommitted batch, and the primary reads those messages raw from the transcript tail.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bm25s  # type: ignore[import-untyped]
from bm25s.stopwords import STOPWORDS_EN_PLUS  # type: ignore[import-untyped]

from sleeptime_agent.storage.block_store import ChromaBlockStore, Namespace, Note

# bm25s sets its own logger to DEBUG at import, so "Building index from tokens" reached the
# chat's terminal past the application's WARNING level; its level is the application's again.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

__all__ = [
    "RecallHit",
    "RecallIndex",
    "RecallRecord",
    "focus",
    "recall_namespace",
    "tokenize",
]

_WORDS = re.compile(r"[a-z0-9]+")
_STOP = frozenset(STOPWORDS_EN_PLUS) | {"did", "does", "do", "what", "when", "who", "how"}
_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n+")
_LINE_HEAD = re.compile(r"^(\[[^\]\n]*\]\s*)?[^:\n]{1,40}:\s")  # "[8 May 2023] Jon: "
_RRF_K = 60  # the usual reciprocal-rank constant: ranks matter, raw scores of either side do not


def recall_namespace(namespace: Namespace) -> Namespace:
    """The hidden namespace that holds a namespace's recall records."""
    return (*namespace, "\x00recall")


def _stem(word: str) -> str:
    # Light suffix stripping so "paintings"/"painting"/"painted" meet; not a real stemmer.
    for suffix in ("ings", "ing", "ies", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def tokenize(text: str) -> list[str]:
    """BM25 terms of ``text``: lower-case words, stop words dropped, light stemming."""
    return [_stem(w) for w in _WORDS.findall(text.lower()) if w not in _STOP]


def focus(line: str, query: str, limit: int) -> str:
    """``line`` cut to about ``limit`` characters where it shares the most terms with ``query``.

    A long turn (an assistant's list of five bottles) holds the answer anywhere, and a cut at
    the start loses it. The window is a run of whole sentences; the date and speaker at the
    start of the line are kept, and "[...]" marks what was left out. With no shared term the
    start of the turn is kept, as a plain cut would.

    Args:
        line: a recalled line, ``[date] Speaker: text``.
        query: the question.
        limit: the characters to keep.
    """
    if len(line) <= limit:
        return line
    m = _LINE_HEAD.match(line)
    head = m.group(0) if m else ""
    parts = [p.strip() for p in _SENTENCE_END.split(line[len(head) :]) if p.strip()]
    wanted = set(tokenize(query))
    terms = [wanted & set(tokenize(p)) for p in parts]
    room = max(limit - len(head) - 12, 1)
    best, start, end = -1, 0, 1
    for i in range(len(parts)):
        size, got, j = len(parts[i]), set(terms[i]), i + 1
        while j < len(parts) and size + 1 + len(parts[j]) <= room:
            size += 1 + len(parts[j])
            got |= terms[j]
            j += 1
        if len(got) > best:  # ties keep the earliest window
            best, start, end = len(got), i, j
    text = " ".join(parts[start:end])
    cut = len(text) > room
    return (
        head
        + ("[...] " if start > 0 else "")
        + text[:room]
        + (" [...]" if cut or end < len(parts) else "")
    )


@dataclass(frozen=True)
class RecallRecord:
    """What is indexed for one message."""

    seq: int
    line: str
    """What the primary reads: ``[8 May 2023] Jon: ...``."""
    speaker: str
    session: str
    date: str
    """Observation date, ISO (empty when unknown)."""
    keys: tuple[str, ...] = ()
    """Extra search keys: keywords, entities, resolved dates, facts."""

    def document(self) -> str:
        """The indexed text: the line, then its keys."""
        return self.line if not self.keys else f"{self.line}\nKeys: {'; '.join(self.keys)}"


@dataclass(frozen=True)
class RecallHit:
    """A recalled message and its fused score."""

    seq: int
    line: str
    date: str
    speaker: str
    score: float


@dataclass
class _Bm25:
    cursor: int
    seqs: list[int]
    hits: dict[int, RecallHit]
    model: Any
    speakers: frozenset[str] = frozenset()


@dataclass
class RecallIndex:
    """Recall records of every namespace in one block store.

    Args:
        store: the block store whose notes hold the records.
        candidates: how many records each ranking contributes before fusion.
    """

    store: ChromaBlockStore
    candidates: int = 30
    _bm25: dict[Namespace, _Bm25] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def add(self, namespace: Namespace, records: Sequence[RecallRecord]) -> list[str]:
        """Index records (one note each); returns the note ids."""
        if not records:
            return []
        metas: list[dict[str, Any] | None] = [
            {
                "kind": "recall",
                "seq": r.seq,
                "line": r.line,
                "speaker": r.speaker,
                "session": r.session,
                "date": r.date,
                "keys": list(r.keys),
            }
            for r in records
        ]
        docs = [r.document() for r in records]
        ids = self.store.add_notes(recall_namespace(namespace), docs, metas)
        with self._lock:
            self._bm25.pop(namespace, None)
        return ids

    def all(self, namespace: Namespace, max_seq: int | None = None) -> list[RecallHit]:
        """Every indexed message up to ``max_seq``, one per sequence number, oldest first."""
        notes = self.store.list_notes(recall_namespace(namespace))
        return sorted(_unique(notes, max_seq).values(), key=lambda h: h.seq)

    def _bm25_for(self, namespace: Namespace, cursor: int) -> _Bm25:
        with self._lock:
            cached = self._bm25.get(namespace)
        if cached is not None and cached.cursor == cursor:
            return cached
        # Rebuilt whenever the cursor moves: one listing of the namespace's records (fine at
        # thousands of messages; an incremental index would be needed far beyond that).
        notes = self.store.list_notes(recall_namespace(namespace))
        hits = _unique(notes, cursor)
        seqs = sorted(hits)
        docs = {int(n.metadata.get("seq", -1)): n.text for n in notes}
        corpus = [tokenize(docs.get(s, hits[s].line)) or ["\x00"] for s in seqs]
        model: Any = None
        if corpus:
            model = bm25s.BM25()
            model.index(corpus, show_progress=False)
        built = _Bm25(cursor, seqs, hits, model, frozenset(h.speaker for h in hits.values()))
        with self._lock:
            self._bm25[namespace] = built
        return built

    def search(
        self,
        namespace: Namespace,
        query: str,
        k: int = 10,
        *,
        max_seq: int,
        vector: bool = True,
        bm25: bool = True,
        speaker_boost: bool = False,
    ) -> list[RecallHit]:
        """The ``k`` messages that best match ``query``, best first.

        Args:
            namespace: whose recall memory.
            query: the question or user message.
            k: how many messages.
            max_seq: the consolidation cursor; later records belong to an uncommitted batch.
            vector: use the embedding ranking.
            bm25: use the BM25 ranking.
            speaker_boost: when the query names exactly one speaker, that speaker's turns
                rank higher. Every turn of a speaker carries the name, so neither ranking can
                tell their turns from the other's ("What does Jon do to relax?").
        """
        if k <= 0 or not query.strip() or not (vector or bm25):
            return []
        fused: dict[int, float] = {}
        hits: dict[int, RecallHit] = {}
        if vector:
            notes = self.store.search_notes(recall_namespace(namespace), query, self.candidates)
            ranked = sorted(_unique(notes, max_seq).values(), key=lambda h: -h.score)
            for rank, hit in enumerate(ranked):
                fused[hit.seq] = fused.get(hit.seq, 0.0) + 1.0 / (_RRF_K + rank)
                hits[hit.seq] = hit
        if bm25:
            index = self._bm25_for(namespace, max_seq)
            terms = tokenize(query)
            if index.model is not None and terms:
                n = min(self.candidates, len(index.seqs))
                docs, scores = index.model.retrieve([terms], k=n, show_progress=False)
                rank = 0
                for doc, score in zip(docs[0], scores[0], strict=True):
                    if float(score) <= 0.0:
                        continue
                    seq = index.seqs[int(doc)]
                    fused[seq] = fused.get(seq, 0.0) + 1.0 / (_RRF_K + rank)
                    hits.setdefault(seq, index.hits[seq])
                    rank += 1
        if speaker_boost and fused:
            named = _named_speaker(query, self._bm25_for(namespace, max_seq).speakers)
            if named is not None:
                # A third reciprocal-rank list: the named speaker's candidates in fused order.
                order = sorted(fused, key=lambda s: -fused[s])
                theirs = [s for s in order if hits[s].speaker == named]
                for rank, seq in enumerate(theirs):
                    fused[seq] += 1.0 / (_RRF_K + rank)
        best = sorted(fused, key=lambda s: -fused[s])[:k]
        return [
            RecallHit(hits[s].seq, hits[s].line, hits[s].date, hits[s].speaker, fused[s])
            for s in best
        ]

    def around(
        self,
        namespace: Namespace,
        hits: Sequence[RecallHit],
        *,
        before: int = 0,
        replies: int = 0,
        max_seq: int,
    ) -> list[RecallHit]:
        """``hits`` best first, each followed by the indexed turns said around it.

        A reply ("Yes, last week!") often holds the answer only with the turn it answers, and a
        question that matches the query ("What did you paint?") holds it only with its reply.

        Args:
            namespace: whose recall memory.
            hits: the recalled turns, best first.
            before: the turns said just before each hit.
            replies: for a hit that asks a question, the turns said just after it.
            max_seq: the consolidation cursor.

        A context turn takes its hit's score and appears once, after the best hit that wants it.
        """
        if (before <= 0 and replies <= 0) or not hits:
            return list(hits)
        index = self._bm25_for(namespace, max_seq)
        seen = {h.seq for h in hits}
        out: list[RecallHit] = []
        for hit in hits:
            out.append(hit)
            at = bisect.bisect_left(index.seqs, hit.seq)
            wanted = list(reversed(index.seqs[max(0, at - before) : at])) if before > 0 else []
            if replies > 0 and _asks(hit.line):
                after = bisect.bisect_right(index.seqs, hit.seq)
                wanted += index.seqs[after : after + replies]
            for seq in wanted:
                if seq not in seen:
                    seen.add(seq)
                    h = index.hits[seq]
                    out.append(RecallHit(h.seq, h.line, h.date, h.speaker, hit.score))
        return out


def _named_speaker(query: str, speakers: frozenset[str]) -> str | None:
    """The one speaker ``query`` names (a whole word, any case), or None."""
    lowered = query.lower()
    named = [s for s in speakers if s and re.search(rf"\b{re.escape(s.lower())}\b", lowered)]
    return named[0] if len(named) == 1 else None


def _asks(line: str) -> bool:
    """Whether a turn asks something (its reply then holds the answer)."""
    return "?" in line


def _unique(notes: Sequence[Note], max_seq: int | None) -> dict[int, RecallHit]:
    """One hit per sequence number (a re-run after a crash may have indexed a message twice)."""
    out: dict[int, RecallHit] = {}
    for n in notes:
        meta = n.metadata
        if meta.get("kind") != "recall":
            continue
        seq = int(meta.get("seq", -1))
        if seq < 0 or (max_seq is not None and seq > max_seq):
            continue
        hit = RecallHit(
            seq,
            str(meta.get("line", n.text)),
            str(meta.get("date", "")),
            str(meta.get("speaker", "")),
            n.score,
        )
        if seq not in out or hit.score > out[seq].score:
            out[seq] = hit
    return out
