"""The error contract of both command lines (`datamix` and `python -m trainer`).

Every failure a user can cause or meet is one of two kinds, each with its exit code:
- `DataError` (exit 1): the data has problems: a record, a shard, a file's content. The run could go
  on with other inputs; the message names the file, the record and the field.
- `UsageError` (exit 2): the command cannot run: bad arguments, a bad config or recipe, a missing or
  unreadable file or folder, a full or read-only disk.
Anything else is a bug: exit 3 with one line saying so.

`cli_errors(prog, verbose)` is the one handler both CLIs wrap their commands in: it prints one line
(`prog: <file>: record <r>: <field>: <message>`) to stderr, and the traceback only with `-v`.
OS errors (missing files, permissions, a full disk) are usage errors named by their file.

Torch-free and dependency-free: the trainer uses it too (`docs/architecture.md#import-rule`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import traceback
from collections.abc import Iterator
from os import PathLike
from typing import Any

__all__ = [
    "EXIT_BUG",
    "DataError",
    "DatamixError",
    "LocatedDataError",
    "UsageError",
    "cli_errors",
    "describe",
]

EXIT_BUG = 3

log = logging.getLogger(__name__)


class DatamixError(Exception):
    """Base of the contract: a message plus where (file, record, field). `exit_code` by subclass."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        record: Any = None,
        field: str | None = None,
    ):
        self.message = message
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        super().__init__(self.where() + message)

    def where(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.record is not None:
            parts.append(f"record {self.record}")
        if self.field:
            parts.append(self.field)
        return "".join(p + ": " for p in parts)


class DataError(DatamixError):
    """The data has problems (exit 1)."""

    exit_code = 1


class LocatedDataError(DataError):
    """A `DataError` raised as `(path, message, at)`: reads `<path>: <message>`, or
    `<path>: <unit> <at>: <message>` when `at` is known; keeps `path` and the bare `message`."""

    unit = "record"  # what `at` counts, in the text
    path: str  # always set (DatamixError's is optional)

    def __init__(self, path: str | PathLike[str], message: str, at: int | None = None):
        where = f"{path}" if at is None else f"{path}: {self.unit} {at}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.message = message


class UsageError(DatamixError):
    """The command cannot run: arguments, config, missing/unreadable files, disk (exit 2)."""

    exit_code = 2


_DISK = {
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "read-only file system",
    errno.EDQUOT: "disk quota exceeded",
}


def describe(err: BaseException) -> tuple[int, str]:
    """(exit code, one line) for any exception, by the contract above."""
    if isinstance(err, DatamixError):
        return err.exit_code, str(err)
    if isinstance(err, OSError):
        what = _DISK.get(err.errno or 0) or err.strerror or str(err) or type(err).__name__
        where = err.filename if err.filename is not None else None
        return UsageError.exit_code, (f"{where}: {what}" if where else what)
    if isinstance(err, UnicodeDecodeError):
        return UsageError.exit_code, f"not UTF-8 text (byte {err.start})"
    text = str(err) or type(err).__name__
    return (
        EXIT_BUG,
        f"internal error: {type(err).__name__}: {text.splitlines()[0] if text else ''} (a bug; rerun with -v for the traceback)",
    )


@contextlib.contextmanager
def cli_errors(prog: str, *, verbose: bool = False, stream: Any = None) -> Iterator[None]:
    """Turn any exception escaping the block into one line on stderr and `SystemExit(code)`.

    `SystemExit` and `KeyboardInterrupt` pass through (the latter as exit 130, one line)."""
    out = stream if stream is not None else sys.stderr
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        out.write(f"{prog}: interrupted\n")
        raise SystemExit(130) from None
    except BaseException as err:  # noqa: BLE001 - the one place that turns errors into exit codes
        code, line = describe(err)
        if verbose:
            traceback.print_exc(file=out)
        out.write(f"{prog}: {line}\n")
        raise SystemExit(code) from None
