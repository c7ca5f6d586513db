"""What every source shares: its description, the reading context, field checks, image checks.

A source module holds only the raw -> canonical mapping (`Source.read`), yielding items and drops.
Writing tables, counting, timing and progress live in `datamix.normalize`; a source never writes.

Bad records never stop a source: a field check raises `RecordError`, which the source turns into a
`Drop` (helper `Context.drop_for`). A file that is not parseable at all raises `RawFormatError`.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import msgspec
from PIL import Image

from datamix.fileio import RawFormatError
from datamix.schema import Drop, DropReason, Item, Kind

log = logging.getLogger(__name__)

# Pillow's decompression-bomb guard stays on (an error above 2x this many pixels); make it explicit.
Image.MAX_IMAGE_PIXELS = 89_478_485

_MISSING = msgspec.UNSET


@dataclass(frozen=True)
class RawFile:
    """One raw file as distributed, relative to ROOT/raw/<source>/."""

    name: str
    description: str
    optional: bool = False


class RecordError(Exception):
    """A raw record (or part of one) that cannot be used; becomes a Drop."""

    def __init__(self, reason: DropReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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
        raise RecordError(DropReason.BAD_TYPE, f"{what or 'record'} is {type(rec).__name__}, expected an object")
    value = get(rec, name)
    if value is _MISSING or value is None:
        raise RecordError(DropReason.MISSING_FIELD, f"missing field {name!r}")
    if isinstance(value, bool) and bool not in _as_tuple(types):
        raise RecordError(DropReason.BAD_TYPE, f"field {name!r} is a bool")
    if not isinstance(value, types):
        raise RecordError(
            DropReason.BAD_TYPE, f"field {name!r} is {type(value).__name__}: {_short(value)}"
        )
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


# ---------------------------------------------------------------------------------------------
# images


class ImageIndex:
    """Answers "is this LLaVA-layout image there and non-empty?" with one directory listing per folder.

    Listing a folder once (118K COCO files) is far cheaper than a stat per record and per question.
    """

    def __init__(self, images_root: Path):
        self.root = Path(images_root)
        self._dirs: dict[str, dict[str, int]] = {}

    def _listing(self, folder: str) -> dict[str, int]:
        listing = self._dirs.get(folder)
        if listing is None:
            listing = {}
            path = self.root / folder
            if path.is_dir():
                with os.scandir(path) as it:
                    for entry in it:
                        try:
                            listing[entry.name] = entry.stat().st_size
                        except OSError:  # pragma: no cover - vanished while listing
                            continue
            self._dirs[folder] = listing
        return listing

    def size(self, rel: str) -> int | None:
        folder, _, name = rel.rpartition("/")
        return self._listing(folder).get(name)

    def check(self, rel: str) -> None:
        """Raise RecordError unless the image exists and is not empty."""
        size = self.size(rel)
        if size is None:
            raise RecordError(DropReason.IMAGE_MISSING, f"image not found: images/{rel}")
        if size == 0:
            raise RecordError(DropReason.IMAGE_EMPTY, f"image file is empty: images/{rel}")

    def decode_size(self, rel: str) -> tuple[int, int]:
        """Check the image exists and fully decodes (truncated files fail); return (width, height).

        Pillow sniffs the content, so GIF or PNG bytes under a `.jpg` name decode and are kept.
        JPEGs are decoded in draft mode (DCT scaling): every scan is still read, so truncation is caught.
        """
        self.check(rel)
        path = self.root / rel
        try:
            with Image.open(path) as im:
                size = im.size
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                im.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise RecordError(DropReason.IMAGE_UNDECODABLE, f"images/{rel}: {e}") from None
        return size


# ---------------------------------------------------------------------------------------------
# the reading context and the source contract


@dataclass
class Context:
    """What a source may use while reading: its raw folder, the image index, progress, warnings."""

    source: str
    raw_dir: Path
    images: ImageIndex
    on_progress: Callable[[int], None] | None = None
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # source-specific tallies for stats.json

    def path(self, name: str) -> Path:
        return self.raw_dir / name

    def require_file(self, name: str) -> Path:
        path = self.raw_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.source}: raw file {path} not found (run `datamix download {self.source}` "
                f"or place the official file there)"
            )
        return path

    def drop(self, file: str, pointer: Any, reason: DropReason, detail: str = "") -> Drop:
        return Drop(source=self.source, file=file, pointer=str(pointer), reason=reason, detail=detail)

    def drop_for(self, file: str, pointer: Any, err: RecordError) -> Drop:
        return self.drop(file, pointer, err.reason, err.detail)

    def warn(self, message: str) -> None:
        log.warning("%s: %s", self.source, message)
        self.warnings.append(message)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def progress(self, n: int = 1) -> None:
        if self.on_progress is not None:
            self.on_progress(n)


def expect_list(path: Path, data: Any, where: str = "top level") -> list[Any]:
    if not isinstance(data, list):
        raise RawFormatError(path, f"{where} is {type(data).__name__}, expected a JSON array")
    return data


def expect_dict(path: Path, data: Any, where: str = "top level") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RawFormatError(path, f"{where} is {type(data).__name__}, expected a JSON object")
    return data


class Source(abc.ABC):
    """One raw dataset: where it comes from and how its raw files map onto canonical items."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    stage: ClassVar[str] = "stage2"  # "stage1" (alignment) or "stage2" (instruction tuning)
    title: ClassVar[str]
    homepage: ClassVar[str]
    paper: ClassVar[str]
    license: ClassVar[str]
    raw_files: ClassVar[tuple[RawFile, ...]]
    image_dirs: ClassVar[tuple[str, ...]] = ()  # LLaVA-layout folders the items point into

    @abc.abstractmethod
    def read(self, ctx: Context) -> Iterator[Item | Drop]:
        """Yield the items (key assigned later, in emission order) and drops of this source."""

    def required_files(self) -> list[RawFile]:
        return [f for f in self.raw_files if not f.optional]
