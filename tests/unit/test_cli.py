"""The `sleeptime` command: memory subcommands, exit codes, and the scripted chat loop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sleeptime_agent.blocks import MemoryBlock
from sleeptime_agent.cli import main
from sleeptime_agent.cli.chat import load_models, run_chat
from sleeptime_agent.config import SLEEPTIME_MODEL_ENV
from sleeptime_agent.storage.block_store import ChromaBlockStore
from sleeptime_agent.testing import ScriptedChatModel, tool_call


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    store = ChromaBlockStore.persistent(path)
    ns = ("ada",)
    store.put_block(
        ns,
        MemoryBlock(label="human", value="Lives in Berlin", limit=100, description="facts"),
        expected_version=0,
    )
    store.put_block(
        ns,
        MemoryBlock(label="human", value="Lives in Lisbon", limit=100, description="facts"),
        expected_version=1,
        author="sleeptime",
    )
    store.add_note(ns, "Ada's cat is called Lovelace")
    del store
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_json_has_every_field(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "memory", "show", "--user", "ada", "--store", str(store_dir), "--json"
    )
    assert code == 0
    (block,) = json.loads(out)
    assert block["label"] == "human" and block["value"] == "Lives in Lisbon"
    assert {
        "label",
        "value",
        "version",
        "limit",
        "description",
        "read_only",
        "author",
        "updated_at",
    } <= set(block)
    assert block["version"] == 2 and block["author"] == "sleeptime"


def test_history_diff_rollback(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = ["--user", "ada", "--store", str(store_dir)]
    code, out, _ = run(capsys, "memory", "history", "human", *s, "--json")
    assert code == 0 and [v["value"] for v in json.loads(out)] == [
        "Lives in Berlin",
        "Lives in Lisbon",
    ]
    code, out, _ = run(capsys, "memory", "diff", "human", "1", "2", *s)
    assert code == 0 and "-Lives in Berlin" in out and "+Lives in Lisbon" in out
    code, out, _ = run(capsys, "memory", "rollback", "human", "1", *s)
    assert code == 0 and "version 3" in out
    code, out, _ = run(capsys, "memory", "show", *s, "--json")
    assert json.loads(out)[0]["value"] == "Lives in Berlin"


def test_export_import_round_trip(
    store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "mem.json"
    assert main(["memory", "export", str(dump), "--user", "ada", "--store", str(store_dir)]) == 0
    data = json.loads(dump.read_text())
    assert data["blocks"][0]["value"] == "Lives in Lisbon"
    assert len(data["history"]["human"]) == 2 and data["notes"][0]["text"].startswith("Ada's cat")
    other = tmp_path / "other"
    assert main(["memory", "import", str(dump), "--user", "bob", "--store", str(other)]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "memory", "show", "--user", "bob", "--store", str(other), "--json")
    (block,) = json.loads(out)
    assert (block["value"], block["limit"], block["description"]) == (
        "Lives in Lisbon",
        100,
        "facts",
    )
    # Importing again changes nothing.
    code, out, _ = run(
        capsys, "memory", "import", str(dump), "--user", "bob", "--store", str(other)
    )
    assert code == 0 and "1 unchanged" in out and "0 notes" in out


def test_exit_codes(store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = ["--user", "ada", "--store", str(store_dir)]
    code, _, err = run(capsys, "memory", "rollback", "human", "9", *s)
    assert code == 5 and "version 9" in err
    code, _, err = run(capsys, "memory", "history", "nope", *s)
    assert code == 5 and "does not exist" in err
    code, _, err = run(
        capsys, "memory", "show", "--chroma-url", "http://127.0.0.1:9", "--user", "x"
    )
    assert code == 4 and "unreachable" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(
        capsys, "chat", "--model", "nosuchprovider:foo", "--store", str(tmp_path / "s")
    )
    assert code == 3 and "nosuchprovider" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = run(capsys, "memory", "import", str(bad), *s)
    assert code == 3
    with pytest.raises(SystemExit) as exc:
        main(["memory", "frobnicate"])
    assert exc.value.code == 2


def test_scripted_chat_consolidates_and_waits(tmp_path: Path) -> None:
    store = ChromaBlockStore.persistent(tmp_path / "s")
    primary = ScriptedChatModel(replies=["Nice to meet you!", "Noted.", "You live in Porto."])
    sleeper = ScriptedChatModel(
        replies=[
            tool_call("memory_insert", label="human", new_str="Lives in Porto"),
            tool_call("memory_finish_edits"),
        ],
        repeat_last=True,
        latency=0.3,
    )
    printed: list[str] = []
    lines = iter(["Hi, I'm Marta\n", "I live in Porto\n", "/memory\n", "Where do I live?\n"])
    code = run_chat(
        store, primary, sleeper, user="marta", thread="t", lines=lines, write=printed.append
    )
    text = "".join(printed)
    assert code == 0
    assert "Nice to meet you!" in text and "You live in Porto." in text
    assert "--- human" in text
    # The run started by the last turn finished before run_chat returned.
    assert "Lives in Porto" in store.get_block(("marta",), "human").value  # type: ignore[union-attr]
    assert len(primary.calls) == 3


def test_chat_recall_command_shows_the_read_for_a_message(tmp_path: Path) -> None:
    store = ChromaBlockStore.persistent(tmp_path / "s")
    primary = ScriptedChatModel(replies=["Hello Tomasz!"])
    printed: list[str] = []
    lines = iter(
        ["I repair motorcycles in Gdansk.\n", "/wait\n", "/recall\n", "/recall Where is my shop?\n"]
    )
    # The code-only pipeline (a scripted sleeper with no replies would fail if it were called).
    code = run_chat(
        store,
        primary,
        ScriptedChatModel(),
        user="tomasz",
        thread="t",
        lines=lines,
        write=printed.append,
        consolidation="pipeline",
    )
    text = "".join(printed)
    assert code == 0
    assert "usage: /recall MESSAGE" in text
    after = text.split("recalled messages (")[1]
    assert "the user: I repair motorcycles in Gdansk." in after.split("\n", 2)[1]


def test_one_local_model_serves_both_roles_each_from_its_own_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("xllamacpp", reason="needs the 'local' extra")
    from sleeptime_agent.local import LocalChatModel

    monkeypatch.delenv(SLEEPTIME_MODEL_ENV, raising=False)
    args = argparse.Namespace(model=LocalChatModel(), sleeptime_model=None)
    primary, sleeper = load_models(args)
    assert isinstance(primary, LocalChatModel) and isinstance(sleeper, LocalChatModel)
    assert (primary.slot, sleeper.slot) == (0, 1)
    assert primary.n_parallel == sleeper.n_parallel == 2
    scripted = ScriptedChatModel(replies=["hi"])
    assert load_models(argparse.Namespace(model=scripted, sleeptime_model=None)) == (
        scripted,
        scripted,
    )


def test_chat_says_it_loads_the_local_model_once_for_both_roles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The two roles of the local model share one server; the line was printed twice."""
    from sleeptime_agent.cli import chat

    loaded: list[str] = []

    class Loadable(ScriptedChatModel):
        def load(self) -> None:
            loaded.append("load")

    roles = (Loadable(replies=["hi"]), Loadable(replies=["hi"]))
    monkeypatch.setattr(chat, "load_models", lambda _args: roles)
    monkeypatch.setattr(chat, "run_chat", lambda *_a, **_k: 0)
    code = main(["chat", "--store", str(tmp_path / "store"), "--user", "u"])
    assert code == 0
    assert loaded == ["load", "load"]
    assert capsys.readouterr().err.count("loading the local model") == 1


def test_typing_at_the_chat_prompt_holds_the_gate_until_the_turn() -> None:
    """Keystrokes in the real prompt_toolkit buffer hold sleep-time calls; clearing does not
    release (the buffer is cleared as a line is accepted, before the turn holds the gate)."""
    from prompt_toolkit.buffer import Buffer

    from sleeptime_agent.cli.chat import watch_typing
    from sleeptime_agent.preemption import ForegroundGate

    gate, buffer = ForegroundGate(), Buffer()
    watch_typing(buffer, gate, ("ana",))
    assert not gate.busy
    buffer.text = "Where do I"
    assert gate.busy
    buffer.text = ""
    assert gate.busy
    with gate:  # what the chat graph's turn does with the accepted line
        gate.done_typing(("ana",))
        assert gate.busy
    assert not gate.busy
