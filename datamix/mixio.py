"""Mix I/O: the one writer and the one reader of a built mix (docs/architecture.md 4.3).

    <mix>/shards/<name>.tar    per sample `<key>.json` (its `Sample.json`, as is) then `<key>.jpg`
    <mix>/manifest.parquet     one row per sample (`datamix.schema.MANIFEST_SCHEMA`), in shard order

Every part of datamix that reads a mix goes through `MixReader` (export, lint, report, inspect,
compare, the tests); the build writes through `MixWriter`. The trainer's streaming loader
(`trainer.data`) reads the same tars with `tarfile` and shares the member-name rule
(`datamix.schema.split_member`) and the manifest schema with this module; it does not import it.

Member names: `<key>.<ext>`, split at the FIRST dot of the base name (keys have no dots; WebDataset
groups members the same way): `datamix.schema.split_member`.

Shard paths: a manifest's `shard` value names a file relative to the mix folder or to its `shards/`
(`resolve_shard`). It is confined to the mix folder: an absolute value or one with a `..` part is
refused with `MixIOError` naming the manifest and the row. Only the value is checked, not where a
link leads: a `shards/` folder that is a symbolic link (a mix whose shards live on another disk)
stays allowed.

Writing: a shard goes to a temporary file renamed into place when complete, its manifest rows to
`<mix>/.parts/<shard>.parquet` (`ShardWriter`); the manifest is assembled from the parts in shard
order (`MixWriter.write_manifest`). Tar members get fixed metadata (mode 0644, uid/gid 0, empty
user/group names, mtime 0) and are written in a fixed order, so the same samples give byte-identical
shards (webdataset `TarWriter(mtime=...)` is the model; our writer skips tarfile's per-member
buffer copies and is byte-compatible with tarfile and webdataset readers).

Reading (`MixReader`, Megatron-Energon's single reader is the model): streaming over the samples
in manifest order (`iter_samples`), random access by key (`get`) or by (shard, member) (`read`), the
members of one shard in archive order (`members`, what lint checks), the manifest itself
(`read_manifest`, `iter_manifest`). Shard indexes are built from the tar headers (no per-member
objects) and a few are kept open; reading in manifest order touches each shard once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tarfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamix.errors import LocatedDataError
from datamix.fileio import atomic_path
from datamix.schema import (
    IMAGE_EXT,
    IMAGE_EXTS,
    JSON_EXT,
    MANIFEST_REQUIRED,
    MANIFEST_SCHEMA,
    Sample,
    member_name,
    split_member,
)

log = logging.getLogger(__name__)

TAR_MTIME = 0  # fixed member metadata: identical inputs give identical bytes
MANIFEST = "manifest.parquet"
SHARDS = "shards"
PARTS = ".parts"
_TMP = re.compile(r"\.tmp-\d+$")  # `atomic_path`'s temporary names


class MixIOError(LocatedDataError):
    """A mix that cannot be read or written: names the file (manifest, shard) and, when known, the
    manifest row."""

    unit = "row"

    def __init__(self, path: Path | str, message: str, row: int | None = None):
        super().__init__(path, message, row)
        self.row = row


# --------------------------------------------------------------------------------------------
# shard paths


def resolve_shard(
    mix_dir: Path | str, shard: str, *, manifest: Path | str | None = None, row: int | None = None
) -> Path:
    """The file of a manifest's `shard` value: a path relative to the mix folder or to its `shards/`
    (the first that exists; `shards/<name>` when none does).

    Raises `MixIOError` (naming `manifest` and `row`) for a value that is empty, absolute or has a
    `..` part: a manifest never points outside its mix folder (a symbolic-link `shards/` folder is
    fine: the value is checked, not the link's target)."""
    mix_dir = Path(mix_dir)
    value = PurePosixPath(str(shard).replace("\\", "/"))
    if not str(shard) or value.is_absolute() or Path(str(shard)).is_absolute() or ".." in value.parts:
        raise MixIOError(
            manifest if manifest is not None else mix_dir / MANIFEST,
            f"shard {shard!r} is not a path inside the mix folder (absolute and '..' paths are refused)",
            row,
        )
    for candidate in (mix_dir / value, mix_dir / SHARDS / value, mix_dir / SHARDS / value.name):
        if candidate.is_file():
            return candidate
    return mix_dir / SHARDS / value.name


# --------------------------------------------------------------------------------------------
# tar: writing

_BLOCK = 512
_RECORD = 20 * _BLOCK  # tar's record size: archives are padded to a multiple of it, as tarfile does
_ZERO_BLOCK = bytes(_BLOCK)


def _tar_header(name: str, size: int) -> bytes:
    """A POSIX ustar header with fixed metadata (mode 0644, uid/gid 0, empty user/group, mtime 0)."""
    raw = name.encode("utf-8")
    if len(raw) > 100:
        raise MixIOError(name, f"tar member name too long for ustar ({len(raw)} bytes)")
    fields = [
        raw.ljust(100, b"\0"),
        b"0000644\0",  # mode
        b"0000000\0",  # uid
        b"0000000\0",  # gid
        b"%011o\0" % size,
        b"%011o\0" % TAR_MTIME,
        b" " * 8,  # checksum placeholder
        b"0",  # regular file
        b"\0" * 100,  # linkname
        b"ustar\x0000",
        b"\0" * 32,  # uname
        b"\0" * 32,  # gname
        b"0000000\0",  # devmajor
        b"0000000\0",  # devminor
        b"\0" * 155,  # prefix
    ]
    header = b"".join(fields).ljust(_BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


class TarWriter:
    """Minimal deterministic tar writer: header + data + zero padding per member, then the
    end-of-archive blocks padded to a full record (as tarfile writes it)."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.pos = 0

    def add(self, name: str, data: bytes) -> None:
        pad = -len(data) % _BLOCK
        self.f.write(_tar_header(name, len(data)))
        self.f.write(data)
        if pad:
            self.f.write(b"\0" * pad)
        self.pos += _BLOCK + len(data) + pad

    def close(self) -> None:
        end = self.pos + 2 * _BLOCK
        self.f.write(b"\0" * (2 * _BLOCK + (-end % _RECORD)))


# --------------------------------------------------------------------------------------------
# tar: reading


def _scan_plain_tar(f: BinaryIO, size: int) -> list[tuple[str, int, int]] | None:
    """Fast path of `tar_members` for plain ustar/v7 archives; None when anything needs `tarfile`."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while pos + _BLOCK <= size:
        f.seek(pos)
        header = f.read(_BLOCK)
        if header == _ZERO_BLOCK:
            return out
        try:
            stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            length = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return None
        if stored != sum(header[:148]) + 256 + sum(header[156:]) or header[156:157] in (
            b"x",
            b"g",
            b"L",
            b"K",
        ):
            return None  # bad checksum, or pax / GNU long-name headers: let tarfile judge
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        data = pos + _BLOCK
        if header[156:157] in (b"0", b"\0", b"7"):
            out.append((name.decode("utf-8", "surrogateescape"), data, length))
        pos = data + -(-length // _BLOCK) * _BLOCK
    if pos == size:
        return out  # ends on a member boundary without end-of-archive blocks: tolerated, as tarfile does
    need = pos if pos > size else pos + _BLOCK
    raise tarfile.ReadError(f"truncated archive: {size} bytes, at least {need} expected")


def tar_members(f: BinaryIO) -> list[tuple[str, int, int]]:
    """`(name, data offset, size)` of every regular file of an uncompressed tar, in archive order.

    Plain ustar headers (what `TarWriter` produces) are parsed directly, several times faster than
    `tarfile`'s per-member objects; pax or GNU extensions and odd headers go through `tarfile`. A
    damaged or truncated archive raises `tarfile.TarError`.
    """
    size = os.fstat(f.fileno()).st_size
    fast = _scan_plain_tar(f, size)
    if fast is not None:
        return fast
    f.seek(0)
    with tarfile.open(fileobj=f, mode="r:") as tar:
        return [(info.name, info.offset_data, info.size) for info in tar if info.isfile()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """One file member of a shard: its `key` and `ext` (`split_member`) and its bytes."""

    name: str
    key: str
    ext: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MixSample:
    """One sample as read back from a mix: its manifest `row` (index), `key`, `shard` (the manifest's
    value), the `<key>.json` bytes (None when the shard lacks it) and the image member's bytes (None
    for text-only samples, when not asked for, or when missing)."""

    row: int
    key: str
    shard: str
    json: bytes | None
    image: bytes | None = None

    def record(self) -> Any:
        """The decoded `<key>.json` (raises `msgspec.DecodeError` for bytes that are not JSON)."""
        import msgspec

        if self.json is None:
            raise MixIOError(self.shard, f"no sample {member_name(self.key, JSON_EXT)}", self.row)
        return msgspec.json.decode(self.json)


def iter_members(path: Path | str) -> Iterator[Member]:
    """Every file member of a tar shard with its key and extension, in archive order. Raises
    `MixIOError` ("unreadable tar shard") for a missing, damaged or truncated file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            for name, offset, size in tar_members(f):
                key, ext = split_member(name)
                f.seek(offset)
                data = f.read(size)
                if len(data) != size:
                    raise EOFError(f"member {name} is truncated")
                yield Member(name=name, key=key, ext=ext, data=data)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise MixIOError(path, f"unreadable tar shard: {e}") from None


def iter_shard_samples(path: Path | str) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """`(key, json bytes, image bytes)` per sample of one shard, in archive order: consecutive members
    of one key form a sample (as WebDataset groups them). Raises `MixIOError` for a damaged shard."""
    key: str | None = None
    json_bytes: bytes | None = None
    image: bytes | None = None
    for m in iter_members(path):
        if m.key != key:
            if key is not None:
                yield key, json_bytes, image
            key, json_bytes, image = m.key, None, None
        if m.ext == JSON_EXT:
            json_bytes = m.data
        elif m.ext in IMAGE_EXTS:
            image = m.data
    if key is not None:
        yield key, json_bytes, image


# --------------------------------------------------------------------------------------------
# writing a mix


def manifest_row(
    sample: Sample,
    shard: str,
    *,
    image_sha256: str | None = None,
    width: int | None = None,
    height: int | None = None,
    stored_sha256: str | None = None,
    presized: bool | None = None,
    n_tokens: int | None = None,
) -> dict[str, Any]:
    """The manifest row of a sample written to `shard` (`MANIFEST_SCHEMA`)."""
    return {
        "key": sample.key,
        "id": sample.id,
        "source": sample.source,
        "image": sample.image,
        "image_sha256": image_sha256,
        "width": width,
        "height": height,
        "stored_sha256": stored_sha256,
        "presized": presized,
        "n_turns": sample.n_turns,
        "n_text_chars": sample.n_text_chars,
        "n_tokens": n_tokens,
        "shard": shard,
    }


class ShardWriter:
    """Writes one shard: `add` a sample's members and its manifest row; `close` (or leaving the
    `with` block without an error) renames the tar into place and writes the rows to its part file.
    An error leaves neither the tar nor the part under its final name."""

    def __init__(self, path: Path, part_path: Path):
        self.path = Path(path)
        self.part_path = Path(part_path)
        self.name = self.path.name
        self.rows: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(open(tmp, "wb", buffering=1 << 20))
        self._tar = TarWriter(self._file)

    def add(self, sample: Sample, image: bytes | None = None, **row: Any) -> None:
        """`<key>.json` (the sample's bytes as is), then `<key>.jpg` when `image` is given; `row`
        holds the manifest fields the writer knows (`manifest_row`'s keywords)."""
        self._tar.add(member_name(sample.key, JSON_EXT), sample.json)
        if image is not None:
            self._tar.add(member_name(sample.key, IMAGE_EXT), image)
        self.rows.append(manifest_row(sample, self.name, **row))

    def close(self) -> int:
        """Finish the tar and the part; returns the number of samples."""
        self._tar.close()
        self._file.close()
        self._stack.close()  # renames the tar into place
        with atomic_path(self.part_path) as part_tmp:
            pq.write_table(
                pa.Table.from_pylist(self.rows, schema=MANIFEST_SCHEMA), part_tmp, compression="zstd"
            )
        return len(self.rows)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stack.__exit__(exc_type, exc, tb)  # the temp tar is removed, nothing renamed


class MixWriter:
    """The files of a mix folder being written: shards, their manifest parts, the manifest.

    `shard(name)` opens a `ShardWriter`; `done(name)` says whether a shard and its part are both
    complete (a resumed build skips it); `write_manifest(names)` concatenates the parts in the given
    shard order into `manifest.parquet` (atomically) and returns it; `clear()` removes the shards,
    parts, manifest and summary of an earlier build; `finish()` removes the parts folder. A
    `MixWriter` holds only paths: it can be sent to worker processes."""

    def __init__(self, out: Path | str):
        self.out = Path(out)
        self.shards_dir = self.out / SHARDS
        self.parts_dir = self.out / PARTS
        self.manifest_path = self.out / MANIFEST

    def shard_path(self, name: str) -> Path:
        return self.shards_dir / name

    def part_path(self, name: str) -> Path:
        return self.parts_dir / f"{name}.parquet"

    def has_output(self) -> bool:
        return self.manifest_path.exists() or self.shards_dir.exists()

    def prepare(self) -> None:
        """Create the folders; remove the temporary files a killed writer left (`*.tmp-<pid>`: the
        caller holds the folder's lock, so no other writer owns them)."""
        self.shards_dir.mkdir(parents=True, exist_ok=True)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.shards_dir, self.parts_dir, self.out):
            for stale in folder.glob("*.tmp-*"):
                if _TMP.search(stale.name) and stale.is_file():
                    stale.unlink(missing_ok=True)

    def owned_shards(self, *names: str) -> list[Path]:
        """The files of `shards/` a build of one of the mix `names` wrote: `<name>-NNNNNN.tar` (and
        their temporary files), plus every shard the current manifest names. Anything else found
        there (a user's file) is not the build's."""
        if not self.shards_dir.is_dir():
            return []
        pattern = (
            re.compile(r"^(?:" + "|".join(re.escape(n) for n in names if n) + r")-\d{6}\.tar(?:\.tmp-\d+)?$")
            if any(names)
            else None
        )
        listed: set[str] = set()
        if self.manifest_path.is_file():
            try:
                shards = pq.read_table(self.manifest_path, columns=["shard"])["shard"].to_pylist()
                listed = {str(v).rsplit("/", 1)[-1] for v in shards}
            except Exception:  # noqa: BLE001 - a damaged manifest names nothing
                listed = set()
        return sorted(
            p
            for p in self.shards_dir.iterdir()
            if p.is_file() and ((pattern is not None and pattern.match(p.name)) or p.name in listed)
        )

    def clear(self, *also: str, names: Sequence[str] = ()) -> None:
        """Remove what a build owns: its shards (`owned_shards(*names)`), the parts, the manifest and
        the named files (e.g. `summary.json`). Other files in `shards/` are kept (with a warning)."""
        import shutil

        for path in self.owned_shards(*names):
            path.unlink(missing_ok=True)
        if self.shards_dir.is_dir():
            kept = sorted(p.name for p in self.shards_dir.iterdir())
            if kept:
                log.warning(
                    "%s: kept %d file(s) the build does not own: %s",
                    self.shards_dir,
                    len(kept),
                    ", ".join(kept[:5]),
                )
            else:
                self.shards_dir.rmdir()
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        for name in (MANIFEST, *also):
            (self.out / name).unlink(missing_ok=True)

    def done(self, name: str) -> bool:
        return self.shard_path(name).exists() and self.part_path(name).exists()

    def shard(self, name: str) -> ShardWriter:
        return ShardWriter(self.shard_path(name), self.part_path(name))

    def write_manifest(self, names: Sequence[str]) -> pa.Table:
        manifest = (
            pa.concat_tables([read_part(self.part_path(n)) for n in names])
            if names
            else MANIFEST_SCHEMA.empty_table()
        )
        manifest = manifest.cast(MANIFEST_SCHEMA)
        with atomic_path(self.manifest_path) as tmp:
            pq.write_table(manifest, tmp, compression="zstd")
        return manifest

    def finish(self) -> None:
        import shutil

        shutil.rmtree(self.parts_dir, ignore_errors=True)


def read_part(path: Path) -> pa.Table:
    """A shard's manifest rows; a part written before `stored_sha256`/`presized` existed (a build
    resumed across the upgrade, never presized) gets them: the original bytes were stored."""
    table = pq.read_table(path)
    if "stored_sha256" not in table.column_names:
        table = table.append_column("stored_sha256", table["image_sha256"])
    if "presized" not in table.column_names:
        has_image = pc.is_valid(table["image_sha256"])
        table = table.append_column("presized", pc.if_else(has_image, False, pa.scalar(None, pa.bool_())))
    return table.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)


# --------------------------------------------------------------------------------------------
# reading a mix


def locate_manifest(path: Path | str) -> tuple[Path, Path]:
    """(mix folder, manifest file) of a mix folder or of its manifest.parquet (which need not exist)."""
    path = Path(path)
    if path.is_dir():
        return path, path / MANIFEST
    return path.parent, path


class MixReader:
    """A built mix, read: its manifest and its samples, streaming or by key / (shard, member).

    `MixReader(path)` takes a mix folder or its `manifest.parquet`; nothing is read until asked.
    Errors are `MixIOError` naming the manifest or the shard (and the row when there is one).
    Use as a context manager (or `close()`): up to `cache` shards stay open with their indexes."""

    def __init__(self, path: Path | str, *, cache: int = 4):
        self.mix_dir, self.manifest_path = locate_manifest(path)
        self._cache: OrderedDict[Path, tuple[io.BufferedReader, dict[str, tuple[int, int]]]] = OrderedDict()
        self._size = max(1, cache)
        self._pf: pq.ParquetFile | None = None
        self._paths: dict[str, Path] = {}
        self._by_key: dict[str, tuple[int, str]] | None = None

    # -- the manifest ----------------------------------------------------------------------------

    def parquet(self) -> pq.ParquetFile:
        """The manifest, opened and checked for `key` and `shard`."""
        if self._pf is None:
            if not self.manifest_path.is_file():
                raise MixIOError(self.manifest_path, f"no {MANIFEST} in the mix folder")
            try:
                pf = pq.ParquetFile(self.manifest_path)
            except Exception as e:  # pyarrow raises several types for a bad file
                raise MixIOError(self.manifest_path, f"cannot read manifest: {e}") from None
            missing = set(MANIFEST_REQUIRED) - set(pf.schema_arrow.names)
            if missing:
                pf.close()
                raise MixIOError(self.manifest_path, f"manifest lacks column(s) {sorted(missing)}")
            self._pf = pf
        return self._pf

    @property
    def columns(self) -> list[str]:
        return list(self.parquet().schema_arrow.names)

    def __len__(self) -> int:
        return self.parquet().metadata.num_rows

    def read_manifest(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The manifest table (the given columns that it has; all by default)."""
        pf = self.parquet()
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        try:
            return pf.read(columns=cols)
        except Exception as e:  # a damaged row group
            raise MixIOError(self.manifest_path, f"cannot read manifest: {e}") from None

    def iter_manifest(self, columns: Sequence[str], batch_size: int = 8192) -> Iterator[dict[str, list[Any]]]:
        """The manifest in batches, as {column: values}; a column the manifest lacks is all None."""
        pf = self.parquet()
        have = [c for c in columns if c in pf.schema_arrow.names]
        batches = pf.iter_batches(columns=have, batch_size=batch_size)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as e:  # a damaged row group
                raise MixIOError(self.manifest_path, f"cannot read manifest: {e}") from None
            values = {name: batch.column(i).to_pylist() for i, name in enumerate(have)}
            yield {c: values[c] if c in values else [None] * batch.num_rows for c in columns}

    def shard_path(self, shard: str, row: int | None = None) -> Path:
        """The file of a manifest `shard` value (`resolve_shard`, confined to the mix folder)."""
        path = self._paths.get(shard)
        if path is None:
            path = resolve_shard(self.mix_dir, shard, manifest=self.manifest_path, row=row)
            self._paths[shard] = path
        return path

    def shard_files(self) -> list[Path]:
        """The `*.tar` files of the mix's `shards/` folder, in name order (those no row may name)."""
        return sorted((self.mix_dir / SHARDS).glob("*.tar"))

    # -- samples ---------------------------------------------------------------------------------

    def iter_samples(self, *, images: bool = False, batch_size: int = 8192) -> Iterator[MixSample]:
        """Every sample in manifest order: its `<key>.json` bytes (None if the shard lacks them) and,
        with `images`, its image bytes. An unreadable shard raises `MixIOError`."""
        row = 0
        for batch in self.iter_manifest(["key", "shard"], batch_size):
            for key, shard in zip(batch["key"], batch["shard"], strict=True):
                yield self._sample(row, str(key), str(shard), images)
                row += 1

    def __iter__(self) -> Iterator[MixSample]:
        return self.iter_samples()

    def get(self, key: str, *, images: bool = True) -> MixSample:
        """The sample of `key` (random access; the key -> shard index is built on first use).
        Raises KeyError for a key the manifest does not have."""
        if self._by_key is None:
            self._by_key = {}
            row = 0
            for batch in self.iter_manifest(["key", "shard"]):
                for k, s in zip(batch["key"], batch["shard"], strict=True):
                    self._by_key.setdefault(str(k), (row, str(s)))
                    row += 1
        row, shard = self._by_key[key]
        return self._sample(row, key, shard, images)

    def _sample(self, row: int, key: str, shard: str, images: bool) -> MixSample:
        json_bytes = self.read(shard, member_name(key, JSON_EXT), row=row)
        image = None
        if images:
            for ext in (IMAGE_EXT, *sorted(IMAGE_EXTS - {IMAGE_EXT})):
                image = self.read(shard, f"{key}.{ext}", row=row)
                if image is not None:
                    break
        return MixSample(row=row, key=key, shard=shard, json=json_bytes, image=image)

    def read(self, shard: str, member: str, *, row: int | None = None) -> bytes | None:
        """The bytes of `member` in the shard named by the manifest value `shard`, or None if that
        shard has no such member. A missing or unreadable shard raises `MixIOError`."""
        f, members = self._index(self.shard_path(shard, row))
        where = members.get(member)
        if where is None:
            return None
        f.seek(where[0])
        data = f.read(where[1])
        if len(data) != where[1]:
            raise MixIOError(self.shard_path(shard), f"unreadable tar shard: member {member} is truncated")
        return data

    def members(self, path: Path) -> Iterator[Member]:
        """Every member of one shard file in archive order (`iter_members`)."""
        return iter_members(path)

    def _index(self, path: Path) -> tuple[io.BufferedReader, dict[str, tuple[int, int]]]:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        try:
            f = open(path, "rb")
        except OSError as e:
            raise MixIOError(path, f"cannot read shard: {e.strerror or e}") from None
        try:
            index: dict[str, tuple[int, int]] = {}
            for name, offset, length in tar_members(f):
                # a repeated name: the last one wins, as before (lint flags repeats)
                index[name.rsplit("/", 1)[-1]] = (offset, length)
        except (OSError, tarfile.TarError, EOFError) as e:
            f.close()
            raise MixIOError(path, f"cannot read shard: {e}") from None
        self._cache[path] = (f, index)
        while len(self._cache) > self._size:
            _, (old, _) = self._cache.popitem(last=False)
            old.close()
        return f, index

    def close(self) -> None:
        for f, _ in self._cache.values():
            f.close()
        self._cache.clear()
        if self._pf is not None:
            self._pf.close()
            self._pf = None

    def __enter__(self) -> MixReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "MANIFEST",
    "PARTS",
    "SHARDS",
    "TAR_MTIME",
    "Member",
    "MixIOError",
    "MixReader",
    "MixSample",
    "MixWriter",
    "ShardWriter",
    "TarWriter",
    "iter_members",
    "iter_shard_samples",
    "locate_manifest",
    "manifest_row",
    "read_part",
    "resolve_shard",
    "tar_members",
]
