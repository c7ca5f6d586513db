"""GQA writer: `train_balanced_questions.json`, a dict keyed by question id (ordered by id).

Demo: GQA-style questions with their semantic programs about VG-like pictures (a quarter of them are
also VG pictures, some ids are "n"-prefixed). Planted: a picture never written (image_missing), a
question without its answer (missing_field), a question whose text is a number (bad_type).

Volume: 943,000 questions on 72,140 pictures (half of them VG pictures) plus the rest of the 148,854
GQA picture files; extra planted questions (no answer, a number as text, an empty answer, a list as
imageId, missing pictures).
"""

from __future__ import annotations

import random
from typing import Any

from datamix.paths import GQA_DIR
from datamix.schema import DropReason
from datamix.sources.gqa import FILE
from datamix.synth.bulk import Bulk, aspect_key, js
from datamix.synth.scene import COLORS, SHAPES, Scene, World, choices, new_vg_ids

SOURCE = "gqa"


def _gqa_questions(rng: random.Random, scene: Scene) -> list[dict[str, Any]]:
    """GQA-style question records (without their ids) about a scene."""
    objs = {s: str(rng.randint(100000, 3999999)) for s in scene.shapes}
    out = []
    for s in scene.shapes:
        o = objs[s]
        out.append(
            {
                "question": f"What color is the {s.kind}?",
                "answer": s.color,
                "fullAnswer": f"The {s.kind} is {s.color}.",
                "groups": {"global": None, "local": f"10q-{s.kind}_color"},
                "types": {"structural": "query", "semantic": "attr", "detailed": "colorObj"},
                "semantic": [
                    {"operation": "select", "dependencies": [], "argument": f"{s.kind} ({o})"},
                    {"operation": "query", "dependencies": [0], "argument": "color"},
                ],
                "semanticStr": f"select: {s.kind} ({o})->query: color [0]",
                "annotations": {"answer": {}, "question": {"4": o}, "fullAnswer": {"1": o}},
            }
        )
    kind = rng.choice(SHAPES)
    present = next((s for s in scene.shapes if s.kind == kind), None)
    out.append(
        {
            "question": f"Is there a {kind}?",
            "answer": "yes" if present else "no",
            "fullAnswer": f"Yes, there is a {kind}." if present else f"No, there are no {kind}s.",
            "groups": {"global": None, "local": f"13-{kind}"},
            "types": {"structural": "verify", "semantic": "obj", "detailed": "exist"},
            "semantic": [
                {
                    "operation": "select",
                    "dependencies": [],
                    "argument": f"{kind} ({objs[present]})" if present else f"{kind} (-)",
                },
                {"operation": "exist", "dependencies": [0], "argument": "?"},
            ],
            "semanticStr": f"select: {kind} ({objs[present] if present else '-'})->exist: ? [0]",
            "annotations": {
                "answer": {},
                "question": {"3": objs[present]} if present else {},
                "fullAnswer": {},
            },
        }
    )
    s = rng.choice(scene.shapes)
    other = rng.choice([c for c in COLORS if c != s.color])
    asked = s.color if rng.random() < 0.5 else other
    yes = asked == s.color
    out.append(
        {
            "question": f"Is the {s.kind} {asked}?",
            "answer": "yes" if yes else "no",
            "fullAnswer": f"Yes, the {s.kind} is {s.color}." if yes else f"No, the {s.kind} is {s.color}.",
            "groups": {"global": None, "local": f"06-{s.kind}_{asked}"},
            "types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"},
            "semantic": [
                {"operation": "select", "dependencies": [], "argument": f"{s.kind} ({objs[s]})"},
                {"operation": f"verify color: {asked}", "dependencies": [0], "argument": asked},
            ],
            "semanticStr": f"select: {s.kind} ({objs[s]})->verify color: {asked} [0]",
            "annotations": {"answer": {}, "question": {"2": objs[s]}, "fullAnswer": {"2": objs[s]}},
        }
    )
    for s in scene.shapes:
        a, b = choices(rng, s.kind, SHAPES)
        out.append(
            {
                "question": f"Which is {s.color}, the {a} or the {b}?",
                "answer": s.kind,
                "fullAnswer": f"The {s.kind} is {s.color}.",
                "groups": {"global": None, "local": f"12-{a}_{b}"},
                "types": {"structural": "choose", "semantic": "obj", "detailed": "chooseObj"},
                "semantic": [
                    {"operation": "select", "dependencies": [], "argument": f"shape ({objs[s]})"},
                    {"operation": f"filter color: {s.color}", "dependencies": [0], "argument": s.color},
                    {"operation": f"choose name: {a}|{b}", "dependencies": [1], "argument": f"{a}|{b}"},
                ],
                "semanticStr": (
                    f"select: shape ({objs[s]})->filter color: {s.color} [0]->choose name: {a}|{b} [1]"
                ),
                "annotations": {"answer": {"0": objs[s]}, "question": {}, "fullAnswer": {"1": objs[s]}},
            }
        )
    s = rng.choice(scene.shapes)
    out.append(
        {
            "question": f"Which shape is {s.color}?",
            "answer": s.kind,
            "fullAnswer": f"The {s.color} shape is a {s.kind}.",
            "groups": {"global": "shape", "local": f"14-{s.color}_shape"},
            "types": {"structural": "query", "semantic": "cat", "detailed": "categoryAttr"},
            "semantic": [
                {"operation": "select", "dependencies": [], "argument": f"shape ({objs[s]})"},
                {"operation": f"filter color: {s.color}", "dependencies": [0], "argument": s.color},
                {"operation": "query", "dependencies": [1], "argument": "name"},
            ],
            "semanticStr": f"select: shape ({objs[s]})->filter color: {s.color} [0]->query: name [1]",
            "annotations": {"answer": {"0": objs[s]}, "question": {}, "fullAnswer": {"4": objs[s]}},
        }
    )
    rng.shuffle(out)
    return out


