"""VQAv2 writer: `v2_OpenEnded_mscoco_train2014_questions.json` + `v2_mscoco_train2014_annotations.json`.

Demo: colour, count, presence and choice questions about each COCO picture, 10 annotator answers
each (train2014 ids; pictures stored under their train2017 names). Planted: a picture that is never
written (image_missing), a question without its text (missing_field), an annotation of a question
that does not exist (orphan_annotation).

Volume: 443,757 questions on 82,783 pictures; extra planted questions and annotations (no text,
string ids, orphans, no multiple_choice_answer, duplicates, missing pictures).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from datamix.schema import DropReason
from datamix.sources.vqav2 import ANNOTATIONS, QUESTIONS
from datamix.synth.bulk import Bulk, js
from datamix.synth.scene import COLORS, SHAPES, Scene, World, choices, plant, ten_answers

SOURCE = "vqav2"


def vqa_info(description: str, url: str, version: str, year: int, contributor: str, created: str) -> dict:
    """The `info` head field of the VQA file format (VQAv2 and OK-VQA), its keys in the files' order."""
    keys = ("description", "url", "version", "year", "contributor", "date_created")
    return dict(zip(keys, (description, url, version, year, contributor, created), strict=True))


_VQA_INFO = vqa_info(
    "This is v2.0 of the VQA dataset.", "http://visualqa.org", "2.0", 2017, "VQA Team", "2017-04-26 17:07:13"
)
#: The `license` head field of both VQA-format datasets.
VQA_LICENSE = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}
# the head fields both files share, as JSON text (volume profile)
_VQA_HEAD = json.dumps(
    {"info": _VQA_INFO, "license": VQA_LICENSE, "data_subtype": "train2014", "data_type": "mscoco"}
)[1:-1]


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 20, "small": 2000}


