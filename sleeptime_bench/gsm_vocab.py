"""The vocabularies GSM-Symbolic templates sample from, which Apple did not release as data.

Templates write ``sample(names_female)``, ``sample(multiple_ice + multi_times)``,
``sample(fraction_alph)`` and so on. The word lists below were rebuilt from what Apple's own
``GSM_p2.jsonl`` instances show in those slots (every surface seen there is listed; the lists
were completed with the defaults the templates' slots carry and with the obvious members of a
closed set, e.g. all weekdays). Numeric vocabularies are ``(surface, value)`` pairs: the problem
shows ``"twice"`` or ``"one-third"`` and the expressions compute with ``2`` or ``1/3``.

:func:`word_value` reads a number written in words (``"three times"``, ``"a quarter"``,
``"two-fifths"``) for the defaults of numeric slots, which are written that way.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["NUMBER_WORDS", "VOCABULARIES", "spell_number", "word_value"]

#: Cardinals and the ordinals used as denominators.
NUMBER_WORDS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "a": 1,
    "an": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_TENS = frozenset({"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"})
_DENOMINATORS: dict[str, int] = {
    "half": 2,
    "halves": 2,
    "third": 3,
    "thirds": 3,
    "fourth": 4,
    "fourths": 4,
    "quarter": 4,
    "quarters": 4,
    "fifth": 5,
    "fifths": 5,
    "sixth": 6,
    "sixths": 6,
    "seventh": 7,
    "sevenths": 7,
    "eighth": 8,
    "eighths": 8,
    "ninth": 9,
    "ninths": 9,
    "tenth": 10,
    "tenths": 10,
}
_MULTIPLES: dict[str, int] = {
    "once": 1,
    "twice": 2,
    "thrice": 3,
    "double": 2,
    "triple": 3,
    "quadruple": 4,
    "quintuple": 5,
}


def word_value(text: str) -> int | float | None:
    """The number a word or phrase stands for, as the templates write them.

    ``"twice"`` -> 2, ``"four times"`` -> 4, ``"three"`` -> 3, ``"half"`` -> 0.5,
    ``"a quarter"`` -> 0.25, ``"three quarters"`` -> 0.75, ``"two-fifths"`` -> 0.4,
    ``"1/16"`` -> 0.0625, ``"40%"`` -> 0.4.

    Args:
        text: The phrase.

    Returns:
        The value, or ``None`` when the phrase is not a number.
    """
    s = " ".join(text.strip().lower().replace("-", " ").split())
    if not s:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", s)
    if m:
        return float(m.group(1)) / float(m.group(2)) if float(m.group(2)) else None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", s)
    if m:
        return float(m.group(1)) / 100
    if re.fullmatch(r"\d+", s):
        return int(s)
    if re.fullmatch(r"\d*\.\d+", s):
        return float(s)
    if s in _MULTIPLES:
        return _MULTIPLES[s]
    words = s.removesuffix(" times").split() if s.endswith(" times") else s.split()
    if s.endswith(" times") and len(words) == 1:
        return word_value(words[0])
    if len(words) == 1:
        if words[0] in NUMBER_WORDS and words[0] not in ("a", "an"):
            return NUMBER_WORDS[words[0]]
        if words[0] in _DENOMINATORS:
            return 1 / _DENOMINATORS[words[0]]  # "half", "third", "quarter"
        return None
    if len(words) == 2 and words[0] in _TENS and NUMBER_WORDS.get(words[1], 10) < 10:
        return NUMBER_WORDS[words[0]] + NUMBER_WORDS[words[1]]  # "forty-two"
    if len(words) == 2 and words[0] in NUMBER_WORDS and words[1] in _DENOMINATORS:
        return NUMBER_WORDS[words[0]] / _DENOMINATORS[words[1]]
    if words == ["one", "and", "a", "half"]:
        return 1.5
    if "hundred" in words:
        head, _, tail = s.partition(" hundred")
        hundreds, rest = word_value(head), word_value(tail.removeprefix(" and ")) if tail else 0
        if isinstance(hundreds, int) and isinstance(rest, int):
            return hundreds * 100 + rest
    return None


_UNITS = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS_WORDS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell_number(n: int) -> str:
    """``35`` -> ``"thirty five"``: how Apple's ``numbers_within`` slots show a number.

    Apple's P2 instances write ``"thirty five"`` without a hyphen (p2/0007); 0..999.

    Args:
        n: A whole number from 0 to 999.

    Returns:
        The number in words.

    Raises:
        ValueError: Out of range.
    """
    if not 0 <= n <= 999:
        raise ValueError(f"cannot spell {n}")
    if n < 10:
        return _UNITS[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS_WORDS[tens] + (f" {_UNITS[unit]}" if unit else "")
    hundreds, rest = divmod(n, 100)
    return f"{_UNITS[hundreds]} hundred" + (f" and {spell_number(rest)}" if rest else "")


def _pairs(surfaces: list[str]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for surface in surfaces:
        value = word_value(surface)
        if value is None:
            raise ValueError(f"no value for vocabulary word {surface!r}")
        out.append((surface, value))
    return out


_FEMALE = (
    "Aisha Amelia Ananya Ava Beatriz Camila Chen Daphne Elena Emma Fatima Gabrielle Haruka "
    "Isabella Jasmine Kayla Keisha Kimia Leilani Mei Mia Nadia Nia Olga Olivia Priya Quinn Rania "
    "Roya Sakura Sofia Sophia Tara Uma Valentina Valeria Winnie Xena Yara Zahra"
).split()
_MALE = (
    "Alejandro Ali Andre Arash Arjun Benjamin Bodhi Carlos DeShawn Diego Esteban Faisal Gabriel "
    "Hiroshi Ibrahim Jamal James Jin Kai Leon Liam Luca Luis Mateo Mohammed Noah Oliver Oscar "
    "Pavel Qasim Ravi Sanjay Santiago Tariq Theo Thiago Umar Viktor Wei Xavier Yuki Yusuf"
).split()

#: Every vocabulary a template names, by the name it uses.
VOCABULARIES: dict[str, list[Any]] = {
    "names_female": _FEMALE,
    "names_male": _MALE,
    "names": sorted(set(_FEMALE + _MALE)),
    "cities": [
        "Amsterdam",
        "Auckland",
        "Bangkok",
        "Beijing",
        "Berlin",
        "Buenos Aires",
        "Cairo",
        "Cape Town",
        "Dubai",
        "Hanoi",
        "Helsinki",
        "Istanbul",
        "Lisbon",
        "London",
        "Los Angeles",
        "Marrakech",
        "Mexico City",
        "Moscow",
        "Mumbai",
        "Nairobi",
        "New York City",
        "Reykjavik",
        "Seoul",
        "Singapore",
        "Stockholm",
        "Sydney",
        "São Paulo",
        "Tokyo",
        "Toronto",
        "Vienna",
    ],
    "colors": "black blue green orange pink purple red teal white yellow".split(),
    "currencies_sym": ["$", "€", "¥", "₣", "₺", "£"],
    "fruits": (
        "apple apricot banana grape kiwi orange pear pineapple plum pomegranate watermelon"
    ).split(),
    "sports": "badminton basketball cricket football tennis volleyball".split(),
    "weekdays": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    "weights_sm": ["ounce", "gram"],
    "weights_med": ["pound", "kilogram"],
    "length_lg": ["mile", "kilometer"],
    "multiple_ice": _pairs(["twice", "thrice"]),
    "multi_times": _pairs(["two times", "three times", "four times", "five times"]),
    "multiple": _pairs(["double", "triple", "quadruple", "quintuple"]),
    "fractions": _pairs(
        ["half", "a third", "a quarter", "a fifth", "a sixth", "a seventh", "an eighth"]
        + ["a ninth", "a tenth", "1/2", "1/3", "1/4", "1/5", "1/6", "1/7", "1/8", "1/9", "1/10"]
    ),
    # Ordered: a template takes fraction_nums[:4] (its instances show 1/2, 1/3, 1/4, 2/3).
    "fraction_nums": _pairs(
        ["1/2", "1/3", "1/4", "2/3", "1/5", "1/6", "1/7", "1/8", "1/9", "1/10", "2/4", "2/5"]
    ),
    "fraction_alph": _pairs(
        [
            "one-half",
            "one-third",
            "one-fourth",
            "one-fifth",
            "one-sixth",
            "one-seventh",
            "one-eighth",
            "one-ninth",
            "one-tenth",
            "two-thirds",
            "two-fourths",
            "two-fifths",
            "two-sixths",
            "three-fourths",
            "three-fifths",
            "three-sixths",
            "four-fifths",
        ]
    ),
    "fraction_alnum": _pairs(
        [
            "1/2",
            "1/3",
            "1/4",
            "1/5",
            "1/6",
            "1/7",
            "1/8",
            "1/9",
            "1/10",
            "2/3",
            "2/4",
            "2/5",
            "3/4",
            "3/5",
            "4/5",
            "one-half",
            "one-third",
            "one-fourth",
            "one-fifth",
            "one-sixth",
            "one-seventh",
            "one-eighth",
            "one-ninth",
            "one-tenth",
            "two-thirds",
            "two-fourths",
            "two-fifths",
            "two-sixths",
            "three-fourths",
            "three-fifths",
            "three-sixths",
            "four-fifths",
            "four-sixths",
            "five-sixths",
        ]
    ),
    "fraction_decimals": _pairs(["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]),
}
