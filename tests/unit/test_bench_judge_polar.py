"""LongMemEval's rule judge on yes/no gold answers (the "No, you did not ..." false negative)."""

from __future__ import annotations

from sleeptime_bench.scoring import judge_longmemeval


def test_no_gold_accepts_a_no_phrased_differently() -> None:
    gold = "No, you did not visit with a friend."
    assert judge_longmemeval("0bc8ad93", "No, you didn't go with anyone; you went alone.", gold)


def test_no_gold_refuses_a_yes() -> None:
    assert not judge_longmemeval(
        "0bc8ad93", "Yes, with Sam.", "No, you did not visit with a friend."
    )


def test_yes_gold_needs_a_yes() -> None:
    assert judge_longmemeval("7405e8b1", "Yes, you did.", "Yes.")
    assert not judge_longmemeval("7405e8b1", "No.", "Yes.")


def test_a_word_starting_with_no_is_not_polar() -> None:
    assert judge_longmemeval("c7cf7dfd", "It was nostalgia.", "Nostalgia")
