"""What every source shares: its descriptor, the read loop, the reading context and the image checks
(the field checks a `parse` uses are in `datamix.sources._fields`).

A source module declares everything about its source in one descriptor (a `Source` subclass):
kind, raw files, image folders, remote files (`datamix.catalog` derives `CATALOG` from them), its
recipe spec class (`datamix.recipe.SPEC_TYPES`), its formatter and conversation counter
(`datamix.formats`, `datamix.mix`), how `import-llava` / `compare` recognise its records
(`datamix.llava_json.infer_source`) and its synth writer module. docs/adding-a-source.md walks through
adding one.

The base class owns the read loop (`Source.read`, datatrove's step that owns its loop): a source
only lists its raw records (`records`: passes over raw files) and maps one record (`parse`) onto an
item draft (`Draft`), a part of an image's item (`Part`, grouped here by image and completed by
`group`), or nothing. The loop turns every `RecordError` into a `Drop` (a drop is data: reason enum,
raw file and pointer), groups parts by image, checks that every item's image exists (or decodes),
and stamps each item's `source` and `key` (`<source>-<8-digit emission index>`). Writing tables,
counting, timing and progress bars live in `datamix.normalize`; a source never writes.

A file that is not parseable at all raises `RawFormatError`; a missing one `FileNotFoundError`.
"""

from __future__ import annotations

import abc
import importlib
import logging
import os
import re
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from PIL import Image

from datamix.fileio import BadRecord
from datamix.schema import ITEM_TYPES, Drop, DropReason, Item, Kind
from datamix.sources._fields import RecordError

if TYPE_CHECKING:  # the descriptors name these; importing them here would be circular
    from datamix.formats import Formatter
    from datamix.recipe import SourceSpec

log = logging.getLogger(__name__)

# Pillow's decompression-bomb guard stays on (an error above 2x this many pixels); make it explicit.
Image.MAX_IMAGE_PIXELS = 89_478_485


@dataclass(frozen=True)
class RawFile:
    """One raw file as distributed, relative to ROOT/raw/<source>/."""

    name: str
    description: str
    optional: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFile:
    """One remote file of one source and where it lands (paths relative to the root).

    A descriptor lists its files without `source` (the registry stamps its name) and, where the
    conventions of `datamix.catalog` give them, without `path` (an archive lands in
    `downloads/<source>/`, any other file in `raw/<source>/`, under the URL's file name) and `kind`
    (`images` when it lands or is extracted under `images/`): see `Source.remote_files`.
    """

    source: str = ""
    url: str
    path: str = ""
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    extract_to: str | None = None
    kind: Literal["annotation", "images"] = "annotation"
    manual: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def is_archive(self) -> bool:
        return self.extract_to is not None

    @property
    def has_checksum(self) -> bool:
        return self.sha256 is not None or self.md5 is not None


def infer_kind(path: str, extract_to: str | None) -> Literal["annotation", "images"]:
    """`images` for a file that lands (or is extracted) under `images/`, else `annotation`."""
    where = extract_to if extract_to is not None else path
    return "images" if where == "images" or where.startswith("images/") else "annotation"


@dataclass(frozen=True, slots=True, kw_only=True)
class LlavaMatch:
    """How `import-llava` and `compare` tell this source's records in a LLaVA-format JSON file
    (`datamix.llava_json.infer_source` reads these off the descriptors).

    - `folder`: the image path prefix (after an optional `./`); `None`: records without an image.
    - `pattern`: a regular expression the whole image path matches, instead of `folder`.
    - `prompts`: on a folder several sources share, one of these must be in the human turns; `()` is
      the folder's plain source, taken when no known prompt is there.
    - `max_pairs`: at most this many human turns.
    - `rank`: the order in which the sources of a shared folder are tried (lower first).
    """

    folder: str | None = None
    pattern: re.Pattern[str] | None = None
    prompts: tuple[str, ...] = ()
    max_pairs: int | None = None
    rank: int = 0


# ---------------------------------------------------------------------------------------------
# images


