"""VQAv2: open-ended questions on COCO images, 10 annotator answers each (train2014 split).

Paper: Goyal et al., "Making the V in VQA Matter", CVPR 2017 (arXiv 1612.00837).
Homepage: https://visualqa.org. Licence: CC BY 4.0 (annotations); COCO images under Flickr terms.

Raw: `v2_OpenEnded_mscoco_train2014_questions.json` + `v2_mscoco_train2014_annotations.json`
(82,783 images, 443,757 questions). Annotations name train2014 images; LLaVA reads the same pictures
as `coco/train2017/<12-digit>.jpg` (docs/sources.md#p5). `answer` = `multiple_choice_answer`, `answers` =
the 10 raw annotator answers. In a LLaVA-format file: a COCO record with the short-answer prompt and
more than 2 QA pairs (OK-VQA has 1 or 2).
"""

from __future__ import annotations

from datamix import formats
from datamix.paths import COCO_DIR
from datamix.recipe import VQASpec
from datamix.sources._coco import COCO_FOLDER, COCO_TRAIN2017
from datamix.sources._vqa import VQAPairSource
from datamix.sources.base import LlavaMatch, RawFile, RemoteFile

QUESTIONS = "v2_OpenEnded_mscoco_train2014_questions.json"
ANNOTATIONS = "v2_mscoco_train2014_annotations.json"
_S3 = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"


class VQAv2(VQAPairSource):
    name = "vqav2"
    order = 2
    title = "VQAv2"
    homepage = "https://visualqa.org"
    paper = "https://arxiv.org/abs/1612.00837"
    license = "CC BY 4.0 (annotations); COCO images: Flickr terms"
    raw_files = (
        RawFile(QUESTIONS, "train2014 questions"),
        RawFile(ANNOTATIONS, "train2014 annotations (10 answers per question)"),
    )
    image_dirs = (COCO_DIR,)
    remote = (
        RemoteFile(url=f"{_S3}/v2_Questions_Train_mscoco.zip", size=7_239_401, extract_to="raw/vqav2"),
        RemoteFile(url=f"{_S3}/v2_Annotations_Train_mscoco.zip", size=21_708_861, extract_to="raw/vqav2"),
        COCO_TRAIN2017,
    )
    spec = VQASpec
    formatter = formats.VQA
    llava = LlavaMatch(folder=COCO_FOLDER, prompts=(formats.SHORT_ANSWER_SUFFIX,), rank=3)
    answer_field = "answer"
    consensus = True
