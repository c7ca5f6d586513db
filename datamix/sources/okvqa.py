"""OK-VQA: questions needing outside knowledge, on COCO train2014 images (v1.1).

Paper: Marino et al., "OK-VQA: A Visual Question Answering Benchmark Requiring External Knowledge",
CVPR 2019 (arXiv 1906.00067). Homepage: https://okvqa.allenai.org. Licence: CC BY 4.0 (annotations
as distributed by AllenAI); COCO images under Flickr terms.

Raw: `OpenEnded_mscoco_train2014_questions.json` + `mscoco_train2014_annotations.json` (9,009
questions on 8,998 images). There is no consensus answer: each of the 10 answers has `raw_answer`
and a stemmed `answer`; items keep the raw ones (`answer` = None; the recipe picks, by default the
most common raw answer).
"""

from __future__ import annotations

from collections.abc import Iterator

from datamix.paths import COCO_DIR
from datamix.schema import Drop, Kind, VQAItem
from datamix.sources._vqa import read_vqa_pair
from datamix.sources.base import Context, RawFile, Source

QUESTIONS = "OpenEnded_mscoco_train2014_questions.json"
ANNOTATIONS = "mscoco_train2014_annotations.json"


class OKVQA(Source):
    name = "okvqa"
    kind = Kind.VQA
    title = "OK-VQA"
    homepage = "https://okvqa.allenai.org"
    paper = "https://arxiv.org/abs/1906.00067"
    license = "CC BY 4.0 (annotations); COCO images: Flickr terms"
    raw_files = (
        RawFile(QUESTIONS, "train2014 questions"),
        RawFile(ANNOTATIONS, "train2014 annotations (10 raw + stemmed answers per question)"),
    )
    image_dirs = (COCO_DIR,)

    def read(self, ctx: Context) -> Iterator[VQAItem | Drop]:
        return read_vqa_pair(ctx, self.name, QUESTIONS, ANNOTATIONS, answer_field="raw_answer", consensus=False)
