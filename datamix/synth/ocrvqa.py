"""OCR-VQA writer: `dataset.json`, a dict keyed by book id (ISBN-10 with leading zeros dropped, or ASIN).

Demo: book covers that show their rendered title and author; five QAs per book; splits 1/2/3.
Quirks: covers saved as GIF or PNG bytes under a `.jpg` name (kept). Planted: a truncated cover
(image_undecodable), a missing cover (image_missing), answers as one string (bad_type).

Volume: 207,572 books (166,041 train), covers hard-linked to a few tiny files; planted covers
missing, truncated, empty, GIF / PNG bytes (kept), answers as a string or fewer answers than
questions.
"""

from __future__ import annotations

import io
import random
from functools import partial
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from datamix.paths import OCRVQA_DIR
from datamix.schema import DropReason
from datamix.sources.ocrvqa import FILE
from datamix.synth.bulk import WORDS, Bulk, distinct, js, sentence, shortuuid
from datamix.synth.scene import ALNUM, COLORS, JPEG_QUALITY, SIZE, World, article

SOURCE = "ocrvqa"

_GENRES = {  # genre -> adjective of the "Is this a X book?" questions
    "Arts & Photography": "art related",
    "Biographies & Memoirs": "biographical",
    "Business & Money": "financial",
    "Calendars": "calendar",
    "Children's Books": "kids",
    "Cookbooks, Food & Wine": "recipe",
    "History": "historical",
    "Humor & Entertainment": "comedy",
    "Law": "judicial",
    "Literature & Fiction": "literary",
    "Mystery, Thriller & Suspense": "mystery",
    "Romance": "romantic",
    "Science & Math": "scientific",
    "Science Fiction & Fantasy": "sci-fi",
    "Sports & Outdoors": "sports related",
    "Travel": "journey related",
}
_TITLE_ADJ = (
    "Silent",
    "Hidden",
    "Little",
    "Golden",
    "Secret",
    "Lost",
    "Great",
    "Simple",
    "Wild",
    "Quiet",
    "Bright",
    "Last",
)
_TITLE_NOUN = (
    "Garden",
    "River",
    "Kitchen",
    "Mountain",
    "Journey",
    "House",
    "Island",
    "Forest",
    "City",
    "Ocean",
    "Road",
    "Winter",
)
_FIRST = (
    "Anna",
    "James",
    "Maria",
    "David",
    "Laura",
    "Peter",
    "Emma",
    "John",
    "Sofia",
    "Michael",
    "Clara",
    "Thomas",
)
_LAST = (
    "Smith",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Wilson",
    "Moore",
    "Taylor",
    "Clark",
    "Lewis",
    "Walker",
    "Young",
)
_COVER_BG = ((250, 245, 230), (230, 240, 250), (240, 250, 235), (250, 235, 240))


def _isbn10(rng: random.Random) -> str:
    digits = [rng.randint(0, 9) for _ in range(9)]
    if rng.random() < 0.3:
        digits[0] = 0  # leading zeros are dropped from dataset.json keys (docs/sources.md#p3)
    check = sum((10 - i) * d for i, d in enumerate(digits)) % 11
    check = (11 - check) % 11
    text = "".join(map(str, digits)) + ("X" if check == 10 else str(check))
    return text.lstrip("0")


def _title(rng: random.Random) -> str:
    form = rng.randrange(4)
    a, n1, n2 = rng.choice(_TITLE_ADJ), rng.choice(_TITLE_NOUN), rng.choice(_TITLE_NOUN)
    if form == 0:
        return f"The {a} {n1}"
    if form == 1:
        return f"{n1} of the {a} {n2}"
    if form == 2:
        return f"A {a} {n1}"
    return f"The {n1} Book"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _draw_cover(rng: random.Random, title: str, author: str) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), rng.choice(_COVER_BG))
    draw = ImageDraw.Draw(image)
    frame = COLORS[rng.choice(list(COLORS))]
    draw.rectangle((2, 2, SIZE - 3, SIZE - 3), outline=frame, width=3)
    font = ImageFont.load_default(size=13)
    y = 12
    for line in _wrap(draw, title, font, SIZE - 16):
        w = draw.textlength(line, font=font)
        draw.text(((SIZE - w) / 2, y), line, fill=(0, 0, 0), font=font)
        y += 16
    small = ImageFont.load_default(size=10)
    w = draw.textlength(author, font=small)
    draw.text(((SIZE - w) / 2, SIZE - 22), author, fill=(60, 60, 60), font=small)
    return image


