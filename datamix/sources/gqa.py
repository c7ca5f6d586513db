"""GQA: compositional questions over Visual Genome pictures (balanced train split).

Paper: Hudson & Manning, "GQA: A New Dataset for Real-World Visual Reasoning and Compositional
Question Answering", CVPR 2019 (arXiv 1902.09506). Homepage: https://cs.stanford.edu/people/dorarad/gqa/.
Licence: CC BY 4.0.

Raw: `train_balanced_questions.json` (~1.3 GB), a dict keyed by question-id string; values carry
`question`, `imageId` (string; VG id or `n...`), `answer` (short), `fullAnswer` and program fields we
skip. 943,000 questions on 72,140 images -> one item per image, questions ordered by question id.
Memory: decoded through msgspec into slotted records holding three fields only (the file is mapped,
not read onto the heap), so a full-size run stays well under the file's size in extra RAM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from datamix import formats
from datamix.fileio import load_json
from datamix.paths import GQA_DIR
from datamix.recipe import VQASpec
from datamix.schema import QA, DropReason, Kind
from datamix.sources._fields import RecordError, expect_dict, raw_record, require, require_id
from datamix.sources.base import Context, Draft, LlavaMatch, Part, RawFile, Records, RemoteFile, Source

FILE = "train_balanced_questions.json"
_URL = "https://downloads.cs.stanford.edu/nlp/data/gqa"


_Question = raw_record("_Question", "question imageId answer")


def id_order(value: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then the others (e.g. `n161313`) as strings."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _drain(data: dict[str, Any]) -> Iterator[tuple[str, tuple[str, Any]]]:
    """(question id, (question id, record)), popped as we go: decoded records are freed while the
    groups grow."""
    while data:
        qid, rec = data.popitem()
        yield qid, (qid, rec)


class GQA(Source):
    name = "gqa"
    order = 3
    kind = Kind.VQA
    title = "GQA (balanced train)"
    homepage = "https://cs.stanford.edu/people/dorarad/gqa/"
    paper = "https://arxiv.org/abs/1902.09506"
    license = "CC BY 4.0"
    raw_files = (RawFile(FILE, "943,000 balanced train questions (from questions1.2.zip)"),)
    image_dirs = (GQA_DIR,)
    remote = (
        RemoteFile(url=f"{_URL}/questions1.2.zip", extract_to="raw/gqa"),
        RemoteFile(url=f"{_URL}/images.zip", size=21_817_965_542, extract_to="images/gqa"),
    )
    spec = VQASpec
    formatter = formats.VQA
    llava = LlavaMatch(folder="gqa/")
    group_label = "imageId"
    tally = ("qas", "qas")

    def records(self, ctx: Context) -> Iterator[Records]:
        path = ctx.require_file(FILE)
        data = expect_dict(path, load_json(path, dict[str, _Question]))  # type: ignore[valid-type]
        ctx.count("questions", len(data))
        yield Records(FILE, _drain(data))

    def parse(self, ctx: Context, entry: tuple[str, Any]) -> Part:
        qid, rec = entry
        image_id = require_id(rec, "imageId")
        question = require(rec, "question", str)
        answer = require(rec, "answer", str)
        if not question.strip() or not answer.strip():
            raise RecordError(DropReason.BAD_VALUE, "empty question or answer")
        return Part(image_id, (qid, question, answer))

    def group_order(self, image_id: str) -> tuple[int, int, str]:
        return id_order(image_id)

    def group(self, ctx: Context, image_id: str, parts: list[Any]) -> Draft:
        image = self.image_path(image_id, suffix=".jpg", what="imageId")
        parts.sort(key=lambda q: id_order(q[0]))
        qas = tuple(QA(question_id=qid, question=q, answer=a, answers=()) for qid, q, a in parts)
        return Draft(id=image_id, image=image, qas=qas)
