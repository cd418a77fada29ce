"""Observation dates and relative-date resolution, done by code (``dateparser``), not by a model.

A 1.5B model attached the prompt's own time phrase ("last month") to every fact it extracted, and
mem0 hit the other classic pitfall: relative dates resolved against *today* instead of the day
they were said. Here every relative phrase is resolved against the observation date of its
message (the session date), and written at the granularity the phrase has: "yesterday" is a day,
"last week" is "the week before <date>", "last month" a month, "last year" a year.

``dateparser.search.search_dates`` finds date-like spans; it also reports words such as "We"
(Wednesday), "may" or "now", so only spans carrying a relative word are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import dateparser  # type: ignore[import-untyped]
from dateparser.search import search_dates  # type: ignore[import-untyped]

__all__ = ["ResolvedDate", "format_day", "parse_date", "resolve_relative"]

# Words that make a span relative to the day it was said (a filter on dateparser's spans).
_RELATIVE = frozenset(
    {
        "yesterday",
        "today",
        "tonight",
        "tomorrow",
        "ago",
        "last",
        "next",
        "this",
        "past",
        "previous",
        "coming",
        "in",
    }
)
_UNITS = ("week", "weekend", "month", "year", "day", "days", "weeks", "months", "years")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SETTINGS_BASE = {"PREFER_DATES_FROM": "past", "RETURN_AS_TIMEZONE_AWARE": False}
_TRAILING = re.compile(r"\s+(and|or|but|so|when|that|the|i|we)$", re.IGNORECASE)


@dataclass(frozen=True)
class ResolvedDate:
    """A relative time phrase of a message and what it means on the message's date."""

    phrase: str
    """The words as said ("last week")."""
    when: datetime
    """dateparser's resolution against the observation date."""
    text: str
    """The resolution at the phrase's granularity ("the week before 9 June 2023")."""


def format_day(when: datetime) -> str:
    """``8 May 2023`` (the day-month-year form LoCoMo's gold answers use)."""
    return f"{when.day} {when:%B %Y}"


def parse_date(text: str | None) -> datetime | None:
    """A session or message date in any common form; ``None`` when it cannot be read.

    ``"1:56 pm on 8 May, 2023"`` (LoCoMo), ``"2023/05/21 (Sun) 19:50"`` (LongMemEval), ISO.
    """
    if not text or not text.strip():
        return None
    try:
        parsed = dateparser.parse(text.strip(), settings={"RETURN_AS_TIMEZONE_AWARE": False})
    except Exception:  # dateparser raises assorted errors on odd input; a date is optional
        return None
    return parsed if isinstance(parsed, datetime) else None


def _granular(phrase: str, when: datetime, base: datetime) -> str:
    words = phrase.lower().split()
    future = when > base
    side = "after" if future else "before"
    if "weekend" in words:
        return f"the weekend {side} {format_day(base)}"
    if any(w in ("week", "weeks") for w in words):
        if "this" in words:
            return f"the week of {format_day(base)}"
        return (
            f"the week {side} {format_day(base)}"
            if words[-1] == "week"
            else f"around {format_day(when)}"
        )
    if any(w in ("month", "months") for w in words):
        return f"{when:%B %Y}"
    if any(w in ("year", "years") for w in words):
        return f"{when:%Y}"
    return format_day(when)


def _is_relative(phrase: str) -> bool:
    words = phrase.lower().split()
    if not words:
        return False
    if words[0] in ("yesterday", "today", "tonight", "tomorrow"):
        return len(words) == 1
    if not any(w in _RELATIVE for w in words):
        return False
    return any(w.rstrip("s") in _UNITS or w in _UNITS or w in _WEEKDAYS for w in words) or (
        words[-1] == "ago"
    )


def resolve_relative(text: str, observed: datetime | None) -> list[ResolvedDate]:
    """Relative time phrases of ``text`` resolved against ``observed`` (the session date).

    Args:
        text: One message.
        observed: When it was said; without it nothing can be resolved.

    Returns:
        The phrases found, in order; an empty list when there is none or parsing fails.
    """
    if observed is None or not text.strip():
        return []
    settings = {**_SETTINGS_BASE, "RELATIVE_BASE": observed.replace(tzinfo=None)}
    try:
        found = search_dates(text, languages=["en"], settings=settings)
    except Exception:  # malformed input must never break a consolidation
        return []
    out: list[ResolvedDate] = []
    base = observed.replace(tzinfo=None)
    for raw, when in found or []:
        phrase = _TRAILING.sub("", raw.strip())
        if not _is_relative(phrase):
            continue
        if phrase.lower() in ("today", "tonight"):
            when = base
        elif phrase.lower() == "yesterday":
            when = base - timedelta(days=1)
        out.append(ResolvedDate(phrase, when, _granular(phrase, when, base)))
    return out
