"""Who said what, when: attribution and third-person rendering of transcript messages, by code.

The committed Letta-style runs filed facts under the wrong speaker and copied first-person lines
("I love painting") into memory, where nobody can tell whose they are. Code does this reliably:
each message gets its speaker's name, its observation date (the date of the session it belongs
to, else when it was recorded), its relative dates resolved against that date, and a
third-person rendering in which the speaker's first-person pronouns become the name (and, in a
two-party conversation, "you" becomes the other party).

Session boundaries arrive as transcript messages with role ``"session"`` whose text carries the
date (``"--- Session 3, 1:56 pm on 8 May, 2023 ---"``); a chat transcript has none, and its
messages are dated by their own timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sleeptime_agent.pipeline.dates import ResolvedDate, format_day, parse_date, resolve_relative
from sleeptime_agent.storage.transcript import TranscriptMessage

__all__ = [
    "SESSION_ROLE",
    "Observation",
    "annotate_dates",
    "observe",
    "session_date",
    "third_person",
]

#: Role of a transcript message that opens a dated session (its text holds the date).
SESSION_ROLE = "session"
_SESSION_DATE = re.compile(r"^-*\s*session\s*\d*\s*[,:]?\s*(?P<date>.*?)\s*-*\s*$", re.I)

# Verb agreement after "I" -> a name. Only what keeps the text readable; not a grammar.
_AGREE = {
    "am": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "don't": "doesn't",
    "haven't": "hasn't",
    "dont": "doesnt",
}
_KEEP = frozenset(
    "was were did had can could will would should might must may shall can't couldn't won't "
    "wouldn't shouldn't didn't wasn't got went made saw took came found felt thought knew told "
    "said began bought brought met left lost won ran wrote read gave kept heard sat spent taught "
    "caught built sent became chose fell grew drew ate drank flew forgot held led paid put quit "
    "rode sang sold slept spoke stood swam threw understood woke wore gotta gonna wanna used "
    "too also just really always never still actually usually often sometimes totally "
    "definitely recently finally even only already kinda sorta mean".split()
)
_ADVERBS = frozenset(
    "really just also always never still actually usually often sometimes totally definitely "
    "recently finally even only already kinda sorta truly absolutely".split()
)
_CONTRACTIONS = {"i'm": "is", "i've": "has", "i'll": "will", "i'd": "would"}
_WORD = re.compile(r"[A-Za-z']+|[^A-Za-z']+")


@dataclass(frozen=True)
class Observation:
    """One transcript message, attributed, dated and rendered for memory."""

    seq: int
    session: str
    """The thread (or session) the message belongs to."""
    role: str
    speaker: str
    """The name the message is attributed to ("Jon", "the user", "the assistant")."""
    observed: datetime | None
    """The observation date: the session's date, else when the message was recorded."""
    text: str
    """The message as said."""
    rendered: str
    """Third person, names for pronouns, relative dates followed by their resolution."""
    dates: tuple[ResolvedDate, ...] = field(default_factory=tuple)

    @property
    def day(self) -> str:
        """The observation date as ``8 May 2023`` (empty when unknown)."""
        return format_day(self.observed) if self.observed else ""

    def line(self) -> str:
        """``[8 May 2023] Jon: <rendered>``: how the primary reads a recalled turn."""
        when = f"[{self.day}] " if self.day else ""
        return f"{when}{self.speaker}: {self.rendered}"

    def said_line(self) -> str:
        """``[8 May 2023] Jon: <as said, relative dates resolved>``: the words, not a rendering."""
        when = f"[{self.day}] " if self.day else ""
        return f"{when}{self.speaker}: {annotate_dates(self.text, self.dates)}"


def session_date(message: TranscriptMessage) -> datetime | None:
    """The date a session-header message announces (``None`` for other messages)."""
    if message.role != SESSION_ROLE:
        return None
    m = _SESSION_DATE.match(message.content.strip())
    return parse_date(m.group("date") if m else message.content)


