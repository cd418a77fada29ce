"""`sleeptime letta` against the real Letta server, with our real sleep-time engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeptime_agent.cli import main
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import ScriptedChatModel, tool_call

pytestmark = pytest.mark.letta


def test_cli_pull_and_consolidate_with_our_engine(  # type: ignore[no-untyped-def]
    letta_server, letta, make_agent, tmp_path: Path, monkeypatch, capsys
) -> None:
    agent_id = make_agent(
        [
            {"label": "human", "value": "Name: Ada", "limit": 500},
            {"label": "persona", "value": "I am Sam.", "limit": 500, "read_only": True},
        ],
        messages=[
            {"role": "user", "content": "I moved to Lisbon last month."},
            {"role": "assistant", "content": "Lisbon is lovely!"},
        ],
    )
    store_dir = str(tmp_path / "store")
    common = [
        "--agent-id",
        agent_id,
        "--base-url",
        letta_server,
        "--user",
        "ada",
        "--store",
        store_dir,
    ]
    assert main(["letta", "pull", *common, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(c["label"] for c in report["pulled"]) == ["human", "persona"]

    seen_prompts: list[str] = []

    def sleeper_step(messages):  # type: ignore[no-untyped-def]
        seen_prompts.append(str(messages[1].content))
        if any(m.type == "tool" for m in messages):
            return tool_call("memory_finish_edits")
        return tool_call("memory_insert", label="human", new_str="Lives in Lisbon")

    model = ScriptedChatModel(replies=[sleeper_step], repeat_last=True)
    monkeypatch.setattr("sleeptime_agent.cli.letta.resolve_model", lambda *a, **k: model)
    assert main(["letta", "consolidate", *common]) == 0
    out = capsys.readouterr()
    assert "ok: 1 edits" in out.err
    assert "moved to Lisbon" in seen_prompts[0]  # the agent's messages reached our engine
    block = next(b for b in letta.agents.blocks.list(agent_id).items if b.label == "human")
    assert block.value == "Name: Ada\nLives in Lisbon"
    ours = ChromaBlockStore.persistent(store_dir).get_block(("ada",), "human")
    assert ours is not None and ours.author == "sleeptime"
