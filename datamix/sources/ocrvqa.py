"""OCR-VQA: questions about book covers (title, author, genre, ...).

Paper: Mishra et al., "OCR-VQA: Visual Question Answering by Reading Text in Images", ICDAR 2019.
Homepage: https://ocr-vqa.github.io. Licence: CC BY 4.0 (annotations; cover images are Amazon's).

Raw: `dataset.json`, a dict keyed by book id (ISBN/ASIN with leading zeros dropped: kept exactly as
keyed, never zero-padded, docs/sources.md#p3); values `imageURL`, `questions`, `answers` (parallel lists),
`title`, `authorName`, `genre`, `split` (1 train, 2 val, 3 test). Only `split == 1` is read. The covers
are saved as `images/ocr_vqa/images/<key>.jpg` (the downloader converts GIF/PNG to JPEG; GIF or PNG
bytes under a `.jpg` name still decode and are kept). Every cover is fully decoded: missing, empty or
truncated covers become drops (docs/sources.md#p2).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from datamix import formats
from datamix.fileio import load_json
from datamix.paths import OCRVQA_DIR
from datamix.recipe import VQASpec
from datamix.schema import QA, DropReason, Kind
from datamix.sources._fields import RecordError, expect_dict, raw_record, require, require_str_list
from datamix.sources.base import Context, Draft, LlavaMatch, RawFile, Records, RemoteFile, Source

FILE = "dataset.json"
TRAIN = 1
DRIVE_FOLDER = "https://drive.google.com/drive/folders/1_GYPY5UkUy7HIcR0zq3ZCFgeZN7BAfm_"
MANUAL = (
    "OCR-VQA's dataset.json is only published in a Google Drive folder, which cannot be fetched "
    f"automatically. Open {DRIVE_FOLDER} "
    "in a browser, download `dataset.json` (loadDataset.py is not needed), and save it as {target} . "
    "Then run `datamix download ocrvqa` again: it verifies the file, records its sha256 and fetches the "
    "book covers into images/ocr_vqa/images/."
)


_Book = raw_record("_Book", "questions answers split")


class OCRVQA(Source):
    name = "ocrvqa"
    order = 6
    kind = Kind.VQA
    title = "OCR-VQA"
    homepage = "https://ocr-vqa.github.io"
    paper = "https://doi.org/10.1109/ICDAR.2019.00156"
    license = "CC BY 4.0 (annotations); cover images: Amazon"
    raw_files = (RawFile(FILE, "207,572 books with cover URLs and QAs (Google Drive folder)"),)
    image_dirs = (OCRVQA_DIR,)
    # dataset.json by hand; the covers are fetched by datamix.fetch.fetch_ocrvqa_covers
    remote = (RemoteFile(url=DRIVE_FOLDER, path=f"raw/ocrvqa/{FILE}", manual=MANUAL),)
    spec = VQASpec
    formatter = formats.VQA
    llava = LlavaMatch(folder="ocr_vqa/")
    decode_images = True  # missing, empty or truncated covers become drops (docs/sources.md#p2)
    tally = ("qas", "qas")

    def records(self, ctx: Context) -> Iterator[Records]:
        path = ctx.require_file(FILE)
        books = expect_dict(path, load_json(path, dict[str, _Book]))  # type: ignore[valid-type]
        yield Records(FILE, ((key, (key, books[key])) for key in sorted(books)))

    def parse(self, ctx: Context, entry: tuple[str, Any]) -> Draft | None:
        key, rec = entry
        split = require(rec, "split", int)
        if split != TRAIN:
            ctx.count(f"skipped_split_{split}")
            return None
        image = self.image_path(key, suffix=".jpg", what="book id")
        questions = require_str_list(rec, "questions")
        answers = require_str_list(rec, "answers")
        if len(questions) != len(answers):
            raise RecordError(DropReason.BAD_VALUE, f"{len(questions)} questions but {len(answers)} answers")
        if not questions:
            raise RecordError(DropReason.BAD_VALUE, "no questions")
        qas = tuple(
            QA(question_id=f"{key}-{i}", question=q, answer=a, answers=())
            for i, (q, a) in enumerate(zip(questions, answers, strict=True))
        )
        return Draft(id=key, image=image, qas=qas)
