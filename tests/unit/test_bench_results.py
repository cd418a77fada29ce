"""The resumable JSONL results file and its summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeptime_bench.results import ResultRecord, ResultsFile, summarize


def _rec(item: str, condition: str = "baseline-v0", **kw: object) -> dict[str, object]:
    return {"item_id": item, "condition": condition, **kw}


def test_append_and_read_back(tmp_path: Path) -> None:
    rf = ResultsFile(tmp_path / "sub" / "r.jsonl")
    assert rf.records() == [] and rf.done_keys() == set()
    rf.append(_rec("a", correct=True, testtime_completion_tokens=10, note="extra kept"))
    rf.append(ResultRecord(item_id="b", condition="baseline-v0", correct=False))
    lines = (tmp_path / "sub" / "r.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["item_id"] == "a"
    again = ResultsFile(tmp_path / "sub" / "r.jsonl")
    recs = again.records()
    assert [r.item_id for r in recs] == ["a", "b"]
    assert recs[0].model_extra == {"note": "extra kept"}
    assert again.done_keys() == {("a", "baseline-v0"), ("b", "baseline-v0")}


def test_truncated_last_line_is_ignored_then_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rf = ResultsFile(path)
    rf.append(_rec("a", correct=True))
    rf.append(_rec("b", correct=True))
    with path.open("ab") as fh:  # a crash in the middle of writing "c"
        fh.write(b'{"item_id": "c", "condition": "basel')
    resumed = ResultsFile(path)
    assert resumed.done_keys() == {("a", "baseline-v0"), ("b", "baseline-v0")}
    resumed.append(_rec("c", correct=False))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["item_id"] for x in lines] == ["a", "b", "c"]


def test_damaged_terminated_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"item_id": "a", "condition": "x"}\n\x00\x00\x00\n')
    rf = ResultsFile(path)
    assert [r.item_id for r in rf.records()] == ["a"]
    rf.append(_rec("b", "x"))
    assert [r.item_id for r in ResultsFile(path).records()] == ["a", "b"]


def test_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"item_id": "a", "condition": "x"}\nnot json\n{"item_id": "b", "condition": "x"}\n'
    )
    with pytest.raises(ValueError, match=r"r\.jsonl:2"):
        ResultsFile(path).records()


def test_resume_skips_finished_keys_and_retries_errors(tmp_path: Path) -> None:
    rf = ResultsFile(tmp_path / "r.jsonl")
    rf.append(_rec("a", correct=True))
    rf.append(_rec("b", error="timeout"))
    rf.append(_rec("a", "sleeptime-v0", correct=True))
    todo = [(i, c) for i in "abc" for c in ("baseline-v0", "sleeptime-v0")]
    done = rf.done_keys()
    assert [k for k in todo if k not in done] == [
        ("b", "baseline-v0"),
        ("b", "sleeptime-v0"),
        ("c", "baseline-v0"),
        ("c", "sleeptime-v0"),
    ]
    assert ("b", "baseline-v0") in rf.done_keys(include_errors=True)
    rf.append(_rec("b", correct=False))  # the retry succeeds
    assert ("b", "baseline-v0") in rf.done_keys()


def test_summarize(tmp_path: Path) -> None:
    recs = [
        _rec(
            "1",
            "sleeptime-v2",
            family="sleeptime",
            verbosity=2,
            k=1,
            correct=True,
            testtime_completion_tokens=10,
            testtime_prompt_tokens=100,
            sleeptime_tokens=500,
            wall_time_s=1.0,
        ),
        _rec(
            "2",
            "sleeptime-v2",
            family="sleeptime",
            verbosity=2,
            k=1,
            correct=False,
            testtime_completion_tokens=30,
            testtime_prompt_tokens=300,
            sleeptime_tokens=700,
            wall_time_s=3.0,
        ),
        _rec("3", "sleeptime-v2", family="sleeptime", verbosity=2, k=1, error="boom"),
        _rec("1", "baseline-v2", family="baseline", verbosity=2, correct=False),
        _rec("1", "baseline-v2", family="baseline", verbosity=2, correct=True),  # rerun wins
        _rec("1", "locomo-full", score=0.5),
        _rec("2", "locomo-full", score=1.0),
    ]
    s = summarize(recs)
    assert list(s) == ["sleeptime-v2", "baseline-v2", "locomo-full"]
    st = s["sleeptime-v2"]
    assert (st.n, st.n_scored, st.n_errors) == (3, 2, 1)
    assert st.accuracy == 0.5
    assert st.ci_low is not None and st.ci_high is not None and st.ci_low < 0.5 < st.ci_high
    assert st.mean_testtime_completion_tokens == 20.0
    assert st.mean_testtime_prompt_tokens == 200.0
    assert st.mean_sleeptime_tokens == 600.0
    assert st.mean_wall_time_s == 2.0
    assert (st.family, st.verbosity, st.k) == ("sleeptime", 2, 1)
    assert s["baseline-v2"].n == 1 and s["baseline-v2"].accuracy == 1.0
    assert s["locomo-full"].accuracy is None and s["locomo-full"].mean_score == 0.75
    # round trip through JSON, as a committed report would be read back
    dumped = json.loads(json.dumps({k: v.model_dump() for k, v in s.items()}))
    assert dumped["sleeptime-v2"]["accuracy"] == 0.5
