"""Scoring: numeric answers, LoCoMo token F1, a rule-based LongMemEval judge, Wilson intervals.

Numbers are compared as numbers, never as strings: the paper's scripts count ``"45"`` against a
gold ``"45.0"`` as wrong.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

from sleeptime_bench._porter import stem

__all__ = [
    "REFUSAL_PHRASES",
    "extract_answer",
    "judge_longmemeval",
    "locomo_f1",
    "locomo_multi_f1",
    "mentions_number",
    "normalize_locomo",
    "numbers_equal",
    "parse_number",
    "score_aime",
    "score_gsm",
    "score_locomo",
    "wilson_interval",
]

# ----------------------------------------------------------------------------- numbers

# A number: "1,234.5", "-3", ".5", "45". The sign only counts when it is not a hyphen
# ("4-day", "16-8").
_NUM = r"(?:(?<![\w)\]])-)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_NUM_RE = re.compile(_NUM)
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_FRAC_SHORT_RE = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")  # \frac12
_SLASH_RE = re.compile(rf"^({_NUM})\s*/\s*({_NUM})$")
_ANSWER_IS_RE = re.compile(
    r"(?:\b(?:final|the)\s+answer\s*(?:is\b|=|:)?|\banswer\s*(?:is\b|=|:))\s*:?\s*"
    r"(?:\*\*|\$|\\\(|\\\[|\s|[£€¥₺₣]|\\\$)*"
    rf"({_NUM}(?:\s*/\s*{_NUM})?)",
    re.IGNORECASE,
)
_HASHES_RE = re.compile(rf"####\s*\$?\s*({_NUM})")


def _clean_latex(s: str) -> str:
    """Strip the LaTeX decorations a boxed answer tends to carry around a number."""
    s = _FRAC_RE.sub(r"(\1)/(\2)", s)
    s = _FRAC_SHORT_RE.sub(r"(\1)/(\2)", s)
    s = re.sub(r"\\(?:text|mathrm|mbox|textbf)\{([^{}]*)\}", r" \1 ", s)
    s = s.replace("{,}", ",").replace("\\,", "").replace("\\!", "").replace("\\ ", " ")
    s = re.sub(r"\\%|%|\\\$|\$|\^\s*\{?\\circ\}?|\\circ|\\left|\\right|[£€¥₺₣]", "", s)
    return s.strip()


def parse_number(text: str | float | int | None) -> float | None:
    r"""Parse one number written the way answers are written.

    Accepts ``"45"``, ``"45.0"``, ``"$45"``, ``"\$45"``, ``"45%"``, ``"1,234"``, ``"-3"``,
    ``"3/4"``, ``"\frac{3}{4}"``, ``"45 dollars"``. When the text holds several numbers, the
    last one wins (``"x = 5"`` -> 5).

    Args:
        text: The text, or an already numeric value.

    Returns:
        The number, or ``None`` when there is none.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text) if math.isfinite(text) else None
    s = _clean_latex(text)
    s = s.strip().strip("()").strip()
    frac = _SLASH_RE.match(s.replace("(", "").replace(")", ""))
    if frac:
        num, den = float(frac.group(1).replace(",", "")), float(frac.group(2).replace(",", ""))
        return num / den if den != 0 else None
    found = _NUM_RE.findall(s)
    if not found:
        return None
    return float(found[-1].replace(",", ""))


def _last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``), braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    i = start = starts[-1]
    depth = 1
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return text[start:]  # unclosed: take the rest


