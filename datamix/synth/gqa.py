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


_TYPE_KEYS = ("structural", "semantic", "detailed")
_ANNOTATION_KEYS = ("answer", "question", "fullAnswer")


def _question(
    question: str,
    answer: str,
    full: str,
    group: tuple[str | None, str],
    types: tuple[str, str, str],
    steps: list[tuple[str, str]],
    semantic_str: str,
    annotations: tuple[dict[str, str], dict[str, str], dict[str, str]],
) -> dict[str, Any]:
    """One GQA question record (without its id), its keys in the release's order. `group`: (global,
    local); `steps`: the semantic program's (operation, argument), each depending on the one before;
    `annotations`: the object ids named in the answer, the question and the full answer."""
    return {
        "question": question,
        "answer": answer,
        "fullAnswer": full,
        "groups": {"global": group[0], "local": group[1]},
        "types": dict(zip(_TYPE_KEYS, types, strict=True)),
        "semantic": [
            {"operation": op, "dependencies": [k - 1] if k else [], "argument": arg}
            for k, (op, arg) in enumerate(steps)
        ],
        "semanticStr": semantic_str,
        "annotations": dict(zip(_ANNOTATION_KEYS, annotations, strict=True)),
    }


def _gqa_questions(rng: random.Random, scene: Scene) -> list[dict[str, Any]]:
    """GQA-style question records (without their ids) about a scene."""
    objs = {s: str(rng.randint(100000, 3999999)) for s in scene.shapes}
    out = []
    for s in scene.shapes:
        o = objs[s]
        out.append(
            _question(
                f"What color is the {s.kind}?",
                s.color,
                f"The {s.kind} is {s.color}.",
                (None, f"10q-{s.kind}_color"),
                ("query", "attr", "colorObj"),
                [("select", f"{s.kind} ({o})"), ("query", "color")],
                f"select: {s.kind} ({o})->query: color [0]",
                ({}, {"4": o}, {"1": o}),
            )
        )
    kind = rng.choice(SHAPES)
    present = next((s for s in scene.shapes if s.kind == kind), None)
    out.append(
        _question(
            f"Is there a {kind}?",
            "yes" if present else "no",
            f"Yes, there is a {kind}." if present else f"No, there are no {kind}s.",
            (None, f"13-{kind}"),
            ("verify", "obj", "exist"),
            [("select", f"{kind} ({objs[present]})" if present else f"{kind} (-)"), ("exist", "?")],
            f"select: {kind} ({objs[present] if present else '-'})->exist: ? [0]",
            ({}, {"3": objs[present]} if present else {}, {}),
        )
    )
    s = rng.choice(scene.shapes)
    other = rng.choice([c for c in COLORS if c != s.color])
    asked = s.color if rng.random() < 0.5 else other
    yes = asked == s.color
    out.append(
        _question(
            f"Is the {s.kind} {asked}?",
            "yes" if yes else "no",
            f"Yes, the {s.kind} is {s.color}." if yes else f"No, the {s.kind} is {s.color}.",
            (None, f"06-{s.kind}_{asked}"),
            ("verify", "attr", "verifyAttr"),
            [("select", f"{s.kind} ({objs[s]})"), (f"verify color: {asked}", asked)],
            f"select: {s.kind} ({objs[s]})->verify color: {asked} [0]",
            ({}, {"2": objs[s]}, {"2": objs[s]}),
        )
    )
    for s in scene.shapes:
        a, b = choices(rng, s.kind, SHAPES)
        out.append(
            _question(
                f"Which is {s.color}, the {a} or the {b}?",
                s.kind,
                f"The {s.kind} is {s.color}.",
                (None, f"12-{a}_{b}"),
                ("choose", "obj", "chooseObj"),
                [
                    ("select", f"shape ({objs[s]})"),
                    (f"filter color: {s.color}", s.color),
                    (f"choose name: {a}|{b}", f"{a}|{b}"),
                ],
                f"select: shape ({objs[s]})->filter color: {s.color} [0]->choose name: {a}|{b} [1]",
                ({"0": objs[s]}, {}, {"1": objs[s]}),
            )
        )
    s = rng.choice(scene.shapes)
    out.append(
        _question(
            f"Which shape is {s.color}?",
            s.kind,
            f"The {s.color} shape is a {s.kind}.",
            ("shape", f"14-{s.color}_shape"),
            ("query", "cat", "categoryAttr"),
            [("select", f"shape ({objs[s]})"), (f"filter color: {s.color}", s.color), ("query", "name")],
            f"select: shape ({objs[s]})->filter color: {s.color} [0]->query: name [1]",
            ({"0": objs[s]}, {}, {"4": objs[s]}),
        )
    )
    rng.shuffle(out)
    return out


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 20, "small": 2000}
#: Writers whose demo output this one reads (`World.vg_ids`): they run first.
DEMO_NEEDS = ("vg",)


def write_demo(world: World, n: int) -> int:
    vg_ids = world.vg_ids
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
    for name in ids:
        w.images.place(
            f"{GQA_DIR}/{name}.jpg", aspect_key(*((800, 600) if int(name.lstrip("n")) % 3 else (600, 800)))
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
    w.finish(src, {o: "}"}, n_img)
