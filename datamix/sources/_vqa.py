"""Shared reading of the VQA-challenge file pair (VQAv2, OK-VQA): a questions file and an
annotations file (the source's two raw files), joined on `question_id` and grouped into one item
per image (`VQAPairSource`).

Questions: `{"questions": [{"image_id": int, "question": str, "question_id": int}]}`.
Annotations: `{"annotations": [{"question_id", "image_id", "multiple_choice_answer"?,
"answers": [{"answer_id", "answer", "raw_answer"?, "answer_confidence"}]}]}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any, ClassVar

import msgspec

from datamix.fileio import RawFormatError, load_json
from datamix.paths import coco_image
from datamix.schema import QA, DropReason, Kind
from datamix.sources._fields import RecordError, expect_dict, expect_list, get, require
from datamix.sources.base import Context, Draft, Part, Records, Source


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


class VQAPairSource(Source):
    """One VQAItem per image (questions sorted by question id); drops for every bad record.

    `answer_field`: which per-annotator field holds the raw answer (`answer` for VQAv2, `raw_answer`
    for OK-VQA, falling back to `answer`). `consensus`: the file has `multiple_choice_answer`.
    `raw_files` are (questions, annotations).
    """

    kind = Kind.VQA
    tally = ("qas", "qas")
    answer_field: ClassVar[str]
    consensus: ClassVar[bool]

    def records(self, ctx: Context) -> Iterator[Records]:
        questions_file, annotations_file = (f.name for f in self.raw_files)
        annotations: dict[int, tuple[str | None, tuple[str, ...]]] = {}
        seen: set[int] = set()
        entries = enumerate(_section(ctx, annotations_file, "annotations", _AnnotationsFile))
        yield Records(annotations_file, entries, partial(self._annotation, annotations), progress=False)
        entries = enumerate(_section(ctx, questions_file, "questions", _QuestionsFile))
        yield Records(questions_file, entries, partial(self._question, annotations, seen))
        ctx.count("questions", len(seen))
        for qid in sorted(annotations.keys() - seen):
            ctx.reject(
                annotations_file, qid, DropReason.ORPHAN_ANNOTATION, f"annotation of unknown question {qid}"
            )

    def _annotation(self, annotations: dict[int, Any], ctx: Context, ann: Any) -> None:
        qid = _int_id(ann, "question_id")
        raw_answers = require(ann, "answers", list)
        if all(type(a) is _Answer for a in raw_answers):  # typed fast path
            if self.answer_field == "raw_answer":
                answers = [a.answer if a.raw_answer is msgspec.UNSET else a.raw_answer for a in raw_answers]
            else:
                answers = [a.answer for a in raw_answers]
        else:
            answers = [
                (get(a, self.answer_field, None) or get(a, "answer", None)) if isinstance(a, dict) else None
                for a in raw_answers
            ]
        for j, text in enumerate(answers):
            if type(text) is not str:
                raise RecordError(DropReason.BAD_TYPE, f"answers[{j}] has no string {self.answer_field!r}")
        main = None
        if self.consensus:
            main = require(ann, "multiple_choice_answer", str)
        elif not answers:
            raise RecordError(DropReason.MISSING_FIELD, "no answers")
        if qid in annotations:
            raise RecordError(DropReason.DUPLICATE, f"question_id {qid} annotated twice", pointer=qid)
        annotations[qid] = (main, tuple(answers))

    def _question(self, annotations: dict[int, Any], seen: set[int], ctx: Context, q: Any) -> Part:
        qid = _int_id(q, "question_id")
        image_id = _int_id(q, "image_id")
        text = require(q, "question", str)
        if not text.strip():
            raise RecordError(DropReason.BAD_VALUE, "empty question")
        if qid in seen:
            raise RecordError(DropReason.DUPLICATE, f"question_id {qid} listed twice", pointer=qid)
        seen.add(qid)
        if qid not in annotations:
            raise RecordError(DropReason.MISSING_ANNOTATION, f"no annotation for question {qid}", pointer=qid)
        return Part(image_id, (qid, text, annotations[qid]))

    def group(self, ctx: Context, image_id: int, parts: list[Any]) -> Draft:
        qas = tuple(
            QA(question_id=str(qid), question=text, answer=main, answers=answers)
            for qid, text, (main, answers) in sorted(parts, key=lambda p: p[0])
        )
        return Draft(id=f"{image_id:012d}", image=coco_image(image_id), qas=qas)