class ImageIndex:
    """Answers "is this LLaVA-layout image there and non-empty?" with one directory listing per folder.

    Listing a folder once (118K COCO files) is far cheaper than a stat per record and per question.
    """

    def __init__(self, images_root: Path):
        self.root = Path(images_root)
        self._dirs: dict[str, dict[str, int]] = {}
        self._headers: dict[str, str | None] = {}  # rel -> why its header is unusable (None: fine)

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
        """Raise RecordError unless the image exists, is not empty and its header is an image's
        (`datamix.imaging.header_problem`: not a text file named `.jpg`, not a decompression bomb),
        so that the build never meets such a file. Each image's header is read once."""
        size = self.size(rel)
        if size is None:
            raise RecordError(DropReason.IMAGE_MISSING, f"image not found: images/{rel}")
        if size == 0:
            raise RecordError(DropReason.IMAGE_EMPTY, f"image file is empty: images/{rel}")
        if rel in self._headers:
            problem = self._headers[rel]
        else:
            from datamix.imaging import header_problem  # numpy: only once images are checked

            problem = self._headers[rel] = header_problem(self.root / rel)
        if problem is not None:
            raise RecordError(DropReason.IMAGE_UNDECODABLE, f"images/{rel}: {problem}")

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
    pending: list[Drop] = field(default_factory=list)  # drops the read loop yields next, in order
    emitted: int = 0  # items yielded so far: the next item's key index

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

    def reject(self, file: str, pointer: Any, reason: DropReason, detail: str = "") -> None:
        """Record a drop found while reading (part of a record, an orphan): the loop yields it next."""
        self.pending.append(self.drop(file, pointer, reason, detail))

    def attempt(self, file: str, pointer: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`, or None when it raises `RecordError`, which becomes a pending drop of
        (`file`, the error's pointer or else `pointer`). The one place a bad record becomes a drop."""
        try:
            return fn(*args)
        except RecordError as err:
            self.reject(file, pointer if err.pointer is None else err.pointer, err.reason, err.detail)
            return None

    def flush(self) -> list[Drop]:
        out, self.pending = self.pending, []
        return out

    def warn(self, message: str) -> None:
        log.warning("%s: %s", self.source, message)
        self.warnings.append(message)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def progress(self, n: int = 1) -> None:
        if self.on_progress is not None:
            self.on_progress(n)


class Draft:
    """An item before the read loop checks its image and stamps its `source` and `key`: the item's
    other fields (`id`, `image`, `width`, `height` and its payload)."""

    __slots__ = ("fields",)

    def __init__(self, **fields: Any):
        self.fields = fields


class Part(NamedTuple):
    """One record's share of the item of image `group`; `Source.group` completes the item."""

    group: Hashable
    value: Any


ParseFn = Callable[["Context", Any], "Draft | Part | None"]


@dataclass(frozen=True, slots=True)
class Records:
    """One pass over a raw file: the file's name (drops name it), its `(pointer, record)` pairs in
    reading order, and the function that maps one record (default: the source's `parse`).
    `progress`: count the pass in the progress bar (passes that only build lookups do not)."""

    file: str
    entries: Iterable[tuple[Any, Any]]
    parse: ParseFn | None = None
    progress: bool = True


class Source(abc.ABC):
    """The descriptor of one raw dataset (everything about it) and the loop that reads it.

    Subclasses declare the class attributes below and implement `records` and `parse` (and `group`
    when records are parts of an image's item); they never catch `RecordError` nor check images.
    """

    # --- what the source is (`datamix sources`, docs) ---
    name: ClassVar[str]  # registry key, recipe key, `source` column, raw/<name>/
    order: ClassVar[int]  # position in the registry, and so in every table, plan and summary
    kind: ClassVar[Kind]
    stage: ClassVar[str] = "stage2"  # "stage1" (alignment) or "stage2" (instruction tuning)
    title: ClassVar[str]
    homepage: ClassVar[str]
    paper: ClassVar[str]
    license: ClassVar[str]
    # --- where its data is ---
    raw_files: ClassVar[tuple[RawFile, ...]]  # under ROOT/raw/<name>/, as distributed
    image_dirs: ClassVar[tuple[str, ...]] = ()  # LLaVA-layout folders the items point into
    remote: ClassVar[tuple[RemoteFile, ...]] = ()  # what `datamix download` fetches (datamix.catalog)
    # --- how a recipe uses it ---
    spec: ClassVar[type[SourceSpec]]  # its options in a recipe (datamix.recipe)
    formatter: ClassVar[Formatter]  # item -> conversations, and their count (datamix.formats)
    # --- how a LLaVA-format file's records are recognised as its own (import-llava, compare) ---
    llava: ClassVar[LlavaMatch]
    # --- its synthetic raw data: a module with write_demo / write_volume ---
    synth: ClassVar[str | None] = None  # module name (default datamix.synth.<name>)
    # --- read-loop options ---
    decode_images: ClassVar[bool] = False  # decode every image fully (and take its size), not only stat it
    group_file: ClassVar[str | None] = None  # raw file named by an image's drop (default: the first raw file)
    group_label: ClassVar[str] = "image_id"  # an image's drop pointer is `<group_label>=<group>`
    tally: ClassVar[tuple[str, str] | None] = None  # (stats counter, payload field): its length per item

    @abc.abstractmethod
    def records(self, ctx: Context) -> Iterator[Records]:
        """The passes over the raw files, in reading order. Lookups a later pass needs are built by
        an earlier pass's parse function (a partial over local tables); code after the last `yield`
        runs before the images are grouped (e.g. orphan drops via `ctx.reject`)."""

    def parse(self, ctx: Context, record: Any) -> Draft | Part | None:
        """One raw record -> an item draft, a part of an image's item, or None (skipped, counted);
        raises `RecordError` for a record that cannot be used."""
        raise NotImplementedError(f"{self.name}: records() passes need a parse function")

    def group(self, ctx: Context, key: Any, parts: list[Any]) -> Draft:
        """The item of image `key` from its parts (in reading order); may raise `RecordError`."""
        raise NotImplementedError(f"{self.name}: parse() returned a Part but group() is not defined")

    def group_order(self, key: Any) -> Any:
        """The sort key of image `key`: images are completed in this order (default: natural)."""
        return key

    # --- the loop ----------------------------------------------------------------------------

    def read(self, ctx: Context) -> Iterator[Item | Drop]:
        """Items (key and source stamped, in emission order) and drops, in reading order."""
        groups: dict[Any, list[Any]] = {}
        for records in self.records(ctx):
            parse = records.parse or self.parse
            if ctx.pending:
                yield from ctx.flush()
            for pointer, record in records.entries:
                if records.progress:
                    ctx.progress()
                out = ctx.attempt(records.file, pointer, self._record, ctx, parse, record)
                if ctx.pending:
                    yield from ctx.flush()  # parts of the record first, then the record itself
                if out is None:
                    continue
                if type(out) is Part:
                    parts = groups.get(out.group)
                    if parts is None:
                        groups[out.group] = [out.value]
                    else:
                        parts.append(out.value)
                else:
                    yield self._stamp(ctx, out)
        if ctx.pending:
            yield from ctx.flush()
        if not groups:
            return
        file = self.group_file or self.raw_files[0].name
        for key in sorted(groups, key=self.group_order):
            draft = ctx.attempt(file, f"{self.group_label}={key}", self._group, ctx, key, groups.pop(key))
            if ctx.pending:
                yield from ctx.flush()
            if draft is not None:
                yield self._stamp(ctx, draft)

    def _record(self, ctx: Context, parse: ParseFn, record: Any) -> Draft | Part | None:
        if type(record) is BadRecord:  # a record that did not decode: a drop, the next one goes on
            raise RecordError(DropReason.BAD_JSON, record.message)
        out = parse(ctx, record)
        if type(out) is Draft:
            self._check_image(ctx, out)
        return out

    def _group(self, ctx: Context, key: Any, parts: list[Any]) -> Draft:
        draft = self.group(ctx, key, parts)
        self._check_image(ctx, draft)
        return draft

    def _check_image(self, ctx: Context, draft: Draft) -> None:
        image = draft.fields.get("image")
        if image is None:
            return
        if self.decode_images:
            draft.fields["width"], draft.fields["height"] = ctx.images.decode_size(image)
        else:
            ctx.images.check(image)

    def _stamp(self, ctx: Context, draft: Draft) -> Item:
        index = ctx.emitted
        ctx.emitted += 1
        if self.tally is not None:
            ctx.count(self.tally[0], len(draft.fields[self.tally[1]]))
        return ITEM_TYPES[self.kind](key=f"{self.name}-{index:08d}", source=self.name, **draft.fields)

    # --- helpers for subclasses ----------------------------------------------------------------

    def image_path(
        self,
        name: str,
        *,
        suffix: str = "",
        nested: bool = False,
        folder: str | None = None,
        what: str = "image",
        shape: str = "",
    ) -> str:
        """`<folder>/<name><suffix>` (folder: the source's first image folder), the one path-safe way
        from a raw image reference to a LLaVA-layout path: `name` must be a file name (with `nested`,
        a relative path of file names), never empty, absolute, or starting with `.` (no `..`);
        otherwise `RecordError(bad_value)`: "<what> <name> is not a <shape>"."""
        parts = name.split("/") if nested else (name,)
        if not name or any(not p or p.startswith(".") or (not nested and "/" in p) for p in parts):
            shape = shape or ("relative path" if nested else "file name")
            raise RecordError(DropReason.BAD_VALUE, f"{what} {name!r} is not a {shape}")
        return f"{folder or self.image_dirs[0]}/{name}{suffix}"

    # --- derived ------------------------------------------------------------------------------

    @property
    def remote_files(self) -> tuple[RemoteFile, ...]:
        """`remote`, each with this source's name and its derived `path` and `kind` filled in."""
        out = []
        for f in self.remote:
            name = PurePosixPath(f.url).name
            path = f.path or f"{'downloads' if f.extract_to else 'raw'}/{self.name}/{name}"
            kind = "images" if infer_kind(path, f.extract_to) == "images" else f.kind
            out.append(replace(f, source=f.source or self.name, path=path, kind=kind))
        return tuple(out)

    @property
    def synth_module(self) -> str:
        return self.synth or f"datamix.synth.{self.name}"

    def synth_writer(self) -> ModuleType:
        """The synth writer module (imported on demand: synth is not needed to read real data)."""
        return importlib.import_module(self.synth_module)

    def required_files(self) -> list[RawFile]:
        return [f for f in self.raw_files if not f.optional]
