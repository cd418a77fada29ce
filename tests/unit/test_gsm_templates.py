"""The GSM-Symbolic generator: safe expressions, vocabularies, and properties of the instances.

Properties (hypothesis, over every P1 and base-set template that parses and a random instance
number): each instance meets its template's conditions, its answer is what ``#answer``
computes at its values, the text has no slot left, and the stateful split keeps the question
out of the context. Validation is checked on the real data: the base-set defaults give the
GSM8K answers and the P2 templates reproduce Apple's shipped instances.
"""

from __future__ import annotations

import json
import math
import random
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleeptime_bench.data import data_dir
from sleeptime_bench.gsm_expr import ExpressionError, divides, evaluate, helpers, is_int
from sleeptime_bench.gsm_templates import (
    GenerationError,
    Template,
    annotated_answer,
    assignment_from_text,
    default_assignment,
    failed_conditions,
    generate_instance,
    instance_rng,
    load_templates,
    render,
    sample_assignment,
    template_answer,
)
from sleeptime_bench.gsm_validate import GSM_P2_FILE, validate_template
from sleeptime_bench.gsm_vocab import VOCABULARIES, spell_number, word_value
from sleeptime_bench.split import split_context_question

# Templates validation rejects (see gsm_validate); the properties hold for the others.
KNOWN_BAD = {"symbolic/0062", "p1/0050", "p1/0062", "p1/0074", "p1/0089"}


@cache
def _root() -> Path | None:
    try:
        return data_dir(None)
    except Exception:
        return None


@cache
def _templates(split: str) -> tuple[Template, ...]:
    root = _root()
    if root is None:
        return ()
    return tuple(load_templates(root, split))  # type: ignore[arg-type]


def _good(split: str) -> list[Template]:
    return [t for t in _templates(split) if t.name not in KNOWN_BAD]


needs_data = pytest.mark.skipif(_root() is None, reason="evaluation data not available")


# ----------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "().__class__.__bases__",
        "(lambda: 1)()",
        "[x for x in range(3)]",
        "open('/etc/passwd')",
        "n.real",
        "_secret",
        "f(**{'a': 1})",
    ],
)
def test_expressions_outside_the_whitelist_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, {"n": 1, "f": abs, **helpers(random.Random(0))})


def test_a_huge_power_fails_instead_of_hanging() -> None:
    with pytest.raises(ExpressionError, match="too large"):
        evaluate("10 ** n", {"n": 10**6})
    assert evaluate("n0 * (r + 1) ** d", {"n0": 2, "r": 1, "d": 3}) == 16


def test_template_helpers() -> None:
    names = helpers(random.Random(0))
    assert evaluate("np.arange(0.21, 0.25, 0.01)", names) == [0.21, 0.22, 0.23, 0.24]
    assert evaluate("numbers_within(2, 3)", names) == [("two", 2), ("three", 3)]
    assert evaluate("fix_floats([1.005, 2.4449])", names) == [1.0, 2.44]
    assert divides(120, 6) and not divides(6, 120)
    assert is_int(18 * (1 / 3)) and not is_int(2.5)


@given(st.integers(0, 999))
def test_spelled_numbers_read_back(n: int) -> None:
    assert word_value(spell_number(n)) == n


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("twice", 2),
        ("four times", 4),
        ("forty-two", 42),
        ("half", 0.5),
        ("a quarter", 0.25),
        ("three quarters", 0.75),
        ("two-fifths", 0.4),
        ("1/16", 0.0625),
        ("Oats", None),
    ],
)
def test_number_words(text: str, value: float | None) -> None:
    got = word_value(text)
    assert got == value if value is None else math.isclose(got or 0, value)


def test_every_numeric_vocabulary_word_has_a_value() -> None:
    for name, words in VOCABULARIES.items():
        for word in words:
            if isinstance(word, tuple):
                assert isinstance(word[1], int | float), (name, word)


# ----------------------------------------------------------------------------- properties


@needs_data
@settings(max_examples=60)
@given(data=st.data(), instance=st.integers(0, 10_000))
def test_instances_meet_their_conditions_and_answer(data: st.DataObject, instance: int) -> None:
    template = data.draw(st.sampled_from(_good("p1") + _good("symbolic")), label="template")
    values = sample_assignment(template, instance_rng(0, template, instance))
    inst = generate_instance(template, instance, seed=0)
    assert failed_conditions(template, values) == []
    assert inst.answer == template_answer(template, values)
    assert inst.text == render(template, values)
    assert "{" not in inst.text
    theirs = annotated_answer(template, values)
    assert theirs is None or math.isclose(theirs, inst.answer, rel_tol=1e-6, abs_tol=1e-6)


@needs_data
@settings(max_examples=60)
@given(data=st.data(), instance=st.integers(0, 10_000))
def test_the_stateful_split_keeps_the_question_out_of_the_context(
    data: st.DataObject, instance: int
) -> None:
    template = data.draw(st.sampled_from(_good("p1")), label="template")
    text = generate_instance(template, instance).text
    context, question = split_context_question(text)
    assert question
    assert question not in context
    assert set(text.split()) == set((context + " " + question).split())


@needs_data
def test_generation_is_deterministic_per_seed() -> None:
    template = _good("p1")[0]
    assert generate_instance(template, 3, seed=1) == generate_instance(template, 3, seed=1)
    texts = {generate_instance(template, 3, seed=s).text for s in range(5)}
    assert len(texts) > 1


# ----------------------------------------------------------------------------- validation


@needs_data
def test_base_set_defaults_reproduce_gsm8k() -> None:
    wrong = []
    for t in _templates("symbolic"):
        gold = float(t.original_answer.strip().splitlines()[-1].lstrip("#").replace(",", ""))
        try:
            got = template_answer(t, default_assignment(t))
        except (ExpressionError, GenerationError) as exc:
            wrong.append(f"{t.name}: {exc}")
            continue
        if not math.isclose(got, gold, abs_tol=1e-6):
            wrong.append(t.name)
    # symbolic/0062: Apple's #answer omits the yellow cards (2 * (red + green) = 48, not 78).
    assert wrong == ["symbolic/0062"]


@needs_data
def test_p2_templates_read_back_apple_instances() -> None:
    root = _root()
    assert root is not None
    rows = [json.loads(line) for line in (root / GSM_P2_FILE).read_text("utf-8").splitlines()]
    template = _templates("p2")[0]
    mine = [r for r in rows if r["id"] == 0]
    check = validate_template(template, shipped=mine, samples=2)
    assert check.passed, check.reason
    assert check.shipped_matching == 50
    values = assignment_from_text(template, mine[0]["question"])
    assert values is not None
    assert values.surfaces["frac"] == "1/2"


@needs_data
def test_a_template_whose_formulas_disagree_fails_validation() -> None:
    template = next(t for t in _templates("p1") if t.name == "p1/0074")
    check = validate_template(template, twin_passed=True, samples=3)
    assert not check.passed
    assert "worked solution" in (check.reason or "")


@needs_data
def test_the_gsm_validate_command_writes_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sleeptime_agent.cli import main
    from sleeptime_bench import gsm_validate

    # One real split keeps the command's test short; the validation itself is tested above.
    monkeypatch.setattr(gsm_validate, "SPLITS", ("p1",))
    out = tmp_path / "v.json"
    assert main(["bench", "gsm-validate", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert list(summary) == ["p1"]
    assert summary["p1"]["n_templates"] == 100
    assert "p1/0074" in summary["p1"]["failures"]
    assert "p1: " in capsys.readouterr().out
