"""LLaVA-Instruct-150K writer: `llava_instruct_150k.json`, GPT-4-style conversations about COCO pictures.

Demo: per picture a conversation (2-4 turns), sometimes a detailed description and a reasoning
question, all derived from the drawn scene; `<image>` leading or trailing the first turn. Planted: a
record whose picture is never written (image_missing), one without `conversations` (missing_field).

Volume: 157,712 records over 81,479 COCO pictures (ids repeat) with filler turns in the three task
shapes; extra planted records: a missing picture, missing or mistyped fields, non-alternating turns,
a layout path instead of a file name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from datamix.paths import coco_image
from datamix.schema import DropReason
from datamix.sources.llava_instruct import FILE
from datamix.synth.bulk import Bulk, js
from datamix.synth.scene import (
    NUM_WORDS,
    SHAPES,
    Scene,
    World,
    article,
    join_words,
    things_phrase,
    where_phrase,
)

SOURCE = "llava_instruct"

_DETAIL_PROMPTS = (
    "Describe the following image.",
    "What do you see happening in this image?",
    "Can you elaborate on the elements of the picture provided?",
    "Write a detailed description of the given image.",
    "Explain the visual content of the image in great detail.",
)


def _instruct_conversation(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    shapes, w, h = scene.shapes, scene.width, scene.height
    n = len(shapes)
    pool = [
        (f"What color is the {s.kind} in the image?", f"The {s.kind} in the image is {s.color}.")
        for s in shapes
    ]
    pool.append(
        (
            "How many shapes are in the image?",
            f"There {'is' if n == 1 else 'are'} {NUM_WORDS[n]} shape{'s' if n > 1 else ''} "
            f"in the image: {things_phrase(shapes)}.",
        )
    )
    s = rng.choice(shapes)
    pool.append((f"Where is the {s.name} located?", f"The {s.name} is {where_phrase(s, w, h)} of the image."))
    kind = rng.choice(SHAPES)
    present = next((x for x in shapes if x.kind == kind), None)
    pool.append(
        (
            f"Is there a {kind} in the image?",
            f"Yes, there is {article(present.name)} in the image."
            if present
            else f"No, there is no {kind} in the image. It shows {things_phrase(shapes)}.",
        )
    )
    pool.append(("What is the color of the background?", "The background of the image is plain white."))
    rng.shuffle(pool)
    return pool[: rng.randint(2, min(4, len(pool)))]


def _instruct_detail(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    shapes = scene.shapes
    parts = [f"The image shows {things_phrase(shapes)} on a plain white background."]
    for s in shapes:
        parts.append(
            f"The {s.name} is {where_phrase(s, scene.width, scene.height)} and is about {s.side} pixels wide."
        )
    if len(shapes) > 1:
        parts.append("The shapes do not overlap or touch each other.")
    return [(rng.choice(_DETAIL_PROMPTS), " ".join(parts))]


def _instruct_complex(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    shapes = scene.shapes
    options = []
    by_side = sorted(shapes, key=lambda s: -s.side)
    if len(shapes) > 1 and by_side[0].side > by_side[1].side:
        big = by_side[0]
        options.append(
            (
                "Which shape in the image is the largest, and what color is it?",
                f"The largest shape is the {big.kind}, and it is {big.color}. It is about {big.side} pixels wide, "
                f"while the {by_side[1].name} is about {by_side[1].side} pixels wide.",
            )
        )
    circle = next((s for s in shapes if s.kind == "circle"), None)
    others = [s for s in shapes if s.kind != "circle"]
    if circle is not None:
        why = (
            f"; the {join_words([s.name for s in others])} {'has' if len(others) == 1 else 'have'} straight edges"
            if others
            else ""
        )
        answer = (
            f"I would pick the {circle.name}, because a circle is the only round shape in the image{why}."
        )
    else:
        answer = f"There is no round object in the image: {things_phrase(shapes)} only {'has' if len(shapes) == 1 else 'have'} straight edges."
    options.append(
        ("If you had to pick the round object in this image, which one would it be and why?", answer)
    )
    return [rng.choice(options)]


def _llava_record(
    rid: str, image: str | None, qas: list[tuple[str, str]], rng: random.Random
) -> dict[str, Any]:
    turns = []
    for i, (q, a) in enumerate(qas):
        if i == 0:
            q = f"{q}\n<image>" if rng.random() < 0.5 else f"<image>\n{q}"
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    rec: dict[str, Any] = {"id": rid}
    if image is not None:
        rec["image"] = image
    rec["conversations"] = turns
    return rec


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 12, "small": 400}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    ids = world.coco_sample(rng, n)
    tasks: list[tuple[Callable[[random.Random, Scene], list[tuple[str, str]]], float]] = [
        (_instruct_conversation, 1.0),  # conversation_58k, detail_23k, complex_reasoning_77k, concatenated
        (_instruct_detail, 0.5),
        (_instruct_complex, 0.7),
    ]
    records: list[dict[str, Any]] = []
    for make, p in tasks:
        for image_id in ids:
            if make is _instruct_conversation or rng.random() < p:
                scene = world.scene("coco", image_id, coco_image(image_id))
                records.append(
                    _llava_record(f"{image_id:012d}", f"{image_id:012d}.jpg", make(rng, scene), rng)
                )
    ghost = world.coco_ghosts[0]
    ok = ids[0]
    bad = [
        _llava_record(
            f"{ghost:012d}", f"{ghost:012d}.jpg", [("What is in the image?", "A red circle.")], rng
        ),
        {"id": f"{ok:012d}", "image": f"{ok:012d}.jpg"},  # no conversations
    ]
    world.write_planted(SOURCE, FILE, rng, records, bad, (DropReason.IMAGE_MISSING, DropReason.MISSING_FIELD))
    return len(records)


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_rec, n_img = w.n("llava_instruct_records"), w.n("llava_instruct_images")
    images = w.coco_images(rng, n_img)
    qf = [js("<image>\n" + q) for q in w.q_pool]
    qb = [js(q + "\n<image>") for q in w.q_pool]
    qp = [js(q) for q in w.q_pool]
    ap = [js(a) for a in w.a_pool]
    lp = [js(a) for a in w.long_pool]
    o = w.out(src, FILE)
    o.w("[")

    def turns_json(r: random.Random) -> str:
        kind = r.random()
        first = (qf if r.random() < 0.5 else qb)[r.randrange(len(qf))]
        if kind < 0.37:  # conversation_58k: several turns
            k = r.randint(2, 5)
            parts = [
                f'{{"from": "human", "value": {first}}}',
                f'{{"from": "gpt", "value": {ap[r.randrange(len(ap))]}}}',
            ]
            for _ in range(k - 1):
                parts.append(f'{{"from": "human", "value": {qp[r.randrange(len(qp))]}}}')
                parts.append(f'{{"from": "gpt", "value": {ap[r.randrange(len(ap))]}}}')
            return ", ".join(parts)
        pool = lp if kind < 0.52 else ap  # detail_23k / complex_reasoning_77k
        return f'{{"from": "human", "value": {first}}}, {{"from": "gpt", "value": {pool[r.randrange(len(pool))]}}}'

    bad: list[str] = []
    for _ in range(w.few(10)):  # image not on disk
        g = next(w.coco_ghosts)
        bad.append(f'{{"id": "{g:012d}", "image": "{g:012d}.jpg", "conversations": [{turns_json(rng)}]}}')
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    # (about 1 in `per` records, the drop, the record for a picture id i); in this order
    kinds: list[tuple[int, DropReason, Callable[[int], str]]] = [
        (10, DropReason.MISSING_FIELD, lambda i: f'{{"id": "{i:012d}", "image": "{i:012d}.jpg"}}'),
        (
            10,
            DropReason.BAD_TYPE,
            lambda i: f'{{"id": "{i:012d}", "image": "{i:012d}.jpg", "conversations": "What is this?"}}',
        ),
        (
            5,
            DropReason.NOT_ALTERNATING,
            lambda i: (
                f'{{"id": "{i:012d}", "image": "{i:012d}.jpg", "conversations": [{{"from": "gpt", '
                f'"value": "Hi"}}, {{"from": "human", "value": "<image>\\nWhat?"}}]}}'
            ),
        ),
        (
            5,
            DropReason.BAD_TYPE,
            lambda i: f'{{"id": [{i}], "image": "{i:012d}.jpg", "conversations": [{turns_json(rng)}]}}',
        ),
        (
            5,
            DropReason.BAD_VALUE,
            lambda i: (
                f'{{"id": "{i:012d}", "image": "{coco_image(i)}", "conversations": [{turns_json(rng)}]}}'
            ),
        ),
    ]
    for per, reason, record in kinds:
        for _ in range(w.few(per)):
            bad.append(record(rng.choice(images)))  # the picture first, then any turns
            w.expect_drop(src, reason)
    bad_at = {p: b for p, b in zip(sorted(rng.sample(range(1, n_rec), len(bad))), bad, strict=True)}
    first = True
    for k in range(n_rec):
        if k in bad_at:
            o.w(",\n" + bad_at[k])
        i = images[k % n_img]  # 157,712 records over 81,479 images: ids repeat
        o.w(
            ("" if first else ",\n")
            + f'{{"id": "{i:012d}", "image": "{i:012d}.jpg", "conversations": [{turns_json(rng)}]}}'
        )
        first = False
    w.finish(src, {o: "]"}, n_rec)
