"""Remote files of every source: URL, size, checksum, and where each lands under DATAMIX_ROOT.

The built-in `CATALOG` lists every file `datamix download` fetches (docs/sources.md (per source: #<source>-files, e.g. docs/sources.md#vqav2-files),
docs/architecture.md#raw-files): the `remote` files of the source descriptors (`datamix.sources`), in registry
order, each stamped with its source's name. A `--catalog FILE` (JSON or YAML list of
`{source, url, path, sha256?, md5?, size?, extract_to?}`) replaces it, for private mirrors and tests;
`load_catalog` validates such a file at the boundary (pydantic, extra="forbid") and names the file,
the entry index and the field of every problem.

Conventions:
- `path` (relative to the root) is where the downloaded file lands: annotation files that are not
  archives go straight to `raw/<source>/<official name>`; archives land under `downloads/<source>/`.
- `extract_to` (relative to the root) is the folder an archive is extracted into. Image archives are
  extracted into the parent of their LLaVA folder so that the archive's own top folder lands in the
  LLaVA layout: `train2017.zip` holds `train2017/`, extracted into `images/coco` it becomes
  `images/coco/train2017`; GQA `images.zip` holds `images/` -> `images/gqa/images`; TextVQA holds
  `train_images/` -> `images/textvqa/train_images`; VG holds `VG_100K/` and `VG_100K_2/` ->
  `images/vg/...`. LLaVA-Pretrain `images.zip` holds the numbered folders themselves, so it is
  extracted into `images/llava_pretrain/images`.
- COCO train2017 is listed once per source that reads it (same `path`); the downloader fetches a
  shared path once. train2014 is not fetched: every train2014 image is in train2017 with the same id.
- A file that cannot be fetched automatically (OCR-VQA's `dataset.json` lives in a Google Drive
  folder) carries `manual` instructions; the downloader reports them with the exact target path and
  verifies the file once it is present.
- Sizes and checksums are the ones docs/sources.md (the #<source>-files sections, e.g. docs/sources.md#vqav2-files) gives (official or from third-party manifests); a file
  without a published checksum gets its first-seen sha256 recorded in `downloads/provenance.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from datamix.errors import UsageError
from datamix.sources import SOURCE_NAMES, SOURCES
from datamix.sources.base import RemoteFile, infer_kind

Kind = Literal["annotation", "images"]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


class CatalogError(UsageError, ValueError):
    """A catalog file that cannot be used; the message names the file, entry index and field."""

    def __init__(self, path: Path | str, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        Exception.__init__(self, f"{path}: invalid catalog:\n  " + "\n  ".join(self.problems))


# the built-in catalog (docs/sources.md (the #<source>-files sections, e.g. docs/sources.md#vqav2-files)): every descriptor's remote files
CATALOG: tuple[RemoteFile, ...] = tuple(f for src in SOURCES.values() for f in src.remote_files)


# ---------------------------------------------------------------------------------------------
# user catalogs (--catalog FILE)

_DIGESTS = {
    "sha256": (re.compile(r"^[0-9a-fA-F]{64}$"), "a sha256 hex digest (64 hex digits)"),
    "md5": (re.compile(r"^[0-9a-fA-F]{32}$"), "an md5 hex digest (32 hex digits)"),
}


def _relative_path(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("must not be empty")
    if "\\" in value:
        raise ValueError(f"{value!r} must use '/' separators")
    p = PurePosixPath(value)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{value!r} must be relative to the root")
    if any(part == ".." for part in p.parts):
        raise ValueError(f"{value!r} must not contain '..'")
    if p.parts and p.parts[0] == ".":
        p = PurePosixPath(*p.parts[1:]) if len(p.parts) > 1 else p
    if str(p) in ("", "."):
        raise ValueError(f"{value!r} must name something below the root")
    return str(p)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    source: str
    url: str
    path: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = Field(default=None, ge=0)
    extract_to: str | None = None
    kind: Kind | None = None
    manual: str | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v not in SOURCE_NAMES:
            raise ValueError(f"unknown source {v!r}; expected one of: {', '.join(SOURCE_NAMES)}")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _relative_path(v)

    @field_validator("extract_to")
    @classmethod
    def _extract_to(cls, v: str | None) -> str | None:
        return None if v is None else _relative_path(v)

    @field_validator("sha256", "md5")
    @classmethod
    def _digest(cls, v: str | None, info: ValidationInfo) -> str | None:
        pattern, what = _DIGESTS[info.field_name or ""]
        if v is not None and not pattern.match(v):
            raise ValueError(f"{v!r} is not {what}")
        return None if v is None else v.lower()


def _check_consistent(entries: Iterable[RemoteFile]) -> list[str]:
    """Entries sharing a `path` must describe the same file (same url, checksums, size, extract_to)."""
    problems = []
    seen: dict[str, tuple[int, RemoteFile]] = {}
    for i, e in enumerate(entries):
        if e.path in seen:
            j, other = seen[e.path]
            a = (e.url, e.sha256, e.md5, e.size, e.extract_to)
            b = (other.url, other.sha256, other.md5, other.size, other.extract_to)
            if a != b:
                problems.append(
                    f"entry {i}: path {e.path!r} is also entry {j} with a different url/checksum/size/extract_to"
                )
        else:
            seen[e.path] = (i, e)
    return problems


def parse_catalog(data: Any, origin: Path | str = "<catalog>") -> tuple[RemoteFile, ...]:
    """Validate an already-parsed catalog document (a list of entry mappings)."""
    if isinstance(data, dict) and set(data) == {"files"}:
        data = data["files"]
    if not isinstance(data, list):
        raise CatalogError(origin, [f"expected a list of entries, got {type(data).__name__}"])
    problems: list[str] = []
    out: list[RemoteFile] = []
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            problems.append(f"entry {i}: expected a mapping, got {type(raw).__name__}")
            continue
        try:
            m = _Entry.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(x) for x in err["loc"]) or "(entry)"
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = "unknown field (allowed: source, url, path, sha256, md5, size, extract_to, kind, manual)"
                problems.append(f"entry {i}, field {field!r}: {msg}")
            continue
        out.append(
            RemoteFile(**m.model_dump(exclude={"kind"}), kind=m.kind or infer_kind(m.path, m.extract_to))
        )
    if not problems:
        problems = _check_consistent(out)
    if problems:
        raise CatalogError(origin, problems)
    return tuple(out)


def load_catalog(path: Path | str) -> tuple[RemoteFile, ...]:
    """Read a `--catalog FILE` (JSON, or YAML for .yaml/.yml) and validate every entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError(path, [f"cannot read: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise CatalogError(path, [f"not UTF-8 text (byte {e.start})"]) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            from datamix import yamlio

            data = yamlio.loads(text)
        else:
            data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CatalogError(path, [f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}"]) from None
    except Exception as e:  # yaml.YAMLError and its subclasses
        raise CatalogError(path, [f"not valid YAML: {e}"]) from None
    return parse_catalog(data, path)


def select(
    catalog: Sequence[RemoteFile],
    sources: Sequence[str] | None = None,
    annotations_only: bool = False,
) -> tuple[RemoteFile, ...]:
    """The entries of `sources` (all when None/empty), in catalog order; without image archives
    when `annotations_only`. Unknown source names raise ValueError naming them."""
    if sources:
        unknown = sorted(set(sources) - set(SOURCE_NAMES))
        if unknown:
            raise ValueError(
                f"unknown source(s): {', '.join(unknown)}; expected any of: {', '.join(SOURCE_NAMES)}"
            )
        wanted = set(sources)
    else:
        wanted = set(SOURCE_NAMES)
    return tuple(e for e in catalog if e.source in wanted and not (annotations_only and e.kind == "images"))


def sources_in(catalog: Sequence[RemoteFile]) -> list[str]:
    """Source names present in a catalog, in registry order."""
    present = {e.source for e in catalog}
    return [s for s in SOURCE_NAMES if s in present]
