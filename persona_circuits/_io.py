"""Atomic file and folder writes: a reader never sees a half-written artefact."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError


def check_parent(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking that its parent folder exists."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder's parent does not exist: {parent}")
    return p


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename. The file gets the
    permissions of the file it replaces, else those of a new file (``0o666`` less the umask), not the
    owner-only ``0o600`` of a temporary file."""
    p = check_parent(path)
    try:
        mode = p.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` in one rename.

    On any exception the temporary folder is removed and ``path`` is left as it was.
    """
    p = check_parent(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"output path exists and is not a folder: {p}")
    if p.exists() and not overwrite:
        raise OutputError(f"output folder already exists: {p}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
    try:
        yield tmp
        if p.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".old", dir=p.parent))
            os.rmdir(old)
            os.replace(p, old)
            os.replace(tmp, p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def safetensors_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """``safetensors.torch.save(tensors, metadata)`` with a canonical header, so that the same tensors and
    metadata always give the same bytes.

    safetensors keeps ``metadata`` in a Rust ``HashMap`` whose order changes from call to call (two
    keys come out in either order), so its bytes, and any checksum of them, differ between identical
    saves. Here the header is re-written with sorted keys (compact JSON, space-padded to 8 bytes as
    safetensors does); the data section, whose order safetensors already fixes, is unchanged.
    """
    from safetensors.torch import save

    blob = save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = {} if meta is None else {"__metadata__": dict(sorted(meta.items()))}
    out.update(sorted(header.items()))
    h = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + blob[8 + n:]
