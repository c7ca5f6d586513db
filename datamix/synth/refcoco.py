"""RefCOCO / RefCOCO+ / RefCOCOg writer: per sub-dataset `instances.json` + a protocol-2 refs pickle.

Demo: referring expressions for each drawn shape (short with location words, no location words,
long), the shapes' polygons and boxes as COCO annotations; unc and umd splits. Planted: a picture
never written (image_missing), a ref whose annotation is not in `instances.json`.

Volume: 24,407 train pictures with 3-24 (ref, sentence) pairs each over the three datasets, plus
eval splits; planted refs without annotation, zero-width and 3-number boxes, empty sentences, a
missing split, missing pictures.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
from typing import Any

from datamix.fileio import atomic_path
from datamix.paths import coco_image
from datamix.schema import DropReason
from datamix.sources.refcoco import DATASETS
from datamix.synth.bulk import WORDS, Bulk
from datamix.synth.scene import (
    SHAPES,
    Scene,
    Shape,
    World,
    article,
    capitalize,
    plant,
    things_phrase,
    where_phrase,
)

SOURCE = "refcoco"

_REF_CATEGORIES = [{"supercategory": "shape", "id": i + 1, "name": k} for i, k in enumerate(SHAPES)]
_COCO_INFO = {
    "description": "This is stable 1.0 version of the 2014 MS COCO dataset.",
    "url": "http://mscoco.org",
    "version": "1.0",
    "year": 2014,
    "contributor": "Microsoft COCO group",
    "date_created": "2015-01-27 09:11:52.357475",
}
_COCO_LICENSES = [
    {
        "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
        "id": 1,
        "name": "Attribution-NonCommercial-ShareAlike License",
    }
]


def _polygon(shape: Shape) -> list[float]:
    x1, y1, x2, y2 = shape.box
    pts: list[tuple[float, float]]
    if shape.kind == "square":
        pts = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    elif shape.kind == "triangle":
        pts = [(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)]
    else:
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
        pts = [
            (cx + r * math.cos(2 * math.pi * k / 16), cy + r * math.sin(2 * math.pi * k / 16))
            for k in range(16)
        ]
    return [round(float(v), 2) for p in pts for v in p]


def _area(poly: list[float]) -> float:
    xs, ys = poly[0::2], poly[1::2]
    n = len(xs)
    return round(abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2, 2)


def _ref_sentences(rng: random.Random, dataset: str, scene: Scene, s: Shape) -> list[str]:
    others = [x for x in scene.shapes if x is not s]
    if dataset == "refcoco":  # short, location words allowed
        options = [s.name, f"{s.kind}", f"the {s.color} one"]
        if others:
            if all(s.center[0] < o.center[0] for o in others):
                options.append(f"left {s.kind}")
            if all(s.center[0] > o.center[0] for o in others):
                options.append(f"right {s.color} shape")
            if all(s.center[1] < o.center[1] for o in others):
                options.append(f"top {s.kind}")
    elif dataset == "refcoco+":  # no location words
        options = [s.name, f"{s.color} {s.kind} shape", f"the {s.kind} that is {s.color}"]
    else:  # refcocog: longer descriptions
        options = [
            f"{article(s.name)} on a white background",
            f"the {s.name} {where_phrase(s, scene.width, scene.height)} of the picture",
            f"{article(s.color)} colored {s.kind} next to {things_phrase(others)}"
            if others
            else f"a single {s.name} in an empty picture",
        ]
    return rng.sample(options, rng.randint(1, min(3, len(options))))


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 10, "small": 400}


def write_demo(world: World, n: int) -> int:
    pool, ghosts = world.coco_pool, world.coco_ghosts
    rng = world.rng(SOURCE)
    unc = sorted(rng.sample(pool, n))
    umd = sorted(set(rng.sample(unc, n // 2)) | set(rng.sample(pool, n - n // 2)))
    ghost = ghosts[4]
    ann_ids: dict[tuple[int, int], int] = {}
    next_ann = [rng.randint(100_000, 900_000)]

    def ann_id(image_id: int, k: int) -> int:
        if (image_id, k) not in ann_ids:
            ann_ids[(image_id, k)] = next_ann[0]
            next_ann[0] += rng.randint(1, 50)
        return ann_ids[(image_id, k)]

    images_of = {"refcoco": unc, "refcoco+": unc, "refcocog": [*umd, ghost]}
    datasets = [(dataset, refs_name, images_of[dataset]) for dataset, refs_name in DATASETS]
    unc_splits = {i: ("train" if rng.random() < 0.8 else rng.choice(("val", "testA", "testB"))) for i in unc}
    umd_splits = {i: ("train" if rng.random() < 0.8 else rng.choice(("val", "test"))) for i in umd}
    umd_splits[ghost] = "train"
    for dataset, refs_name, image_ids in datasets:
        splits = umd_splits if dataset == "refcocog" else unc_splits
        images, annotations, refs = [], [], []
        ref_id = rng.randint(1, 20_000)
        sent_id = rng.randint(1, 50_000)
        for image_id in image_ids:
            scene = world.scene("coco", image_id, coco_image(image_id) if image_id != ghost else None)
            month, day = rng.randint(1, 12), rng.randint(1, 28)
            images.append(
                {
                    "license": 1,
                    "file_name": f"COCO_train2014_{image_id:012d}.jpg",
                    "coco_url": f"http://mscoco.org/images/{image_id}",
                    "height": scene.height,
                    "width": scene.width,
                    "date_captured": f"2013-{month:02d}-{day:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
                    "flickr_url": f"http://farm{rng.randint(1, 9)}.staticflickr.com/{rng.randint(1000, 9999)}/{rng.randint(10**9, 10**10)}_{rng.getrandbits(40):010x}_z.jpg",
                    "id": image_id,
                }
            )
            for k, s in enumerate(scene.shapes):
                x1, y1, x2, y2 = s.box
                poly = _polygon(s)
                aid = ann_id(image_id, k)
                annotations.append(
                    {
                        "segmentation": [poly],
                        "area": _area(poly),
                        "iscrowd": 0,
                        "image_id": image_id,
                        "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                        "category_id": SHAPES.index(s.kind) + 1,
                        "id": aid,
                    }
                )
                sentences = []
                for text in _ref_sentences(rng, dataset, scene, s):
                    raw = capitalize(text) + "." if rng.random() < 0.3 else text
                    sentences.append({"tokens": text.split(), "raw": raw, "sent_id": sent_id, "sent": text})
                    sent_id += 1
                refs.append(
                    {
                        "sent_ids": [x["sent_id"] for x in sentences],
                        "file_name": f"COCO_train2014_{image_id:012d}_{k + 1}.jpg",
                        "ann_id": aid,
                        "ref_id": ref_id,
                        "image_id": image_id,
                        "split": splits[image_id],
                        "sentences": sentences,
                        "category_id": SHAPES.index(s.kind) + 1,
                    }
                )
                ref_id += 1
        if dataset == "refcoco":  # planted: a ref whose annotation is not in instances.json
            train_refs = [r for r in refs if r["split"] == "train"] or refs
            bad = copy.deepcopy(train_refs[0])
            bad.update(ann_id=next_ann[0] + 10_000_000, ref_id=ref_id)
            plant(rng, refs, [bad])
            world.expect_drop(SOURCE, DropReason.MISSING_ANNOTATION)
        world.write_json(
            SOURCE,
            f"{dataset}/instances.json",
            {
                "info": _COCO_INFO,
                "images": images,
                "licenses": _COCO_LICENSES,
                "annotations": annotations,
                "categories": _REF_CATEGORIES,
            },
        )
        world.write_pickle(SOURCE, f"{dataset}/{refs_name}", refs)
    world.expect_drop(SOURCE, DropReason.IMAGE_MISSING)
    return len(set(unc) | set(umd)) + 1


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    w.place_coco()
    n_img = w.n("refcoco_images")
    n_unc, n_umd = w.n("refcoco_unc_images"), w.n("refcocog_images")
    pool = list(w.train2014)
    rng.shuffle(pool)
    U = pool[:n_img]
    unc_imgs = set(U[:n_unc])
    umd_imgs = set(U[n_img - n_umd :]) if n_umd <= n_img else set(U)
    rest = iter(pool[n_img:])
    unc_eval = [next(rest) for _ in range(w.n("refcoco_unc_eval_images"))]
    umd_eval = [next(rest) for _ in range(w.n("refcocog_eval_images"))]
    datasets: dict[str, list[dict[str, Any]]] = {"refcoco": [], "refcoco+": [], "refcocog": []}  # refs
    used_anns: dict[str, set[int]] = {d: set() for d in datasets}
    ds_images: dict[str, set[int]] = {"refcoco": set(), "refcoco+": set(), "refcocog": set()}
    ref_ids = {d: rng.randint(1, 20_000) for d in datasets}
    sent_ids = {d: rng.randint(1, 50_000) for d in datasets}
    cats = ("person", "car", "chair", "dog", "cup", "bottle", "umbrella", "horse", "bowl", "couch")
    adjs = ("left", "right", "middle", "front", "back", "top", "bottom", "far left", "far right", "closest")

    def make_ref(ds: str, image_id: int, k: int, n_sent: int, split: str, ann_id: int | None = None) -> dict:
        sents = []
        for _ in range(n_sent):
            g = rng.getrandbits(24)
            text = f"{adjs[g % len(adjs)]} {cats[(image_id + k) % len(cats)]}" + (
                f" {WORDS[(g >> 5) % len(WORDS)]}" if g & 16 else ""
            )
            raw = text.capitalize() + "." if g & 32 else text
            sents.append({"tokens": text.split(), "raw": raw, "sent_id": sent_ids[ds], "sent": text})
            sent_ids[ds] += 1
        ref: dict[str, Any] = {
            "sent_ids": [s["sent_id"] for s in sents],
            "file_name": f"COCO_train2014_{image_id:012d}_{k + 1}.jpg",
            "ann_id": image_id * 100 + k if ann_id is None else ann_id,
            "ref_id": ref_ids[ds],
            "image_id": image_id,
            "split": split,
            "sentences": sents,
            "category_id": 1 + (image_id + k) % len(cats),
        }
        ref_ids[ds] += 1
        datasets[ds].append(ref)
        used_anns[ds].add(ref["ann_id"])
        ds_images[ds].add(image_id)
        return ref

    total_pairs = chunks = 0
    for i, image_id in enumerate(U):
        bucket = i % 20
        h = (image_id * 2654435761) & 0xFFFFFFFF
        target = 3 + h % 6 if bucket == 0 else (19 + h % 6 if bucket in (1, 2) else 10 + h % 3)
        dss = [
            d
            for d, ok in (
                ("refcoco", image_id in unc_imgs),
                ("refcoco+", image_id in unc_imgs),
                ("refcocog", image_id in umd_imgs),
            )
            if ok
        ]
        n_obj = 3 + h % 6
        r = 0
        left = target
        while left > 0:
            k_sent = min(left, 1 + (h >> (r % 20)) % 3)
            make_ref(dss[r % len(dss)], image_id, r % n_obj, k_sent, "train")
            left -= k_sent
            r += 1
        total_pairs += target
        chunks += -(-target // 9)
    for ds_list, eval_imgs, splits in (
        (("refcoco", "refcoco+"), unc_eval, ("val", "testA", "testB")),
        (("refcocog",), umd_eval, ("val", "test")),
    ):
        for j, image_id in enumerate(eval_imgs):
            for ds in ds_list:
                for k in range(2):
                    make_ref(ds, image_id, k, 2, splits[j % len(splits)])
    # planted (EXTRA refs / sentences / images; train split)
    k10 = w.few(10)
    some = rng.sample([u for u in U if u in unc_imgs], 2 * k10)
    for image_id in some[:k10]:
        make_ref("refcoco", image_id, 0, 2, "train", ann_id=900_000_000 + image_id)  # ann not in instances
        w.expect_drop(src, DropReason.MISSING_ANNOTATION)
    bad_box_anns = []
    for image_id in some[k10:]:
        ref = make_ref("refcoco+", image_id, 95, 1, "train")  # its annotation gets a zero-width box
        bad_box_anns.append((image_id, ref["ann_id"]))
        w.expect_drop(src, DropReason.BAD_BOX)
    for ref in rng.sample(
        [
            r
            for r in datasets["refcoco"]
            if r["split"] == "train" and r["ann_id"] < 900_000_000 and r["image_id"] not in set(some[k10:])
        ],
        k10,
    ):
        ref["sentences"].append({"tokens": [], "raw": "", "sent_id": sent_ids["refcoco"], "sent": ""})
        sent_ids["refcoco"] += 1
        w.expect_drop(src, DropReason.BAD_VALUE)
    for _ in range(w.few(2)):  # an image in instances.json whose picture is not on disk
        g = next(w.coco_ghosts)
        make_ref("refcocog", g, 0, 3, "train")
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    nosplit = make_ref("refcoco", some[0], 1, 1, "train")
    del nosplit["split"]
    w.expect_drop(src, DropReason.MISSING_FIELD)

    for ds, refs_name in DATASETS:
        with atomic_path(w.raw / src / ds / refs_name) as tmp:
            tmp.write_bytes(pickle.dumps(datasets[ds], protocol=2))
        o = w.out(src, f"{ds}/instances.json")
        o.w(f'{{"info": {json.dumps(_COCO_INFO)}, "images": [')
        imgs = sorted(ds_images[ds])
        o.w(
            ", ".join(
                f'{{"license": 1, "file_name": "COCO_train2014_{i:012d}.jpg", "coco_url": "http://mscoco.org/images/{i}", '
                f'"height": {w.coco_size(i)[1]}, "width": {w.coco_size(i)[0]}, "date_captured": "2013-11-14 16:28:13", '
                f'"flickr_url": "http://farm4.staticflickr.com/{i % 9000}/{i}_z.jpg", "id": {i}}}'
                for i in imgs
            )
        )
        o.w(f'], "licenses": {json.dumps(_COCO_LICENSES)}, "annotations": [')
        bad_ids = {a for _, a in bad_box_anns}
        by_image: dict[int, set[int]] = {}
        for a in used_anns[ds]:
            if a < 900_000_000:
                by_image.setdefault(a // 100, set()).add(a % 100)
        sep = ""
        for i in imgs:
            W, H = w.coco_size(i)
            for k in sorted(by_image.get(i, set()) | {99}):
                g = ((i * 100 + k) * 2654435761) & 0xFFFFFFFF
                x, y = float(g % (W - 40)), float((g >> 10) % (H - 40))
                bw = 0.0 if i * 100 + k in bad_ids else float(10 + (g >> 4) % (W - x - 10))
                hgt = float(10 + (g >> 14) % (H - y - 10))
                seg = [x, y, x + bw, y, x + bw, y + hgt, x, y + hgt]
                o.w(
                    f'{sep}{{"segmentation": [{json.dumps(seg)[1:-1].join("[]")}], "area": {bw * hgt}, "iscrowd": 0, '
                    f'"image_id": {i}, "bbox": [{x}, {y}, {bw}, {hgt}], "category_id": {1 + (i + k) % len(cats)}, '
                    f'"id": {i * 100 + k}}}'
                )
                sep = ", "
        if ds == "refcoco":  # an annotation with a 3-number bbox (nobody refers to it)
            i = imgs[0]
            o.w(
                f', {{"segmentation": [], "area": 1.0, "iscrowd": 0, "image_id": {i}, "bbox": [1.0, 2.0, 3.0], '
                f'"category_id": 1, "id": {i * 100 + 98}}}'
            )
            w.expect_drop(src, DropReason.BAD_BOX)
        o.w(
            '], "categories": ['
            + ", ".join(
                f'{{"supercategory": "thing", "id": {j + 1}, "name": "{c}"}}' for j, c in enumerate(cats)
            )
            + "]}"
        )
        o.close()
    w.notes[src] = f"{total_pairs:,} train pairs on {n_img:,} images -> {chunks:,} chunks of <= 9"
    w.expected_items[src] = n_img
    w.mix_counts[src] = w.sc(48_447)
