"""datamix.errors: the one error contract of both command lines."""

from __future__ import annotations


def test_error_contract_describes_every_kind_in_one_line() -> None:
    import errno

    from datamix.errors import DataError, UsageError, describe

    assert describe(DataError("bad answer", path="a.json", record=3, field="answers")) == (
        1,
        "a.json: record 3: answers: bad answer",
    )
    assert describe(UsageError("no such mix", path="m")) == (2, "m: no such mix")
    assert describe(FileNotFoundError(errno.ENOENT, "No such file or directory", "/a")) == (
        2,
        "/a: No such file or directory",
    )
    assert describe(FileNotFoundError("no shards under x")) == (2, "no shards under x")
    assert describe(OSError(errno.ENOSPC, "No space left on device", "/out")) == (
        2,
        "/out: no space left on the device",
    )
    code, line = describe(KeyError("x"))
    assert code == 3 and line.startswith("internal error: KeyError") and "\n" not in line
