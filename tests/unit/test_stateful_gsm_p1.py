"""``sleeptime bench stateful-gsm-p1`` end to end with a scripted model on real templates.

Two P1 templates (and their base-set twins, which P1 validation needs) are copied into a
temporary data directory; nothing generated is written outside it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from sleeptime_agent.cli import main
from sleeptime_agent.testing import ScriptedChatModel, tool_call
from sleeptime_bench import prompts, stateful
from sleeptime_bench.data import data_dir
from sleeptime_bench.gsm_symbolic import load_gsm_symbolic
from sleeptime_bench.results import ResultsFile

TEMPLATES = ("0051", "0052")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    try:
        shared = data_dir(None)
    except Exception as exc:  # pragma: no cover - CI has the data
        pytest.skip(f"evaluation data not available: {exc}")
    root = tmp_path / "data"
    for split in ("p1", "symbolic"):
        folder = root / "gsm-symbolic" / "templates" / split
        folder.mkdir(parents=True)
        for name in TEMPLATES:
            src = shared / "gsm-symbolic" / "templates" / split / f"{name}.json"
            shutil.copy(src, folder / src.name)
    return root


def _scripted(golds: dict[str, float]) -> Any:
    def reply(messages: list[BaseMessage]) -> Any:
        system = str(messages[0].content)
        if system == prompts.STATEFUL_THINK_SYSTEM:
            return "The quantities: see the context."
        if "manage the memory" in system:
            last = messages[-1]
            if isinstance(last, HumanMessage) and "Worked analysis" in str(last.content):
                return tool_call(
                    "memory_rethink", label=prompts.STATEFUL_NOTES_LABEL, new_memory="notes"
                )
            return tool_call("memory_finish_edits")
        user = str(messages[-1].content)
        gold = next(g for q, g in golds.items() if q in user)
        if "worked out in advance" not in user:
            return "The answer is -1"
        if user.endswith(prompts.STATEFUL_VERBOSITY[0]):
            return f"The answer is {gold:g}"
        # No explicit final answer, and (with a 1-token cap) cut off: never credited.
        return f"Step one gives = {gold:g}"

    return reply


def test_stateful_gsm_p1_end_to_end(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = load_gsm_symbolic(data, "p1", templates=range(50, 100), limit=2)
    assert [it.id for it in items] == ["p1-51-0", "p1-52-0"]
    assert all(it.question and it.question not in it.context for it in items)
    golds = {it.question: it.answer for it in items}
    made: list[ScriptedChatModel] = []

    def fake(spec: Any, **_: Any) -> ScriptedChatModel:
        model = ScriptedChatModel(replies=[_scripted(golds)], repeat_last=True)
        made.append(model)
        return model

    monkeypatch.setattr(stateful, "resolve_model", fake)
    out = tmp_path / "p1"
    argv = [
        "bench",
        "stateful-gsm-p1",
        "--limit",
        "2",
        "--data",
        str(data),
        "--out",
        str(out),
        "--verbosity",
        "0,1",
        "--k",
        "1",
        "--max-tokens",
        "64,1",
        "--notes",
        "edit-loop",
    ]
    monkeypatch.setattr(sys, "argv", ["sleeptime", *argv])
    assert main(argv) == 0
    report = json.loads((out / "stateful-gsm-p1.json").read_text())
    assert {r.item_id for r in ResultsFile(out / "answers.jsonl").records()} == {
        "p1-51-0",
        "p1-52-0",
    }
    rows = report["conditions"]
    assert rows["sleeptime-k1-v0"]["accuracy"] == 1.0
    assert rows["baseline-v0"]["accuracy"] == 0.0
    # Cut off at a 1-token cap with no explicit answer: the last number is not credited.
    assert rows["sleeptime-k1-v1"]["accuracy"] == 0.0
    cut = report["cutoff"]
    assert cut["per_condition"]["sleeptime-k1-v1"]["share"] == 1.0
    assert cut["top_budget_within_limit"] is False
    head = report["protocol_headline"]
    assert head["evidence"] is False and head["statement"].startswith("not evidence")
    assert head["pairs"]["v0"]["n_items"] == 2
    valid = report["generator_validation"]
    assert valid["split"] == "p1" and valid["n_templates"] == 2
    assert report["protocol"]["templates"][0] == 50  # the report range, 50-99


def _one_item(
    data: Path, out: Path, monkeypatch: pytest.MonkeyPatch, reply: Any, *extra: str
) -> tuple[list[str], dict[str, Any]]:
    """Run the P1 bench on one report item at verbosity 0, k=1, with a scripted model."""
    monkeypatch.setattr(
        stateful,
        "resolve_model",
        lambda spec, **_: ScriptedChatModel(replies=[reply], repeat_last=True),
    )
    argv = ["bench", "stateful-gsm-p1", "--limit", "1", "--data", str(data), "--out", str(out)]
    argv += ["--verbosity", "0", "--k", "1", *extra]
    monkeypatch.setattr(sys, "argv", ["sleeptime", *argv])
    assert main(argv) == 0
    report: dict[str, Any] = json.loads((out / "stateful-gsm-p1.json").read_text())
    return argv, report


def test_analysis_notes_are_the_worked_analysis_and_a_directory_keeps_one_mode(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    items = load_gsm_symbolic(data, "p1", templates=range(50, 100), limit=1)
    gold = items[0].answer

    def reply(messages: list[BaseMessage]) -> Any:
        system = str(messages[0].content)
        if system == prompts.STATEFUL_THINK_SYSTEM:
            return f"Step 1: total = {gold:g}. Likely question: the total? {gold:g}"
        assert "manage the memory" not in system, "analysis mode must not run the edit loop"
        user = str(messages[-1].content)
        # Right only when the primary reads the analysis itself as the notes.
        return f"The answer is {gold:g}" if f"total = {gold:g}" in user else "The answer is -1"

    out = tmp_path / "p1"
    argv, report = _one_item(data, out, monkeypatch, reply, "--notes", "analysis")
    assert report["conditions"]["sleeptime-k1-v0"]["accuracy"] == 1.0
    assert report["conditions"]["baseline-v0"]["accuracy"] == 0.0
    (sample,) = ResultsFile(out / "sleeptime.jsonl").records()
    assert sample.prediction.startswith("Step 1: total =")
    assert (sample.model_extra or {})["notes_mode"] == "analysis"
    # Resuming the directory with the other mode would mix two kinds of notes: refused.
    assert main([*argv[:-2], "--notes", "edit-loop", "--limit", "2"]) != 0
    assert "holds notes written with --notes analysis" in capsys.readouterr().err
    assert len(ResultsFile(out / "sleeptime.jsonl").records()) == 1


def test_program_notes_are_computed_by_code_not_copied_from_the_model(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = load_gsm_symbolic(data, "p1", templates=range(50, 100), limit=1)
    gold = items[0].answer

    def reply(messages: list[BaseMessage]) -> Any:
        system = str(messages[0].content)
        if system == prompts.STATEFUL_PROGRAM_SYSTEM:
            # The model writes the arithmetic but not the result: only code can supply it.
            return f"```python\nhalf = {gold * 2:g} / 2  # the quantity asked for\nprint(half)\n```"
        assert system == prompts.STATEFUL_ANSWER_SYSTEM, "program mode makes one sleep-time call"
        user = str(messages[-1].content)
        return f"The answer is {gold:g}" if f"= {gold:g}" in user else "The answer is -1"

    out = tmp_path / "p1"
    _, report = _one_item(data, out, monkeypatch, reply)  # program notes are P1's default
    assert report["conditions"]["sleeptime-k1-v0"]["accuracy"] == 1.0
    (sample,) = ResultsFile(out / "sleeptime.jsonl").records()
    assert sample.prediction == f"the quantity asked for: half = {gold * 2:g} / 2 = {gold:g}"
    extra = sample.model_extra or {}
    assert extra["notes_mode"] == "program" and extra["failures"] == 1  # the print line
