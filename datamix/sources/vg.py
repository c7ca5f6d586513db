"""Visual Genome region descriptions (v1.2): phrases with pixel boxes on 108,077 images.

Paper: Krishna et al., "Visual Genome: Connecting Language and Vision Using Crowdsourced Dense Image
Annotations", IJCV 2017 (arXiv 1602.07332). Homepage: https://homes.cs.washington.edu/~ranjay/visualgenome/.
Licence: CC BY 4.0.

Raw: `image_data.json` (array of `{"image_id"|"id", "url", "width", "height", "coco_id", "flickr_id"}`;
the url's folder says whether the picture is in `VG_100K` or `VG_100K_2`) and `region_descriptions.json`
(~5.4 M regions: array of `{"id"|"image_id", "regions": [{"region_id", "image_id", "phrase", "x", "y",
"width", "height"}]}`). The region file is streamed one image at a time (ijson), so memory stays at
one image's regions plus the small image table. Regions with unusable boxes are dropped one by one
(`bad_box`); an image left with none is dropped (`no_regions`). The ">= 10 regions" rule of the
LLaVA-1.5 recipe is a recipe option, not applied here.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import ijson

from datamix import formats
from datamix.fileio import RawFormatError, load_json
from datamix.paths import VG_DIRS
from datamix.recipe import VGSpec
from datamix.schema import DropReason, Kind, Region
from datamix.sources._fields import RecordError, expect_list, get, number, require
from datamix.sources.base import Context, Draft, LlavaMatch, RawFile, Records, RemoteFile, Source

IMAGES = "image_data.json"
REGIONS = "region_descriptions.json"
_DATA = "https://homes.cs.washington.edu/~ranjay/visualgenome/data/dataset"
_IMAGES_URL = "https://cs.stanford.edu/people/rak248/VG_100K_2"


class _CountingReader:
    """File wrapper that remembers how far the parser has read (for error positions)."""

    def __init__(self, f: Any):
        self.f = f
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.pos += len(data)
        return data


def _image_id(rec: Any) -> int:
    value = get(rec, "image_id", None)
    if value is None:
        value = get(rec, "id", None)
    if value is None:
        raise RecordError(DropReason.MISSING_FIELD, "missing field 'image_id' (or 'id')")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(DropReason.BAD_TYPE, f"image id is {type(value).__name__}: {value!r}")
    return value


def _folder(url: str) -> str:
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2:
        for d in VG_DIRS:
            if parts[-2] == d.rsplit("/", 1)[1]:
                return d
    raise RecordError(DropReason.BAD_VALUE, f"url {url!r} names neither VG_100K nor VG_100K_2")


def _stream(path: Path) -> Iterator[tuple[int, Any]]:
    """(index, record) of the region file, parsed one image at a time."""
    with open(path, "rb") as f:
        reader = _CountingReader(f)
        try:
            yield from enumerate(ijson.items(reader, "item", use_float=True))
        except ijson.JSONError as e:
            raise RawFormatError(path, f"not valid JSON near byte {reader.pos}: {e}") from None


class VisualGenome(Source):
    name = "vg"
    order = 8
    kind = Kind.REGION
    title = "Visual Genome (region descriptions v1.2)"
    homepage = "https://homes.cs.washington.edu/~ranjay/visualgenome/"
    paper = "https://arxiv.org/abs/1602.07332"
    license = "CC BY 4.0"
    raw_files = (
        RawFile(IMAGES, "108,077 images: url (VG_100K or VG_100K_2), width, height, coco_id"),
        RawFile(REGIONS, "~5.4 M region descriptions with pixel boxes"),
    )
    image_dirs = VG_DIRS
    remote = (
        RemoteFile(url=f"{_DATA}/{REGIONS}.zip", size=127_377_968, extract_to="raw/vg"),
        RemoteFile(url=f"{_DATA}/{IMAGES}.zip", size=1_780_854, extract_to="raw/vg"),
        RemoteFile(url=f"{_IMAGES_URL}/images.zip", size=9_731_705_982, extract_to="images/vg"),
        RemoteFile(url=f"{_IMAGES_URL}/images2.zip", size=5_471_658_058, extract_to="images/vg"),
    )
    spec = VGSpec
    formatter = formats.VG
    llava = LlavaMatch(folder="vg/")

    def records(self, ctx: Context) -> Iterator[Records]:
        images: dict[int, tuple[str, int, int]] = {}
        path = ctx.require_file(IMAGES)
        entries = enumerate(expect_list(path, load_json(path)))
        yield Records(IMAGES, entries, partial(self._image, images), progress=False)
        yield Records(REGIONS, _stream(ctx.require_file(REGIONS)), partial(self._regions, images, set()))
        ctx.count("images_without_regions", len(images))

    @staticmethod
    def _image(images: dict[int, tuple[str, int, int]], ctx: Context, rec: Any) -> None:
        if not isinstance(rec, dict):
            raise RecordError(DropReason.BAD_TYPE, f"record is {type(rec).__name__}")
        image_id = _image_id(rec)
        folder = _folder(require(rec, "url", str))
        w, h = require(rec, "width", int), require(rec, "height", int)
        if w <= 0 or h <= 0:
            raise RecordError(DropReason.BAD_VALUE, f"size {w}x{h}")
        images[image_id] = (f"{folder}/{image_id}.jpg", w, h)

    def _regions(
        self, images: dict[int, tuple[str, int, int]], seen: set[int], ctx: Context, rec: Any
    ) -> Draft:
        if not isinstance(rec, dict):
            raise RecordError(DropReason.BAD_TYPE, f"record is {type(rec).__name__}")
        image_id = _image_id(rec)
        raw_regions = require(rec, "regions", list)
        if image_id in seen:
            raise RecordError(DropReason.DUPLICATE, f"image {image_id} listed twice")
        seen.add(image_id)
        if image_id not in images:
            raise RecordError(DropReason.MISSING_ANNOTATION, f"image {image_id} not in {IMAGES}")
        image, w, h = images.pop(image_id)
        ctx.images.check(image)  # before the regions: an image that is not there drops as one record
        regions = []
        for j, r in enumerate(raw_regions):
            try:
                regions.append(self._region(r, w, h))
            except RecordError as err:  # one region: a drop of its own, the image stays
                rid = get(r, "region_id", j) if isinstance(r, dict) else j
                ctx.reject(REGIONS, f"{image_id}/{rid}", err.reason, err.detail)
        ctx.count("regions", len(regions))
        if not regions:
            raise RecordError(DropReason.NO_REGIONS, "no usable region", pointer=image_id)
        return Draft(id=str(image_id), image=image, width=w, height=h, regions=tuple(regions))

    @staticmethod
    def _region(r: Any, img_w: int, img_h: int) -> Region:
        if not isinstance(r, dict):
            raise RecordError(DropReason.BAD_TYPE, f"region is {type(r).__name__}")
        rid = get(r, "region_id", None)
        phrase = require(r, "phrase", str).strip()
        if not phrase:
            raise RecordError(DropReason.BAD_VALUE, "empty phrase")
        x, y, w, h = number(r, "x"), number(r, "y"), number(r, "width"), number(r, "height")
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x >= img_w or y >= img_h:
            raise RecordError(DropReason.BAD_BOX, f"box x={x} y={y} w={w} h={h} on a {img_w}x{img_h} image")
        return Region(region_id="" if rid is None else str(rid), phrase=phrase, x=x, y=y, w=w, h=h)
