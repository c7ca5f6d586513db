"""Shared reading of the VQA-challenge file pair (VQAv2, OK-VQA): a questions file and an
annotations file, joined on `question_id` and grouped into one item per image.

Questions: `{"questions": [{"image_id": int, "question": str, "question_id": int}]}`.
Annotations: `{"annotations": [{"question_id", "image_id", "multiple_choice_answer"?,
"answers": [{"answer_id", "answer", "raw_answer"?, "answer_confidence"}]}]}`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec

from datamix.fileio import RawFormatError, load_json
from datamix.paths import coco_image
from datamix.schema import QA, Drop, DropReason, VQAItem
from datamix.sources.base import Context, RecordError, expect_dict, expect_list, get, require


class _Answer(msgspec.Struct, gc=False):
    answer: Any = msgspec.UNSET
    raw_answer: Any = msgspec.UNSET


class _Question(msgspec.Struct, gc=False):
    image_id: Any = msgspec.UNSET
    question: Any = msgspec.UNSET
    question_id: Any = msgspec.UNSET


class _Annotation(msgspec.Struct, gc=False):
    question_id: Any = msgspec.UNSET
    image_id: Any = msgspec.UNSET
    multiple_choice_answer: Any = msgspec.UNSET
    answers: list[_Answer] | None = None


class _QuestionsFile(msgspec.Struct, gc=False):
    questions: list[_Question] | None = None


class _AnnotationsFile(msgspec.Struct, gc=False):
    annotations: list[_Annotation] | None = None


def _section(ctx: Context, name: str, key: str, file_type: type) -> list[Any]:
    """The `key` array of a VQA-style JSON file (typed decoding keeps only the fields used)."""
    path = ctx.require_file(name)
    data = load_json(path, file_type)
    section = get(expect_dict(path, data) if not isinstance(data, msgspec.Struct) else data, key, None)
    if section is None:
        raise RawFormatError(path, f"no {key!r} array at the top level")
    return expect_list(path, section, repr(key))


def _int_id(rec: Any, name: str) -> int:
    value = require(rec, name, int)
    if value < 0:
        raise RecordError(DropReason.BAD_VALUE, f"{name} {value} is negative")
    return value


def read_vqa_pair(
    ctx: Context, source: str, questions_file: str, annotations_file: str, answer_field: str, consensus: bool
) -> Iterator[VQAItem | Drop]:
    """One VQAItem per image (questions sorted by question id); drops for every bad record.

    `answer_field`: which per-annotator field holds the raw answer (`answer` for VQAv2, `raw_answer`
    for OK-VQA, falling back to `answer`). `consensus`: the file has `multiple_choice_answer`.
    """
    annotations: dict[int, tuple[str | None, tuple[str, ...]]] = {}
    for index, ann in enumerate(_section(ctx, annotations_file, "annotations", _AnnotationsFile)):
        try:
            qid = _int_id(ann, "question_id")
            raw_answers = require(ann, "answers", list)
            if all(type(a) is _Answer for a in raw_answers):  # typed fast path
                if answer_field == "raw_answer":
                    answers = [a.answer if a.raw_answer is msgspec.UNSET else a.raw_answer for a in raw_answers]
                else:
                    answers = [a.answer for a in raw_answers]
            else:
                answers = [
                    (get(a, answer_field, None) or get(a, "answer", None)) if isinstance(a, dict) else None
                    for a in raw_answers
                ]
            for j, text in enumerate(answers):
                if type(text) is not str:
                    raise RecordError(DropReason.BAD_TYPE, f"answers[{j}] has no string {answer_field!r}")
            main = None
            if consensus:
                main = require(ann, "multiple_choice_answer", str)
            elif not answers:
                raise RecordError(DropReason.MISSING_FIELD, "no answers")
        except RecordError as err:
            yield ctx.drop_for(annotations_file, index, err)
            continue
        if qid in annotations:
            yield ctx.drop(annotations_file, qid, DropReason.DUPLICATE, f"question_id {qid} annotated twice")
            continue
        annotations[qid] = (main, tuple(answers))

    by_image: dict[int, list[tuple[int, str]]] = defaultdict(list)
    seen: set[int] = set()
    for index, q in enumerate(_section(ctx, questions_file, "questions", _QuestionsFile)):
        ctx.progress()
        try:
            qid = _int_id(q, "question_id")
            image_id = _int_id(q, "image_id")
            text = require(q, "question", str)
            if not text.strip():
                raise RecordError(DropReason.BAD_VALUE, "empty question")
        except RecordError as err:
            yield ctx.drop_for(questions_file, index, err)
            continue
        if qid in seen:
            yield ctx.drop(questions_file, qid, DropReason.DUPLICATE, f"question_id {qid} listed twice")
            continue
        seen.add(qid)
        if qid not in annotations:
            yield ctx.drop(questions_file, qid, DropReason.MISSING_ANNOTATION, f"no annotation for question {qid}")
            continue
        by_image[image_id].append((qid, text))
    ctx.count("questions", len(seen))

    for qid in sorted(annotations.keys() - seen):
        yield ctx.drop(annotations_file, qid, DropReason.ORPHAN_ANNOTATION, f"annotation of unknown question {qid}")

    for image_id in sorted(by_image):
        image = coco_image(image_id)
        qs = sorted(by_image[image_id])
        try:
            ctx.images.check(image)
        except RecordError as err:
            yield ctx.drop_for(questions_file, f"image_id={image_id}", err)
            continue
        qas = tuple(
            QA(question_id=str(qid), question=text, answer=annotations[qid][0], answers=annotations[qid][1])
            for qid, text in qs
        )
        ctx.count("qas", len(qas))
        yield VQAItem(key="", source=source, id=f"{image_id:012d}", image=image, qas=qas)
