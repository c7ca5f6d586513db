"""The only place that builds paths under DATAMIX_ROOT (docs/architecture.md#paths).

ROOT/raw/<source>/      annotation files with their official names, archives extracted
ROOT/images/            the LLaVA image layout (usable as --image_folder by the original code)
ROOT/downloads/         archives and .part files
ROOT/normalized/        <source>.parquet, <source>.drops.parquet, <source>.stats.json
ROOT/mixes/<recipe>/    shards/, manifest.parquet, summary.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_ROOT = "DATAMIX_ROOT"
DEFAULT_ROOT = "./data"

# LLaVA image layout, relative to ROOT/images (docs/sources.md#release-schema)
COCO_DIR = "coco/train2017"
GQA_DIR = "gqa/images"
OCRVQA_DIR = "ocr_vqa/images"
TEXTVQA_DIR = "textvqa/train_images"
VG_DIRS = ("vg/VG_100K", "vg/VG_100K_2")
LLAVA_PRETRAIN_DIR = "llava_pretrain/images"


def coco_image(image_id: int) -> str:
    """COCO image path in the LLaVA layout: train2017 name, same numeric id as train2014."""
    return f"{COCO_DIR}/{image_id:012d}.jpg"


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """`--root` if given, else $DATAMIX_ROOT, else ./data. A root that exists but is not a folder is
    refused (`UsageError`)."""
    if root is None:
        root = os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    path = Path(root).expanduser().resolve()
    if path.exists() and not path.is_dir():
        from datamix.errors import UsageError

        raise UsageError("the data root is not a folder", path=path)
    return path


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Layout:
        return cls(resolve_root(root))

    def raw(self, source: str) -> Path:
        return self.root / "raw" / source

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def normalized(self) -> Path:
        return self.root / "normalized"

    def items(self, source: str) -> Path:
        return self.normalized / f"{source}.parquet"

    def drops(self, source: str) -> Path:
        return self.normalized / f"{source}.drops.parquet"

    def stats(self, source: str) -> Path:
        return self.normalized / f"{source}.stats.json"

    def mix(self, recipe: str) -> Path:
        return self.root / "mixes" / recipe


def image_path_problem(rel: str) -> str | None:
    """Why a record's `image` value is not a path inside the image root, or None when it is one.

    Refused: an absolute path (POSIX, Windows drive or UNC), a `..` part, a NUL byte. Only the value
    is checked, not where symbolic links lead: a dataset folder under the image root that is a link to
    another disk (`images/coco -> /data/coco`) stays allowed, as users arrange their images that way."""
    norm = rel.replace("\\", "/")
    if "\0" in rel:
        return "has a NUL byte"
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "is an absolute path"
    if ".." in norm.split("/"):
        return "has a '..' part"
    return None
