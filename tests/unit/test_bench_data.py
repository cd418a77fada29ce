"""Data directory resolution, the sentence splitter, and the benchmark loaders on the real data."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleeptime_agent.errors import ConfigurationError
from sleeptime_bench import paths
from sleeptime_bench.data import (
    GSM_P2_FILE,
    data_dir,
    gsm_gold,
    load_aime,
    load_gsm_p2,
    load_locomo,
    load_longmemeval,
    split_context_question,
    split_sentences,
)
from sleeptime_bench.locomo import locomo_dialogue

DECIMAL = re.compile(r"\d+\.\d+")


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def data() -> Path:
    try:
        return data_dir(None)
    except ConfigurationError as exc:
        pytest.skip(f"evaluation data not available (CI has it at ../shared/data): {exc}")


@pytest.fixture(scope="module")
def p2_rows(data: Path) -> list[dict[str, object]]:
    with (data / GSM_P2_FILE).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ----------------------------------------------------------------------------- data_dir


def test_explicit_missing_dir_names_both_remedies(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        data_dir(tmp_path / "nope")
    assert "--data" in str(info.value)
    assert "SLEEPTIME_DATA" in str(info.value)


def test_explicit_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv("SLEEPTIME_DATA", str(b))
    assert data_dir(a) == a.resolve()
    assert data_dir(None) == b.resolve()


def test_env_pointing_nowhere_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPTIME_DATA", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="SLEEPTIME_DATA"):
        data_dir(None)


def test_default_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.delenv("SLEEPTIME_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "checkout")
    assert data_dir(None) == (tmp_path / "shared" / "data").resolve()


def test_then_relative_to_repo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    monkeypatch.delenv("SLEEPTIME_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "elsewhere" / "deep")
    monkeypatch.setattr(paths, "_REPO_ROOT", tmp_path / "repo")
    assert data_dir(None) == (tmp_path / "shared" / "data").resolve()
    monkeypatch.setattr(paths, "_REPO_ROOT", tmp_path / "elsewhere" / "deep")
    with pytest.raises(ConfigurationError, match="--data"):
        data_dir(None)


def test_missing_file_in_data_dir_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="GSM_p2.jsonl"):
        load_gsm_p2(tmp_path)
    with pytest.raises(ConfigurationError, match="aime_2024"):
        load_aime(tmp_path, years=(2024,))
    with pytest.raises(ConfigurationError, match="locomo10.json"):
        load_locomo(tmp_path)
    with pytest.raises(ConfigurationError, match="unknown LongMemEval split"):
        load_longmemeval(tmp_path, split="xl")
    with pytest.raises(ConfigurationError, match="longmemeval_oracle.json"):
        load_longmemeval(tmp_path)


# ----------------------------------------------------------------------------- splitter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "A bottle holds 1.5 liters. How much do 3 hold?",
            ["A bottle holds 1.5 liters.", "How much do 3 hold?"],
        ),
        (
            "Mr. Smith paid $3.50 for tea. Dr. Lee paid $0.7 more. Who paid more?",
            ["Mr. Smith paid $3.50 for tea.", "Dr. Lee paid $0.7 more.", "Who paid more?"],
        ),
        (
            "The shop opens at 9 a.m. and closes at 5 p.m. How long is it open?",
            ["The shop opens at 9 a.m. and closes at 5 p.m.", "How long is it open?"],
        ),
        (
            "She waited... and waited. Then it rained... Why?",
            ["She waited... and waited.", "Then it rained...", "Why?"],
        ),
        (
            'The sign said "Buy 2, get 1 free." She bought 6. How many did she get?',
            ['The sign said "Buy 2, get 1 free."', "She bought 6.", "How many did she get?"],
        ),
        ("Prof. Ito has 12 mugs. 25% are red.", ["Prof. Ito has 12 mugs.", "25% are red."]),
        ("Room No. 5 is on Main St. Then go left.", ["Room No. 5 is on Main St.", "Then go left."]),
        ("It rained! Was it cold? Yes.", ["It rained!", "Was it cold?", "Yes."]),
    ],
)
def test_split_sentences_keeps_numbers_and_abbreviations(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_question_is_last_sentence_with_a_question_mark() -> None:
    text = "Sam has 4 apples. How many does he have in 2 days? He gets 1.5 more each day."
    context, question = split_context_question(text)
    assert question == "How many does he have in 2 days?"
    assert context == "Sam has 4 apples. He gets 1.5 more each day."


def test_imperative_last_sentence_is_the_question() -> None:
    text = "A room costs $20.5 a night. Calculate the cost of 3 nights."
    assert split_context_question(text) == (
        "A room costs $20.5 a night.",
        "Calculate the cost of 3 nights.",
    )


def test_single_sentence_has_empty_context() -> None:
    assert split_context_question("If x is 2.5, what is 2x?") == ("", "If x is 2.5, what is 2x?")


def test_latex_math_is_not_split() -> None:
    text = "Let $x = 1.5.$ Suppose $$y = x. 2$$ holds. Find $x+y$."
    context, question = split_context_question(text, latex=True)
    assert question == "Find $x+y$."
    assert "$$y = x. 2$$" in context
    assert split_sentences(text, latex=True)[0] == "Let $x = 1.5.$"


@given(st.text(alphabet=st.sampled_from(list("ab1.5?! \n$\"'Dr")), max_size=60))
def test_split_loses_nothing(text: str) -> None:
    sentences = split_sentences(text)
    assert _squash("".join(sentences)) == _squash(text)
    context, question = split_context_question(text)
    if text.strip():
        assert question.strip()
        # Nothing lost or invented: the question is cut out of its own position, so the
        # context plus the question hold exactly the text's characters.
        assert sorted(_squash(context + question)) == sorted(_squash(text))
        assert question.strip() in text


# ----------------------------------------------------------------------------- GSM P2


def test_gsm_gold_reads_the_hashes_line() -> None:
    assert gsm_gold("step\n#### 1,234") == 1234.0
    assert gsm_gold("x\n#### 32.5") == 32.5
    with pytest.raises(ValueError):
        gsm_gold("no final line")


def test_p2_every_decimal_item_keeps_its_decimals(p2_rows: list[dict[str, object]]) -> None:
    decimal_rows = [r for r in p2_rows if DECIMAL.search(str(r["question"]))]
    assert len(decimal_rows) == 250  # the count SOURCE.md gives for the broken "." split
    naive_broken = 0
    for row in decimal_rows:
        text = str(row["question"])
        context, question = split_context_question(text)
        for number in DECIMAL.findall(text):
            assert number in context or number in question, (row["id"], number)
        assert _squash(text).replace(_squash(question), "", 1) == _squash(context)
        sentences = [s for s in text.split(".") if s.strip()]
        naive = ". ".join(sentences[:-1]) + "."
        naive_broken += any(
            n not in naive and n not in sentences[-1] for n in DECIMAL.findall(text)
        )
    assert naive_broken == 250  # the paper's split breaks every one of them


def test_p2_split_is_stable_per_template(p2_rows: list[dict[str, object]]) -> None:
    counts: dict[int, set[int]] = defaultdict(set)
    for row in p2_rows:
        text = str(row["question"])
        counts[int(str(row["id"]))].add(len(split_sentences(text)))
        context, question = split_context_question(text)
        assert "?" in question or question.startswith("Calculate"), row["id"]
        assert _squash(text).replace(_squash(question), "", 1) == _squash(context)
    # the 50 instances of a template share its sentence structure
    assert all(len(v) == 1 for v in counts.values()), {k: v for k, v in counts.items()}


def test_load_gsm_p2(data: Path) -> None:
    items = load_gsm_p2(data)
    assert len(items) == 2500
    assert len({it.id for it in items}) == 2500
    first = next(it for it in items if it.id == "p2-0-0")
    assert first.answer == 32.5
    assert first.question.startswith("On average, what percentage")
    assert first.context.startswith("Yara saw a 32-foot whale")
    # instance-major order: a prefix of 50 is instance 0 of every template
    assert {(it.instance, it.template_id) for it in items[:50]} == {(0, str(t)) for t in range(50)}
    sanjay = next(it for it in items if it.id == "p2-27-0")
    assert sanjay.question.startswith("How many emails does Sanjay respond to")
    assert sanjay.context.endswith("than usual.")


def test_load_gsm_p2_filters(data: Path) -> None:
    items = load_gsm_p2(data, templates=[3, 7], instances=range(5), limit=8)
    assert len(items) == 8
    assert {it.template_id for it in items} == {"3", "7"}
    assert all(it.instance < 5 for it in items)


# ----------------------------------------------------------------------------- AIME


def test_load_aime_matches_matharena_answers(data: Path) -> None:
    items = load_aime(data)
    assert len(items) == 60
    by_id = {it.id: it for it in items}
    for contest in ("2024_I", "2024_II", "2025_I", "2025_II"):
        year, part = contest.split("_")
        with (data / "aime" / "matharena" / f"aime_{contest}" / "answers.csv").open() as fh:
            for row in csv.DictReader(fh):
                assert by_id[f"{year}-{part}-{row['id']}"].answer == int(row["answer"])
    for it in items:
        assert it.answer == int(it.answer) and 0 <= it.answer <= 999
        assert it.question.strip()
        assert _squash(it.text).replace(_squash(it.question), "", 1) == _squash(it.context)
    assert by_id["2024-I-2"].question == "Find $xy$."
    assert len(load_aime(data, years=(2025,))) == 30


# ----------------------------------------------------------------------------- LoCoMo


def test_load_locomo_counts_and_fields(data: Path) -> None:
    convs = load_locomo(data)
    assert [c.sample_id for c in convs][:2] == ["conv-26", "conv-30"]
    assert len(convs) == 10
    assert sum(len(c.sessions) for c in convs) == 272
    assert sum(len(s.turns) for c in convs for s in c.sessions) == 5882
    qa = [q for c in convs for q in c.qa]
    assert len(qa) == 1986
    assert Counter(q.category for q in qa) == {1: 282, 2: 321, 3: 96, 4: 841, 5: 446}
    first = convs[0]
    assert first.sessions[0].when.year == 2023
    assert first.turn("D1:3").speaker == "Caroline"
    assert first.qa[0].answer == "7 May 2023"
    assert all(isinstance(q.answer, str) for q in qa if q.category != 5)  # ints became str
    assert all(q.adversarial_answer for q in qa if q.category == 5)
    unresolved = [
        e
        for c in convs
        for q in c.qa
        for e in q.evidence_ids
        if e not in {t.dia_id for s in c.sessions for t in s.turns}
    ]
    assert len(unresolved) == 2  # two annotation errors in the release


def test_locomo_dialogue_can_leave_out_the_adversarial_category(data: Path) -> None:
    conv = next(c for c in load_locomo(data) if c.sample_id == "conv-30")
    every = locomo_dialogue(conv).questions
    kept = locomo_dialogue(conv, adversarial=False).questions
    assert {q.category for q in kept} == {q.category for q in every} - {"adversarial"}
    assert len(kept) == sum(q.category != 5 for q in conv.qa) < len(every)


# ----------------------------------------------------------------------------- LongMemEval


def test_load_longmemeval_oracle(data: Path) -> None:
    qs = load_longmemeval(data)
    assert len(qs) == 500
    assert sum(q.is_abstention for q in qs) == 30
    assert Counter(q.question_type for q in qs)["temporal-reasoning"] == 133
    assert sum(len(s.turns) for q in qs for s in q.sessions) == 10960
    first = qs[0]
    assert first.question_id == "001be529" and first.answer == "over a year"
    assert first.sessions[0].when.year == 2023
    assert any(t.has_answer for s in first.sessions for t in s.turns)
    assert all(isinstance(q.answer, str) for q in qs)


def test_load_longmemeval_s_subset(data: Path) -> None:
    qs = load_longmemeval(data, split="s_subset13")
    assert len(qs) == 13
    assert all(len(q.sessions) >= 38 for q in qs)
    assert any(q.question_id == "031748ae_abs" for q in qs)


def test_longmemeval_dialogues_keep_the_persona_the_committed_runs_were_measured_with(
    data: Path,
) -> None:
    """The product's default persona changed after the LongMemEval runs; the bench's did not."""
    from sleeptime_agent import prompts as agent_prompts
    from sleeptime_bench import prompts
    from sleeptime_bench.longmemeval import lme_dialogue

    dialogue = lme_dialogue(load_longmemeval(data)[0])
    persona = next(b for b in dialogue.blocks if b.label == "persona")
    assert dialogue.persona == persona.value == prompts.BENCH_LME_PERSONA
    assert prompts.BENCH_LME_PERSONA != agent_prompts.PERSONA_DEFAULT
