"""OCR-VQA: questions about book covers (title, author, genre, ...).

Paper: Mishra et al., "OCR-VQA: Visual Question Answering by Reading Text in Images", ICDAR 2019.
Homepage: https://ocr-vqa.github.io. Licence: CC BY 4.0 (annotations; cover images are Amazon's).

Raw: `dataset.json`, a dict keyed by book id (ISBN/ASIN with leading zeros dropped: kept exactly as
keyed, never zero-padded, sources.md P3); values `imageURL`, `questions`, `answers` (parallel lists),
`title`, `authorName`, `genre`, `split` (1 train, 2 val, 3 test). Only `split == 1` is read. The covers
are saved as `images/ocr_vqa/images/<key>.jpg` (the downloader converts GIF/PNG to JPEG; GIF or PNG
bytes under a `.jpg` name still decode and are kept). Every cover is fully decoded: missing, empty or
truncated covers become drops (sources.md P2).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from datamix.fileio import load_json
from datamix.paths import OCRVQA_DIR
from datamix.schema import QA, Drop, DropReason, Kind, VQAItem
from datamix.sources.base import Context, RawFile, RecordError, Source, expect_dict, require, require_str_list

FILE = "dataset.json"
TRAIN = 1


class _Book(msgspec.Struct, gc=False):
    questions: Any = msgspec.UNSET
    answers: Any = msgspec.UNSET
    split: Any = msgspec.UNSET


class OCRVQA(Source):
    name = "ocrvqa"
    kind = Kind.VQA
    title = "OCR-VQA"
    homepage = "https://ocr-vqa.github.io"
    paper = "https://doi.org/10.1109/ICDAR.2019.00156"
    license = "CC BY 4.0 (annotations); cover images: Amazon"
    raw_files = (RawFile(FILE, "207,572 books with cover URLs and QAs (Google Drive folder)"),)
    image_dirs = (OCRVQA_DIR,)

    def read(self, ctx: Context) -> Iterator[VQAItem | Drop]:
        path = ctx.require_file(FILE)
        books = expect_dict(path, load_json(path, dict[str, _Book]))
        for key in sorted(books):
            rec = books[key]
            ctx.progress()
            try:
                split = require(rec, "split", int)
                if split != TRAIN:
                    ctx.count(f"skipped_split_{split}")
                    continue
                if not key or "/" in key or key.startswith("."):
                    raise RecordError(DropReason.BAD_VALUE, f"book id {key!r} is not a file name")
                questions = require_str_list(rec, "questions")
                answers = require_str_list(rec, "answers")
                if len(questions) != len(answers):
                    raise RecordError(
                        DropReason.BAD_VALUE, f"{len(questions)} questions but {len(answers)} answers"
                    )
                if not questions:
                    raise RecordError(DropReason.BAD_VALUE, "no questions")
                image = f"{OCRVQA_DIR}/{key}.jpg"
                width, height = ctx.images.decode_size(image)
            except RecordError as err:
                yield ctx.drop_for(FILE, key, err)
                continue
            qas = tuple(
                QA(question_id=f"{key}-{i}", question=q, answer=a, answers=())
                for i, (q, a) in enumerate(zip(questions, answers, strict=True))
            )
            ctx.count("qas", len(qas))
            yield VQAItem(key="", source=self.name, id=key, image=image, width=width, height=height, qas=qas)
