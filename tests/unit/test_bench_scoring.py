"""Answer extraction, numeric equality, LoCoMo F1, the LongMemEval rule judge, Wilson intervals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleeptime_bench._porter import stem
from sleeptime_bench.scoring import (
    extract_answer,
    judge_longmemeval,
    locomo_f1,
    locomo_multi_f1,
    mentions_number,
    normalize_locomo,
    numbers_equal,
    parse_number,
    score_aime,
    score_gsm,
    score_locomo,
    wilson_interval,
)

# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so the total is \boxed{45}.", 45.0),
        (r"\boxed{\$45}", 45.0),
        (r"\boxed{45\%}", 45.0),
        (r"\boxed{\frac{3}{4}}", 0.75),
        (r"\boxed{\dfrac{-6}{4}}", -1.5),
        (r"\boxed{1,234}", 1234.0),
        (r"\boxed{12 \text{ apples}}", 12.0),
        (r"first \boxed{3}, on reflection \boxed{7}", 7.0),
        (r"\boxed{\boxed{9}}", 9.0),
        ("The answer is 45.", 45.0),
        ("The answer is **$1,234.50**", 1234.5),
        ("Answer: -5", -5.0),
        ("Final answer: 3/4", 0.75),
        ("so 2 + 3 = 5, then 5 * 2 = 10 apples", 10.0),
        ("#### 72", 72.0),
        ("He walks for 4-day stretches, 16-8 = 8", 8.0),
        ("no digits here", None),
        ("", None),
        (r"\boxed{x + y}", None),  # a boxed non-number is not replaced by another number
    ],
)
def test_extract_answer(text: str, expected: float | None) -> None:
    assert extract_answer(text) == expected


def test_answer_phrase_beats_later_numbers() -> None:
    assert extract_answer("The answer is 12. (Checked with 3 methods.)") == 12.0


@pytest.mark.parametrize(
    ("a", "b"),
    [("45", "45.0"), ("45", "$45"), ("$45", 45), ("1,234", 1234), ("45%", 45.0), ("0.5", "1/2")],
)
def test_numbers_equal(a: str | int | float, b: str | int | float) -> None:
    assert numbers_equal(a, b)
    assert numbers_equal(b, a)


def test_numbers_not_equal() -> None:
    assert not numbers_equal("45", "46")
    assert not numbers_equal("45", None)
    assert not numbers_equal("forty-five", 45)
    assert not numbers_equal(32.5, 32.49)
    assert numbers_equal(1e9, 1e9 + 1)  # within rel_tol
    assert not numbers_equal(1e9, 1e9 + 1, rel_tol=1e-12)


def test_parse_number_edge_cases() -> None:
    assert parse_number(True) is None
    assert parse_number(float("nan")) is None
    assert parse_number("1/0") is None
    assert parse_number(r"\frac12") == 0.5


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_integers_round_trip_in_every_format(n: int) -> None:
    for text in (f"\\boxed{{{n}}}", f"The answer is {n}", f"Answer: {n:,}", f"so ... {n}"):
        assert score_gsm(text, n), text
        assert score_gsm(text, f"{n}.0"), text


def test_score_gsm() -> None:
    assert score_gsm(r"... \boxed{32.5}", 32.5)
    assert score_gsm("The answer is $32.50", "32.5")
    assert not score_gsm("The answer is 33", 32.5)
    assert not score_gsm("I cannot tell", 32.5)


def test_score_aime() -> None:
    assert score_aime(r"\boxed{25}", 25)
    assert score_aime(r"\boxed{025}", "025")
    assert score_aime("The answer is 204.", 204)
    assert not score_aime(r"\boxed{25.5}", 25)  # not an integer
    assert not score_aime(r"\boxed{1204}", 204)  # out of range, even if it ends in 204
    assert not score_aime(r"\boxed{-4}", 4)
    assert not score_aime(r"\boxed{24}", 25)
    assert not score_aime("", 25)


# ----------------------------------------------------------------------------- LoCoMo


def test_porter_matches_nltk_on_classic_words() -> None:
    pairs = {
        "caresses": "caress",
        "ponies": "poni",
        "ties": "tie",  # NLTK extension (original Porter: "ti")
        "agreed": "agre",
        "motoring": "motor",
        "hopping": "hop",
        "falling": "fall",
        "filing": "file",
        "happy": "happi",
        "sky": "sky",
        "dying": "die",
        "relational": "relat",
        "conditional": "condit",
        "digitizer": "digit",
        "radicalli": "radic",
        "vietnamization": "vietnam",
        "hopefulness": "hope",
        "sensibiliti": "sensibl",
        "electrical": "electr",
        "adjustment": "adjust",
        "adoption": "adopt",
        "bowdlerize": "bowdler",
        "controll": "control",
        "generalizations": "gener",
        "oscillators": "oscil",
        "was": "wa",
        "is": "is",
    }
    assert {w: stem(w) for w in pairs} == pairs


def test_normalize_locomo() -> None:
    assert normalize_locomo("The Cat, and a Dog!") == "cat dog"
    assert normalize_locomo(2022) == "2022"


def test_locomo_f1() -> None:
    assert locomo_f1("7 May 2023", "7 May 2023") == 1.0
    assert locomo_f1("She went on 7 May 2023.", "7 May 2023") == pytest.approx(
        2 / 3
    )  # P = 3/6, R = 1
    assert locomo_f1("painting", "paintings") == 1.0  # stemming
    assert locomo_f1("nothing alike", "7 May") == 0.0


def test_locomo_multi_hop_averages_best_matches() -> None:
    gold = "Psychology, counseling certification"
    assert locomo_multi_f1("counseling certification, psychology", gold) == 1.0
    assert locomo_multi_f1("psychology", gold) == pytest.approx(0.5)
    assert score_locomo("psychology", gold, 1) == pytest.approx(0.5)


def test_locomo_categories() -> None:
    assert score_locomo("2022", 2022, 2) == 1.0
    assert score_locomo("Likely no", "Likely no; though she likes reading", 3) == 1.0
    assert score_locomo("That was not mentioned.", None, 5) == 1.0
    assert score_locomo("No information available", "No", 5) == 1.0
    assert score_locomo("Yes, self-care", None, 5) == 0.0
    with pytest.raises(ValueError):
        score_locomo("x", None, 4)
    with pytest.raises(ValueError):
        score_locomo("x", "x", 9)


# ----------------------------------------------------------------------------- LongMemEval


def test_lme_abstention_expects_refusal() -> None:
    assert judge_longmemeval("q_abs", "You did not mention your hamster.", "n/a")
    assert judge_longmemeval("q_abs", "I don't know.", "n/a")
    assert not judge_longmemeval("q_abs", "Your hamster is Luna.", "n/a")


def test_lme_answers() -> None:
    assert judge_longmemeval("q", "You waited over a year.", "over a year")
    assert judge_longmemeval("q", "Two months.", "2 months")
    assert judge_longmemeval(
        "q", "31 days", "30 days. 31 days (including the last day) is also acceptable."
    )
    assert not judge_longmemeval(
        "q", "29 days", "30 days. 31 days (including the last day) is also acceptable."
    )
    assert not judge_longmemeval("q", "$15", "$12")
    assert judge_longmemeval("q", "It cost $1,200.", "$1200")
    assert not judge_longmemeval(
        "q", "You didn't mention it, though you own a cat named Luna.", "Luna"
    )
    assert not judge_longmemeval("q", "Luna", "Max")


# ----------------------------------------------------------------------------- intervals


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(45, 50)
    assert lo == pytest.approx(0.78639, abs=1e-4)
    assert hi == pytest.approx(0.95652, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@given(st.integers(min_value=1, max_value=5000), st.data())
def test_wilson_contains_the_estimate(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n + 1e-12
    assert k / n - 1e-12 <= hi <= 1.0
    assert hi - lo <= 2 * 1.96 * math.sqrt(0.25 / n) + 1e-9


def test_mentions_number_finds_the_gold_anywhere() -> None:
    notes = "Soccer players: 46.\nTotal leaving = 25 + 34 = 59, about $1,200 in all."
    assert mentions_number(notes, 59)
    assert mentions_number(notes, "1200")
    assert mentions_number(r"so \frac{3}{4} of it", 0.75) is False  # a fraction is not listed
    assert not mentions_number(notes, 60)
    assert not mentions_number("", 0)
    assert not mentions_number("a 4-day trip", -4)  # a hyphen is not a sign
