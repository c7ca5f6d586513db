"""A-OKVQA writer: `aokvqa_v1p0_train.json`, an array of multiple-choice questions with rationales.

Demo: colour, shape, count and fruit questions with four choices and ten direct answers. Planted: a
picture never written (image_missing), choices as one string (bad_type).

Volume: 17,056 train questions on 16,540 pictures, and the val / test files; val and test records
inside the train file are skipped (not drops); planted choices as a string, a bad choice index, no
question id, missing pictures.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from datamix.schema import DropReason
from datamix.sources.aokvqa import FILE
from datamix.synth.bulk import Bulk, js, shortuuid
from datamix.synth.scene import (
    COLORS,
    FRUITS,
    NUM_WORDS,
    SHORTUUID,
    Scene,
    World,
    article,
    capitalize,
    things_phrase,
)

SOURCE = "aokvqa"

_DISTRACTOR_SHAPES = ("circle", "square", "triangle", "star", "heart", "hexagon")


def _aokvqa_question(rng: random.Random, scene: Scene) -> dict[str, Any]:
    s = rng.choice(scene.shapes)
    form = rng.choice(("color", "shape", "count", "fruit"))
    if form == "color":
        q, answer, domain = f"What color is the {s.kind} in the picture?", s.color, list(COLORS)
        rationales = [
            f"The {s.kind} is filled with {s.color}.",
            f"There is {article(s.name)}.",
            f"The {s.kind} looks {s.color}.",
        ]
    elif form == "shape":
        q, answer, domain = f"What shape is the {s.color} object?", s.kind, list(_DISTRACTOR_SHAPES)
        rationales = [
            f"The {s.color} object is a {s.kind}.",
            f"The only {s.color} thing is shaped like a {s.kind}.",
            f"It is {article(s.name)}.",
        ]
    elif form == "count":
        n = len(scene.shapes)
        q, answer, domain = "How many shapes can be seen in the picture?", str(n), ["1", "2", "3", "4"]
        rationales = [
            f"There are {things_phrase(scene.shapes)}.",
            f"I can count {NUM_WORDS[n]} shapes.",
            "Each shape has a different color.",
        ]
    else:
        fruit = FRUITS[s.color][1]
        q, answer, domain = (
            f"Which fruit has the same color as the {s.kind}?",
            fruit,
            [v[1] for v in FRUITS.values()],
        )
        rationales = [
            f"The {s.kind} is {s.color} like {article(fruit)}.",
            f"{capitalize(article(fruit))} is {s.color}.",
            f"Both are {s.color}.",
        ]
    choices = [answer, *rng.sample([d for d in domain if d != answer], 3)]
    rng.shuffle(choices)
    direct = [answer if rng.random() < 0.85 else rng.choice(choices) for _ in range(10)]
    return {
        "split": "train",
        "image_id": 0,
        "question_id": "".join(rng.choice(SHORTUUID) for _ in range(22)),
        "question": q,
        "choices": choices,
        "correct_choice_idx": choices.index(answer),
        "direct_answers": direct,
        "difficult_direct_answer": rng.random() < 0.05,
        "rationales": rationales,
    }


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 10, "small": 400}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    ids = world.coco_sample(rng, n)
    records: list[dict[str, Any]] = []
    for image_id, scene in world.coco_scenes(ids, ghost=3):
        for _ in range(2 if rng.random() < 0.1 else 1):
            rec = _aokvqa_question(rng, scene)
            rec["image_id"] = image_id
            records.append(rec)
    rng.shuffle(records)
    # planted: choices as one string instead of a list
    bad = copy.deepcopy(records[0])
    bad.update(
        choices=", ".join(bad["choices"]), question_id="".join(rng.choice(SHORTUUID) for _ in range(22))
    )
    world.write_planted(SOURCE, FILE, rng, records, [bad], (DropReason.IMAGE_MISSING, DropReason.BAD_TYPE))
    return len(ids) + 1


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_img, n_q = w.n("aokvqa_images"), w.n("aokvqa_questions")
    images, twice = w.coco_images(rng, n_img), w.twice(rng, n_img, n_q)
    qp = [js(q) for q in w.q_pool]
    words = w.short_answers

    def rec(
        split: str,
        image_id: int,
        *,
        choices: str | None = None,
        correct: int | None = None,
        qid: bool = True,
        answers: bool = True,
    ) -> str:
        h = rng.getrandbits(32)
        c = [words[(h >> k) % len(words)] for k in (0, 5, 10, 15)]
        if len(set(c)) < 4:
            c = [c[0], *(x for x in words if x != c[0])][:4]
        ch = choices if choices is not None else "[" + ", ".join(js(x) for x in c) + "]"
        cc = correct if correct is not None else h % 4
        qid_s = f'"question_id": "{shortuuid(rng)}", ' if qid else ""
        body = (
            f'{{"split": "{split}", "image_id": {image_id}, {qid_s}"question": {qp[h % len(qp)]}, '
            f'"choices": {ch}'
        )
        if answers:
            da = ", ".join(js(c[cc % 4 if k < 7 else (h >> k) % 4]) for k in range(10))
            body += (
                f', "correct_choice_idx": {cc}, "direct_answers": [{da}], "difficult_direct_answer": false, '
                f'"rationales": [{js(w.a_pool[h % 3000][:120])}, {js(w.a_pool[(h >> 4) % 3000][:120])}, '
                f"{js(w.a_pool[(h >> 8) % 3000][:120])}]"
            )
        return body + "}"

    recs = []
    for idx, image_id in enumerate(images):
        for _ in range(2 if idx in twice else 1):
            recs.append(rec("train", image_id))
    bad = []
    for image_id in rng.sample(images, w.few(20)):
        bad.append(rec("val", image_id))  # wrong split inside the train file: skipped, not a drop
        bad.append(rec("test", image_id, answers=False))
    for image_id in rng.sample(images, w.few(5)):
        bad.append(rec("train", image_id, choices='"a, b, c, d"'))
        w.expect_drop(src, DropReason.BAD_TYPE)
    for image_id in rng.sample(images, w.few(5)):
        bad.append(rec("train", image_id, correct=9))
        w.expect_drop(src, DropReason.BAD_VALUE)
    for image_id in rng.sample(images, w.few(5)):
        bad.append(rec("train", image_id, qid=False))
        w.expect_drop(src, DropReason.MISSING_FIELD)
    for _ in range(w.few(3)):
        bad.append(rec("train", next(w.coco_ghosts)))
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    for b in bad:
        recs.insert(rng.randint(1, len(recs)), b)
    o = w.out(src, FILE)
    o.w("[" + ", ".join(recs) + "]")
    o.close()
    for split, key in (("val", "aokvqa_val"), ("test", "aokvqa_test")):
        o = w.out(src, FILE.replace("_train", f"_{split}"))
        o.w(
            "["
            + ", ".join(rec(split, rng.choice(w.coco_pool), answers=split == "val") for _ in range(w.n(key)))
            + "]"
        )
        o.close()
    w.expected_items[src] = n_img
    w.mix_counts[src] = 4 * n_img
