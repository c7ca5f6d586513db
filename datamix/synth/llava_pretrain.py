"""LCS-558K writer (stage 1): `blip_laion_cc_sbu_558k.json`, one brief-caption conversation per picture.

Demo: a brief-description prompt (`<image>` leading or trailing) and a BLIP-style caption of the
drawn shapes. Planted: a picture never written (image_missing), a record without `conversations`.

Volume: 558,128 records; extra planted records (a missing picture, no conversations, a null id, a
path outside the folder, non-alternating turns).
"""

from __future__ import annotations

import random
from typing import Any

from datamix.paths import LLAVA_PRETRAIN_DIR
from datamix.schema import DropReason
from datamix.sources.llava_pretrain import FILE
from datamix.synth.bulk import Bulk, aspect_key, js, sentence
from datamix.synth.scene import Scene, World, article, join_words

SOURCE = "llava_pretrain"

_BRIEF_PROMPTS = (
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Offer a succinct explanation of the picture presented.",
    "Summarize the visual content of the image.",
    "Give a short and clear explanation of the subsequent image.",
    "Share a concise interpretation of the image provided.",
    "Present a compact description of the photo's key features.",
    "Relay a brief, clear account of the picture shown.",
    "Render a clear and concise summary of the photo.",
    "Write a terse but informative summary of the picture.",
    "Create a compact narrative representing the image presented.",
)


def _lcs_caption(rng: random.Random, scene: Scene) -> str:
    names = [s.name for s in scene.shapes]
    form = rng.randrange(3)
    if form == 0:
        return join_words([article(x) for x in names]) + " on a white background"
    if form == 1:
        return " , ".join(names) + f" - {len(names)} shape{'s' if len(names) > 1 else ''} on white"
    return "illustration of " + join_words([article(x) for x in names])


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 20, "small": 3000}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    ids = sorted(rng.sample(range(0, 6_000_000), n + 1))
    ghost = ids.pop(rng.randrange(len(ids)))
    records: list[dict[str, Any]] = []
    for num in ids:
        rid = f"{num:09d}"
        image = f"{rid[:5]}/{rid}.jpg"
        scene = world.scene("lcs", rid, f"{LLAVA_PRETRAIN_DIR}/{image}")
        prompt = rng.choice(_BRIEF_PROMPTS)
        human = f"{prompt}\n<image>" if rng.random() < 0.5 else f"<image>\n{prompt}"
        records.append(
            {
                "id": rid,
                "image": image,
                "conversations": [
                    {"from": "human", "value": human},
                    {"from": "gpt", "value": _lcs_caption(rng, scene)},
                ],
            }
        )
    gid = f"{ghost:09d}"
    bad = [
        {
            "id": gid,
            "image": f"{gid[:5]}/{gid}.jpg",
            "conversations": records[0]["conversations"],
        },  # image missing
        {"id": records[-1]["id"], "image": records[-1]["image"]},  # no conversations
    ]
    world.write_planted(SOURCE, FILE, rng, records, bad, (DropReason.IMAGE_MISSING, DropReason.MISSING_FIELD))
    return len(records)


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_rec = w.n("llava_pretrain_records")
    nums = sorted(rng.sample(range(0, 6_000_000), n_rec + 5))
    ghosts = nums[-5:]  # never on disk
    nums = nums[:-5]
    humans = [js(f"{p}\n<image>") for p in _BRIEF_PROMPTS] + [js(f"<image>\n{p}") for p in _BRIEF_PROMPTS]
    caps = [js(sentence(rng, 5, 14)[:-1].lower().replace(",", " ,")) for _ in range(5000)]
    o = w.out(src, FILE)
    o.w("[")
    n_bad = 5 * w.few(5)  # five kinds, one ghost picture per round
    bad_at = set(rng.sample(range(1, n_rec), n_bad))
    bad_iter = iter(range(n_bad))
    for k, num in enumerate(nums):
        rid = f"{num:09d}"
        w.images.place(f"{LLAVA_PRETRAIN_DIR}/{rid[:5]}/{rid}.jpg", aspect_key(336, 336))
        h = (num * 2654435761) & 0xFFFFFFFF
        conv = (
            f'[{{"from": "human", "value": {humans[h % len(humans)]}}}, '
            f'{{"from": "gpt", "value": {caps[(h >> 6) % len(caps)]}}}]'
        )
        o.w(
            ("" if k == 0 else ",\n")
            + f'{{"id": "{rid}", "image": "{rid[:5]}/{rid}.jpg", "conversations": {conv}}}'
        )
        if k in bad_at:  # EXTRA bad records
            j = next(bad_iter)
            kind = j % 5
            if kind == 0:
                g = f"{ghosts[j // 5]:09d}"
                o.w(f',\n{{"id": "{g}", "image": "{g[:5]}/{g}.jpg", "conversations": {conv}}}')
                w.expect_drop(src, DropReason.IMAGE_MISSING)
            elif kind == 1:
                o.w(f',\n{{"id": "{rid}", "image": "{rid[:5]}/{rid}.jpg"}}')
                w.expect_drop(src, DropReason.MISSING_FIELD)
            elif kind == 2:
                o.w(f',\n{{"id": "{rid}", "image": "/etc/{rid}.jpg", "conversations": {conv}}}')
                w.expect_drop(src, DropReason.BAD_VALUE)
            elif kind == 3:
                o.w(f',\n{{"id": null, "image": "{rid[:5]}/{rid}.jpg", "conversations": {conv}}}')
                w.expect_drop(src, DropReason.MISSING_FIELD)
            else:
                o.w(
                    f',\n{{"id": "{rid}", "image": "{rid[:5]}/{rid}.jpg", "conversations": '
                    f'[{{"from": "gpt", "value": "a caption"}}, {{"from": "human", "value": "<image>"}}]}}'
                )
                w.expect_drop(src, DropReason.NOT_ALTERNATING)
    w.finish(src, {o: "]"}, n_rec)
