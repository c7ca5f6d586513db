"""Remote files of every source: URL, size, checksum, and where each lands under DATAMIX_ROOT.

The built-in `CATALOG` lists every file `datamix download` fetches (sources.md sections 1-11,
architecture.md 4.1). A `--catalog FILE` (JSON or YAML list of
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
- Sizes and checksums are the ones sources.md gives (official or from third-party manifests); a file
  without a published checksum gets its first-seen sha256 recorded in `downloads/provenance.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from datamix.sources import SOURCE_NAMES

Kind = Literal["annotation", "images"]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFile:
    """One remote file of one source and where it lands (paths relative to the root)."""

    source: str
    url: str
    path: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    extract_to: str | None = None
    kind: Kind = "annotation"
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


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file, entry index and field."""

    def __init__(self, path: Path | str, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{path}: invalid catalog:\n  " + "\n  ".join(self.problems))


# ---------------------------------------------------------------------------------------------
# the built-in catalog (sources.md)

_HF = "https://huggingface.co/datasets"
_COCO_TRAIN2017_URL = "http://images.cocodataset.org/zips/train2017.zip"

_OCRVQA_MANUAL = (
    "OCR-VQA's dataset.json is only published in a Google Drive folder, which cannot be fetched "
    "automatically. Open https://drive.google.com/drive/folders/1_GYPY5UkUy7HIcR0zq3ZCFgeZN7BAfm_ "
    "in a browser, download `dataset.json` (loadDataset.py is not needed), and save it as {target} . "
    "Then run `datamix download ocrvqa` again: it verifies the file, records its sha256 and fetches the "
    "book covers into images/ocr_vqa/images/."
)


def _coco_train2017(source: str) -> RemoteFile:
    # sources.md 1.1: 19,336,861,798 bytes, MD5 cced6f7f71b7629ddf16f17bbcfab6b2, holds train2017/
    return RemoteFile(
        source=source,
        url=_COCO_TRAIN2017_URL,
        path="downloads/coco/train2017.zip",
        md5="cced6f7f71b7629ddf16f17bbcfab6b2",
        size=19_336_861_798,
        extract_to="images/coco",
        kind="images",
    )


CATALOG: tuple[RemoteFile, ...] = (
    # 1. LLaVA-Instruct-150K (sources.md 1.1)
    RemoteFile(
        source="llava_instruct",
        url=f"{_HF}/liuhaotian/LLaVA-Instruct-150K/resolve/main/llava_instruct_150k.json",
        path="raw/llava_instruct/llava_instruct_150k.json",
    ),
    _coco_train2017("llava_instruct"),
    # 2. ShareGPT (sources.md 2.1)
    RemoteFile(
        source="sharegpt",
        url=f"{_HF}/anon8231489123/ShareGPT_Vicuna_unfiltered/resolve/main/"
        "ShareGPT_V3_unfiltered_cleaned_split.json",
        path="raw/sharegpt/ShareGPT_V3_unfiltered_cleaned_split.json",
        size=672_837_942,
    ),
    # 3. VQAv2 (sources.md 3.1)
    RemoteFile(
        source="vqav2",
        url="https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/v2_Questions_Train_mscoco.zip",
        path="downloads/vqav2/v2_Questions_Train_mscoco.zip",
        size=7_239_401,
        extract_to="raw/vqav2",
    ),
    RemoteFile(
        source="vqav2",
        url="https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/v2_Annotations_Train_mscoco.zip",
        path="downloads/vqav2/v2_Annotations_Train_mscoco.zip",
        size=21_708_861,
        extract_to="raw/vqav2",
    ),
    _coco_train2017("vqav2"),
    # 4. GQA (sources.md 4.1)
    RemoteFile(
        source="gqa",
        url="https://downloads.cs.stanford.edu/nlp/data/gqa/questions1.2.zip",
        path="downloads/gqa/questions1.2.zip",
        extract_to="raw/gqa",
    ),
    RemoteFile(
        source="gqa",
        url="https://downloads.cs.stanford.edu/nlp/data/gqa/images.zip",
        path="downloads/gqa/images.zip",
        size=21_817_965_542,
        extract_to="images/gqa",
        kind="images",
    ),
    # 5. OK-VQA v1.1 (sources.md 5.1)
    RemoteFile(
        source="okvqa",
        url="https://okvqa.allenai.org/static/data/OpenEnded_mscoco_train2014_questions.json.zip",
        path="downloads/okvqa/OpenEnded_mscoco_train2014_questions.json.zip",
        extract_to="raw/okvqa",
    ),
    RemoteFile(
        source="okvqa",
        url="https://okvqa.allenai.org/static/data/mscoco_train2014_annotations.json.zip",
        path="downloads/okvqa/mscoco_train2014_annotations.json.zip",
        extract_to="raw/okvqa",
    ),
    _coco_train2017("okvqa"),
    # 6. A-OKVQA (sources.md 6.1)
    RemoteFile(
        source="aokvqa",
        url="https://prior-datasets.s3.us-east-2.amazonaws.com/aokvqa/aokvqa_v1p0.tar.gz",
        path="downloads/aokvqa/aokvqa_v1p0.tar.gz",
        extract_to="raw/aokvqa",
    ),
    _coco_train2017("aokvqa"),
    # 7. OCR-VQA (sources.md 7.1): dataset.json by hand; covers fetched by fetch.fetch_ocrvqa_covers
    RemoteFile(
        source="ocrvqa",
        url="https://drive.google.com/drive/folders/1_GYPY5UkUy7HIcR0zq3ZCFgeZN7BAfm_",
        path="raw/ocrvqa/dataset.json",
        manual=_OCRVQA_MANUAL,
    ),
    # 8. TextCaps (sources.md 8.1) + the TextVQA Rosetta OCR tokens (sources.md 14)
    RemoteFile(
        source="textcaps",
        url="https://dl.fbaipublicfiles.com/textvqa/data/textcaps/TextCaps_0.1_train.json",
        path="raw/textcaps/TextCaps_0.1_train.json",
    ),
    RemoteFile(
        source="textcaps",
        url="https://dl.fbaipublicfiles.com/textvqa/data/TextVQA_Rosetta_OCR_v0.2_train.json",
        path="raw/textcaps/TextVQA_Rosetta_OCR_v0.2_train.json",
    ),
    RemoteFile(
        source="textcaps",
        url="https://dl.fbaipublicfiles.com/textvqa/images/train_val_images.zip",
        path="downloads/textcaps/train_val_images.zip",
        size=7_072_297_970,
        extract_to="images/textvqa",
        kind="images",
    ),
    # 9. Visual Genome v1.2 (sources.md 9.1)
    RemoteFile(
        source="vg",
        url="https://homes.cs.washington.edu/~ranjay/visualgenome/data/dataset/region_descriptions.json.zip",
        path="downloads/vg/region_descriptions.json.zip",
        size=127_377_968,
        extract_to="raw/vg",
    ),
    RemoteFile(
        source="vg",
        url="https://homes.cs.washington.edu/~ranjay/visualgenome/data/dataset/image_data.json.zip",
        path="downloads/vg/image_data.json.zip",
        size=1_780_854,
        extract_to="raw/vg",
    ),
    RemoteFile(
        source="vg",
        url="https://cs.stanford.edu/people/rak248/VG_100K_2/images.zip",
        path="downloads/vg/images.zip",
        size=9_731_705_982,
        extract_to="images/vg",
        kind="images",
    ),
    RemoteFile(
        source="vg",
        url="https://cs.stanford.edu/people/rak248/VG_100K_2/images2.zip",
        path="downloads/vg/images2.zip",
        size=5_471_658_058,
        extract_to="images/vg",
        kind="images",
    ),
    # 10. RefCOCO / RefCOCO+ / RefCOCOg (sources.md 10.1); each zip holds its own top folder
    RemoteFile(
        source="refcoco",
        url="https://bvisionweb1.cs.unc.edu/licheng/referit/data/refcoco.zip",
        path="downloads/refcoco/refcoco.zip",
        extract_to="raw/refcoco",
    ),
    RemoteFile(
        source="refcoco",
        url="https://bvisionweb1.cs.unc.edu/licheng/referit/data/refcoco+.zip",
        path="downloads/refcoco/refcoco+.zip",
        extract_to="raw/refcoco",
    ),
    RemoteFile(
        source="refcoco",
        url="https://bvisionweb1.cs.unc.edu/licheng/referit/data/refcocog.zip",
        path="downloads/refcoco/refcocog.zip",
        extract_to="raw/refcoco",
    ),
    _coco_train2017("refcoco"),
    # 11. LCS-558K (sources.md 11.1)
    RemoteFile(
        source="llava_pretrain",
        url=f"{_HF}/liuhaotian/LLaVA-Pretrain/resolve/main/blip_laion_cc_sbu_558k.json",
        path="raw/llava_pretrain/blip_laion_cc_sbu_558k.json",
    ),
    RemoteFile(
        source="llava_pretrain",
        url=f"{_HF}/liuhaotian/LLaVA-Pretrain/resolve/main/images.zip",
        path="downloads/llava_pretrain/images.zip",
        extract_to="images/llava_pretrain/images",
        kind="images",
    ),
)


# ---------------------------------------------------------------------------------------------
# user catalogs (--catalog FILE)

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


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

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v: str | None) -> str | None:
        if v is not None and not _HEX64.match(v):
            raise ValueError(f"{v!r} is not a sha256 hex digest (64 hex digits)")
        return None if v is None else v.lower()

    @field_validator("md5")
    @classmethod
    def _md5(cls, v: str | None) -> str | None:
        if v is not None and not _HEX32.match(v):
            raise ValueError(f"{v!r} is not an md5 hex digest (32 hex digits)")
        return None if v is None else v.lower()


def _infer_kind(path: str, extract_to: str | None) -> Kind:
    where = extract_to if extract_to is not None else path
    return "images" if where == "images" or where.startswith("images/") else "annotation"


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
            RemoteFile(
                source=m.source,
                url=m.url,
                path=m.path,
                sha256=m.sha256,
                md5=m.md5,
                size=m.size,
                extract_to=m.extract_to,
                kind=m.kind or _infer_kind(m.path, m.extract_to),
                manual=m.manual,
            )
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