def extract_answer(text: str | None, *, last_number: bool = True) -> float | None:
    r"""Extract the final numeric answer from a model's output.

    In order of precedence: the last ``\boxed{...}`` (``\boxed{\$45}``, ``\boxed{45\%}``,
    ``\boxed{\frac{3}{4}}``, ``\boxed{1,234}``); the last "The answer is N" / "Answer: N" /
    "Final answer: N"; the last GSM8K-style ``#### N``; finally the last number in the text.
    A boxed answer that is not a number gives ``None``: the model committed to it, so no other
    number in the text is taken instead.

    Args:
        text: The model's output.
        last_number: Fall back to the last number in the text. Off for an answer cut off by
            its token cap: its last number is whatever it was writing when stopped (a list
            marker ``"3."``, an intermediate ``"= 20"``), not an answer.

    Returns:
        The answer, or ``None`` when the text has no (explicit, without ``last_number``) one.
    """
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return parse_number(boxed)  # the model committed to this; no guessing past it
    for pattern in (_ANSWER_IS_RE, _HASHES_RE):
        matches = list(pattern.finditer(text))
        if matches:
            value = parse_number(matches[-1].group(1))
            if value is not None:
                return value
    if not last_number:
        return None
    found = _NUM_RE.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def numbers_equal(
    a: str | float | int | None, b: str | float | int | None, rel_tol: float = 1e-6
) -> bool:
    """Whether two answers are the same number (``"45"`` = ``"45.0"`` = ``"$45"`` = 45).

    Args:
        a: A number or the text of one (parsed with :func:`parse_number`).
        b: The other.
        rel_tol: Relative tolerance; an absolute tolerance of 1e-9 covers zero.

    Returns:
        ``False`` when either side is not a number.
    """
    x, y = parse_number(a), parse_number(b)
    if x is None or y is None:
        return False
    return math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9)


def mentions_number(text: str | None, gold: str | float | int) -> bool:
    """Whether any number written in ``text`` equals ``gold`` (not only the last one).

    Used to ask whether sleep-time notes already worked out the answer before the question
    was seen.

    Args:
        text: Free text (notes, a reply).
        gold: The number to look for.

    Returns:
        ``False`` when ``text`` holds no number equal to ``gold``.
    """
    if not text:
        return False
    return any(numbers_equal(n.replace(",", ""), gold) for n in _NUM_RE.findall(_clean_latex(text)))


def score_gsm(pred_text: str | None, gold: str | float | int) -> bool:
    """Score a GSM answer: the extracted number equals the gold number.

    Args:
        pred_text: The model's output.
        gold: The gold answer (GSM-Symbolic golds are exact; no rounding is forgiven).

    Returns:
        Whether the answer is right.
    """
    return numbers_equal(extract_answer(pred_text), gold)


def score_aime(pred_text: str | None, gold: int | float | str) -> bool:
    """Score an AIME answer: an integer from 0 to 999 equal to the gold.

    Args:
        pred_text: The model's output.
        gold: The gold integer (``"025"`` is read as 25).

    Returns:
        Whether the answer is right; a non-integer or out-of-range answer is wrong.
    """
    value, target = extract_answer(pred_text), parse_number(gold)
    if value is None or target is None or value != int(value) or not 0 <= value <= 999:
        return False
    return int(value) == int(target)


# ----------------------------------------------------------------------------- LoCoMo

_PUNCT = frozenset(string.punctuation)


def normalize_locomo(text: str | int | float) -> str:
    """LoCoMo's ``normalize_answer``.

    Drop commas, lowercase, drop punctuation, drop the words a/an/the/and, collapse whitespace.

    Args:
        text: An answer or a prediction.

    Returns:
        The normalized text.
    """
    s = str(text).replace(",", "").lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the|and)\b", " ", s)
    return " ".join(s.split())


def locomo_f1(prediction: str, answer: str | int) -> float:
    """LoCoMo's ``f1_score``: token F1 over Porter-stemmed, normalized tokens.

    The stemmer is :mod:`sleeptime_bench._porter`, a re-implementation of NLTK's default
    ``PorterStemmer`` (LoCoMo uses NLTK; this library does not depend on it).

    Args:
        prediction: The model's answer.
        answer: The gold answer.

    Returns:
        F1 in [0, 1].
    """
    pred = [stem(w) for w in normalize_locomo(prediction).split()]
    gold = [stem(w) for w in normalize_locomo(answer).split()]
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def locomo_multi_f1(prediction: str, answer: str | int) -> float:
    """LoCoMo's multi-hop ``f1``.

    Split both on ``","``; for each gold part take the best F1 against any predicted part;
    average over the gold parts.

    Args:
        prediction: The model's answer.
        answer: The gold answer, e.g. ``"Psychology, counseling certification"``.

    Returns:
        The mean best-match F1 in [0, 1].
    """
    preds = [p.strip() for p in prediction.split(",")]
    golds = [g.strip() for g in str(answer).split(",")]
    return sum(max(locomo_f1(p, g) for p in preds) for g in golds) / len(golds)