def _verb(word: str) -> str:
    low = word.lower()
    if low in _AGREE:
        return _AGREE[low]
    if low in _KEEP or low.endswith(("ed", "ing")) or not word.isalpha() or not word.islower():
        return word
    if low.endswith(("s", "sh", "ch", "x", "o", "z")):
        return word + "es"
    if len(low) > 2 and low.endswith("y") and low[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def third_person(text: str, speaker: str, listener: str | None = None) -> str:
    """Rewrite a message so that it names its speaker instead of saying "I".

    Args:
        text: The message as said.
        speaker: Whose message it is.
        listener: Who "you" is (the other party of a two-party conversation), if known.

    Returns:
        ``"I lost my job"`` -> ``"Jon lost Jon's job"``; ``"you"`` -> the listener.
    """
    tokens = _WORD.findall(text)
    out: list[str] = []
    agree_next = False
    for tok in tokens:
        low = tok.lower()
        if not tok[0].isalpha() and tok[0] != "'":
            out.append(tok)
            continue
        if agree_next:
            if low in _ADVERBS:
                out.append(tok)
                continue
            out.append(_verb(tok))
            agree_next = False
            continue
        if low in _CONTRACTIONS:
            out.append(f"{speaker} {_CONTRACTIONS[low]}")
        elif low == "i":
            out.append(speaker)
            agree_next = True
        elif low in ("me", "myself"):
            out.append(speaker)
        elif low in ("my", "mine"):
            out.append(f"{speaker}'s")
        elif listener and low in ("you", "yourself"):
            out.append(listener)
        elif listener and low in ("your", "yours"):
            out.append(f"{listener}'s")
        elif listener and low in ("you're", "you've", "you'll", "you'd"):
            aux = {"you're": "is", "you've": "has", "you'll": "will", "you'd": "would"}[low]
            out.append(f"{listener} {aux}")
        else:
            out.append(tok)
    rendered = "".join(out)
    return rendered[:1].upper() + rendered[1:] if rendered else rendered


def annotate_dates(text: str, dates: Sequence[ResolvedDate]) -> str:
    """Follow each relative phrase of ``text`` by its resolution: ``yesterday (7 May 2023)``."""
    for d in dates:
        idx = text.find(d.phrase)
        if idx < 0:
            idx = text.lower().find(d.phrase.lower())
        if idx < 0:
            continue
        end = idx + len(d.phrase)
        if text[end : end + 2] == " (":
            continue  # already resolved (a fact written from a rendered message)
        text = f"{text[:end]} ({d.text}){text[end:]}"
    return text


def observe(
    messages: Sequence[TranscriptMessage],
    *,
    names: Mapping[str, str] | None = None,
    start_date: datetime | None = None,
) -> list[Observation]:
    """Attribute, date and render ``messages`` (oldest first); session headers are consumed.

    Args:
        messages: Transcript messages, oldest first; role ``"session"`` opens a dated session.
        names: Display name per role (default: ``user`` -> "the user", ``assistant`` -> "the
            assistant"; any other role is a speaker's name, as in LoCoMo).
        start_date: The date in force before the first message (the last session header seen
            by an earlier run).

    Returns:
        One observation per non-header message.
    """
    shown = {"user": "the user", "assistant": "the assistant", **(names or {})}
    current = start_date
    speakers: list[str] = []
    out: list[Observation] = []
    for m in messages:
        if m.role == SESSION_ROLE:
            current = session_date(m) or current
            continue
        speaker = shown.get(m.role, m.role)
        if speaker not in speakers:
            speakers.append(speaker)
        others = [s for s in speakers if s != speaker]
        listener = others[-1] if len(others) == 1 else None
        if listener is None and m.role in ("user", "assistant"):
            listener = shown["assistant" if m.role == "user" else "user"]
        observed = current or m.created_at
        dates = tuple(resolve_relative(m.content, observed))
        rendered = annotate_dates(third_person(m.content, speaker, listener), dates)
        out.append(
            Observation(
                seq=m.seq,
                session=m.thread_id,
                role=m.role,
                speaker=speaker,
                observed=observed,
                text=m.content,
                rendered=rendered,
                dates=dates,
            )
        )
    return out
