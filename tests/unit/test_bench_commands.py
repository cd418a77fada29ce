"""The paper's bench commands end to end on 2 items with a scripted model: outputs and resuming."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from sleeptime_agent.cli import main
from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.testing import ScriptedChatModel, tool_call
from sleeptime_bench import amortization, predictability, prompts, stateful
from sleeptime_bench.results import ConditionSummary, ResultsFile
from sleeptime_bench.scoring import wilson_interval
from sleeptime_bench.stateful_qa import agreed_lines, answer_messages, combine_notes

GSM_ROWS = [
    {
        "id": 25,
        "instance": 0,
        "question": "Ann has 3 red pens. She buys 4 blue pens. How many pens does Ann have?",
        "answer": "3 + 4 = 7\n#### 7",
    },
    {
        "id": 26,
        "instance": 0,
        "question": "A box holds 2.5 kg of rice. Tom uses 1 kg. How much rice is left?",
        "answer": "2.5 - 1 = 1.5\n#### 1.5",
    },
    {  # a tuning template: never in a default run
        "id": 3,
        "instance": 0,
        "question": "Bo has 2 cats. How many cats does Bo have?",
        "answer": "#### 2",
    },
]
AIME_ROWS = [
    {"id": "2024-I-1", "problem": "Let $x = 3$ and $y = 4$. Find $x + y$.", "answer": "7"},
    {"id": "2024-I-2", "problem": "Let $n = 6$. Find $n^2$.", "answer": "36"},
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    gsm = root / "gsm-symbolic" / "generated_data"
    gsm.mkdir(parents=True)
    (gsm / "GSM_p2.jsonl").write_text("\n".join(json.dumps(r) for r in GSM_ROWS) + "\n")
    (root / "aime").mkdir()
    (root / "aime" / "aime_2024.jsonl").write_text(
        "\n".join(json.dumps(r) for r in AIME_ROWS) + "\n"
    )
    (root / "aime" / "aime_2025.jsonl").write_text("")
    return root


def _reply(messages: list[BaseMessage]) -> Any:
    """Sleep-time: reason, rethink once, finish. Test-time: right only when notes are given."""
    system = str(messages[0].content)
    if system == prompts.STATEFUL_THINK_SYSTEM:
        return "Total = 7. Rice left = 1.5. Square = 36."
    if "manage the memory" in system:
        last = messages[-1]
        if isinstance(last, HumanMessage) and "Worked analysis" in str(last.content):
            return tool_call(
                "memory_rethink",
                label=prompts.STATEFUL_NOTES_LABEL,
                new_memory="Total = 7\nRice left = 1.5\nSquare = 36",
            )
        return tool_call("memory_finish_edits")
    user = str(messages[-1].content)
    if "worked out in advance" not in user:
        return "I am not sure. The answer is 0"
    if "rice" in user:
        return "The answer is 1.5"
    return "The answer is 36" if "n^2" in user else "The answer is 7"


class _Models:
    """Counts model calls across every scripted model the commands build."""

    def __init__(self) -> None:
        self.made: list[ScriptedChatModel] = []

    def __call__(self, spec: Any, **_: Any) -> ScriptedChatModel:
        model = ScriptedChatModel(replies=[_reply], repeat_last=True)
        self.made.append(model)
        return model

    @property
    def calls(self) -> int:
        return sum(len(m.calls) for m in self.made)


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> _Models:
    fake = _Models()
    monkeypatch.setattr(stateful, "resolve_model", fake)
    return fake


def _report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stateful_gsm_end_to_end_and_resume(
    data: Path, tmp_path: Path, models: _Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "gsm"
    argv = [
        "bench",
        "stateful-gsm",
        "--limit",
        "2",
        "--data",
        str(data),
        "--out",
        str(out),
        "--verbosity",
        "0,4",
        "--k",
        "1,2",
        "--k-limit",
        "1",
        "--k-verbosity",
        "0",
    ]
    monkeypatch.setattr(sys, "argv", ["sleeptime", *argv])
    assert main(argv) == 0
    first = models.calls
    assert first > 0
    report = _report(out / "stateful-gsm.json")
    conditions = report["conditions"]
    # Default templates 25-49: the tuning template 3 is never run.
    items = {r.item_id for r in ResultsFile(out / "answers.jsonl").records()}
    assert items == {"p2-25-0", "p2-26-0"}
    assert set(conditions) == {
        "baseline-v0",
        "baseline-v4",
        "sleeptime-k1-v0",
        "sleeptime-k1-v4",
        "sleeptime-k2-v0",
    }
    assert conditions["sleeptime-k1-v0"]["accuracy"] == 1.0
    assert conditions["baseline-v0"]["accuracy"] == 0.0
    assert conditions["sleeptime-k2-v0"]["n"] == 1  # k > 1 on the first item only
    for row in conditions.values():
        assert row["ci_low"] <= (row["accuracy"] or 0) <= row["ci_high"]
        assert row["mean_testtime_completion_tokens"] > 0
        assert row["mean_testtime_prompt_tokens"] > 0
    assert conditions["sleeptime-k1-v0"]["mean_sleeptime_tokens"] > 0
    assert conditions["baseline-v0"]["mean_sleeptime_tokens"] == 0
    head = report["headline"]
    assert head["sleeptime"]["accuracy"] == 1.0 and head["exact"] is False
    # 2/2 vs 0/2: the Wilson intervals overlap, and the report says the ratio is not evidence.
    assert head["accuracies_distinguishable"] is False and "not evidence" in head["caveat"]
    assert report["command"].startswith("sleeptime bench stateful-gsm")
    assert report["protocol"]["reductions"]
    # The scripted analysis works out every answer before seeing the question.
    assert report["sleeptime_samples"]["gold_in_notes"]["k1"] == {"n": 2, "share": 1.0}
    assert report["sleeptime_samples"]["gold_in_notes"]["k2"]["n"] == 1
    # Coverage across k on the same items: only the first item has k > 1.
    subset = report["sleeptime_samples"]["gold_in_notes_k_subset"]
    assert subset["k1"]["n"] == subset["k2"]["n"] == 1
    _png(out / "pareto.png")
    _png(out / "scaling.png")

    # A second run finds everything done: no model call, same report.
    assert main(argv) == 0
    assert models.calls == first
    assert _report(out / "stateful-gsm.json")["conditions"] == conditions

    # Amortization from the same directory, no model at all.
    am_out = tmp_path / "am"
    assert main(["bench", "amortization", "--results", str(out), "--out", str(am_out)]) == 0
    am = _report(am_out / "amortization.json")
    assert am["weight"] == 10.0
    assert [len(c["cost"]) for c in am["curves"]] == [20, 20, 20]
    base, sleep = am["curves"][0]["cost"], am["curves"][1]["cost"]
    assert len(set(base)) == 1 and sleep[0] > sleep[-1]  # sleep-time cost amortizes
    points = am["along_curve_at_10"]["points"]
    by_kind = {p["sleeptime_tokens_counted"]: p for p in points if p["sleeptime"].endswith("v0")}
    # Counting the sleep-time prompt too makes each sleep-time query dearer.
    assert (
        by_kind["completion"]["sleeptime_tokens"]
        < by_kind["prompt_plus_completion"]["sleeptime_tokens"]
    )
    _png(am_out / "amortization.png")

    # Predictability with a fake log-prob function; cached, so the rerun scores nothing.
    scored: list[str] = []

    def fake_logprob(context: str, question: str) -> list[float]:
        scored.append(question)
        return [-0.5, -1.0] if "rice" in question else [-0.1]

    pr_out = tmp_path / "pr"
    for _ in range(2):
        path = predictability.run_predictability(
            out, pr_out, n_bins=5, data=str(data), logprob=fake_logprob
        )
    assert len(scored) == 2
    pr = _report(path)
    assert [b["n_items"] for b in pr["bins"]] == [1, 1]
    assert pr["bins"][0]["mean_of_mean_token_logprob"] == pytest.approx(-0.75)
    assert pr["bins"][0]["gap"] == pytest.approx(1.0)
    _png(pr_out / "predictability.png")


def test_stateful_aime_smoke(data: Path, tmp_path: Path, models: _Models) -> None:
    out = tmp_path / "aime"
    argv = ["bench", "stateful-aime", "--limit", "2", "--data", str(data), "--out", str(out)]
    argv += ["--k", "1", "--verbosity", "0"]
    assert main(argv) == 0
    report = _report(out / "stateful-aime.json")
    assert report["conditions"]["sleeptime-k1-v0"]["accuracy"] == 1.0
    assert report["conditions"]["baseline-v0"]["n"] == 2
    calls = models.calls
    assert main(argv) == 0
    assert models.calls == calls


def test_predictability_cli_uses_local_logprob(
    data: Path, tmp_path: Path, models: _Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "gsm"
    argv = ["bench", "stateful-gsm", "--limit", "2", "--data", str(data), "--out", str(out)]
    assert main([*argv, "--k", "1", "--verbosity", "0"]) == 0
    monkeypatch.setattr(
        predictability, "local_logprob", lambda threads=None: lambda c, q: [-float(len(q))]
    )
    pr_out = tmp_path / "pr"
    argv = ["bench", "predictability", "--results", str(out), "--out", str(pr_out)]
    assert main([*argv, "--data", str(data), "--bins", "2"]) == 0
    assert len(_report(pr_out / "predictability.json")["bins"]) == 2


def test_amortization_needs_results(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no baseline"):
        amortization.run_amortization(tmp_path, tmp_path / "am")


def test_combine_notes_drops_duplicate_lines() -> None:
    assert combine_notes(["a = 1\nb = 2"]) == "a = 1\nb = 2"
    combined = combine_notes(["a = 1\nb = 2", "A =  1\nc = 3", "b = 2"])
    # 1 and 2 are each reached by 2 of the 3 analyses: agreed, shown first.
    assert combined == (
        "[agreed by most of the 3 analyses]\na = 1\nb = 2\n"
        "[notes 1]\na = 1\nb = 2\n[notes 2]\nc = 3"
    )
    assert agreed_lines(["x = 5", "y = 6", "z = 7"]) == []

    # ``agreed``: only the lines most samples reached; no agreement -> the greedy sample.
    assert combine_notes(["a = 1\nb = 2", "A =  1\nc = 3", "b = 2"], "agreed") == "a = 1\nb = 2"
    assert combine_notes(["x = 5\ny = 1", "z = 7"], "agreed") == "x = 5\ny = 1"
    assert combine_notes(["x = 5"], "agreed") == "x = 5"


def test_parse_combine_refuses_an_unknown_mode() -> None:
    assert stateful.parse_combine("all, agreed,all") == ("all", "agreed")
    with pytest.raises(ConfigurationError, match="unknown mode 'vote'"):
        stateful.parse_combine("all,vote")


def test_an_agreed_combination_is_answered_from_the_same_samples(
    data: Path, tmp_path: Path, models: _Models
) -> None:
    out = tmp_path / "gsm"
    argv = ["bench", "stateful-gsm", "--limit", "1", "--data", str(data), "--out", str(out)]
    argv += ["--verbosity", "0", "--k", "1,2"]
    assert main(argv) == 0
    before = models.calls
    # Adding the mode later answers its conditions only: no sleep-time sample is drawn again.
    assert main([*argv, "--combine", "all,agreed"]) == 0
    assert models.calls == before + 1
    report = _report(out / "stateful-gsm.json")
    rows = report["scaling_subset"]["conditions"]
    agreed, every = rows["sleeptime-agreed-k2-v0"], rows["sleeptime-k2-v0"]
    assert agreed["family"] == "sleeptime-agreed" and agreed["accuracy"] == 1.0
    answers = [json.loads(x) for x in (out / "answers.jsonl").read_text().splitlines()]
    chars = {a["condition"]: a["notes_chars"] for a in answers}
    # Both samples agree on every result: the agreed notes are those lines, without the
    # "[notes 1]" repetition the 'all' combination adds.
    assert chars["sleeptime-agreed-k2-v0"] < chars["sleeptime-k2-v0"]
    assert chars["sleeptime-agreed-k2-v0"] == len("Total = 7\nRice left = 1.5\nSquare = 36")
    assert every["accuracy"] == 1.0
    assert report["protocol"]["combine"] == ["all", "agreed"]
    agreed_cover = report["sleeptime_samples"]["gold_in_notes_k_subset_agreed"]
    assert agreed_cover["k2"] == {"n": 1, "share": 1.0}
    # The headline stays on the 'all' family.
    assert report["headline"]["sleeptime"]["condition"] == "sleeptime-k1-v0"


def test_gain_vs_k1_pairs_each_combination_with_one_sample_on_the_same_items(
    tmp_path: Path,
) -> None:
    from sleeptime_bench.results import ResultRecord

    cfg = stateful.StatefulConfig(out=tmp_path, verbosity=(0, 1), combine=("all", "agreed"))
    right = {  # item -> conditions answered correctly (every other one is wrong)
        "a": {"sleeptime-k2-v0", "sleeptime-k2-v1", "sleeptime-k1-v0"},
        "b": {"sleeptime-k2-v0", "sleeptime-agreed-k2-v1"},
    }
    conds = ["sleeptime-k1-v0", "sleeptime-k1-v1", "sleeptime-k2-v0", "sleeptime-k2-v1"]
    conds += ["sleeptime-agreed-k2-v0", "sleeptime-agreed-k2-v1"]
    records = [
        ResultRecord(item_id=i, condition=c, correct=c in right[i], testtime_completion_tokens=5)
        for i in right
        for c in conds
    ]
    gains = stateful._gain_vs_k1(cfg, records, ["a", "b"], [2])
    assert set(gains) == {"sleeptime-k2", "sleeptime-agreed-k2"}
    every, agreed = gains["sleeptime-k2"], gains["sleeptime-agreed-k2"]
    # k=1 is right 1 time in 4; 'all' at k=2 3 times, 'agreed' once.
    assert every["k1_accuracy"] == agreed["k1_accuracy"] == 0.25
    assert (every["accuracy"], every["gain"]) == (0.75, 0.5)
    assert (agreed["accuracy"], agreed["gain"]) == (0.25, 0.0)
    assert every["n_items"] == 2 and len(every["gain_ci95"]) == 2


def test_answer_prompt_puts_instruction_last() -> None:
    base = answer_messages("ctx", "q?", notes=None, verbosity=0)
    with_notes = answer_messages("ctx", "q?", notes="n = 1", verbosity=4)
    assert "worked out in advance" not in str(base[1].content)
    assert str(with_notes[1].content).endswith(prompts.STATEFUL_VERBOSITY[4])
    with pytest.raises(ValueError):
        answer_messages("ctx", "q?", notes=None, verbosity=5)


def test_parse_helpers() -> None:
    assert stateful.parse_range("25-27") == (25, 26, 27)
    assert stateful.parse_ints("0,2-3,2") == (0, 2, 3)
    with pytest.raises(ValueError):
        stateful.parse_range("5-1")


def test_report_only_covers_finished_items(data: Path, tmp_path: Path, models: _Models) -> None:
    out = tmp_path / "gsm"
    argv = ["bench", "stateful-gsm", "--data", str(data), "--out", str(out), "--k", "1"]
    assert main([*argv, "--limit", "1", "--verbosity", "0"]) == 0
    calls = models.calls
    assert main([*argv, "--limit", "2", "--verbosity", "0", "--report-only"]) == 0
    assert models.calls == calls
    report = _report(out / "stateful-gsm.json")
    assert report["protocol"]["n_items"] == 1
    assert "1 of 2" in report["protocol"]["reductions"][0]


def test_plan_without_k1_runs_each_sample_once(data: Path) -> None:
    cfg = stateful.StatefulConfig(data=str(data), limit=1, ks=(2,), verbosity=(0,))
    items = stateful.load_items(cfg)
    units = stateful._plan(cfg, items, set(), set())
    assert [u.sample for u in units if u.sample is not None] == [0, 1]


def test_parallel_items_give_the_same_results(data: Path, tmp_path: Path, models: _Models) -> None:
    def run(out: Path, parallel: str) -> dict[str, Any]:
        argv = ["bench", "stateful-gsm", "--limit", "2", "--data", str(data), "--out", str(out)]
        assert main([*argv, "--verbosity", "0", "--k", "1", "--parallel", parallel]) == 0
        conditions: dict[str, Any] = _report(out / "stateful-gsm.json")["conditions"]
        return conditions

    serial, side_by_side = run(tmp_path / "s", "1"), run(tmp_path / "p", "2")
    assert side_by_side["sleeptime-k1-v0"]["n"] == 2
    # Every answer found its own item's notes although the items ran interleaved.
    assert side_by_side["sleeptime-k1-v0"]["accuracy"] == 1.0
    for name in ("baseline-v0", "sleeptime-k1-v0"):
        assert side_by_side[name]["accuracy"] == serial[name]["accuracy"]


def _summary(name: str, k: int | None, v: int, correct: int, n: int, tokens: float) -> Any:
    lo, hi = wilson_interval(correct, n)
    return ConditionSummary(
        condition=name,
        n=n,
        n_scored=n,
        n_errors=0,
        accuracy=correct / n,
        ci_low=lo,
        ci_high=hi,
        mean_score=None,
        mean_testtime_completion_tokens=tokens,
        mean_testtime_prompt_tokens=100.0,
        mean_sleeptime_tokens=0.0 if k is None else 500.0,
        mean_wall_time_s=1.0,
        family="baseline" if k is None else "sleeptime",
        verbosity=v,
        k=k,
    )


def test_headline_says_whether_accuracies_can_be_told_apart() -> None:
    def head(base_right: int, sleep_right: int) -> dict[str, Any]:
        rows = [
            _summary("baseline-v0", None, 0, base_right, 100, 8.0),
            _summary("baseline-v2", None, 2, 80, 100, 120.0),
            _summary("sleeptime-k1-v0", 1, 0, sleep_right, 100, 8.0),
        ]
        result = stateful.headline({r.condition: r for r in rows}, 1)
        assert result is not None
        return result

    clear = head(base_right=10, sleep_right=80)  # 10% vs 80%: far apart
    assert clear["accuracies_distinguishable"] is True and "caveat" not in clear
    assert clear["testtime_token_ratio"] == 15.0  # baseline-v2 (120) / sleep-time v0 (8)
    floor = stateful.headline(
        {
            r.condition: r
            for r in [
                _summary("baseline-v0", None, 0, 1, 100, 8.0),
                _summary("baseline-v2", None, 2, 3, 100, 120.0),
                _summary("sleeptime-k1-v0", 1, 0, 2, 100, 8.0),
            ]
        },
        1,
    )
    assert floor is not None and floor["accuracies_distinguishable"] is False


def test_predictability_leaves_out_items_without_context(
    data: Path, tmp_path: Path, models: _Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "gsm"
    argv = ["bench", "stateful-gsm", "--limit", "2", "--data", str(data), "--out", str(out)]
    assert main([*argv, "--k", "1", "--verbosity", "0"]) == 0
    real_items = predictability._items

    def one_without_context(answers: Any, data_arg: Any) -> Any:
        items = real_items(answers, data_arg)
        first = sorted(items)[0]
        items[first] = items[first].model_copy(update={"context": ""})
        return items

    monkeypatch.setattr(predictability, "_items", one_without_context)
    scored: list[str] = []

    def fake_logprob(context: str, question: str) -> list[float]:
        assert context.strip(), "an item without context reached the scorer"
        scored.append(question)
        return [-0.5]

    path = predictability.run_predictability(
        out, tmp_path / "pr", data=str(data), logprob=fake_logprob
    )
    report = _report(path)
    assert len(scored) == 1 and report["n_items"] == 1
    assert len(report["left_out_without_context"]) == 1


def test_forced_logprobs_refuses_an_empty_prompt() -> None:
    from sleeptime_bench.logprobs import forced_logprobs

    with pytest.raises(ValueError, match="non-empty prompt"):
        forced_logprobs("  ", " How many?")
