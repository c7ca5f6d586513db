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

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec

from datamix.fileio import iter_json_list
from datamix.paths import COCO_DIR, coco_image
from datamix.schema import Choice, Drop, DropReason, Kind, MCQItem
from datamix.sources.base import (
    Context,
    RawFile,
    RecordError,
    Source,
    get,
    require,
    require_id,
    require_str_list,
)

FILE = "aokvqa_v1p0_train.json"


class _Record(msgspec.Struct, gc=False):
    split: Any = msgspec.UNSET
    image_id: Any = msgspec.UNSET
    question_id: Any = msgspec.UNSET
    question: Any = msgspec.UNSET
    choices: Any = msgspec.UNSET
    correct_choice_idx: Any = msgspec.UNSET
    direct_answers: Any = msgspec.UNSET


class AOKVQA(Source):
    name = "aokvqa"
    kind = Kind.MCQ
    title = "A-OKVQA"
    homepage = "https://allenai.org/project/a-okvqa"
    paper = "https://arxiv.org/abs/2206.01718"
    license = "Apache 2.0 (annotations); COCO images: Flickr terms"
    raw_files = (RawFile(FILE, "train split (17,056 questions on 16,540 images)"),)
    image_dirs = (COCO_DIR,)

    def read(self, ctx: Context) -> Iterator[MCQItem | Drop]:
        path = ctx.require_file(FILE)
        records = iter_json_list(path, _Record)
        by_image: dict[int, list[Choice]] = defaultdict(list)
        for index, rec in enumerate(records):
            ctx.progress()
            try:
                split = require(rec, "split", str)
                if split != "train":
                    ctx.count(f"skipped_split_{split}")
                    continue
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
            except RecordError as err:
                yield ctx.drop_for(FILE, index, err)
                continue
            by_image[image_id].append(
                Choice(question_id=qid, question=question, choices=tuple(choices), correct=correct, direct_answers=direct)
            )
        for image_id in sorted(by_image):
            image = coco_image(image_id)
            try:
                ctx.images.check(image)
            except RecordError as err:
                yield ctx.drop_for(FILE, f"image_id={image_id}", err)
                continue
            questions = tuple(sorted(by_image.pop(image_id), key=lambda c: c.question_id))
            ctx.count("questions", len(questions))
            yield MCQItem(key="", source=self.name, id=f"{image_id:012d}", image=image, questions=questions)
