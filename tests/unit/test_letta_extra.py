"""Without the `letta` extra: the CLI still works, `sleeptime letta ...` exits 3 with the hint."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from sleeptime_agent.cli import EXIT_CODES, main
from sleeptime_agent.errors import MissingExtra

HINT = "pip install 'sleeptime-agent[letta]'"


@pytest.fixture
def no_letta_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make letta-client look uninstalled and forget every module that imported it."""
    for name in list(sys.modules):
        if name == "letta_client" or name.startswith(("letta_client.", "sleeptime_agent.letta")):
            monkeypatch.delitem(sys.modules, name)
    # A None entry makes `import letta_client` fail and `find_spec("letta_client")` return None.
    monkeypatch.setitem(sys.modules, "letta_client", None)


@pytest.mark.usefixtures("no_letta_client")
def test_importing_the_package_raises_the_one_line_hint() -> None:
    with pytest.raises(MissingExtra) as err:
        importlib.import_module("sleeptime_agent.letta")
    assert HINT in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ImportError)


@pytest.mark.usefixtures("no_letta_client")
def test_cli_imports_and_helps_without_letta_client(capsys: pytest.CaptureFixture[str]) -> None:
    cli_letta = importlib.reload(importlib.import_module("sleeptime_agent.cli.letta"))
    assert "sleeptime_agent.letta" not in sys.modules  # the command imports it lazily
    assert cli_letta.register is not None
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "letta" in capsys.readouterr().out


@pytest.mark.usefixtures("no_letta_client")
def test_letta_pull_without_the_extra_exits_3_with_the_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["letta", "pull", "--agent-id", "agent-1", "--base-url", "http://letta.test"]
    code = main([*argv, "--store", str(tmp_path / "store")])
    assert code == EXIT_CODES["config"] == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and HINT in err
    assert not (tmp_path / "store").exists()  # failed before opening the store
