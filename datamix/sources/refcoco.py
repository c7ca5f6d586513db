"""RefCOCO, RefCOCO+ and RefCOCOg: referring expressions for COCO objects (train splits, unioned per image).

Papers: Kazemzadeh et al., "ReferItGame", EMNLP 2014; Yu et al., "Modeling Context in Referring
Expressions", ECCV 2016 (arXiv 1608.00272); Mao et al., "Generation and Comprehension of Unambiguous
Object Descriptions", CVPR 2016 (arXiv 1511.02283). Homepage: https://github.com/lichengunc/refer.
Licence: Apache 2.0 (refer toolkit and annotations); COCO images under Flickr terms.

Raw, per sub-dataset folder (`refcoco/`, `refcoco+/`, `refcocog/`): `instances.json` (COCO format:
`images` with sizes, `annotations` with `bbox` [x, y, w, h] pixels) and a Python-2 pickle of refs
(`refs(unc).p`, `refs(umd).p` for RefCOCOg): dicts with `ref_id`, `ann_id`, `image_id`, `split`,
`sentences` [{`sent_id`, `raw`, `sent`, `tokens`}]. Pickles are read with `SafeUnpickler`, which
admits plain containers and scalars only: a pickle naming any other global is refused and its payload
never runs. Only `split == "train"` refs are read. The phrase is the cleaned `sent` (as in the
release's lower-case expressions), falling back to `raw`. One item per COCO image with every
(ref, sentence) pair of the three datasets; chunking into <= 9 pairs is the recipe's job.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from datamix import formats
from datamix.fileio import RawFormatError, load_json
from datamix.paths import COCO_DIR, coco_image
from datamix.recipe import RefCOCOSpec
from datamix.schema import DropReason, Kind, Region
from datamix.sources._coco import COCO_FOLDER, COCO_TRAIN2017
from datamix.sources._fields import RecordError, expect_dict, expect_list, get, require
from datamix.sources.base import Context, Draft, LlavaMatch, Part, RawFile, Records, RemoteFile, Source

# (sub-dataset, refs file) in the order their pairs are listed
DATASETS = (("refcoco", "refs(unc).p"), ("refcoco+", "refs(unc).p"), ("refcocog", "refs(umd).p"))
_UNC = "https://bvisionweb1.cs.unc.edu/licheng/referit/data"

#: the region prompts up to their colon (REG: box -> phrase, REC: phrase -> box), as release records carry them
REGION_PROMPTS = tuple(p.split("{", 1)[0].rstrip() for p in (formats.REG_PROMPT, formats.REC_PROMPT))

_Sizes = dict[int, tuple[int, int]]
_Boxes = dict[int, tuple[int, tuple[float, float, float, float]]]

_ALLOWED_GLOBALS = {
    ("__builtin__", "set"),
    ("builtins", "set"),
    ("__builtin__", "frozenset"),
    ("builtins", "frozenset"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a global other than plain containers; refused before anything runs."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler for untrusted data: plain containers and scalars only (dict, list, tuple, set, str,
    bytes, int, float, bool, None). Any other global (classes, functions such as `os.system`) is
    refused in `find_class`, i.e. before it could be called; persistent ids are refused too."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return set if name == "set" else frozenset
        raise UnsafePickleError(
            f"refused global {module}.{name}: only plain containers and scalars are allowed"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused persistent id: only plain containers and scalars are allowed")


def safe_load_pickle(path: Path) -> Any:
    """Load an untrusted (possibly Python 2) pickle; errors name the file."""
    data = path.read_bytes()
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="utf-8", errors="replace").load()
    except UnsafePickleError as e:
        raise RawFormatError(path, str(e)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise RawFormatError(path, f"not a readable pickle: {type(e).__name__}: {e}") from None


class RefCOCO(Source):
    name = "refcoco"
    order = 9
    kind = Kind.REGION
    title = "RefCOCO / RefCOCO+ / RefCOCOg"
    homepage = "https://github.com/lichengunc/refer"
    paper = "https://arxiv.org/abs/1608.00272"
    license = "Apache 2.0 (annotations); COCO images: Flickr terms"
    raw_files = tuple(
        f
        for ds, refs in DATASETS
        for f in (
            RawFile(f"{ds}/instances.json", f"{ds}: COCO-format images and boxes"),
            RawFile(f"{ds}/{refs}", f"{ds}: referring expressions (Python 2 pickle)"),
        )
    )
    image_dirs = (COCO_DIR,)
    remote = (  # each zip holds its own top folder
        *(RemoteFile(url=f"{_UNC}/{ds}.zip", extract_to="raw/refcoco") for ds, _ in DATASETS),
        COCO_TRAIN2017,
    )
    spec = RefCOCOSpec
    formatter = formats.REFCOCO
    llava = LlavaMatch(folder=COCO_FOLDER, prompts=REGION_PROMPTS, rank=1)
    group_file = "*/instances.json"
    tally = ("pairs", "regions")

    def records(self, ctx: Context) -> Iterator[Records]:
        sizes: _Sizes = {}  # first size seen per image, over the three datasets
        for ds, refs_name in DATASETS:
            inst_file, refs_file = f"{ds}/instances.json", f"{ds}/{refs_name}"
            inst_path = ctx.require_file(inst_file)
            inst = expect_dict(inst_path, load_json(inst_path))
            ds_sizes: _Sizes = {}
            boxes: _Boxes = {}
            images = expect_list(inst_path, inst.get("images"), "'images'")
            entries: Iterator[tuple[Any, Any]] = ((f"images[{i}]", im) for i, im in enumerate(images))
            yield Records(inst_file, entries, partial(self._size, ds_sizes), progress=False)
            annotations = expect_list(inst_path, inst.get("annotations"), "'annotations'")
            entries = ((f"annotations[{i}]", ann) for i, ann in enumerate(annotations))
            yield Records(inst_file, entries, partial(self._box, boxes), progress=False)
            del inst, images, annotations

            refs_path = ctx.require_file(refs_file)
            refs = safe_load_pickle(refs_path)
            if not isinstance(refs, list):
                raise RawFormatError(
                    refs_path, f"top level is {type(refs).__name__}, expected a list of refs"
                )
            entries = (
                (get(ref, "ref_id", i) if isinstance(ref, dict) else i, ref) for i, ref in enumerate(refs)
            )
            yield Records(
                refs_file, entries, partial(self._ref, ds, inst_file, refs_file, ds_sizes, boxes, sizes)
            )

    @staticmethod
    def _size(ds_sizes: _Sizes, ctx: Context, im: Any) -> None:
        ds_sizes[require(im, "id", int)] = (require(im, "width", int), require(im, "height", int))

    @staticmethod
    def _box(boxes: _Boxes, ctx: Context, ann: Any) -> None:
        bbox = require(ann, "bbox", list)
        if len(bbox) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
            raise RecordError(DropReason.BAD_BOX, f"bbox {bbox!r} is not four numbers")
        x, y, w, h = (float(v) for v in bbox)
        boxes[require(ann, "id", int)] = (require(ann, "image_id", int), (x, y, w, h))

    @staticmethod
    def _ref(
        ds: str,
        inst_file: str,
        refs_file: str,
        ds_sizes: _Sizes,
        boxes: _Boxes,
        sizes: _Sizes,
        ctx: Context,
        ref: Any,
    ) -> Part | None:
        split = require(ref, "split", str)
        if split != "train":
            ctx.count(f"skipped_split_{split}")
            return None
        ref_id = require(ref, "ref_id", int)
        ann_id = require(ref, "ann_id", int)
        image_id = require(ref, "image_id", int)
        sentences = require(ref, "sentences", list)
        if ann_id not in boxes:
            raise RecordError(DropReason.MISSING_ANNOTATION, f"ann_id {ann_id} not in {inst_file}")
        ann_image, (x, y, w, h) = boxes[ann_id]
        if ann_image != image_id:
            raise RecordError(DropReason.BAD_VALUE, f"ann_id {ann_id} belongs to image {ann_image}")
        if image_id not in ds_sizes:
            raise RecordError(DropReason.MISSING_ANNOTATION, f"image {image_id} not in {inst_file}")
        iw, ih = ds_sizes[image_id]
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x >= iw or y >= ih:
            raise RecordError(DropReason.BAD_BOX, f"box {[x, y, w, h]} on a {iw}x{ih} image")
        size = sizes.setdefault(image_id, (iw, ih))
        regions = []
        for j, s in enumerate(sentences):
            text = (get(s, "sent", None) or get(s, "raw", None)) if isinstance(s, dict) else None
            if not isinstance(text, str) or not text.strip():
                ctx.reject(refs_file, f"{ref_id}/{j}", DropReason.BAD_VALUE, "sentence without text")
                continue
            sent_id = get(s, "sent_id", j)
            regions.append(
                Region(region_id=f"{ref_id}:{sent_id}", phrase=text.strip(), x=x, y=y, w=w, h=h, group=ds)
            )
        return Part(image_id, (size, regions)) if regions else None

    def group(self, ctx: Context, image_id: int, parts: list[Any]) -> Draft:
        w, h = parts[0][0]
        found = tuple(r for _, regions in parts for r in regions)
        return Draft(id=f"{image_id:012d}", image=coco_image(image_id), width=w, height=h, regions=found)