def score_locomo(prediction: str, answer: str | int | None, category: int) -> float:
    """Score one LoCoMo answer exactly as ``task_eval/evaluation.py`` does.

    - Categories 2 (temporal), 4 (single-hop): :func:`locomo_f1`.
    - Category 3 (open-domain): :func:`locomo_f1` against the part before the first ``";"``.
    - Category 1 (multi-hop): :func:`locomo_multi_f1`.
    - Category 5 (adversarial): 1 if the prediction says "no information available" or
      "not mentioned" (case-insensitive), else 0; the gold answer is not used.

    Args:
        prediction: The model's answer.
        answer: The gold answer (``None`` is allowed for category 5).
        category: 1..5.

    Returns:
        A score in [0, 1].

    Raises:
        ValueError: Unknown category, or a missing answer outside category 5.
    """
    if category == 5:
        low = prediction.lower()
        return 1.0 if "no information available" in low or "not mentioned" in low else 0.0
    if answer is None:
        raise ValueError(f"category {category} needs a gold answer")
    gold = str(answer)
    if category == 3:
        gold = gold.split(";")[0].strip()
    if category in (2, 3, 4):
        return locomo_f1(prediction, gold)
    if category == 1:
        return locomo_multi_f1(prediction, gold)
    raise ValueError(f"unknown LoCoMo category {category!r}")


# ----------------------------------------------------------------------------- LongMemEval

#: Phrases that count as declining to answer (for ``_abs`` questions).
REFUSAL_PHRASES: tuple[str, ...] = (
    "not mentioned",
    "did not mention",
    "didn't mention",
    "never mentioned",
    "haven't mentioned",
    "have not mentioned",
    "no information",
    "not enough information",
    "information provided is not enough",
    "insufficient information",
    "don't have information",
    "do not have information",
    "don't have any information",
    "do not have any information",
    "no record",
    "no mention",
    "not specified",
    "cannot answer",
    "can't answer",
    "unable to answer",
    "i don't know",
    "i do not know",
    "not sure",
    "cannot determine",
    "can't determine",
    "unknown",
)
_WORD_NUMBERS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "once": "1", "twice": "2"}
_STOPWORDS = frozenset(
    "i me my you your he she it we they them their our is are was were be been am do did does "
    "of in on at to for with by from as that this these those or but so than then there here "
    "have has had will would can could should about into over under up down out very just also "
    "which who what when where why how".split()
)
_ALSO_OK = re.compile(r"\(([^()]*)\)|\bis also acceptable\b", re.IGNORECASE)


def _lme_tokens(text: str) -> list[str]:
    s = str(text).lower().replace(",", "")
    s = re.sub(r"(?<=\d)\.(?=\d)", "\u2024", s)  # keep decimals through punctuation removal
    s = "".join(" " if ch in _PUNCT else ch for ch in s).replace("\u2024", ".")
    tokens = [_WORD_NUMBERS.get(t, t) for t in s.split()]
    return [stem(t) for t in tokens if t not in {"a", "an", "the", "and"}]


def _gold_alternatives(answer: str) -> list[str]:
    """``"30 days. 31 days (including the last day) is also acceptable."`` -> both answers."""
    if "also acceptable" not in answer.lower():
        return [answer]
    parts = re.split(r"(?<=[.;])\s+", answer)
    return [_ALSO_OK.sub(" ", p).strip(" .;") for p in parts if p.strip(" .;")]


def _numbers(tokens: list[str]) -> list[str]:
    return [t for t in tokens if re.fullmatch(r"-?\d+(?:\.\d+)?", t)]


