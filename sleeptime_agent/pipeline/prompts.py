"""Prompts of the consolidation pipeline (moved into sleeptime_agent/prompts.py once #13 lands)."""

from __future__ import annotations

__all__ = ["PIPELINE_FACTS_SYSTEM", "PIPELINE_LABELS_SYSTEM", "PIPELINE_MESSAGE"]

#: One message, already attributed, dated and in the third person (by code).
PIPELINE_MESSAGE = "Message said on {day}:\n{line}"

#: Keywords as short spans of the message: what the 1.5B model did well in the probe.
PIPELINE_LABELS_SYSTEM = (
    "You label one message of a conversation for a search index. Reply with its keywords "
    "(the specific things, activities, places and events it mentions, as short spans copied "
    "from the message) and the named entities it mentions (people, places, organisations, "
    "titles). Use words from the message only; empty lists for small talk."
)

#: Atomic facts; ``about`` is pinned by the schema to the speakers (a choice, not free text).
PIPELINE_FACTS_SYSTEM = (
    "You read one message of a conversation between {subjects} and list what it says about "
    "the life of one of them: facts, events, plans, possessions, preferences. Each fact is one "
    "short sentence that names the person and keeps any date given in the message. Questions, "
    "greetings and compliments state no fact: reply with an empty list."
)
