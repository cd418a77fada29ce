"""The layout's promises: the library loads no optional integration, extras fail with a hint."""

from __future__ import annotations

import subprocess
import sys

import pytest

OPTIONAL = ("matplotlib", "xllamacpp", "letta_client", "sleeptime_bench")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: this test process has imported everything already.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_the_library_loads_no_optional_integration() -> None:
    out = _python(
        "import sys, sleeptime_agent\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(OPTIONAL)!r}))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_library_sources_never_import_the_harness() -> None:
    """Only the CLI plugs `sleeptime bench` in, when the harness is installed."""
    import re
    from pathlib import Path

    import sleeptime_agent

    root = Path(sleeptime_agent.__file__).parent
    imports = re.compile(r"^\s*(from|import) sleeptime_bench\b", re.M)
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if imports.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == ["cli/__init__.py"]


@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [
        ("xllamacpp", "sleeptime_agent.local", "local"),
        ("letta_client", "sleeptime_agent.letta", "letta"),
    ],
)
def test_an_integration_without_its_extra_names_the_install_command(
    blocked: str, module: str, extra: str
) -> None:
    out = _python(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from sleeptime_agent.errors import MissingExtra\n"
        "try:\n"
        f"    import {module}\n"
        "except MissingExtra as exc:\n"
        "    print(exc)\n"
    )
    assert out.returncode == 0, out.stderr
    assert f"pip install 'sleeptime-agent[{extra}]'" in out.stdout


def test_lazy_local_chat_model_name_still_imports() -> None:
    import sleeptime_agent
    from sleeptime_agent.local import LocalChatModel

    assert sleeptime_agent.LocalChatModel is LocalChatModel


@pytest.mark.parametrize("blocked", ["sleeptime_bench", "matplotlib"])
def test_bench_without_its_extra_exits_3_with_the_hint(blocked: str) -> None:
    """Blocked package: harness not installed; blocked matplotlib: installed, extra missing."""
    out = _python(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from sleeptime_agent.cli import main\n"
        "sys.exit(main(['bench', 'locomo', '--limit', '1']))\n"
    )
    assert out.returncode == 3, out.stderr
    assert "pip install 'sleeptime-agent[bench]'" in out.stderr
    assert "Traceback" not in out.stderr
