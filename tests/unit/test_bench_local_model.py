"""`sleeptime bench local-model` end to end on a scripted model (the real run is committed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeptime_agent.cli import main
from sleeptime_agent.testing import ScriptedChatModel, tool_call


def test_local_model_bench_runs_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reply(messages):  # type: ignore[no-untyped-def]
        if messages[0].content.startswith("You are the memory manager"):
            if any(m.type == "tool" for m in messages):
                return tool_call("memory_finish_edits")
            return tool_call("memory_insert", label="human", new_str="Lives in Porto")
        return "ok"

    model = ScriptedChatModel(replies=[reply], repeat_last=True)
    monkeypatch.setattr("sleeptime_bench.local_model_bench.resolve_model", lambda *a, **k: model)
    out = tmp_path / "out"
    assert (
        main(
            [
                "bench",
                "local-model",
                "--checkpoints",
                "2,4",
                "--window",
                "2",
                "--every",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads((out / "local_model.json").read_text())
    assert data["command"].startswith("sleeptime bench local-model")
    assert set(data["refined"]["at_turn"]) == {"2", "4"}
    assert data["refined"]["at_turn"]["4"]["ttft_s"]["n"] == 2
    # Raw history grows; refined memory does not carry the consolidated turns.
    raw = [t["prompt_tokens"] for t in data["raw"]["turns"]]
    assert raw == sorted(raw) and raw[-1] > raw[0]
    assert data["sleeptime"]["runs"] == 4 and data["sleeptime"]["first_try_valid_share"] == 1.0
    assert "Lives in Porto" in data["refined"]["final_blocks"]["human"]
    assert (out / "local_model.png").stat().st_size > 1000
