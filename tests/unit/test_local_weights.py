"""GGUF assembly from the weight chunk packages, on a few small fake parts."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from sleeptime_agent.errors import ConfigurationError
from sleeptime_agent.local import weights as gguf
from sleeptime_agent.local.weights import GGUFSpec, ensure_gguf, is_verified

# --- GGUF assembly on small fake parts ------------------------------------------------------


@pytest.fixture
def parts(tmp_path: Path) -> tuple[list[Path], GGUFSpec]:
    blobs = [os.urandom(1000 + 37 * i) for i in range(4)]
    paths = []
    for i, blob in enumerate(blobs, 1):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(blob)
        paths.append(p)
    whole = b"".join(blobs)
    spec = GGUFSpec(
        filename="fake.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        part_module="fake_sleeptime_part{}",
        n_parts=len(blobs),
    )
    return paths, spec


def test_assembles_once_then_reuses(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, spec = parts
    monkeypatch.setenv("SLEEPTIME_HOME", str(tmp_path / "home"))
    out = ensure_gguf(spec, parts=paths, progress=False)
    assert out == tmp_path / "home" / "models" / "fake.gguf"
    assert out.read_bytes() == b"".join(p.read_bytes() for p in paths)
    assert is_verified(out, spec)
    assert not list(out.parent.glob("*.tmp"))

    def no_rebuild(*args: Any) -> None:
        raise AssertionError("rebuilt a verified file")

    monkeypatch.setattr(gguf, "_assemble", no_rebuild)
    assert ensure_gguf(spec, parts=paths, progress=False) == out


@pytest.mark.parametrize("damage", ["truncate", "no_marker", "bad_marker", "replaced"])
def test_damaged_file_is_rebuilt(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, damage: str
) -> None:
    paths, spec = parts
    dest = tmp_path / "m" / "model.gguf"
    ensure_gguf(spec, dest=dest, parts=paths, progress=False)
    marker = dest.with_name(dest.name + ".verified")
    if damage == "truncate":
        with open(dest, "r+b") as fh:
            fh.truncate(spec.size // 2)
    elif damage == "no_marker":
        marker.unlink()
    elif damage == "bad_marker":
        marker.write_text("{not json")
    else:  # same size, other bytes, written after verification
        dest.write_bytes(b"\0" * spec.size)
        os.utime(dest, ns=(1, 1))
    assert not is_verified(dest, spec)
    ensure_gguf(spec, dest=dest, parts=paths, progress=False)
    assert is_verified(dest, spec)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == spec.sha256


def test_corrupt_parts_leave_no_file(parts: tuple[list[Path], GGUFSpec], tmp_path: Path) -> None:
    paths, spec = parts
    paths[1].write_bytes(b"\xff" * paths[1].stat().st_size)  # same size, wrong bytes
    dest = tmp_path / "m" / "model.gguf"
    with pytest.raises(ConfigurationError, match="sha256"):
        ensure_gguf(spec, dest=dest, parts=paths, progress=False)
    assert not dest.exists()
    assert not list(dest.parent.glob("*.tmp"))
    paths[2].write_bytes(b"short")
    with pytest.raises(ConfigurationError, match="bytes"):
        ensure_gguf(spec, dest=dest, parts=paths, progress=False)


def test_part_paths_from_modules_and_missing_part(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, spec = parts
    for n, p in enumerate(paths, 1):
        mod = types.ModuleType(f"fake_sleeptime_part{n}")
        mod.get_part_path = lambda p=p: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    assert gguf.part_paths(spec) == paths
    dest = tmp_path / "m" / "model.gguf"
    assert ensure_gguf(spec, dest=dest, progress=False) == dest
    monkeypatch.setitem(sys.modules, "fake_sleeptime_part3", None)
    with pytest.raises(ConfigurationError) as info:
        ensure_gguf(spec, dest=tmp_path / "other.gguf", progress=False)
    assert str(info.value) == gguf.LOCAL_EXTRA_HINT
    assert not (tmp_path / "other.gguf").exists()


def test_concurrent_threads_assemble_once(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, spec = parts
    dest = tmp_path / "m" / "model.gguf"
    calls: list[int] = []
    real = gguf._assemble

    def counting(*args: Any) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(gguf, "_assemble", counting)
    threads = [
        threading.Thread(
            target=ensure_gguf,
            args=(spec,),
            kwargs={"dest": dest, "parts": paths, "progress": False},
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert is_verified(dest, spec)


def _assemble_in_process(spec: GGUFSpec, dest: str, parts: list[str]) -> None:
    ensure_gguf(spec, dest=Path(dest), parts=[Path(p) for p in parts], progress=False)


def test_concurrent_processes_produce_one_good_file(
    parts: tuple[list[Path], GGUFSpec], tmp_path: Path
) -> None:
    paths, spec = parts
    dest = tmp_path / "m" / "model.gguf"
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_assemble_in_process, args=(spec, str(dest), [str(p) for p in paths]))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert is_verified(dest, spec)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == spec.sha256
