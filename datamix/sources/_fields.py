"""Field checks of raw records: what a source's `parse` raises (`RecordError`, which the read loop
turns into a drop) and the typed accessors that raise it. They work on msgspec Structs and plain dicts
alike. `expect_list` / `expect_dict` check a whole file's shape (`RawFormatError`: not a drop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from datamix.fileio import RawFormatError
from datamix.schema import DropReason

_MISSING = msgspec.UNSET


class RecordError(Exception):
    """A raw record (or part of one) that cannot be used; becomes a Drop.

    `pointer` names the record when the raw position does not (e.g. a duplicate's id)."""

    def __init__(self, reason: DropReason, detail: str, *, pointer: Any = None):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.pointer = pointer


# ---------------------------------------------------------------------------------------------
# field access that works on msgspec Structs and plain dicts alike


def get(rec: Any, name: str, default: Any = _MISSING) -> Any:
    if isinstance(rec, dict):
        return rec.get(name, default)
    value = getattr(rec, name, default)
    return default if value is _MISSING else value


def require(rec: Any, name: str, types: type | tuple[type, ...], *, what: str = "") -> Any:
    """The field `name` of `rec`, which must be present (not null) and of `types` (bool is not an int)."""
    if not isinstance(rec, dict) and not isinstance(rec, msgspec.Struct):
        raise RecordError(
            DropReason.BAD_TYPE, f"{what or 'record'} is {type(rec).__name__}, expected an object"
        )
    value = get(rec, name)
    if value is _MISSING or value is None:
        raise RecordError(DropReason.MISSING_FIELD, f"missing field {name!r}")
    if isinstance(value, bool) and bool not in _as_tuple(types):
        raise RecordError(DropReason.BAD_TYPE, f"field {name!r} is a bool")
    if not isinstance(value, types):
        raise RecordError(DropReason.BAD_TYPE, f"field {name!r} is {type(value).__name__}: {_short(value)}")
    return value


def require_id(rec: Any, name: str) -> str:
    """An id field: the release mixes ints and strings; always returned as a string."""
    value = require(rec, name, (int, str))
    text = str(value)
    if not text:
        raise RecordError(DropReason.BAD_VALUE, f"field {name!r} is empty")
    return text


def require_str_list(rec: Any, name: str) -> list[str]:
    value = require(rec, name, list)
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise RecordError(DropReason.BAD_TYPE, f"{name}[{i}] is {type(v).__name__}: {_short(v)}")
    return value


def number(rec: Any, name: str) -> float:
    return float(require(rec, name, (int, float)))


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def expect_list(path: Path, data: Any, where: str = "top level") -> list[Any]:
    if not isinstance(data, list):
        raise RawFormatError(path, f"{where} is {type(data).__name__}, expected a JSON array")
    return data


def expect_dict(path: Path, data: Any, where: str = "top level") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RawFormatError(path, f"{where} is {type(data).__name__}, expected a JSON object")
    return data


def raw_record(name: str, fields: str) -> type[msgspec.Struct]:
    """A lenient msgspec record type for one raw JSON record: the space-separated `fields` only,
    each any type and `UNSET` when absent (the checks above type them), so that decoding keeps
    just the fields a source reads."""
    return msgspec.defstruct(name, [(f, Any, msgspec.UNSET) for f in fields.split()], gc=False)
