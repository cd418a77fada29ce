"""A dependency-free Porter stemmer that follows NLTK's default ``PorterStemmer`` mode.

LoCoMo's ``task_eval/evaluation.py`` stems every token with ``nltk.stem.PorterStemmer()`` before
computing F1. NLTK is a large dependency for one function, so this module re-implements the
Porter (1980) algorithm with NLTK's extensions (its default ``NLTK_EXTENSIONS`` mode): the
irregular-forms pool, words of one or two letters left alone, ``ies``/``ied`` -> ``ie`` in
four-letter words, the stricter ``y`` -> ``i`` rule, ``alli``/``bli``/``fulli``/``logi`` in step
2, and the two-letter ``cvc`` case. It is written from the published algorithm; agreement with
NLTK is checked on the classic test vocabulary in the unit tests, not on NLTK's full word list.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["stem"]

_VOWELS = frozenset("aeiou")
_IRREGULAR: dict[str, str] = {
    form: base
    for base, forms in {
        "sky": ["sky", "skies"],
        "die": ["dying"],
        "lie": ["lying"],
        "tie": ["tying"],
        "news": ["news"],
        "inning": ["innings", "inning"],
        "outing": ["outings", "outing"],
        "canning": ["cannings", "canning"],
        "howe": ["howe"],
        "proceed": ["proceed"],
        "exceed": ["exceed"],
        "succeed": ["succeed"],
    }.items()
    for form in forms
}

_Condition = Callable[[str], bool] | None
_Rule = tuple[str, str, _Condition]


def _cons(word: str, i: int) -> bool:
    ch = word[i]
    if ch in _VOWELS:
        return False
    if ch == "y":
        return i == 0 or not _cons(word, i - 1)
    return True


def _measure(stem: str) -> int:
    seq = "".join("c" if _cons(stem, i) else "v" for i in range(len(stem)))
    return seq.count("vc")


def _m_pos(stem: str) -> bool:
    return _measure(stem) > 0


def _m_gt1(stem: str) -> bool:
    return _measure(stem) > 1


def _has_vowel(stem: str) -> bool:
    return any(not _cons(stem, i) for i in range(len(stem)))


def _double_cons(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _cons(word, len(word) - 1)


def _cvc(word: str) -> bool:
    n = len(word)
    if n >= 3 and _cons(word, n - 3) and not _cons(word, n - 2) and _cons(word, n - 1):
        return word[-1] not in "wxy"
    return n == 2 and not _cons(word, 0) and _cons(word, 1)


def _apply(word: str, rules: list[_Rule]) -> str:
    """Apply the first rule whose suffix matches; its condition decides whether it fires."""
    for suffix, repl, cond in rules:
        if suffix == "*d":
            if _double_cons(word):
                stem = word[:-2]
                return stem + repl if cond is None or cond(stem) else word
            continue
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + repl if cond is None or cond(stem) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return _apply(
        word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)]
    )


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        stem = word[:-3]
        return stem + "ee" if _measure(stem) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            inter = word[: -len(suffix)]
            break
    else:
        return word
    last = inter[-1]
    return _apply(
        inter,
        [
            ("at", "ate", None),
            ("bl", "ble", None),
            ("iz", "ize", None),
            ("*d", last, lambda _stem: last not in "lsz"),
            ("", "e", lambda stem: _measure(stem) == 1 and _cvc(stem)),
        ],
    )


def _step1c(word: str) -> str:
    return _apply(word, [("y", "i", lambda s: len(s) > 1 and _cons(s, len(s) - 1))])


_STEP2: list[_Rule] = [
    ("ational", "ate", _m_pos),
    ("tional", "tion", _m_pos),
    ("enci", "ence", _m_pos),
    ("anci", "ance", _m_pos),
    ("izer", "ize", _m_pos),
    ("bli", "ble", _m_pos),
    ("alli", "al", _m_pos),
    ("entli", "ent", _m_pos),
    ("eli", "e", _m_pos),
    ("ousli", "ous", _m_pos),
    ("ization", "ize", _m_pos),
    ("ation", "ate", _m_pos),
    ("ator", "ate", _m_pos),
    ("alism", "al", _m_pos),
    ("iveness", "ive", _m_pos),
    ("fulness", "ful", _m_pos),
    ("ousness", "ous", _m_pos),
    ("aliti", "al", _m_pos),
    ("iviti", "ive", _m_pos),
    ("biliti", "ble", _m_pos),
    ("fulli", "ful", _m_pos),
]


def _step2(word: str) -> str:
    if word.endswith("alli") and _m_pos(word[:-4]):
        return _step2(word[:-4] + "al")
    # NLTK keeps the "l" of "logi" with the stem for the measure test ("geologi" -> "geolog").
    logi: _Rule = ("logi", "log", lambda _stem: _m_pos(word[:-3]))
    return _apply(word, [*_STEP2, logi])


_STEP3: list[_Rule] = [
    ("icate", "ic", _m_pos),
    ("ative", "", _m_pos),
    ("alize", "al", _m_pos),
    ("iciti", "ic", _m_pos),
    ("ical", "ic", _m_pos),
    ("ful", "", _m_pos),
    ("ness", "", _m_pos),
]
_STEP4: list[_Rule] = [
    ("al", "", _m_gt1),
    ("ance", "", _m_gt1),
    ("ence", "", _m_gt1),
    ("er", "", _m_gt1),
    ("ic", "", _m_gt1),
    ("able", "", _m_gt1),
    ("ible", "", _m_gt1),
    ("ant", "", _m_gt1),
    ("ement", "", _m_gt1),
    ("ment", "", _m_gt1),
    ("ent", "", _m_gt1),
    ("ion", "", lambda s: _m_gt1(s) and s[-1:] in ("s", "t")),
    ("ou", "", _m_gt1),
    ("ism", "", _m_gt1),
    ("ate", "", _m_gt1),
    ("iti", "", _m_gt1),
    ("ous", "", _m_gt1),
    ("ive", "", _m_gt1),
    ("ize", "", _m_gt1),
]


def _step5a(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _cvc(stem)):
            return stem
    return word


def _step5b(word: str) -> str:
    return _apply(word, [("ll", "l", lambda _stem: _measure(word[:-1]) > 1)])


def stem(word: str) -> str:
    """Return the Porter stem of ``word`` (lowercased first), as NLTK's default mode does.

    Args:
        word: One token.

    Returns:
        Its stem, e.g. ``"generalizations"`` -> ``"gener"``.
    """
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 2:
        return w
    for step in (_step1a, _step1b, _step1c, _step2):
        w = step(w)
    w = _apply(w, _STEP3)
    w = _apply(w, _STEP4)
    return _step5b(_step5a(w))
