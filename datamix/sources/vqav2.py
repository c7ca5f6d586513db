"""VQAv2: open-ended questions on COCO images, 10 annotator answers each (train2014 split).

Paper: Goyal et al., "Making the V in VQA Matter", CVPR 2017 (arXiv 1612.00837).
Homepage: https://visualqa.org. Licence: CC BY 4.0 (annotations); COCO images under Flickr terms.

Raw: `v2_OpenEnded_mscoco_train2014_questions.json` + `v2_mscoco_train2014_annotations.json`
(82,783 images, 443,757 questions). Annotations name train2014 images; LLaVA reads the same pictures
as `coco/train2017/<12-digit>.jpg` (sources.md P5). `answer` = `multiple_choice_answer`, `answers` =
the 10 raw annotator answers.
"""

from __future__ import annotations

from collections.abc import Iterator

from datamix.paths import COCO_DIR
from datamix.schema import Drop, Kind, VQAItem
from datamix.sources._vqa import read_vqa_pair
from datamix.sources.base import Context, RawFile, Source

QUESTIONS = "v2_OpenEnded_mscoco_train2014_questions.json"
ANNOTATIONS = "v2_mscoco_train2014_annotations.json"


class VQAv2(Source):
    name = "vqav2"
    kind = Kind.VQA
    title = "VQAv2"
    homepage = "https://visualqa.org"
    paper = "https://arxiv.org/abs/1612.00837"
    license = "CC BY 4.0 (annotations); COCO images: Flickr terms"
    raw_files = (
        RawFile(QUESTIONS, "train2014 questions"),
        RawFile(ANNOTATIONS, "train2014 annotations (10 answers per question)"),
    )
    image_dirs = (COCO_DIR,)

    def read(self, ctx: Context) -> Iterator[VQAItem | Drop]:
        return read_vqa_pair(ctx, self.name, QUESTIONS, ANNOTATIONS, answer_field="answer", consensus=True)
