"""TextCaps writer: `TextCaps_0.1_train.json` (+ the TextVQA Rosetta OCR tokens file).

Demo: pictures with a rendered word under the shapes (most of them), five captions each, the word's
OCR box in the Rosetta file. Planted: a picture never written (image_missing), a caption entry
without its caption text (missing_field).

Volume: 109,765 captions on 21,953 of the 25,119 TextVQA pictures, OCR tokens per picture; extra
planted captions without text or with a string id, and missing pictures.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from datamix.paths import TEXTVQA_DIR
from datamix.schema import DropReason
from datamix.sources.textcaps import FILE, OCR_FILES
from datamix.synth.bulk import WORDS, Bulk, aspect_key, distinct, js, sentence
from datamix.synth.scene import (
    NUM_WORDS,
    SIZE,
    Shape,
    World,
    article,
    capitalize,
    draw_scene,
    things_phrase,
    tokens,
)

SOURCE = "textcaps"

_WORDS = (
    "OPEN",
    "SALE",
    "STOP",
    "CAFE",
    "EXIT",
    "HOTEL",
    "PIZZA",
    "BOOKS",
    "TAXI",
    "PARK",
    "MUSIC",
    "BAKERY",
)


def _draw_textcaps(
    rng: random.Random,
) -> tuple[Image.Image, list[Shape], str | None, tuple[float, float, float, float] | None]:
    word = rng.choice(_WORDS) if rng.random() < 0.85 else None
    band = (0, SIZE - 26, SIZE, SIZE)
    image, shapes = draw_scene(rng, SIZE, SIZE, reserved=[band] if word else ())
    box = None
    if word:
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=16)
        x = rng.randint(4, max(4, SIZE - 4 - int(draw.textlength(word, font=font))))
        y = SIZE - 22
        draw.text((x, y), word, fill=(0, 0, 0), font=font)
        left, top, right, bottom = draw.textbbox((x, y), word, font=font)
        box = (left / SIZE, top / SIZE, (right - left) / SIZE, (bottom - top) / SIZE)
    return image, shapes, word, box


def _textcaps_captions(rng: random.Random, shapes: Sequence[Shape], word: str | None) -> list[str]:
    things = things_phrase(shapes)
    s = rng.choice(shapes)
    if word:
        caps = [
            f"{things} above the word {word}.",
            f"The word {word} is written under {article(s.name)}.",
            f"A white sign that says {word} with {things} on it.",
            f"{NUM_WORDS[len(shapes)]} colorful shape{'s' if len(shapes) > 1 else ''} and the text {word}.",
            f"{article(s.name)} and the word {word} in black letters.",
        ]
    else:
        caps = [
            f"{things} on a white background.",
            f"An image showing {things}.",
            f"A plain white picture with {article(s.name)}.",
            f"{NUM_WORDS[len(shapes)]} colorful shape{'s' if len(shapes) > 1 else ''} with no text.",
            f"A simple drawing of {things}.",
        ]
    return [capitalize(c) for c in caps]


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 10, "small": 300}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    ids: list[str] = []
    while len(ids) < n + 1:
        i = f"{rng.getrandbits(64):016x}"
        if i not in ids:
            ids.append(i)
    ghost = ids[-1]
    data: list[dict[str, Any]] = []
    ocr: list[dict[str, Any]] = []
    caption_id = rng.randint(1000, 9000)
    for image_id in ids:
        image, shapes, word, box = _draw_textcaps(world.rng("scene", "textcaps", image_id))
        if image_id != ghost:
            world.save_image(f"{TEXTVQA_DIR}/{image_id}.jpg", image)
        caps = _textcaps_captions(rng, shapes, word)
        toks = [tokens(c) for c in caps]
        flickr, secret, server = (
            rng.randint(10**9, 10**10),
            f"{rng.getrandbits(40):010x}",
            rng.randint(1000, 9999),
        )
        farm = rng.randint(1, 9)
        classes = [s.kind.capitalize() for s in shapes] + (["Text"] if word else [])
        for c, t in zip(caps, toks, strict=True):
            data.append(
                {
                    "image_id": image_id,
                    "image_classes": classes,
                    "flickr_original_url": f"https://farm{farm}.staticflickr.com/{server}/{flickr}_{secret}_o.jpg",
                    "flickr_300k_url": f"https://c{farm}.staticflickr.com/{farm}/{server}/{flickr}_{secret}_z.jpg",
                    "image_width": SIZE,
                    "image_height": SIZE,
                    "set_name": "train",
                    "image_name": image_id,
                    "image_path": f"train/{image_id}.jpg",
                    "caption_id": caption_id,
                    "caption_str": c,
                    "caption_tokens": t,
                    "reference_strs": caps,
                    "reference_tokens": toks,
                }
            )
            caption_id += 1
        info = []
        if word and box:
            x, y, w, h = (round(v, 6) for v in box)
            info.append(
                {
                    "word": word,
                    "bounding_box": {
                        "top_left_x": x,
                        "top_left_y": y,
                        "width": w,
                        "height": h,
                        "rotation": 0,
                        "roll": 0,
                        "pitch": 0,
                        "yaw": 0,
                    },
                }
            )
        ocr.append({"image_id": image_id, "ocr_tokens": [word] if word else [], "ocr_info": info})
    # planted: a caption entry without its caption text
    data[rng.randrange(len(data))].pop("caption_str")
    world.expect_drop(SOURCE, DropReason.IMAGE_MISSING)
    world.expect_drop(SOURCE, DropReason.MISSING_FIELD)
    world.write_json(
        SOURCE,
        FILE,
        {"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1", "data": data},
    )
    world.write_json(
        SOURCE,
        OCR_FILES[0],
        {"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.2", "data": ocr},
    )
    return len(ids)


# --------------------------------------------------------------------------------------------
# volume profile


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_img, n_cap = w.n("textcaps_images"), w.n("textcaps_captions")
    ids = distinct(w.n("textvqa_image_files") + 3, lambda: f"{rng.getrandbits(64):016x}")
    ghosts = ids[-3:]
    ids = ids[:-3]
    sizes = ((1024, 768), (768, 1024), (1024, 1024), (1024, 683))
    for i in ids:  # train + val pictures on disk (25,119)
        iw, ih = sizes[int(i[:4], 16) % len(sizes)]
        w.images.place(f"{TEXTVQA_DIR}/{i}.jpg", aspect_key(iw, ih))
    train = ids[:n_img]
    per, rem = divmod(n_cap, n_img)
    more = set(rng.sample(range(n_img), rem))
    caption_id = 1
    o = w.out(src, FILE)
    o.w('{"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1", "data": [')
    ocr = w.out(src, OCR_FILES[0])
    ocr.w('{"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.2", "data": [')
    sep = ""

    def entries(image_id: str, k: int, iw: int, ih: int, caps: list[str], bad: str | None = None) -> None:
        nonlocal caption_id, sep
        refs = "[" + ", ".join(js(c) for c in caps) + "]"
        tok_lists = ["[" + ", ".join(js(t) for t in c.lower().rstrip(".").split()) + "]" for c in caps]
        toks = "[" + ", ".join(tok_lists) + "]"
        for j in range(k):
            cap = f'"caption_str": {js(caps[j % len(caps)])}, '
            cid = f'"caption_id": {caption_id}, '
            if bad == "missing_caption":
                cap = ""
            elif bad == "caption_id_str":
                cid = f'"caption_id": "{caption_id}", '
            o.w(
                f'{sep}{{"image_id": "{image_id}", "image_classes": ["Poster", "Text"], '
                f'"flickr_original_url": "https://farm6.staticflickr.com/{caption_id % 9000}/{image_id}_o.jpg", '
                f'"flickr_300k_url": "https://c6.staticflickr.com/6/{caption_id % 9000}/{image_id}_z.jpg", '
                f'"image_width": {iw}, "image_height": {ih}, "set_name": "train", "image_name": "{image_id}", '
                f'"image_path": "train/{image_id}.jpg", {cid}{cap}'
                f'"caption_tokens": {tok_lists[j % len(caps)]}, "reference_strs": {refs}, '
                f'"reference_tokens": {toks}}}'
            )
            sep = ", "
            caption_id += 1

    for idx, image_id in enumerate(train):
        iw, ih = sizes[int(image_id[:4], 16) % len(sizes)]
        caps = [sentence(rng, 5, 12) for _ in range(5)]
        entries(image_id, per + (1 if idx in more else 0), iw, ih, caps)
        toks = (
            [] if idx % 7 == 0 else [WORDS[(idx * 31 + k) % len(WORDS)].upper() for k in range(1 + idx % 5)]
        )
        ocr.w(
            ("" if idx == 0 else ", ") + f'{{"image_id": "{image_id}", "ocr_tokens": {json.dumps(toks)}, '
            f'"ocr_info": ['
            + ", ".join(
                f'{{"word": "{t}", "bounding_box": {{"top_left_x": 0.1, "top_left_y": 0.2, '
                f'"width": 0.3, "height": 0.05, "rotation": 0, "roll": 0, "pitch": 0, "yaw": 0}}}}'
                for t in toks
            )
            + "]}"
        )
    for image_id in rng.sample(train, w.few(10)):
        entries(image_id, 1, 1024, 768, ["An extra caption."], bad="missing_caption")
        w.expect_drop(src, DropReason.MISSING_FIELD)
    for image_id in rng.sample(train, w.few(5)):
        entries(image_id, 1, 1024, 768, ["Another caption."], bad="caption_id_str")
        w.expect_drop(src, DropReason.BAD_TYPE)
    for g in ghosts[: w.few(3)]:
        entries(g, 5, 1024, 768, [sentence(rng, 5, 12) for _ in range(5)])
        w.expect_drop(src, DropReason.IMAGE_MISSING)
    w.finish(src, {o: "]}", ocr: "]}"}, n_img)
