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

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import msgspec

from datamix.fileio import load_json
from datamix.paths import GQA_DIR
from datamix.schema import QA, Drop, DropReason, Kind, VQAItem
from datamix.sources.base import Context, RawFile, RecordError, Source, expect_dict, require, require_id

FILE = "train_balanced_questions.json"


class _Question(msgspec.Struct, gc=False):
    question: Any = msgspec.UNSET
    imageId: Any = msgspec.UNSET  # noqa: N815 - the raw field name
    answer: Any = msgspec.UNSET


def id_order(value: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then the others (e.g. `n161313`) as strings."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


class GQA(Source):
    name = "gqa"
    kind = Kind.VQA
    title = "GQA (balanced train)"
    homepage = "https://cs.stanford.edu/people/dorarad/gqa/"
    paper = "https://arxiv.org/abs/1902.09506"
    license = "CC BY 4.0"
    raw_files = (RawFile(FILE, "943,000 balanced train questions (from questions1.2.zip)"),)
    image_dirs = (GQA_DIR,)

    def read(self, ctx: Context) -> Iterator[VQAItem | Drop]:
        path = ctx.require_file(FILE)
        data = expect_dict(path, load_json(path, dict[str, _Question]))
        ctx.count("questions", len(data))
        by_image: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        while data:  # pop as we go: the decoded records are freed while the groups grow
            qid, rec = data.popitem()
            ctx.progress()
            try:
                image_id = require_id(rec, "imageId")
                question = require(rec, "question", str)
                answer = require(rec, "answer", str)
                if not question.strip() or not answer.strip():
                    raise RecordError(DropReason.BAD_VALUE, "empty question or answer")
            except RecordError as err:
                yield ctx.drop_for(FILE, qid, err)
                continue
            by_image[image_id].append((qid, question, answer))
        del data
        for image_id in sorted(by_image, key=id_order):
            image = f"{GQA_DIR}/{image_id}.jpg"
            qs = by_image.pop(image_id)
            try:
                if "/" in image_id or image_id.startswith("."):
                    raise RecordError(DropReason.BAD_VALUE, f"imageId {image_id!r} is not a file name")
                ctx.images.check(image)
            except RecordError as err:
                yield ctx.drop_for(FILE, f"imageId={image_id}", err)
                continue
            qs.sort(key=lambda q: id_order(q[0]))
            qas = tuple(QA(question_id=qid, question=q, answer=a, answers=()) for qid, q, a in qs)
            ctx.count("qas", len(qas))
            yield VQAItem(key="", source=self.name, id=image_id, image=image, qas=qas)
