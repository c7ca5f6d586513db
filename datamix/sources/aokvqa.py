"""A-OKVQA: multiple-choice (and direct-answer) questions needing commonsense/world knowledge, on COCO 2017.

Paper: Schwenk et al., "A-OKVQA: A Benchmark for Visual Question Answering using World Knowledge",
ECCV 2022 (arXiv 2206.01718). Homepage: https://allenai.org/project/a-okvqa. Licence: Apache 2.0
(annotations); COCO images under Flickr terms.

Raw: `aokvqa_v1p0_train.json`, an array of `{"split", "image_id": int, "question_id": str, "question",
"choices": [4], "correct_choice_idx", "direct_answers": [10], "difficult_direct_answer", "rationales"}`.
Only `split == "train"` records are read (others counted in stats). One item per image; the 4 rotated
copies of LLaVA-1.5 are the recipe's `augment: rotate_choices`, not data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from datamix import formats
from datamix.fileio import iter_json_list
from datamix.paths import COCO_DIR, coco_image
from datamix.recipe import MCQSpec
from datamix.schema import Choice, DropReason, Kind
from datamix.sources._coco import COCO_FOLDER, COCO_TRAIN2017
from datamix.sources._fields import RecordError, get, raw_record, require, require_id, require_str_list
from datamix.sources.base import Context, Draft, LlavaMatch, Part, RawFile, Records, RemoteFile, Source

FILE = "aokvqa_v1p0_train.json"
_S3 = "https://prior-datasets.s3.us-east-2.amazonaws.com"


_Record = raw_record(
    "_Record", "split image_id question_id question choices correct_choice_idx direct_answers"
)


class AOKVQA(Source):
    name = "aokvqa"
    order = 5
    kind = Kind.MCQ
    title = "A-OKVQA"
    homepage = "https://allenai.org/project/a-okvqa"
    paper = "https://arxiv.org/abs/2206.01718"
    license = "Apache 2.0 (annotations); COCO images: Flickr terms"
    raw_files = (RawFile(FILE, "train split (17,056 questions on 16,540 images)"),)
    image_dirs = (COCO_DIR,)
    remote = (
        RemoteFile(url=f"{_S3}/aokvqa/aokvqa_v1p0.tar.gz", extract_to="raw/aokvqa"),
        COCO_TRAIN2017,
    )
    spec = MCQSpec
    formatter = formats.MCQ
    llava = LlavaMatch(folder=COCO_FOLDER, prompts=(formats.MCQ_SUFFIX,), rank=0)
    tally = ("questions", "questions")

    def records(self, ctx: Context) -> Iterator[Records]:
        yield Records(FILE, enumerate(iter_json_list(ctx.require_file(FILE), _Record)))

    def parse(self, ctx: Context, rec: Any) -> Part | None:
        split = require(rec, "split", str)
        if split != "train":
            ctx.count(f"skipped_split_{split}")
            return None
        image_id = require(rec, "image_id", int)
        qid = require_id(rec, "question_id")
        question = require(rec, "question", str)
        choices = require_str_list(rec, "choices")
        if len(choices) < 2:
            raise RecordError(DropReason.BAD_VALUE, f"{len(choices)} choices")
        correct = require(rec, "correct_choice_idx", int)
        if not 0 <= correct < len(choices):
            raise RecordError(DropReason.BAD_VALUE, f"correct_choice_idx {correct} out of range")
        direct = get(rec, "direct_answers", None)
        direct = tuple(a for a in direct if isinstance(a, str)) if isinstance(direct, list) else ()
        return Part(
            image_id,
            Choice(
                question_id=qid,
                question=question,
                choices=tuple(choices),
                correct=correct,
                direct_answers=direct,
            ),
        )

    def group(self, ctx: Context, image_id: int, parts: list[Choice]) -> Draft:
        questions = tuple(sorted(parts, key=lambda c: c.question_id))
        return Draft(id=f"{image_id:012d}", image=coco_image(image_id), questions=questions)
