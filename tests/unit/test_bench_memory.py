"""`sleeptime bench locomo` / `longmemeval` end to end on tiny fixtures with a scripted model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from sleeptime_agent.cli import main
from sleeptime_agent.testing import ScriptedChatModel, tool_call
from sleeptime_bench import memqa
from sleeptime_bench.memqa import (
    DialogueSession,
    Utterance,
    round_robin,
    truncate_history,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _locomo_fixture(root: Path) -> None:
    conv = {
        "speaker_a": "Alice",
        "speaker_b": "Bob",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Alice", "dia_id": "D1:1", "text": "I adopted a cat named Tom yesterday."},
            {"speaker": "Bob", "dia_id": "D1:2", "text": "Nice! I am training for a marathon."},
        ],
        "session_2_date_time": "10:00 am on 20 May, 2023",
        "session_2": [
            {
                "speaker": "Alice",
                "dia_id": "D2:1",
                "text": "Tom loves tuna.",
                "blip_caption": "a cat",
            },
            {"speaker": "Bob", "dia_id": "D2:2", "text": "I ran the Berlin marathon."},
        ],
    }
    qa = [
        {
            "question": "What is the name of Alice's cat?",
            "answer": "Tom",
            "evidence": ["D1:1"],
            "category": 4,
        },
        {
            "question": "What is Bob's favourite colour?",
            "adversarial_answer": "red",
            "evidence": [],
            "category": 5,
        },
    ]
    path = root / "locomo" / "locomo10.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([{"sample_id": "conv-1", "conversation": conv, "qa": qa}]))


def _lme_fixture(root: Path) -> None:
    def question(qid: str, qtype: str, q: str, answer: str) -> dict[str, Any]:
        return {
            "question_id": qid,
            "question_type": qtype,
            "question": q,
            "answer": answer,
            "question_date": "2023/06/01 (Thu) 10:00",
            "haystack_session_ids": ["s1", "s2"],
            "haystack_dates": ["2023/05/01 (Mon) 09:00", "2023/05/10 (Wed) 09:00"],
            "haystack_sessions": [
                [
                    {"role": "user", "content": "I live in Berlin.", "has_answer": True},
                    {"role": "assistant", "content": "Berlin is lovely. " * 40},
                ],
                [
                    {"role": "user", "content": "I moved to Lisbon last week."},
                    {"role": "assistant", "content": "Congratulations on the move!"},
                ],
            ],
            "answer_session_ids": ["s2"],
        }

    qs = [
        question("q1", "knowledge-update", "Where do I live now?", "Lisbon"),
        question("q2_abs", "single-session-user", "What is my dog's name?", "not mentioned"),
    ]
    path = root / "longmemeval" / "longmemeval_oracle.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(qs))


def _scripted(label: str, answer: str, fact: str) -> ScriptedChatModel:
    """Sleep-time calls insert ``fact`` then finish; answer calls reply ``answer``."""

    def reply(messages: list[BaseMessage]) -> AIMessage | str:
        if "memory manager" in str(messages[0].content):
            if any(isinstance(m, ToolMessage) for m in messages):
                return tool_call("memory_finish_edits")
            return tool_call("memory_insert", label=label, new_str=fact)
        return answer

    return ScriptedChatModel(replies=[reply], repeat_last=True)


class FakeResolve:
    """Stands in for ``memqa.resolve_model``: every model it makes is `_scripted` with the
    current ``label``/``answer``/``fact`` (a test may change them) and kept in ``made``."""

    def __init__(self) -> None:
        self.label = "alice"
        self.answer = "Tom"
        self.fact = "Adopted a cat named Tom."
        self.made: list[ScriptedChatModel] = []

    def __call__(self, spec: Any, env_var: str = "") -> ScriptedChatModel:
        self.made.append(_scripted(self.label, self.answer, self.fact))
        return self.made[-1]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolve:
    fake_resolve = FakeResolve()
    monkeypatch.setattr(memqa, "resolve_model", fake_resolve)
    return fake_resolve


@pytest.fixture
def models(resolver: FakeResolve) -> list[ScriptedChatModel]:
    return resolver.made


def _calls(models: list[ScriptedChatModel]) -> int:
    return sum(len(m.calls) for m in models)


def test_locomo_end_to_end_and_resume(
    tmp_path: Path, models: list[ScriptedChatModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    _locomo_fixture(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["bench", "locomo", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--conversations", "conv-1", "--cache-probe", "2"]
    monkeypatch.setattr("sys.argv", ["sleeptime", *argv])
    assert main(argv) == 0
    first = _calls(models)
    # 2 sessions x (insert + finish) + 2 questions x 3 conditions + 2 probe questions
    assert first == 4 + 6 + 2
    report = json.loads((out / "locomo.json").read_text())
    assert report["command"].startswith("sleeptime bench locomo")
    assert report["complete"] and report["answers_done"] == 6
    conds = report["conditions"]
    assert set(conds) == {"sleeptime", "full-context", "rag"}
    for entry in conds.values():
        overall = entry["overall"]
        for key in (
            "mean_score",
            "mean_prompt_tokens",
            "mean_completion_tokens",
            "latency_p50_s",
            "latency_p95_s",
            "amortized_cost_per_question",
        ):
            assert key in overall
        assert set(entry["by_category"]) == {"single-hop", "adversarial"}
        assert entry["by_category"]["single-hop"]["mean_score"] == 1.0  # "Tom" vs "Tom"
        assert entry["overall_excluding"]["excluded"] == ["adversarial"]
    sleep = conds["sleeptime"]["overall"]
    assert sleep["sleeptime_tokens_per_question"] > 0
    assert conds["rag"]["overall"]["sleeptime_tokens_per_question"] == 0
    assert sleep["amortized_cost_per_question"] == pytest.approx(
        sleep["sleeptime_tokens_per_question"]
        + 10 * (sleep["mean_prompt_tokens"] + sleep["mean_completion_tokens"])
    )
    ingest = report["sleeptime_ingestion"]["per_dialogue"]
    assert ingest[0]["sessions_done"] == 2 and ingest[0]["runs"] == 2
    assert report["prefix_cache"]["questions"] == 2
    # What the sleeptime answers read is kept after the store is dropped.
    (snapshot,) = [json.loads(x) for x in (out / "locomo_memory.jsonl").read_text().splitlines()]
    assert snapshot["key"] == "conv-1"
    assert "Adopted a cat named Tom." in snapshot["blocks"]["alice"]
    assert report["files"]["memory"] == "locomo_memory.jsonl"
    tables = (out / "locomo.md").read_text()
    assert "| sleep-time memory (blocks + top-k notes) (n=2) | 0.500 |" in tables  # Tom + abstain
    assert "| single-hop | 1 | 1.000 | 1.000 | 1.000 |" in tables
    assert report["full_context"]["dialogues_truncated"] == 0
    assert (out / "locomo_score_vs_cost.png").read_bytes().startswith(PNG_MAGIC)
    assert not (out / "state" / "conv-1").exists()  # dropped once every answer is in
    lines = (out / "locomo.jsonl").read_text().splitlines()
    assert len(lines) == 8
    # The sleep-time prompt read the memory built from the transcript (dates included).
    sleep_prompts = [c for m in models for c in m.calls if "memory manager" in str(c[0].content)]
    assert "Session 1, 1:56 pm on 8 May, 2023" in str(sleep_prompts[0][1].content)
    assert "[shares a photo: a cat]" in str(sleep_prompts[-1][1].content)

    # A second run does nothing but rewrite the report.
    assert main(argv) == 0
    assert _calls(models) == first
    assert len((out / "locomo.jsonl").read_text().splitlines()) == 8
    assert len((out / "locomo_memory.jsonl").read_text().splitlines()) == 1

    # --report-only rebuilds the report from the answers on disk, asking nothing.
    (out / "locomo.json").unlink()
    assert main([*argv, "--report-only"]) == 0
    assert _calls(models) == first
    paired = json.loads((out / "locomo.json").read_text())["paired"]
    assert {p["other"] for p in paired} == {"full-context", "rag"}
    assert all(p["n"] == 1 for p in paired)  # the single-hop question; adversarial left out
    assert "Paired, on the questions both conditions answered" in (out / "locomo.md").read_text()


def test_locomo_resumes_after_an_error(
    tmp_path: Path, models: list[ScriptedChatModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    _locomo_fixture(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["bench", "locomo", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--conditions", "rag", "--cache-probe", "0", "--limit-questions", "1"]
    original = memqa._ask
    failed: list[str] = []

    async def flaky(model: Any, messages: list[BaseMessage]) -> Any:
        if not failed:
            failed.append("x")
            raise RuntimeError("boom")
        return await original(model, messages)

    monkeypatch.setattr(memqa, "_ask", flaky)
    assert main(argv) == 0
    report = json.loads((out / "locomo.json").read_text())
    assert report["answers_done"] == 0 and report["conditions"]["rag"]["overall"]["n_errors"] == 1
    assert main(argv) == 0  # the errored answer is retried
    report = json.loads((out / "locomo.json").read_text())
    assert report["complete"] and report["answers_done"] == 1


def test_longmemeval_end_to_end_and_resume(
    tmp_path: Path,
    models: list[ScriptedChatModel],
    resolver: FakeResolve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _lme_fixture(tmp_path / "data")
    resolver.label = "human"
    resolver.answer = "You live in Lisbon."
    resolver.fact = "Moved to Lisbon."
    out = tmp_path / "out"
    argv = ["bench", "longmemeval", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--split", "oracle", "--limit", "2", "--cache-probe", "0"]
    argv += ["--memory-assistant-chars", "50"]
    assert main(argv) == 0
    first = _calls(models)
    assert first == 2 * 4 + 2 * 3  # two haystacks of 2 sessions, two questions x 3 conditions
    report = json.loads((out / "longmemeval.json").read_text())
    assert report["complete"] and report["score_kind"] == "accuracy"
    conds = report["conditions"]
    for entry in conds.values():
        by = entry["by_category"]
        assert by["knowledge-update"]["accuracy"] == 1.0
        assert by["single-session-user"]["accuracy"] == 0.0  # abstention: no refusal given
        assert "ci95" in entry["overall"] and "latency_p95_s" in entry["overall"]
    assert any("rule-based" in n for n in report["notes"])
    assert (out / "longmemeval_score_vs_cost.png").read_bytes().startswith(PNG_MAGIC)
    sleep_prompts = [c for m in models for c in m.calls if "memory manager" in str(c[0].content)]
    assert "Berlin is lovely. Berlin is lovely. Berlin is love [...]" in str(
        sleep_prompts[0][1].content
    )
    snapshots = [json.loads(x) for x in (out / "longmemeval_memory.jsonl").read_text().splitlines()]
    assert [s["key"] for s in snapshots] == ["q1", "q2_abs"]
    assert all("Moved to Lisbon." in s["blocks"]["human"] for s in snapshots)
    # Session 1 only says "I live in Berlin": the insert is refused there, and the log says why.
    ingest = [json.loads(x) for x in (out / "longmemeval_ingest.jsonl").read_text().splitlines()]
    assert ingest[0]["failures"] == 1
    assert ingest[0]["failure_kinds"] == {"rejected:memory_insert": 1}
    assert "not in the conversation" in ingest[0]["failure_examples"][0]
    assert main(argv) == 0
    assert _calls(models) == first


def test_the_answer_log_keeps_recalled_turns_as_the_primary_read_them(
    tmp_path: Path, models: list[ScriptedChatModel]
) -> None:
    _lme_fixture(tmp_path / "data")
    out = tmp_path / "out"
    argv = ["bench", "longmemeval", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--split", "oracle", "--limit", "1", "--cache-probe", "0"]
    argv += ["--consolidation", "pipeline", "--conditions", "sleeptime"]
    assert main(argv) == 0
    [answer] = [json.loads(x) for x in (out / "longmemeval.jsonl").read_text().splitlines()]
    said = "Berlin is lovely. " * 40
    long_turn = [t for t in answer["read_turns"] if "Berlin is lovely." in t]
    # The 720-character reply was read clipped to the 600-character window, and logged so.
    assert long_turn and all(said.strip() not in t for t in long_turn)
    assert all(len(t) < 700 for t in answer["read_turns"])
    assert any("I moved to Lisbon last week" in t for t in answer["read_turns"])


def test_round_robin_takes_every_category() -> None:
    items = ["a1", "a2", "a3", "b1", "c1", "c2"]
    assert round_robin(items, key=lambda s: s[0], limit=4) == ["a1", "a2", "b1", "c1"]
    assert round_robin(items, key=lambda s: s[0], limit=None) == items


def test_truncate_history_keeps_recent_turns_under_their_header() -> None:
    sessions = [
        DialogueSession("d1", (Utterance("A", "x" * 50), Utterance("B", "y" * 50))),
        DialogueSession("d2", (Utterance("A", "z" * 50),)),
    ]
    text, kept, total = truncate_history(sessions, 10_000)
    assert (kept, total) == (3, 3) and text.index("d1") < text.index("d2")
    text, kept, total = truncate_history(sessions, 160)
    assert kept == 2 and "x" not in text and "Session 1, d1" in text and "Session 2, d2" in text


def test_paired_comparison_separates_only_a_real_difference() -> None:
    from sleeptime_bench.memqa import paired_comparisons
    from sleeptime_bench.results import ResultRecord

    def rec(i: int, condition: str, score: float, category: str = "single-hop") -> ResultRecord:
        return ResultRecord(item_id=f"q{i}", condition=condition, score=score, category=category)  # type: ignore[call-arg]

    records = [rec(i, "sleeptime", 0.6 + 0.01 * (i % 5)) for i in range(30)]
    records += [rec(i, "rag", 0.3 + 0.01 * (i % 5)) for i in range(30)]
    records += [rec(i, "full-context", 0.6 + (0.2 if i % 2 else -0.2)) for i in range(20)]
    records += [rec(99, "sleeptime", 1.0, "adversarial"), rec(99, "rag", 0.0, "adversarial")]
    got = {
        p["other"]: p
        for p in paired_comparisons(records, ["sleeptime", "full-context", "rag"], ["adversarial"])
    }
    rag, full = got["rag"], got["full-context"]
    assert rag["n"] == 30 and rag["evidence"] and rag["difference_ci95"][0] > 0.25
    assert abs(rag["ratio"] - rag["sleeptime_mean"] / rag["other_mean"]) < 1e-9
    assert full["n"] == 20  # only the questions both answered
    assert not full["evidence"]  # same mean, noisy: the interval includes 0
    assert paired_comparisons(records, ["full-context", "rag"], []) == []


def test_paired_comparison_of_accuracy_uses_correct() -> None:
    from sleeptime_bench.memqa import paired_comparisons
    from sleeptime_bench.results import ResultRecord

    # LongMemEval records carry ``correct`` and no score: 8 of 10 right against 3 of 10.
    records = [
        ResultRecord(item_id=f"q{i}", condition="sleeptime", correct=i < 8) for i in range(10)
    ]
    records += [ResultRecord(item_id=f"q{i}", condition="rag", correct=i < 3) for i in range(10)]
    (rag,) = paired_comparisons(records, ["sleeptime", "rag"], [])
    assert (rag["sleeptime_mean"], rag["other_mean"]) == (0.8, 0.3)
    assert abs(rag["difference"] - 0.5) < 1e-9


def test_quote_style_scores_the_answer_after_the_quoted_evidence(
    tmp_path: Path, resolver: FakeResolve, models: list[ScriptedChatModel]
) -> None:
    _locomo_fixture(tmp_path / "data")
    resolver.answer = 'Evidence: "I adopted a cat, her name is Tom and she is lovely"\nAnswer: Tom'
    out = tmp_path / "out"
    argv = ["bench", "locomo", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--conversations", "conv-1", "--cache-probe", "0", "--answer-style", "quote"]
    assert main(argv) == 0
    rows = [json.loads(x) for x in (out / "locomo.jsonl").read_text().splitlines()]
    single = [r for r in rows if r["category"] == "single-hop"]
    assert {r["condition"] for r in single} == {"sleeptime", "full-context", "rag"}
    for r in single:  # every condition asked alike, scored on the answer only
        assert r["prediction"] == "Tom" and r["score"] == 1.0
        assert r["reply"].startswith("Evidence:") and r["cut_off"] is False
    asked = [c for m in models for c in m.calls if "memory manager" not in str(c[0].content)]
    assert asked and all('"Evidence:"' in str(c[-1].content) for c in asked)
    report = json.loads((out / "locomo.json").read_text())
    assert report["settings"]["answer_style"] == "quote"
    assert report["settings"]["answer_tokens"] == 128


def test_quoted_answer_never_scores_a_cut_off_quote() -> None:
    from sleeptime_bench.memqa import quoted_answer

    assert quoted_answer("Evidence: he lost his job\nAnswer: his job", cut_off=False) == "his job"
    assert quoted_answer("evidence: x\nanswer:  7 May 2023\nmore", cut_off=False) == "7 May 2023"
    assert quoted_answer("Evidence: he lost his job as a banker and", cut_off=True) == ""
    assert quoted_answer("Evidence: he lost his job", cut_off=False) == ""  # no answer given
    assert quoted_answer("Evidence: he lost it\nA banker", cut_off=False) == "A banker"
    assert quoted_answer("Answer:", cut_off=False) == ""
