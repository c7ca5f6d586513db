"""Visual Genome writer: `image_data.json` + `region_descriptions.json`.

Demo: region phrases whose boxes are the shapes' true pixel boxes (plus paraphrases, parts and
background), pictures in `VG_100K` or `VG_100K_2`, some with fewer than 10 regions. Planted: a
picture never written (image_missing), a region whose width is a string (bad_type), a region
without its phrase (missing_field).

Volume: 108,077 pictures with ~5.4 M regions (1 in 10 with fewer than 10); planted regions (a string
width, no phrase, off the picture) and pictures (no usable region, not listed, not on disk, a url in
neither folder).
"""

from __future__ import annotations

import random
from typing import Any

from datamix.paths import VG_DIRS
from datamix.schema import DropReason
from datamix.sources.vg import IMAGES, REGIONS
from datamix.synth.bulk import REAL, Bulk, aspect_key, js, sentence
from datamix.synth.scene import Scene, World, article, new_vg_ids, overlaps

SOURCE = "vg"


def _free_box(rng: random.Random, scene: Scene) -> tuple[int, int, int, int] | None:
    for _ in range(50):
        w, h = rng.randint(10, 30), rng.randint(10, 30)
        x, y = rng.randint(0, scene.width - w), rng.randint(0, scene.height - h)
        box = (x, y, x + w, y + h)
        if not any(overlaps(box, s.box, 1) for s in scene.shapes):
            return box
    return None


