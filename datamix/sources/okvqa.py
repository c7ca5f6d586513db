"""OK-VQA: questions needing outside knowledge, on COCO train2014 images (v1.1).

Paper: Marino et al., "OK-VQA: A Visual Question Answering Benchmark Requiring External Knowledge",
CVPR 2019 (arXiv 1906.00067). Homepage: https://okvqa.allenai.org. Licence: CC BY 4.0 (annotations
as distributed by AllenAI); COCO images under Flickr terms.

Raw: `OpenEnded_mscoco_train2014_questions.json` + `mscoco_train2014_annotations.json` (9,009
questions on 8,998 images). There is no consensus answer: each of the 10 answers has `raw_answer`
and a stemmed `answer`; items keep the raw ones (`answer` = None; the recipe picks, by default the
most common raw answer). In a LLaVA-format file: a COCO record with the short-answer prompt and at
most 2 QA pairs (OK-VQA averages 1.001 questions per image, VQAv2 5.4 with at least 3).
"""

from __future__ import annotations

from datamix import formats
from datamix.paths import COCO_DIR
from datamix.recipe import OKVQASpec
from datamix.sources._coco import COCO_FOLDER, COCO_TRAIN2017
from datamix.sources._vqa import VQAPairSource
from datamix.sources.base import LlavaMatch, RawFile, RemoteFile

QUESTIONS = "OpenEnded_mscoco_train2014_questions.json"
ANNOTATIONS = "mscoco_train2014_annotations.json"
MAX_PAIRS = 2  # at most this many QA pairs in a release record taken for OK-VQA


class OKVQA(VQAPairSource):
    name = "okvqa"
    order = 4
    title = "OK-VQA"
    homepage = "https://okvqa.allenai.org"
    paper = "https://arxiv.org/abs/1906.00067"
    license = "CC BY 4.0 (annotations); COCO images: Flickr terms"
    raw_files = (
        RawFile(QUESTIONS, "train2014 questions"),
        RawFile(ANNOTATIONS, "train2014 annotations (10 raw + stemmed answers per question)"),
    )
    image_dirs = (COCO_DIR,)
    remote = (
        RemoteFile(url=f"https://okvqa.allenai.org/static/data/{QUESTIONS}.zip", extract_to="raw/okvqa"),
        RemoteFile(url=f"https://okvqa.allenai.org/static/data/{ANNOTATIONS}.zip", extract_to="raw/okvqa"),
        COCO_TRAIN2017,
    )
    spec = OKVQASpec
    formatter = formats.VQA
    llava = LlavaMatch(
        folder=COCO_FOLDER, prompts=(formats.SHORT_ANSWER_SUFFIX,), max_pairs=MAX_PAIRS, rank=2
    )
    answer_field = "raw_answer"
    consensus = False
