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
    """`--root` if given, else $DATAMIX_ROOT, else ./data."""
    if root is None:
        root = os.environ.get(ENV_ROOT) or DEFAULT_ROOT
    return Path(root).expanduser().resolve()


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