def write_demo(world: World, n: int, vg_ids: list[int]) -> int:
    rng = world.rng(SOURCE)
    shared = rng.sample(vg_ids, min(len(vg_ids), n // 4))  # GQA reuses VG pictures
    n_prefixed = max(1, n // 100)
    image_ids = [str(i) for i in shared]
    image_ids += [str(i) for i in new_vg_ids(rng, n - len(shared) - n_prefixed, exclude=set(vg_ids))]
    prefixed: list[str] = []
    while len(prefixed) < n_prefixed:  # some GQA image ids are "n"-prefixed
        name = f"n{rng.randint(100000, 999999)}"
        if name not in prefixed:
            prefixed.append(name)
    image_ids += prefixed
    ghost = f"{rng.randint(2_420_000, 2_499_999)}"  # in the questions, not on disk
    entries: list[tuple[str, dict[str, Any]]] = []
    qids = rng.sample(range(1_000_000, 99_999_999), 9 * (n + 1) + 10)
    q_iter = iter(qids)
    for image_id in [*image_ids, ghost]:
        scene = world.scene("vg", image_id, f"{GQA_DIR}/{image_id}.jpg" if image_id != ghost else None)
        recs = _gqa_questions(rng, scene)
        ids = [f"{next(q_iter):08d}" for _ in recs]
        for qid, rec in zip(ids, recs, strict=True):
            value = {
                "semantic": rec["semantic"],
                "entailed": [x for x in ids if x != qid and rng.random() < 0.2],
                "equivalent": [qid],
                "question": rec["question"],
                "imageId": image_id,
                "isBalanced": True,
                "groups": rec["groups"],
                "answer": rec["answer"],
                "semanticStr": rec["semanticStr"],
                "annotations": rec["annotations"],
                "types": rec["types"],
                "fullAnswer": rec["fullAnswer"],
            }
            entries.append((qid, value))
    # planted: a question without its answer, one whose question text is a number
    a, b = rng.sample(range(len(entries)), 2)
    entries[a][1].pop("answer")
    entries[b][1]["question"] = 17
    for reason in (DropReason.IMAGE_MISSING, DropReason.MISSING_FIELD, DropReason.BAD_TYPE):
        world.expect_drop(SOURCE, reason)
    entries.sort(key=lambda e: e[0])  # the real file is ordered by question id, not by image
    world.write_json(SOURCE, FILE, dict(entries))
    return len(image_ids) + 1


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_img, n_q, n_files = w.n("gqa_images"), w.n("gqa_questions"), w.n("gqa_image_files")
    n_prefixed = max(1, n_img // 100)
    vg_shared = rng.sample(w.vg_ids_all(), min(len(w.vg_ids_all()), n_img // 2))
    ids = [str(i) for i in vg_shared]
    taken = set(vg_shared)
    while len(ids) < n_img - n_prefixed:
        i = rng.randint(2_420_000, 2_420_000 + 40 * n_files)
        if i not in taken:
            taken.add(i)
            ids.append(str(i))
    names: set[str] = set()
    while len(names) < n_prefixed:
        names.add(f"n{rng.randint(100000, 599999)}")
    ids += sorted(names)
    rng.shuffle(ids)
    for i in ids:
        w.images.place(
            f"{GQA_DIR}/{i}.jpg", aspect_key(*((800, 600) if int(i.lstrip("n")) % 3 else (600, 800)))
        )
    for j in range(n_files - n_img):  # the rest of the 148,854 GQA pictures (not in train_balanced)
        w.images.place(f"{GQA_DIR}/{9_000_000 + j}.jpg", aspect_key(800, 600))
    objs = ("table", "chair", "man", "woman", "shirt", "car", "tree", "sky", "plate", "window", "dog", "bag")
    qpool = [
        js(f"{q} ({o})?")
        for q in (
            "Is the object on the left",
            "What is on the",
            "Which color is the",
            "Is there a",
            "Who is wearing the",
            "What is the material of the",
        )
        for o in objs
    ]
    o = w.out(src, FILE)
    o.w("{")
    tail_groups = [
        '"groups": {"global": null, "local": "06-sky_dark"}',
        '"groups": {"global": "color", "local": "10c-table_color"}',
    ]
    sep = ""

    def record(qid: str, image: str, question: str, answer: str | None, h: int) -> str:
        oid, oid2 = 1_000_000 + h % 3_000_000, 1_000_000 + (h >> 3) % 3_000_000
        obj = objs[h % len(objs)]
        ent = ", ".join(f'"{(h >> (k % 24)) * (k + 1) % 99_999_999:08d}"' for k in range(28))
        ans = "" if answer is None else f'"answer": {answer}, '
        return (
            f'"{qid}": {{"semantic": [{{"operation": "select", "dependencies": [], "argument": "{obj} ({oid})"}}, '
            f'{{"operation": "relate", "dependencies": [0], "argument": "_,on,s ({oid2})"}}, '
            f'{{"operation": "filter color", "dependencies": [1], "argument": "white"}}, '
            f'{{"operation": "query", "dependencies": [2], "argument": "name"}}], '
            f'"entailed": [{ent}], "equivalent": ["{qid}"], "question": {question}, "imageId": {image}, '
            f'"isBalanced": true, {tail_groups[h & 1]}, {ans}'
            f'"semanticStr": "select: {obj} ({oid})->relate: _,on,s ({oid2}) [0]->filter color: white [1]->query: name [2]", '
            f'"annotations": {{"answer": {{"0": "{oid2}"}}, "question": {{"4": "{oid}", "7:9": "{oid2}"}}, '
            f'"fullAnswer": {{"1": "{oid2}"}}}}, "types": {{"detailed": "relS", "semantic": "rel", "structural": "query"}}, '
            f'"fullAnswer": "The {obj} is on the white {objs[(h >> 5) % len(objs)]}, on the left of the picture."}}'
        )

    answers = [js(a) for a in w.short_answers]
    for q in range(n_q):
        h = (q * 2654435761) & 0xFFFFFFFF
        o.w(
            sep
            + record(
                f"{q * 10 + 2_000_000:08d}",
                f'"{ids[q % n_img]}"',
                qpool[h % len(qpool)],
                answers[(h >> 7) % len(answers)],
                h,
            )
        )
        sep = ", "
    # planted (EXTRA questions; ids past the real ones)
    nq, k = 99_000_000, 0
    bad = (
        (DropReason.MISSING_FIELD, 10, '"{}"', qpool[0], None),  # no answer
        (DropReason.BAD_TYPE, 10, '"{}"', "17", answers[0]),  # the question is a number
        (DropReason.BAD_VALUE, 10, '"{}"', qpool[0], '""'),  # an empty answer
        (DropReason.BAD_TYPE, 5, '["{}"]', qpool[0], answers[0]),  # imageId is a list
    )
    for reason, count, image, question, answer in bad:
        for _ in range(w.few(count)):
            o.w(", " + record(f"{nq + k}", image.format(ids[k % n_img]), question, answer, k))
            w.expect_drop(src, reason)
            k += 1
    for g in range(w.few(5)):  # an image that is not on disk, two questions
        o.w(", " + record(f"{nq + 100 + g}", f'"{9_900_000 + g}"', qpool[0], answers[0], g))
        o.w(", " + record(f"{nq + 200 + g}", f'"{9_900_000 + g}"', qpool[1], answers[1], g))
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    o.w("}")
    o.close()
    w.expected_items[src] = n_img
    w.mix_counts[src] = n_img
