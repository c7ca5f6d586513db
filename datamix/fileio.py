"""Small file helpers shared by every stage: atomic writes, hashing, compact JSON reading.

Nothing half-written is ever taken for finished: writers produce `<name>.tmp-<pid>` beside the
target and rename it into place only when complete (`atomic_path`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec


class RawFormatError(Exception):
    """A raw file that cannot be parsed at all (as opposed to a bad record inside it)."""

    def __init__(self, path: Path | str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json_atomic(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_json(path: Path | str, type: Any = Any) -> Any:
    """Decode a JSON file through a read-only memory map (no copy of the bytes on the heap).

    With a `type` (msgspec Structs whose fields are all `Any` with defaults), unknown keys are skipped
    while decoding, which keeps memory near the size of the kept fields. If the document does not fit
    the type (e.g. a record that is not an object), it is decoded again untyped so that the caller can
    turn the odd records into drops. A document that is not JSON at all raises `RawFormatError` with
    the byte position.
    """
    path = Path(path)
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise RawFormatError(path, "empty file, expected JSON")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return msgspec.json.decode(buf, type=type)
            except msgspec.ValidationError:
                pass  # structurally unexpected somewhere: retry untyped, let the caller judge each record
            except msgspec.DecodeError as e:
                raise RawFormatError(path, f"not valid JSON: {e}") from None
            try:
                return msgspec.json.decode(buf)
            except msgspec.DecodeError as e:  # pragma: no cover - the typed pass would have said so
                raise RawFormatError(path, f"not valid JSON: {e}") from None
