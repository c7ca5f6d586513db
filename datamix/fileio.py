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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from datamix.errors import DataError


class RawFormatError(DataError):
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
    with _mapped(path) as buf:
        try:
            return msgspec.json.decode(buf, type=type)
        except msgspec.ValidationError:
            pass  # structurally unexpected somewhere: retry untyped, let the caller judge each record
        except msgspec.DecodeError as e:
            raise RawFormatError(path, f"not valid JSON: {e}") from None
        except RecursionError:
            raise RawFormatError(path, _TOO_DEEP) from None
        try:
            return msgspec.json.decode(buf)
        except msgspec.DecodeError as e:  # pragma: no cover - the typed pass would have said so
            raise RawFormatError(path, f"not valid JSON: {e}") from None
        except RecursionError:
            raise RawFormatError(path, _TOO_DEEP) from None


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """A read-only memory map of a JSON file; `RawFormatError` if the file is empty."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise RawFormatError(path, "empty file, expected JSON")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            yield buf


def _near(e: msgspec.DecodeError) -> str:
    """' near byte N: <problem>' from msgspec's "<problem> (byte N)" message."""
    m = re.fullmatch(r"(.*) \(byte (\d+)\)", str(e))
    return f" near byte {m[2]}: {m[1]}" if m else f": {e}"


_JSON_KINDS = {ord("{"): "dict", ord('"'): "str", ord("t"): "bool", ord("f"): "bool", ord("n"): "NoneType"}


def iter_json_list(path: Path | str, item_type: Any = Any) -> Iterator[Any]:
    """Yield the elements of a JSON array file one at a time, each decoded when it is reached.

    The whole document is validated first, but only into raw slices of a read-only memory map, so a
    file of many large records (ShareGPT: 672 MB) costs the slices plus one decoded record, not every
    record at once. Each element is decoded as `item_type` (msgspec Structs whose fields are all `Any`
    with defaults: unknown keys skipped); an element that does not fit it (e.g. not an object) is
    decoded untyped, so the caller can drop it with a reason. Raises `RawFormatError` for an empty
    file, a document that is not JSON (with the byte position) or one that is not an array.
    """
    path = Path(path)
    with _mapped(path) as buf:
        try:
            raws = msgspec.json.decode(buf, type=list[msgspec.Raw])
        except msgspec.ValidationError:
            first = buf[: 1 << 16].lstrip()[:1]
            kind = _JSON_KINDS.get(first[0], "number") if first else "empty"
            raise RawFormatError(path, f"top level is {kind}, expected a JSON array") from None
        except msgspec.DecodeError as e:
            raise RawFormatError(path, f"not valid JSON{_near(e)}") from None
        except RecursionError:
            raise RawFormatError(path, _TOO_DEEP) from None
        try:
            yield from decode_each(raws, item_type)
        finally:
            raws.clear()  # release the views before the map closes (also those an error still holds)
            del raws


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record of a JSON array that does not decode on its own (invalid UTF-8 inside a string, nested
    too deep, ...): `decode_each` yields it in the record's place, the reader turns it into a drop
    (`DropReason.BAD_JSON`) and goes on with the next record."""

    message: str


#: Deeper than this, msgspec and Python's own decoder give up with RecursionError; say so in one line.
_TOO_DEEP = "JSON nested too deep (thousands of levels of arrays or objects)"


def _bad(e: BaseException) -> BadRecord:
    return BadRecord(_TOO_DEEP if isinstance(e, RecursionError) else f"not valid JSON: {e}")


def decode_each(raws: list[Any], item_type: Any = Any) -> Iterator[Any]:
    """Decode raw JSON slices (`msgspec.Raw`) in order, each as `item_type` or, if it does not fit,
    untyped; a slice that does not decode at all comes back as a `BadRecord` (the caller drops it).
    Each slice is dropped from `raws` once decoded (its view of the file is released)."""
    typed, untyped = msgspec.json.Decoder(item_type), msgspec.json.Decoder()
    for i in range(len(raws)):
        try:
            item = typed.decode(raws[i])
        except msgspec.ValidationError:
            try:
                item = untyped.decode(raws[i])
            except (msgspec.DecodeError, RecursionError) as e:
                item = _bad(e)
        except (msgspec.DecodeError, RecursionError) as e:
            item = _bad(e)
        raws[i] = None
        yield item
