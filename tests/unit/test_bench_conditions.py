"""Memory-bench conditions answer from their own context, or fail.

The scripted answering model replies with a question's gold answer only when that answer is
written somewhere in the prompt it got, and "I don't know" otherwise. So a condition whose
context lost the evidence scores 0, and a condition that leaks the gold into the prompt (a
question whose answer is in no history) scores above 0: both are test failures, not noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from sleeptime_agent.cli import main
from sleeptime_agent.testing import ScriptedChatModel
from sleeptime_bench import memqa

GOLD = {"What is the name of Alice's cat?": "Tom", "What is the name of Bob's dog?": "Rex"}


def _fixture(root: Path) -> None:
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
            {"speaker": "Alice", "dia_id": "D2:1", "text": "My sister visits in June."},
            {"speaker": "Bob", "dia_id": "D2:2", "text": "I ran the Berlin marathon."},
        ],
    }
    qa = [
        {"question": q, "answer": a, "evidence": ["D1:1"], "category": 4} for q, a in GOLD.items()
    ]
    path = root / "locomo" / "locomo10.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([{"sample_id": "conv-1", "conversation": conv, "qa": qa}]))


def _reader(messages: list[BaseMessage]) -> str:
    prompt = "\n".join(str(m.content) for m in messages)
    question = next((q for q in GOLD if q in prompt), None)
    if question is None:
        return "I don't know."
    context = prompt.replace(question, "")
    return GOLD[question] if GOLD[question] in context else "I don't know."


@pytest.fixture(autouse=True)
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    def resolve(spec: Any, env_var: str = "") -> ScriptedChatModel:
        return ScriptedChatModel(replies=[_reader], repeat_last=True)

    monkeypatch.setattr(memqa, "resolve_model", resolve)


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str, out: Path | None = None
) -> dict[str, Any]:
    _fixture(tmp_path / "data")
    out = out or tmp_path / "out"
    argv = ["bench", "locomo", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--conversations", "conv-1", "--cache-probe", "0", "--consolidation", "pipeline"]
    argv += extra
    monkeypatch.setattr("sys.argv", ["sleeptime", *argv])
    assert main(argv) == 0
    report: dict[str, Any] = json.loads((out / "locomo.json").read_text())
    return report


def _scores(report: dict[str, Any]) -> dict[str, float]:
    conditions = report["conditions"]
    return {c: float(conditions[c]["overall"]["mean_score"]) for c in conditions}


def test_every_condition_answers_from_its_context_and_nothing_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _run(tmp_path, monkeypatch)
    # 1.0 on the cat (its evidence is in every context), 0.0 on the dog (in no history).
    assert _scores(report) == {"sleeptime": 0.5, "full-context": 0.5, "rag": 0.5}
    for entry in report["conditions"].values():
        assert entry["overall"]["abstention_rate"] == 0.5


def test_a_condition_that_loses_its_context_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _run(tmp_path, monkeypatch, "--context-tokens", "8")
    assert report["full_context"]["dialogues_truncated"] == 1
    assert _scores(report)["full-context"] == 0.0
    assert _scores(report)["sleeptime"] == 0.5


def test_the_sleeptime_condition_reads_dated_recalled_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _run(tmp_path, monkeypatch, "--conditions", "sleeptime", "--keep-state")
    memory = (tmp_path / "out" / "locomo_memory.jsonl").read_text()
    assert "[8 May 2023] Alice: I adopted a cat named Tom yesterday (7 May 2023)." in memory
    assert report["settings"]["consolidation"] == "pipeline"
    assert report["settings"]["recall_line"] == "said"
    assert report["sleeptime_ingestion"]["per_dialogue"][0]["input_tokens"] == 0
    # Each answer records the recalled lines exactly as the primary read them.
    answers = [json.loads(line) for line in (tmp_path / "out" / "locomo.jsonl").open()]
    cat = next(a for a in answers if a["gold"] == "Tom")
    assert (
        "[8 May 2023] Alice: I adopted a cat named Tom yesterday (7 May 2023)."
        in (cat["read_turns"])
    )
    assert cat["read_facts"] == []


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        (["--recall-line", "rendered"], "built with --recall-line said"),
        (["--samples", "2"], "built with --samples 1; this run asks for --samples 2"),
        (["--keywords"], "built with no --keywords; this run asks for --keywords"),
        (["--recall-before", "1"], "this run asks for --recall-before 1"),
    ],
)
def test_a_kept_memory_is_resumed_only_with_the_settings_it_was_built_with(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    changed: list[str],
    said: str,
) -> None:
    _run(tmp_path, monkeypatch, "--conditions", "sleeptime", "--keep-state")
    out = tmp_path / "out"
    (out / "locomo.jsonl").unlink()  # answers pending again: the kept memory is resumed
    argv = ["bench", "locomo", "--data", str(tmp_path / "data"), "--out", str(out)]
    argv += ["--conversations", "conv-1", "--cache-probe", "0", "--consolidation", "pipeline"]
    argv += ["--conditions", "sleeptime", "--keep-state", *changed]
    assert main(argv) != 0
    assert said in capsys.readouterr().err
    (progress,) = out.glob("state/*/progress.json")
    kept = json.loads(progress.read_text())
    assert (kept["recall_line"], kept["samples"], kept["keywords"]) == ("said", 1, False)


def test_longmemeval_range_is_inclusive_and_checked() -> None:
    from sleeptime_agent.errors import ConfigurationError
    from sleeptime_bench.longmemeval import _span

    assert _span("50-149") == (50, 149)
    with pytest.raises(ConfigurationError):
        _span("149-50")


def test_a_sleeptime_run_is_paired_with_the_baselines_of_an_earlier_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = tmp_path / "earlier"
    _run(tmp_path / "a", monkeypatch, "--conditions", "rag", out=earlier)
    report = _run(
        tmp_path / "b", monkeypatch, "--conditions", "sleeptime", "--baselines-from", str(earlier)
    )
    assert list(report["conditions"]) == ["sleeptime", "rag"]
    assert report["conditions"]["rag"]["label"].endswith(f"from {earlier}")
    assert report["baselines_from"]["answers"] == 2
    assert (report["answers_done"], report["answers_expected"]) == (2, 2)
    (paired,) = report["paired"]
    assert (paired["other"], paired["n"], paired["difference"]) == ("rag", 2, 0.0)


def test_baselines_from_another_model_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    earlier = tmp_path / "earlier"
    _run(tmp_path / "a", monkeypatch, "--conditions", "rag", out=earlier)
    report = json.loads((earlier / "locomo.json").read_text())
    (earlier / "locomo.json").write_text(json.dumps({**report, "model": "openai:gpt-4o-mini"}))
    argv = ["bench", "locomo", "--data", str(tmp_path / "a" / "data"), "--out", str(tmp_path)]
    argv += ["--conversations", "conv-1", "--cache-probe", "0", "--conditions", "sleeptime"]
    argv += ["--baselines-from", str(earlier)]
    assert main(argv) != 0
    assert "was answered by 'openai:gpt-4o-mini'" in capsys.readouterr().err