def _vg_regions(rng: random.Random, scene: Scene, target: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(phrase, (x1, y1, x2, y2)) pairs: the shapes' boxes first, then paraphrases, parts, background."""
    w, h = scene.width, scene.height

    def jitter(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = (v + rng.randint(-1, 1) for v in box)
        x1, y1 = max(0, x1), max(0, y1)
        return x1, y1, min(w, max(x2, x1 + 1)), min(h, max(y2, y1 + 1))

    exact = [(s.name, s.box) for s in scene.shapes]
    extra: list[tuple[str, tuple[int, int, int, int]]] = []
    for s in scene.shapes:
        x1, y1, x2, y2 = s.box
        extra += [
            (article(s.name), jitter(s.box)),
            (f"the {s.kind} is {s.color}", jitter(s.box)),
            (f"{s.name} on white background", jitter(s.box)),
            (f"top half of the {s.name}", (x1, y1, x2, (y1 + y2) // 2)),
            (f"left side of the {s.name}", (x1, y1, (x1 + x2) // 2, y2)),
        ]
    extra += [("white background", (0, 0, w, h)), ("a plain white image", (0, 0, w, h))]
    rng.shuffle(extra)
    regions = exact + extra
    while len(regions) < target:
        box = _free_box(rng, scene)
        if box is None:
            break
        regions.append((rng.choice(("empty white space", "white area", "part of the background")), box))
    regions = regions[:target]
    rng.shuffle(regions)
    return regions


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 14, "small": 500}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    ids = sorted(new_vg_ids(rng, n + 1))
    ghost = ids.pop(rng.randrange(len(ids)))
    image_data: list[dict[str, Any]] = []
    regions_out: list[dict[str, Any]] = []
    region_id = rng.randint(1000, 5000)
    for image_id in sorted([*ids, ghost]):
        folder = VG_DIRS[0] if rng.random() < 0.6 else VG_DIRS[1]
        scene = world.scene("vg", image_id, f"{folder}/{image_id}.jpg" if image_id != ghost else None)
        image_data.append(
            {
                "width": scene.width,
                "url": f"https://cs.stanford.edu/people/rak248/{folder.split('/')[1]}/{image_id}.jpg",
                "height": scene.height,
                "image_id": image_id,
                "coco_id": None,
                "flickr_id": rng.randint(10**6, 10**8) if rng.random() < 0.5 else None,
            }
        )
        target = rng.randint(10, 14) if rng.random() < 0.88 else rng.randint(4, 9)
        regions = []
        for phrase, (x1, y1, x2, y2) in _vg_regions(rng, scene, target):
            regions.append(
                {
                    "region_id": region_id,
                    "width": x2 - x1,
                    "height": y2 - y1,
                    "image_id": image_id,
                    "phrase": phrase,
                    "y": y1,
                    "x": x1,
                }
            )
            region_id += 1
        regions_out.append({"regions": regions, "id": image_id})
    # planted: a region whose width is a string, a region without its phrase
    entries = [r for img in regions_out for r in img["regions"]]
    a, b = rng.sample(range(len(entries)), 2)
    entries[a]["width"] = str(entries[a]["width"])
    entries[b].pop("phrase")
    world.expect_drop(SOURCE, DropReason.IMAGE_MISSING)  # the ghost's regions are never looked at
    if entries[a]["image_id"] != ghost:
        world.expect_drop(SOURCE, DropReason.BAD_TYPE)
    if entries[b]["image_id"] != ghost:
        world.expect_drop(SOURCE, DropReason.MISSING_FIELD)
    world.write_json(SOURCE, IMAGES, image_data)
    world.write_json(SOURCE, REGIONS, regions_out)
    world.vg_ids = ids  # GQA reuses these pictures
    return len(ids) + 1


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    ids = w.vg_ids_all()
    avg = REAL["vg_regions"] / REAL["vg_images"]
    small_every = 10  # 1 image in 10 has fewer than 10 regions
    big_hi = round((avg - 0.1 * 5) / 0.9 * 2 - 10)  # 10..big_hi averages the rest to ~50
    phrases = [
        js(p)
        for p in (
            [sentence(rng, 2, 7)[:-1].lower() for _ in range(4000)]
            + [
                "the clock is green in colour",
                "man wearing a hat",
                "white clouds in blue sky",
                "a red car parked",
            ]
        )
    ]
    n_ph = len(phrases)
    io_ = w.out(src, IMAGES)
    ro = w.out(src, REGIONS)
    io_.w("[")
    ro.w("[")
    region_id = 1
    eligible = 0
    items = 0
    n_vg100k = w.n("vg_100k")
    for idx, image_id in enumerate(ids):
        vg_dir = VG_DIRS[0] if idx < n_vg100k else VG_DIRS[1]
        folder = vg_dir.rpartition("/")[2]
        iw, ih = (800, 600) if image_id % 3 else ((600, 800) if image_id % 2 else (500, 500))
        w.images.place(f"{vg_dir}/{image_id}.jpg", aspect_key(iw, ih))
        coco = image_id * 3 % 581_929 if image_id % 2 else None
        io_.w(
            ("" if idx == 0 else ", ")
            + f'{{"width": {iw}, "url": "https://cs.stanford.edu/people/rak248/{folder}/{image_id}.jpg", '
            f'"height": {ih}, "image_id": {image_id}, "coco_id": {"null" if coco is None else coco}, '
            f'"flickr_id": {image_id * 7 + 11}}}'
        )
        hh = (image_id * 2654435761) & 0xFFFFFFFF
        n_reg = 1 + hh % 9 if idx % small_every == 0 else 10 + hh % (big_hi - 9)
        parts = []
        for k in range(n_reg):
            g = (hh + k * 40503) * 2246822519 & 0xFFFFFFFF
            x, y = g % (iw - 20), (g >> 11) % (ih - 20)
            rw, rh = 1 + (g >> 3) % (iw - x - 1), 1 + (g >> 13) % (ih - y - 1)
            parts.append(
                f'{{"region_id": {region_id}, "width": {rw}, "height": {rh}, "image_id": {image_id}, '
                f'"phrase": {phrases[g % n_ph]}, "y": {y}, "x": {x}}}'
            )
            region_id += 1
        # planted bad regions: EXTRA regions, so an image's usable count is unchanged
        if idx % 5000 == 17:
            parts.append(
                f'{{"region_id": {region_id}, "width": "12", "height": 5, "image_id": {image_id}, "phrase": "a string width", "y": 1, "x": 1}}'
            )
            w.expect_drop(src, DropReason.BAD_TYPE)
        elif idx % 5000 == 18:
            parts.append(
                f'{{"region_id": {region_id}, "width": 12, "height": 5, "image_id": {image_id}, "y": 1, "x": 1}}'
            )
            w.expect_drop(src, DropReason.MISSING_FIELD)
        elif idx % 5000 == 19:
            parts.append(
                f'{{"region_id": {region_id}, "width": 12, "height": 5, "image_id": {image_id}, "phrase": "off the picture", "y": 1, "x": {iw + 5}}}'
            )
            w.expect_drop(src, DropReason.BAD_BOX)
        region_id += 1
        ro.w(("" if idx == 0 else ", ") + f'{{"regions": [{", ".join(parts)}], "id": {image_id}}}')
        items += 1
        eligible += n_reg >= 10
    # planted bad images (EXTRA images)
    extra = iter(range(2_500_000, 2_600_000))
    for _ in range(w.few(3)):  # every region unusable -> no_regions
        i = next(extra)
        w.images.place(f"{VG_DIRS[1]}/{i}.jpg", aspect_key(800, 600))
        io_.w(
            f', {{"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/{i}.jpg", "height": 600, "image_id": {i}, "coco_id": null, "flickr_id": null}}'
        )
        ro.w(
            f', {{"regions": [{{"region_id": {region_id}, "width": 0, "height": 5, "image_id": {i}, "phrase": "nothing", "y": 1, "x": 1}}, '
            f'{{"region_id": {region_id + 1}, "width": 5, "height": 5, "image_id": {i}, "phrase": "   ", "y": 1, "x": 1}}], "id": {i}}}'
        )
        region_id += 2
        w.expect_drop(src, DropReason.BAD_BOX)
        w.expect_drop(src, DropReason.BAD_VALUE)
        w.expect_drop(src, DropReason.NO_REGIONS)
    for _ in range(w.few(3)):  # regions of an image that image_data.json does not list
        i = next(extra)
        ro.w(
            f', {{"regions": [{{"region_id": {region_id}, "width": 5, "height": 5, "image_id": {i}, "phrase": "lost", "y": 1, "x": 1}}], "id": {i}}}'
        )
        region_id += 1
        w.expect_drop(src, DropReason.MISSING_ANNOTATION)

    def extra_image(folder: str, phrase: str) -> None:
        """An image_data record of the next extra id under `folder`, with one region."""
        nonlocal region_id
        i = next(extra)
        io_.w(
            f', {{"width": 800, "url": "{folder}/{i}.jpg", "height": 600, "image_id": {i}, "coco_id": null, "flickr_id": null}}'
        )
        ro.w(
            f', {{"regions": [{{"region_id": {region_id}, "width": 5, "height": 5, "image_id": {i}, "phrase": "{phrase}", "y": 1, "x": 1}}], "id": {i}}}'
        )
        region_id += 1

    for _ in range(w.few(3)):  # listed, but the picture is not on disk
        extra_image("https://cs.stanford.edu/people/rak248/VG_100K", "ghost")
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    # an image_data record with a url in neither folder -> its regions are unlisted too
    for _ in range(w.few(3)):
        extra_image("https://example.org/elsewhere", "elsewhere")
        w.expect_drop(src, DropReason.BAD_VALUE)
        w.expect_drop(src, DropReason.MISSING_ANNOTATION)
    io_.w("]")
    ro.w("]")
    io_.close()
    ro.close()
    w.notes[src] = f"{region_id - 1:,} region ids, {eligible:,} images with >= 10 regions"
    w.expected_items[src] = items
    w.mix_counts[src] = w.sc(86_417)
