"""TextCaps: captions that read the text in the picture (images from TextVQA / OpenImages).

Paper: Sidorov et al., "TextCaps: a Dataset for Image Captioning with Reading Comprehension",
ECCV 2020 (arXiv 2003.12462). Homepage: https://textvqa.org/textcaps. Licence: CC BY 4.0.

Raw: `TextCaps_0.1_train.json` = `{"dataset_type", "dataset_name", "dataset_version", "data": [...]}`,
ONE entry PER CAPTION (`image_id` 16-hex, `image_width`, `image_height`, `caption_id`, `caption_str`,
...); grouped here into one item per image, captions ordered by `caption_id`. OCR tokens are not in
the caption file: they come from the TextVQA Rosetta OCR file (`TextVQA_Rosetta_OCR_v0.2_train.json`,
else `TextVQA_0.5.1_train.json`; both `{"data": [{"image_id", "ocr_tokens", ...}]}`). Without either,
items carry `ocr_tokens = None` and a warning is recorded (the recipe then omits the OCR line).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec

from datamix.fileio import RawFormatError, load_json
from datamix.paths import TEXTVQA_DIR
from datamix.schema import CaptionItem, Drop, DropReason, Kind
from datamix.sources.base import (
    Context,
    RawFile,
    RecordError,
    Source,
    expect_dict,
    expect_list,
    get,
    require,
    require_id,
)

FILE = "TextCaps_0.1_train.json"
OCR_FILES = ("TextVQA_Rosetta_OCR_v0.2_train.json", "TextVQA_0.5.1_train.json")


class _Caption(msgspec.Struct, gc=False):
    image_id: Any = msgspec.UNSET
    image_width: Any = msgspec.UNSET
    image_height: Any = msgspec.UNSET
    caption_id: Any = msgspec.UNSET
    caption_str: Any = msgspec.UNSET


class _CaptionFile(msgspec.Struct, gc=False):
    data: list[_Caption] | None = None


class _Ocr(msgspec.Struct, gc=False):
    image_id: Any = msgspec.UNSET
    ocr_tokens: Any = msgspec.UNSET


class _OcrFile(msgspec.Struct, gc=False):
    data: list[_Ocr] | None = None


def _data(path: Any, decoded: Any) -> list[Any]:
    if not isinstance(decoded, msgspec.Struct):
        decoded = expect_dict(path, decoded)
    data = get(decoded, "data", None)
    if data is None:
        raise RawFormatError(path, "no 'data' array at the top level")
    return expect_list(path, data, "'data'")


class TextCaps(Source):
    name = "textcaps"
    kind = Kind.CAPTION
    title = "TextCaps"
    homepage = "https://textvqa.org/textcaps"
    paper = "https://arxiv.org/abs/2003.12462"
    license = "CC BY 4.0"
    raw_files = (
        RawFile(FILE, "109,765 train captions on 21,953 images"),
        RawFile(OCR_FILES[0], "Rosetta OCR tokens per TextVQA image (for the OCR line)", optional=True),
        RawFile(OCR_FILES[1], "TextVQA train questions with ocr_tokens (fallback OCR source)", optional=True),
    )
    image_dirs = (TEXTVQA_DIR,)

    def _ocr(self, ctx: Context) -> dict[str, tuple[str, ...]] | None:
        for name in OCR_FILES:
            path = ctx.path(name)
            if not path.is_file():
                continue
            tokens: dict[str, tuple[str, ...]] = {}
            for index, rec in enumerate(_data(path, load_json(path, _OcrFile))):
                try:
                    image_id = require_id(rec, "image_id")
                    toks = require(rec, "ocr_tokens", list)
                except RecordError as err:
                    ctx.warn(f"{name} record {index}: {err.detail} (OCR tokens ignored for it)")
                    continue
                tokens.setdefault(image_id, tuple(t for t in toks if isinstance(t, str) and t.strip()))
            ctx.counts["ocr_file"] = OCR_FILES.index(name)
            return tokens
        ctx.warn(f"no OCR token file ({' or '.join(OCR_FILES)}): items carry no OCR tokens")
        return None

    def read(self, ctx: Context) -> Iterator[CaptionItem | Drop]:
        path = ctx.require_file(FILE)
        entries = _data(path, load_json(path, _CaptionFile))
        ocr = self._ocr(ctx)
        groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
        sizes: dict[str, tuple[int, int]] = {}
        for index, rec in enumerate(entries):
            ctx.progress()
            try:
                image_id = require_id(rec, "image_id")
                if "/" in image_id or image_id.startswith("."):
                    raise RecordError(DropReason.BAD_VALUE, f"image_id {image_id!r} is not a file name")
                caption_id = require(rec, "caption_id", int)
                caption = require(rec, "caption_str", str)
                if not caption.strip():
                    raise RecordError(DropReason.BAD_VALUE, "empty caption")
                w, h = get(rec, "image_width", None), get(rec, "image_height", None)
            except RecordError as err:
                yield ctx.drop_for(FILE, index, err)
                continue
            groups[image_id].append((caption_id, caption))
            if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool):
                sizes.setdefault(image_id, (w, h))
        ctx.count("captions", sum(len(v) for v in groups.values()))
        for image_id in sorted(groups):
            image = f"{TEXTVQA_DIR}/{image_id}.jpg"
            try:
                ctx.images.check(image)
            except RecordError as err:
                yield ctx.drop_for(FILE, f"image_id={image_id}", err)
                continue
            captions = tuple(c for _, c in sorted(groups.pop(image_id), key=lambda x: x[0]))
            w, h = sizes.get(image_id, (None, None))
            tokens = None if ocr is None else ocr.get(image_id, ())
            yield CaptionItem(
                key="", source=self.name, id=image_id, image=image, width=w, height=h,
                captions=captions, ocr_tokens=tokens,
            )
