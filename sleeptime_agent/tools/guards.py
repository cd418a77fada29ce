"""The guards on memory edits: no silent fact loss, no facts the conversation never held.

Both are word-overlap checks, deliberately simple, pure functions of text:
:func:`dropped_facts` finds the facts a whole-block rewrite would lose (the fact-loss guard),
:func:`ungrounded_facts` the sentences the run's transcript and memory do not support (the
grounding guard), and :func:`near_duplicate` an existing line an insert would only restate.
:class:`~sleeptime_agent.tools.editor.MemoryEditor` turns their findings into errors the model
sees.
"""

from __future__ import annotations

import re

__all__ = ["content_words", "dropped_facts", "near_duplicate", "ungrounded_facts"]

_STOP = frozenset(
    "the a an and or of to in on at for with is are was were be been my your his her their "
    "our user users has have had i me he she they it this that from as by not no".split()
)


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` longer than one character, stop words left out."""
    return {w for w in re.findall(r"[\w']+", text.lower()) if len(w) > 1 and w not in _STOP}


def _distinctive(fact: str) -> set[str]:
    """Numbers and mid-sentence capitalised words: the part of a fact that must survive."""
    tokens = re.findall(r"[\w']+", fact)
    return {
        t.lower()
        for i, t in enumerate(tokens)
        if t[0].isdigit() or (i > 0 and t[0].isupper() and t.lower() not in _STOP)
    }


def near_duplicate(new: str, value: str, share: float = 0.8) -> str | None:
    """An existing line that already holds at least ``share`` of ``new``'s content words."""
    words = content_words(new)
    if len(words) < 3:
        return None  # too short to judge; exact repeats are caught separately
    for line in value.split("\n"):
        if len(words & content_words(line)) / len(words) >= share:
            return line
    return None


def _facts(value: str) -> list[str]:
    parts = re.split(r"\n+|(?<=[.!?])\s+(?=[A-Z0-9-])", value)
    return [p.strip(" -*\t") for p in parts if content_words(p)]


def dropped_facts(old: str, new: str, *, removed: str = "", keep: float = 0.5) -> list[str]:
    """Facts of ``old`` that ``new`` no longer holds and ``removed`` does not account for.

    A fact is a line (or sentence) of the old value. It counts as kept when more than ``keep``
    of its content words appear in the new value, or when all its numbers and names
    (mid-sentence capitalised words) do, so "Age: 36" may become "36 years"; it counts as
    accounted for when at least ``keep`` of its words appear in ``removed``. Word overlap is
    deliberately simple: a rewrite may rephrase and merge lines, but not lose a fact silently.
    """
    new_words, removed_words = content_words(new), content_words(removed)
    lost = []
    for fact in _facts(old):
        words = content_words(fact)
        if len(words & new_words) / len(words) > keep:
            continue
        names = _distinctive(fact)
        if names and names <= new_words:
            continue
        if len(words & removed_words) / len(words) >= keep:
            continue
        lost.append(fact)
    return lost


def _stem(word: str) -> str:
    # Plural and possessive endings only: enough for "biologists" to match "biologist".
    word = word.removesuffix("'s")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


_FIELD_LABEL = re.compile(r"^[\w' ]{1,30}:\s+")


def ungrounded_facts(text: str, sources: str, *, support: float = 0.5) -> list[str]:
    """Sentences of ``text`` that ``sources`` does not support.

    A sentence is supported when at least ``support`` of its content words (plural endings
    ignored; a leading field label such as "Name:" left out) occur in ``sources`` and every
    name and number in it (see :func:`dropped_facts`) does too. Rephrasing and shortening
    pass; elaboration the conversation never contained ("Marine biologists also develop new
    technologies ...") and invented names do not.
    """
    known = {_stem(w) for w in content_words(sources)}
    # Names and numbers are looked up among every token: "0" or "7" is not a content word.
    tokens = {_stem(t.lower()) for t in re.findall(r"[\w']+", sources)}
    out = []
    for fact in _facts(text):
        body = _FIELD_LABEL.sub("", fact)
        words = {_stem(w) for w in content_words(body)}
        if not words:
            continue
        names = {_stem(w) for w in _distinctive(body)}
        if len(words & known) / len(words) < support or not names <= tokens:
            out.append(fact)
    return out