def vqa_pair_demo(
    world: World,
    rng: random.Random,
    n: int,
    ghost: int,
    draw: Callable[[random.Random, Scene], Iterable[Any]],
    step: int,
    annotate: Callable[[int, int, Any], dict[str, Any]],
) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo's VQA-challenge file pair (VQAv2, OK-VQA) on `n` COCO pictures (then ghost `ghost`):
    (picture ids, questions, annotations). Each QA `draw(rng, scene)` gives (its question first) gets
    question id `image_id * step + k` and the annotation `annotate(image_id, question id, qa)`."""
    ids = world.coco_sample(rng, n)
    questions: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, scene in world.coco_scenes(ids, ghost=ghost):
        for k, qa in enumerate(draw(rng, scene)):
            qid = image_id * step + k
            questions.append({"image_id": image_id, "question": qa[0], "question_id": qid})
            annotations.append(annotate(image_id, qid, qa))
    return ids, questions, annotations


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)

    def annotate(image_id: int, qid: int, qa: tuple[str, str, str, str, tuple[str, ...]]) -> dict[str, Any]:
        _, a, qtype, atype, domain = qa
        answers = [
            {"answer": ans, "answer_confidence": conf, "answer_id": j + 1}
            for j, (ans, conf) in enumerate(ten_answers(rng, a, domain))
        ]
        return {
            "question_type": qtype,
            "multiple_choice_answer": a,
            "answers": answers,
            "image_id": image_id,
            "answer_type": atype,
            "question_id": qid,
        }

    ids, questions, annotations = vqa_pair_demo(world, rng, n, 1, vqa_qas, 1000, annotate)
    # planted: a question without its text; an annotation of a question that does not exist
    bad_q = {"image_id": ids[-1], "question_id": ids[-1] * 1000 + 99}
    plant(rng, questions, [bad_q])
    orphan = copy.deepcopy(annotations[0])
    orphan["question_id"] = ids[0] * 1000 + 98
    plant(rng, annotations, [orphan])
    for reason in (DropReason.IMAGE_MISSING, DropReason.MISSING_FIELD, DropReason.ORPHAN_ANNOTATION):
        world.expect_drop(SOURCE, reason)
    world.write_json(
        SOURCE,
        QUESTIONS,
        {
            "info": _VQA_INFO,
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "license": VQA_LICENSE,
            "data_subtype": "train2014",
            "questions": questions,
        },
    )
    world.write_json(
        SOURCE,
        ANNOTATIONS,
        {
            "info": _VQA_INFO,
            "license": VQA_LICENSE,
            "data_subtype": "train2014",
            "annotations": annotations,
            "data_type": "mscoco",
        },
    )
    return len(ids) + 1


def vqa_qas(rng: random.Random, scene: Scene) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """(question, answer, question_type, answer_type, answer domain) for a VQAv2-style image."""
    shapes = scene.shapes
    qas = [
        (f"What color is the {s.kind}?", s.color, "what color is the", "other", tuple(COLORS)) for s in shapes
    ]
    qas.append(("How many shapes are there?", str(len(shapes)), "how many", "number", ("1", "2", "3", "4")))
    kind = rng.choice(SHAPES)
    present = any(s.kind == kind for s in shapes)
    qas.append((f"Is there a {kind}?", "yes" if present else "no", "is there a", "yes/no", ("yes", "no")))
    s = rng.choice(shapes)
    qas.append((f"What shape is {s.color}?", s.kind, "what", "other", SHAPES))
    for s in shapes:
        a, b = choices(rng, s.kind, SHAPES)
        qas.append((f"Which is {s.color}, the {a} or the {b}?", s.kind, "which", "other", SHAPES))
    rng.shuffle(qas)
    return qas


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    w.place_coco()
    n_img, n_q = w.n("vqav2_images"), w.n("vqav2_questions")
    images = sorted(w.train2014)
    assert len(images) == n_img
    per, rem = divmod(n_q, n_img)
    ans = w.answers10(rng)
    qtypes = ("what color is the", "is the", "how many", "what is the", "are there", "what")
    qo = w.out(src, QUESTIONS)
    ao = w.out(src, ANNOTATIONS)
    qo.w("{" + _VQA_HEAD + ', "task_type": "Open-Ended", "questions": [')
    ao.w("{" + _VQA_HEAD + ', "annotations": [')
    qsep = asep = ""
    qp = [js(q) for q in w.q_pool]

    def ann(qid: int, image_id: int, with_mca: bool = True) -> str:
        main, arr = ans[(qid * 2654435761) % len(ans)]
        mca = f'"multiple_choice_answer": "{main}", ' if with_mca else ""
        return (
            f'{{"question_type": "{qtypes[qid % len(qtypes)]}", {mca}"answers": {arr}, '
            f'"image_id": {image_id}, "answer_type": "other", "question_id": {qid}}}'
        )

    extra_imgs = set(rng.sample(range(n_img), rem))
    for idx, image_id in enumerate(images):
        k = per + (1 if idx in extra_imgs else 0)
        for j in range(k):
            qid = image_id * 1000 + j
            qo.w(f'{qsep}{{"image_id": {image_id}, "question": {qp[qid % len(qp)]}, "question_id": {qid}}}')
            ao.w(asep + ann(qid, image_id))
            qsep = asep = ", "
    # planted, all EXTRA questions on good images (or extra images)
    k10, k5 = w.few(10), w.few(5)
    victims = iter(rng.sample(images, 4 * k10 + k5))
    for image_id in islice(victims, k10):  # question without its text (and no annotation)
        qo.w(f', {{"image_id": {image_id}, "question_id": {image_id * 1000 + 900}}}')
        w.expect_drop(src, DropReason.MISSING_FIELD)
    for image_id in islice(victims, k10):  # question id as a string
        qo.w(f', {{"image_id": {image_id}, "question": "Why?", "question_id": "q{image_id}"}}')
        w.expect_drop(src, DropReason.BAD_TYPE)
    for image_id in islice(victims, k10):  # annotation of a question that does not exist
        ao.w(", " + ann(image_id * 1000 + 901, image_id))
        w.expect_drop(src, DropReason.ORPHAN_ANNOTATION)
    # annotation without multiple_choice_answer -> its question unannotated
    for image_id in islice(victims, k10):
        qid = image_id * 1000 + 902
        qo.w(f', {{"image_id": {image_id}, "question": "What is it?", "question_id": {qid}}}')
        ao.w(", " + ann(qid, image_id, with_mca=False))
        w.expect_drop(src, DropReason.MISSING_FIELD)
        w.expect_drop(src, DropReason.MISSING_ANNOTATION)
    for image_id in islice(victims, k5):  # a question listed twice
        qo.w(f', {{"image_id": {image_id}, "question": "Again?", "question_id": {image_id * 1000}}}')
        w.expect_drop(src, DropReason.DUPLICATE)
    for _ in range(k5):  # an image that is not on disk
        g = next(w.coco_ghosts)
        for j in range(3):
            qo.w(f', {{"image_id": {g}, "question": "Is it there?", "question_id": {g * 1000 + j}}}')
            ao.w(", " + ann(g * 1000 + j, g))
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    w.finish(src, {qo: "]}", ao: "]}"}, n_img)