#: The demo profile's size at each scale (images; `datamix.synth.demo`).
DEMO_SIZES = {"tiny": 16, "small": 400}


def write_demo(world: World, n: int) -> int:
    rng = world.rng(SOURCE)
    keys: list[str] = []
    while len(keys) < n:
        key = (
            _isbn10(rng)
            if rng.random() < 0.9
            else "B00" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(7))
        )
        if key not in keys:
            keys.append(key)
    splits = [1 if rng.random() < 0.8 else rng.choice((2, 3)) for _ in keys]
    train = [i for i, s in enumerate(splits) if s == 1]
    specials = rng.sample(train, 4) if len(train) >= 8 else train[:4]
    special = dict(zip(specials, ("gif", "png", "truncated", "missing"), strict=False))
    genres = list(_GENRES)
    data: dict[str, Any] = {}
    for i, key in enumerate(keys):
        title = _title(rng)
        author = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        genre = rng.choice(genres)
        other = rng.choice([g for g in genres if g != genre])
        ask_true = rng.random() < 0.5
        adj = _GENRES[genre if ask_true else other]
        rel_genre = genre if not ask_true else other
        qas = [
            (rng.choice(("Who wrote this book?", "Who is the author of this book?")), author),
            ("What is the title of this book?", title),
            (rng.choice(("What is the genre of this book?", "What type of book is this?")), genre),
            (f"Is this {article(adj)} book?", "Yes" if ask_true else "No"),
            (f"Is this book related to {rel_genre}?", "Yes" if rel_genre == genre else "No"),
        ]
        kind = special.get(i, "jpg")
        ext = {"gif": ".gif", "png": ".png"}.get(kind, ".jpg")
        url = (
            "http://ecx.images-amazon.com/images/I/"
            + "".join(rng.choice(ALNUM + "+") for _ in range(10))
            + "L"
            + ext
        )
        data[key] = {
            "imageURL": url,
            "questions": [q for q, _ in qas],
            "answers": [a for _, a in qas],
            "title": title,
            "authorName": author,
            "genre": genre,
            "split": splits[i],
        }
        rel = f"{OCRVQA_DIR}/{key}.jpg"  # always .jpg in the LLaVA layout, whatever the bytes are
        cover = _draw_cover(world.rng("cover", key), title, author)
        if kind == "gif":
            world.save_image(rel, cover, "GIF")
        elif kind == "png":
            world.save_image(rel, cover, "PNG")
        elif kind == "truncated":
            buf = io.BytesIO()
            cover.save(buf, "JPEG", quality=JPEG_QUALITY)
            world.save_bytes(rel, buf.getvalue()[: len(buf.getvalue()) // 2])
        elif kind != "missing":
            world.save_image(rel, cover)
    # planted: answers as one string instead of a list
    bad_key = keys[train[-1]] if train else keys[-1]
    data[bad_key]["answers"] = " / ".join(data[bad_key]["answers"])
    world.expect_drop(SOURCE, DropReason.BAD_TYPE)
    for i, kind in special.items():  # a bad record is dropped before its cover is looked at
        if kind in ("truncated", "missing") and keys[i] != bad_key:
            world.expect_drop(
                SOURCE, DropReason.IMAGE_UNDECODABLE if kind == "truncated" else DropReason.IMAGE_MISSING
            )
    world.write_json(SOURCE, FILE, data)
    return len(keys)


# --------------------------------------------------------------------------------------------
# volume profile


def _book_key(rng: random.Random) -> str:
    """An ISBN-10 (leading zeros dropped, docs/sources.md P3) or, one time in ten, an ASIN."""
    if rng.random() < 0.9:
        digits = [rng.randrange(10) for _ in range(9)]
        check = sum((10 - i) * d for i, d in enumerate(digits)) % 11
        check = (11 - check) % 11
        key = "".join(map(str, digits)) + ("X" if check == 10 else str(check))
        return key.lstrip("0") or "0"
    return "B00" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(7))


def write_volume(w: Bulk) -> None:
    src = SOURCE
    rng = w.rng(src)
    n_books, n_train = w.n("ocrvqa_books"), w.n("ocrvqa_train")
    keys = distinct(n_books, partial(_book_key, rng))
    splits = (
        [1] * n_train
        + [2] * ((n_books - n_train) // 2)
        + [3] * (n_books - n_train - (n_books - n_train) // 2)
    )
    rng.shuffle(splits)
    train_idx = [i for i, s in enumerate(splits) if s == 1]
    special_kinds = [
        kind
        for kind, count in (
            ("missing", 60),
            ("truncated", 30),
            ("empty", 20),
            ("gif", 30),
            ("png", 30),
            ("answers_str", 20),
            ("mismatch", 20),
        )
        for _ in range(w.few(count))
    ]
    special = dict(zip(rng.sample(train_idx, len(special_kinds)), special_kinds, strict=True))
    reason = {
        "missing": DropReason.IMAGE_MISSING,
        "truncated": DropReason.IMAGE_UNDECODABLE,
        "empty": DropReason.IMAGE_EMPTY,
        "answers_str": DropReason.BAD_TYPE,
        "mismatch": DropReason.BAD_VALUE,
    }
    genres = (
        "Calendars",
        "Comics & Graphic Novels",
        "Test Preparation",
        "Mystery, Thriller & Suspense",
        "Science Fiction & Fantasy",
        "Romance",
        "Humor & Entertainment",
        "Literature & Fiction",
        "Gay & Lesbian",
        "Engineering & Transportation",
        "Cookbooks, Food & Wine",
        "Crafts, Hobbies & Home",
        "Arts & Photography",
        "Education & Teaching",
        "Parenting & Relationships",
        "Self-Help",
        "Computers & Technology",
        "Medical Books",
        "Science & Math",
        "Health, Fitness & Dieting",
        "Business & Money",
        "Law",
        "Biographies & Memoirs",
        "History",
        "Politics & Social Sciences",
        "Reference",
        "Christian Books & Bibles",
        "Religion & Spirituality",
        "Sports & Outdoors",
        "Teen & Young Adult",
        "Children's Books",
        "Travel",
    )
    o = w.out(src, FILE)
    o.w("{")
    kept = 0
    for i, key in enumerate(keys):
        h = rng.getrandbits(32)
        title = sentence(rng, 2, 8)[:-1]
        author = f"{WORDS[h % len(WORDS)].capitalize()} {WORDS[(h >> 8) % len(WORDS)].capitalize()}"
        genre = genres[h % len(genres)]
        other = genres[(h >> 5) % len(genres)]
        qs = [
            "Who wrote this book?" if h & 1 else "Who is the author of this book?",
            "What is the title of this book?",
            "What is the genre of this book?" if h & 2 else "What type of book is this?",
            f"Is this book related to {other}?",
            f"Is this a {genre.split(' ')[0].lower()} book?",
        ]
        ans = [author, title, genre, "Yes" if other == genre else "No", "Yes"]
        kind = special.get(i)
        q_json = "[" + ", ".join(js(x) for x in qs) + "]"
        a_json = "[" + ", ".join(js(x) for x in ans) + "]"
        if kind == "answers_str":
            a_json = js(" / ".join(ans))
        elif kind == "mismatch":
            a_json = "[" + ", ".join(js(x) for x in ans[:3]) + "]"
        url = f"http://ecx.images-amazon.com/images/I/{shortuuid(rng, 10)}L.{'gif' if kind == 'gif' else 'png' if kind == 'png' else 'jpg'}"
        o.w(
            ("" if i == 0 else ", ")
            + f'{js(key)}: {{"imageURL": "{url}", "questions": {q_json}, "answers": {a_json}, '
            f'"title": {js(title)}, "authorName": {js(author)}, "genre": {js(genre)}, "split": {splits[i]}}}'
        )
        if kind in reason:
            w.expect_drop(src, reason[kind])
        elif splits[i] == 1:
            kept += 1
        rel = f"{OCRVQA_DIR}/{key}.jpg"
        if kind == "missing":
            continue
        w.images.place(
            rel,
            {"truncated": "cover_truncated", "empty": "empty", "gif": "cover_gif", "png": "cover_png"}.get(
                kind or "", "cover"
            ),
        )
    w.finish(src, {o: "}"}, kept, w.sc(80_000))
