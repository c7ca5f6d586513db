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

from collections.abc import Iterator
from functools import partial
from typing import Any

import msgspec

from datamix import formats
from datamix.fileio import RawFormatError, load_json
from datamix.paths import TEXTVQA_DIR
from datamix.recipe import CaptionSpec
from datamix.schema import DropReason, Kind
from datamix.sources._fields import (
    RecordError,
    expect_dict,
    expect_list,
    get,
    raw_record,
    require,
    require_id,
)
from datamix.sources.base import Context, Draft, LlavaMatch, Part, RawFile, Records, RemoteFile, Source

FILE = "TextCaps_0.1_train.json"
OCR_FILES = ("TextVQA_Rosetta_OCR_v0.2_train.json", "TextVQA_0.5.1_train.json")
_FB = "https://dl.fbaipublicfiles.com/textvqa"


_Caption = raw_record("_Caption", "image_id image_width image_height caption_id caption_str")


class _CaptionFile(msgspec.Struct, gc=False):
    data: list[_Caption] | None = None  # type: ignore[valid-type]


_Ocr = raw_record("_Ocr", "image_id ocr_tokens")


class _OcrFile(msgspec.Struct, gc=False):
    data: list[_Ocr] | None = None  # type: ignore[valid-type]


def _data(path: Any, decoded: Any) -> list[Any]:
    if not isinstance(decoded, msgspec.Struct):
        decoded = expect_dict(path, decoded)
    data = get(decoded, "data", None)
    if data is None:
        raise RawFormatError(path, "no 'data' array at the top level")
    return expect_list(path, data, "'data'")


class TextCaps(Source):
    name = "textcaps"
    order = 7
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
    remote = (  # + the TextVQA Rosetta OCR tokens (docs/sources.md#decisions)
        RemoteFile(url=f"{_FB}/data/textcaps/{FILE}"),
        RemoteFile(url=f"{_FB}/data/{OCR_FILES[0]}"),
        RemoteFile(url=f"{_FB}/images/train_val_images.zip", size=7_072_297_970, extract_to="images/textvqa"),
    )
    spec = CaptionSpec
    formatter = formats.CAPTION
    llava = LlavaMatch(folder="textvqa/")

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
                except RecordError as err:  # not a drop: the captions stay, without this image's tokens
                    ctx.warn(f"{name} record {index}: {err.detail} (OCR tokens ignored for it)")
                    continue
                tokens.setdefault(image_id, tuple(t for t in toks if isinstance(t, str) and t.strip()))
            ctx.counts["ocr_file"] = OCR_FILES.index(name)
            return tokens
        ctx.warn(f"no OCR token file ({' or '.join(OCR_FILES)}): items carry no OCR tokens")
        return None

    def records(self, ctx: Context) -> Iterator[Records]:
        path = ctx.require_file(FILE)
        entries = _data(path, load_json(path, _CaptionFile))
        ctx.count("captions", 0)  # counted per caption kept (below), present even when none is
        yield Records(FILE, enumerate(entries), partial(self._caption, self._ocr(ctx)))

    def _caption(self, ocr: dict[str, tuple[str, ...]] | None, ctx: Context, rec: Any) -> Part:
        image_id = require_id(rec, "image_id")
        self.image_path(image_id, suffix=".jpg", what="image_id")  # a bad id drops its record
        caption_id = require(rec, "caption_id", int)
        caption = require(rec, "caption_str", str)
        if not caption.strip():
            raise RecordError(DropReason.BAD_VALUE, "empty caption")
        w, h = get(rec, "image_width", None), get(rec, "image_height", None)
        size = (w, h) if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) else None
        ctx.count("captions")
        return Part(image_id, (caption_id, caption, size, None if ocr is None else ocr.get(image_id, ())))

    def group(self, ctx: Context, image_id: str, parts: list[Any]) -> Draft:
        w, h = next((size for _, _, size, _ in parts if size is not None), (None, None))
        return Draft(
            id=image_id,
            image=self.image_path(image_id, suffix=".jpg", what="image_id"),
            width=w,
            height=h,
            captions=tuple(c for _, c, _, _ in sorted(parts, key=lambda x: x[0])),
            ocr_tokens=parts[0][3],
        )
