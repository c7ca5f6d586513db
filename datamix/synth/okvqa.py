"""OK-VQA writer: `OpenEnded_mscoco_train2014_questions.json` + `mscoco_train2014_annotations.json`.

Demo: knowledge questions (the fruit of a shape's colour, corners of a shape) with raw and stemmed
answers. Planted: a picture never written (image_missing), an annotation without answers.

Volume: 9,009 questions on 8,998 pictures; extra planted questions whose annotation has no answers,
and missing pictures.
"""

from __future__ import annotations

import json
import random
from typing import Any

from datamix.schema import DropReason
from datamix.sources.okvqa import ANNOTATIONS, QUESTIONS
from datamix.synth.bulk import Bulk, js
from datamix.synth.scene import CORNERS, FRUITS, NUM_WORDS, Scene, World
from datamix.synth.vqav2 import VQA_LICENSE, vqa_info, vqa_pair_demo

SOURCE = "okvqa"

_OK_QUESTION_TYPES = {
    "eight": "Plants and Animals",
    "nine": "Science and Technology",
    "four": "Sports and Recreation",
    "six": "Geography, History, Language and Culture",
    "two": "Brands, Companies and Products",
    "other": "Other",
    "one": "Vehicles and Transportation",
    "five": "Cooking and Food",
    "ten": "Weather and Climate",
    "seven": "People and Everyday life",
    "three": "Objects, Material and Clothing",
}
_OK_INFO = vqa_info(
    "This is v1.1 of the OK-VQA dataset.",
    "http://okvqa.allenai.org",
    "1.1",
    2019,
    "OK-VQA Team",
    "2019-05-25 14:43:06",
)
# the head fields both files share, as JSON text (volume profile)
_OK_HEAD = json.dumps(
    {
        "license": VQA_LICENSE,
        "data_subtype": "train2014",
        "question_types": _OK_QUESTION_TYPES,
        "info": _OK_INFO,
        "data_type": "mscoco",
    }
)[1:-1]


def _okvqa_qas(rng: random.Random, scene: Scene) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(question, question_type, [(raw_answer, stemmed)] x 10)."""
    out = []
    s = rng.choice(scene.shapes)
    raw, stem = FRUITS[s.color]
    out.append(
        (
            f"What fruit has the same color as the {s.kind}?",
            "five",
            [(raw if rng.random() < 0.7 else stem, stem) for _ in range(10)],
        )
    )
    angular = [x for x in scene.shapes if x.kind != "circle"]
    if angular and rng.random() < 0.4:
        x = rng.choice(angular)
        n = CORNERS[x.kind]
        word = NUM_WORDS[int(n)]
        out.append(
            (
                f"How many corners does a shape like the {x.color} one have?",
                "nine",
                [(n, n) if rng.random() < 0.7 else (word, word) for _ in range(10)],
            )
        )
    return out


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 10, "small": 300}


def _annotation(image_id: int, qid: int, qa: tuple[str, str, list[tuple[str, str]]]) -> dict[str, Any]:
    _, qtype, answers = qa
    return {
        "image_id": image_id,
        "answer_type": "other",
        "question_type": qtype,
        "question_id": qid,
        "answers": [
            {"answer_id": j + 1, "raw_answer": r, "answer_confidence": "yes", "answer": st}
            for j, (r, st) in enumerate(answers)
        ],
        "confidence": 3,
    }


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    ids, questions, annotations = vqa_pair_demo(world, rng, n, 2, _okvqa_qas, 10, _annotation)
    # planted: an annotation without answers (its question then has no usable annotation)
    annotations[rng.randrange(len(annotations))].pop("answers")
    world.expect_drop(SOURCE, DropReason.MISSING_FIELD)
    world.expect_drop(SOURCE, DropReason.MISSING_ANNOTATION)
    if any(
        a["image_id"] == world.coco_ghosts[2] and "answers" in a for a in annotations
    ):  # else no question is left
        world.expect_drop(SOURCE, DropReason.IMAGE_MISSING)
    world.write_json(
        SOURCE,
        QUESTIONS,
        {
            "license": VQA_LICENSE,
            "data_subtype": "train2014",
            "question_types": _OK_QUESTION_TYPES,
            "questions": questions,
            "info": _OK_INFO,
            "task_type": "Open-Ended",
            "data_type": "mscoco",
        },
    )
    world.write_json(
        SOURCE,
        ANNOTATIONS,
        {
            "license": VQA_LICENSE,
            "data_subtype": "train2014",
            "question_types": _OK_QUESTION_TYPES,
            "annotations": annotations,
            "info": _OK_INFO,
            "data_type": "mscoco",
        },
    )
    return len(ids) + 1


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_img, n_q = w.n("okvqa_images"), w.n("okvqa_questions")
    images, twice = w.coco_images(rng, n_img, w.train2014), w.twice(rng, n_img, n_q)
    ans = w.answers10(rng, stem=True)
    qo, ao = w.out(src, QUESTIONS), w.out(src, ANNOTATIONS)
    qo.w("{" + _OK_HEAD + ', "task_type": "Open-Ended", "questions": [')
    ao.w("{" + _OK_HEAD + ', "annotations": [')
    qp = [js(q) for q in w.q_pool]
    sep = ""

    def ann(qid: int, image_id: int, answers: bool = True) -> str:
        arr = f'"answers": {ans[qid % len(ans)][1]}, ' if answers else ""
        return (
            f'{{"image_id": {image_id}, "answer_type": "other", "question_type": "one", {arr}'
            f'"question_id": {qid}, "confidence": 3}}'
        )

    for idx, image_id in enumerate(images):
        for j in range(2 if idx in twice else 1):
            qid = image_id * 10 + j
            qo.w(f'{sep}{{"image_id": {image_id}, "question": {qp[qid % len(qp)]}, "question_id": {qid}}}')
            ao.w(sep + ann(qid, image_id))
            sep = ", "
    for image_id in rng.sample(images, w.few(5)):  # extra question whose annotation has no answers
        qid = image_id * 10 + 7
        qo.w(f', {{"image_id": {image_id}, "question": "What sport is this?", "question_id": {qid}}}')
        ao.w(", " + ann(qid, image_id, answers=False))
        w.expect_drop(src, DropReason.MISSING_FIELD)
        w.expect_drop(src, DropReason.MISSING_ANNOTATION)
    for _ in range(w.few(5)):
        g = next(w.coco_ghosts)
        qo.w(f', {{"image_id": {g}, "question": "What brand is this?", "question_id": {g * 10}}}')
        ao.w(", " + ann(g * 10, g))
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    w.finish(src, {qo: "]}", ao: "]}"}, n_img)