def _refuses(text: str) -> bool:
    """Whether the first sentence of ``text`` (lowercased) declines to answer."""
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    return any(p in first for p in REFUSAL_PHRASES)


def _polar(text: str) -> str | None:
    """``"yes"``/``"no"`` when ``text`` opens with that word (``"No, you did not ..."``)."""
    first = re.match(r"\s*(yes|no)\b", text.lower())
    return first.group(1) if first else None


def _match_one(prediction: str, gold: str, recall_threshold: float) -> bool:
    pred = _lme_tokens(prediction)
    gold_tokens = _lme_tokens(gold)
    if not gold_tokens:
        return False
    pred_text = " " + " ".join(pred) + " "
    if " " + " ".join(gold_tokens) + " " in pred_text:
        return True
    gold_nums = _numbers(gold_tokens)
    if gold_nums and not set(gold_nums) <= set(_numbers(pred)):
        return False  # a number in the gold answer must appear in the prediction
    content = [t for t in gold_tokens if t not in _STOPWORDS] or gold_tokens
    pred_set = set(pred)
    recall = sum(t in pred_set for t in content) / len(content)
    return recall >= recall_threshold


def judge_longmemeval(
    question_id: str, prediction: str, answer: str | int, recall_threshold: float = 0.8
) -> bool:
    """A rule-based stand-in for LongMemEval's GPT-4o judge.

    Rules:
        - Abstention questions (``question_id`` ends in ``_abs``): correct iff the prediction
          contains one of :data:`REFUSAL_PHRASES`.
        - Otherwise the gold answer is split into its acceptable alternatives ("30 days. 31
          days (including the last day) is also acceptable."). The prediction matches one when
          its normalized tokens (lowercase, no punctuation or articles, number words as
          digits, Porter-stemmed) contain the gold's token sequence; or when every number in
          the gold appears in the prediction and at least ``recall_threshold`` of the gold's
          content words do.

    Limits (why this is not the official metric):
        - Single-session-preference answers are rubrics ("The user would prefer suggestions
          of Sony-compatible accessories ...") that only a model can judge; token recall
          against a rubric is a weak proxy. Report that type separately.
        - A prediction that lists the gold among wrong alternatives, or states it then
          negates it, is counted correct; paraphrases with different words are counted wrong.
        - Numbers must match literally after word-to-digit mapping up to "twenty" and tens;
          "a dozen", "1.5 hours" vs "90 minutes", or date arithmetic in other units fail.
        - A prediction whose first sentence refuses is wrong on a non-abstention question, even
          if it goes on to name the answer; on an abstention question any refusal phrase
          anywhere counts, even next to a guess.

    Args:
        question_id: The question id (``_abs`` suffix marks abstention).
        prediction: The model's answer.
        answer: The gold answer.
        recall_threshold: Share of gold content words the prediction must contain.

    Returns:
        Whether the prediction is judged correct.
    """
    low = prediction.lower().replace("’", "'")
    if question_id.endswith("_abs"):
        return any(p in low for p in REFUSAL_PHRASES)
    gold = str(answer)
    polar = _polar(gold)
    if polar is not None:
        # A yes/no gold ("No, you did not visit with a friend.") is answered by the polarity,
        # however the rest is phrased ("No, you didn't go with anyone." was judged wrong).
        return _polar(low) == polar
    if _refuses(low) and not _refuses(gold.lower()):
        return False  # "You did not mention X. You mentioned Luna, ..." is not the answer "Luna"
    return any(_match_one(low, alt, recall_threshold) for alt in _gold_alternatives(gold))


# ----------------------------------------------------------------------------- intervals


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (95% with ``z=1.96``).

    Args:
        k: Successes.
        n: Trials.
        z: The normal quantile.

    Returns:
        ``(low, high)`` within [0, 1]; ``(0.0, 1.0)`` when ``n == 0``.

    Raises:
        ValueError: ``k`` or ``n`` is negative, or ``k > n``.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
