"""Synthetic raw data for every source, in its real public format (for the demo and the tests).

`synth(root, scale, seed)` writes, for each of the 11 sources, the raw annotation files under
`ROOT/raw/<source>/` with their official names and field layouts (sources.md sections 1-11,
architecture.md 4.1) and the images they point to in the LLaVA layout under `ROOT/images/`.

The pictures carry learnable content: white images (mostly 112x112) with 1-3 non-overlapping
filled shapes (circle, square, triangle; 20-45 px; distinct kinds and distinct colours per image, so
"What color is the circle?" always has one answer). Every annotation is derived from what is drawn:
VQA answers, A-OKVQA choices, VG / RefCOCO boxes (the shapes' true pixel boxes), captions and
conversations; OCR-VQA covers show their rendered title and author, TextCaps images a rendered word.
ShareGPT is text-only small talk and arithmetic.

Real-world quirks are reproduced where sources.md names them: train2014 names in VQAv2 / OK-VQA /
RefCOCO annotations for pictures stored as `coco/train2017/<12-digit>.jpg`; COCO ids shared between
the COCO sources; GQA pictures that are also VG pictures; OCR-VQA covers saved as GIF or PNG bytes
under a `.jpg` name, one truncated and one missing; keys with dropped leading zeros; LLaVA-Instruct
`<image>` leading or trailing; ShareGPT records with a leading `gpt` turn; VG images with fewer
than 10 regions; non-train splits. A small minority of deliberately bad records (missing or
mistyped fields, a missing image) is planted in most sources so that the drops tables are not empty.

Determinism: every random choice comes from a `random.Random` seeded by a hash of (seed, purpose),
never the global generator; JSON is written with a fixed serialisation, pickles with protocol 2,
images with fixed encoder settings, so the same seed gives byte-identical files.

`draw_scene` / `render_scene` are public so that the trainer's demo can render fresh eval images.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import pickle
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from datamix.fileio import atomic_path
from datamix.paths import COCO_DIR, GQA_DIR, LLAVA_PRETRAIN_DIR, OCRVQA_DIR, TEXTVQA_DIR, VG_DIRS
from datamix.sources import SOURCE_NAMES

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# vocabulary

SIZE = 112  # default picture side
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 80, 220),
    "yellow": (245, 215, 20),
    "purple": (140, 50, 180),
    "orange": (250, 135, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
MIN_SIDE, MAX_SIDE = 20, 45
BACKGROUND = (255, 255, 255)
JPEG_QUALITY = 90
NON_SQUARE_SIZES: tuple[tuple[int, int], ...] = ((140, 112), (112, 150), (150, 112), (112, 140))

SCALES = ("tiny", "small")
SOURCES = SOURCE_NAMES  # the registry's names (datamix.sources)

# units per source: conversation records (sharegpt) or images (all others); coco_pool = distinct
# COCO pictures the COCO-based sources draw from (they overlap, as in real COCO)
_SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "coco_pool": 40,
        "llava_instruct": 12,
        "sharegpt": 16,
        "vqav2": 20,
        "gqa": 20,
        "okvqa": 10,
        "aokvqa": 10,
        "ocrvqa": 16,
        "textcaps": 10,
        "vg": 14,
        "refcoco": 10,
        "llava_pretrain": 20,
    },
    "small": {
        "coco_pool": 3000,
        "llava_instruct": 400,
        "sharegpt": 300,
        "vqav2": 2000,
        "gqa": 2000,
        "okvqa": 300,
        "aokvqa": 400,
        "ocrvqa": 400,
        "textcaps": 300,
        "vg": 500,
        "refcoco": 400,
        "llava_pretrain": 3000,
    },
}

# probability that a picture of a namespace is not square (region sources need real frames)
_NON_SQUARE = {"coco": 0.25, "vg": 0.3, "lcs": 0.0}


def nearest_color(rgb: Sequence[int]) -> str:
    """The palette colour name closest to an RGB triple (robust to JPEG noise)."""
    r, g, b = rgb[:3]
    return min(
        COLORS, key=lambda c: (COLORS[c][0] - r) ** 2 + (COLORS[c][1] - g) ** 2 + (COLORS[c][2] - b) ** 2
    )


@dataclass(frozen=True, slots=True)
class Shape:
    """One drawn shape. `box` = (x1, y1, x2, y2) in pixels, x2/y2 exclusive (side = x2 - x1)."""

    kind: str
    color: str
    box: tuple[int, int, int, int]

    @property
    def name(self) -> str:
        return f"{self.color} {self.kind}"

    @property
    def side(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def center(self) -> tuple[int, int]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) // 2, (y1 + y2) // 2


@dataclass(frozen=True, slots=True)
class Scene:
    width: int
    height: int
    shapes: tuple[Shape, ...]


def _overlaps(a: Sequence[int], b: Sequence[int], gap: int) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _paint(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    x1, y1, x2, y2 = shape.box
    fill = COLORS[shape.color]
    if shape.kind == "circle":
        draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=fill)
    elif shape.kind == "square":
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2 - 1) / 2, y1)], fill=fill)
    else:  # pragma: no cover - internal invariant
        raise AssertionError(shape.kind)


def draw_scene(
    rng: random.Random,
    width: int = SIZE,
    height: int = SIZE,
    n_shapes: int | None = None,
    reserved: Sequence[tuple[int, int, int, int]] = (),
) -> tuple[Image.Image, list[Shape]]:
    """A white RGB picture with 1-3 non-overlapping shapes of distinct kinds and colours.

    `reserved` boxes (x1, y1, x2, y2) are kept free (e.g. for rendered text). Shapes keep a 2 px
    margin to the border and 3 px between each other. Returns the image and the shapes drawn.
    """
    n = n_shapes if n_shapes is not None else rng.randint(1, 3)
    kinds = rng.sample(SHAPES, n)
    colors = rng.sample(list(COLORS), n)
    shapes: list[Shape] = []
    for kind, color in zip(kinds, colors, strict=True):
        for _ in range(200):
            side = rng.randint(MIN_SIDE, MAX_SIDE)
            if side + 4 > min(width, height):
                continue
            x1 = rng.randint(2, width - 2 - side)
            y1 = rng.randint(2, height - 2 - side)
            box = (x1, y1, x1 + side, y1 + side)
            if any(_overlaps(box, s.box, 3) for s in shapes) or any(_overlaps(box, r, 3) for r in reserved):
                continue
            shapes.append(Shape(kind=kind, color=color, box=box))
            break
    if not shapes:  # pragma: no cover - only with absurd `reserved` areas
        raise ValueError(f"no room for a shape in {width}x{height} with reserved {list(reserved)}")
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _paint(draw, shape)
    return image, shapes


def render_scene(seed: int, width: int = SIZE, height: int = SIZE) -> tuple[Image.Image, list[Shape]]:
    """A fresh scene from an integer seed (never equal to a `synth` training picture's seed stream)."""
    return draw_scene(random.Random(_derive("render", seed)), width, height)


def color_question(shape: Shape) -> tuple[str, str]:
    """The demo task: ("What color is the <kind>?", "<color>") for a drawn shape."""
    return f"What color is the {shape.kind}?", shape.color


# --------------------------------------------------------------------------------------------
# text helpers

_NUM_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four"}


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _things(shapes: Sequence[Shape]) -> str:
    return _join([_a(s.name) for s in shapes])


def _where(shape: Shape, width: int, height: int) -> tuple[str, str]:
    cx, cy = shape.center
    h = "left" if cx < width / 3 else "right" if cx > 2 * width / 3 else ""
    v = "top" if cy < height / 3 else "bottom" if cy > 2 * height / 3 else ""
    return v, h


def _where_phrase(shape: Shape, width: int, height: int) -> str:
    v, h = _where(shape, width, height)
    if v and h:
        return f"in the {v} {h} corner"
    if h:
        return f"on the {h} side"
    if v:
        return f"at the {v}"
    return "in the center"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _derive(*parts: Any) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


# --------------------------------------------------------------------------------------------
# the writer: seeded generators, scenes, image and annotation files


class _World:
    def __init__(self, root: Path, seed: int):
        self.root = root
        self.seed = seed
        self.images = root / "images"
        self._scenes: dict[tuple[str, str], Scene] = {}
        self._written: set[str] = set()

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(_derive(self.seed, *parts))

    def raw(self, source: str, name: str) -> Path:
        return self.root / "raw" / source / name

    def scene(self, ns: str, key: Any, rel: str | None) -> Scene:
        """The picture (ns, key), drawn from its own seed; saved as images/<rel> once (None: not saved)."""
        k = (ns, str(key))
        scene = self._scenes.get(k)
        if scene is not None and (rel is None or rel in self._written):
            return scene
        rng = self.rng("scene", ns, key)
        width, height = rng.choice(NON_SQUARE_SIZES) if rng.random() < _NON_SQUARE[ns] else (SIZE, SIZE)
        image, shapes = draw_scene(rng, width, height)
        scene = Scene(width, height, tuple(shapes))
        self._scenes[k] = scene
        if rel is not None:
            self.save_image(rel, image)
        return scene

    def save_image(self, rel: str, image: Image.Image, fmt: str = "JPEG") -> None:
        buf = io.BytesIO()
        if fmt == "JPEG":
            image.save(buf, "JPEG", quality=JPEG_QUALITY)
        elif fmt == "GIF":
            image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buf, "GIF")
        else:
            image.save(buf, fmt)
        self.save_bytes(rel, buf.getvalue())

    def save_bytes(self, rel: str, data: bytes) -> None:
        if rel in self._written:
            return
        path = self.images / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._written.add(rel)

    def write_json(self, source: str, name: str, obj: Any) -> None:
        with atomic_path(self.raw(source, name)) as tmp:
            tmp.write_bytes(json.dumps(obj, ensure_ascii=False).encode("utf-8"))

    def write_pickle(self, source: str, name: str, obj: Any) -> None:
        with atomic_path(self.raw(source, name)) as tmp:
            tmp.write_bytes(pickle.dumps(obj, protocol=2))

    @property
    def n_images(self) -> int:
        return len(self._written)


def _plant(rng: random.Random, records: list[Any], bad: Sequence[Any]) -> None:
    """Insert the bad records at seeded positions (never first, so a file still starts sane)."""
    for rec in bad:
        records.insert(rng.randint(1, len(records)), rec)


def _few(n: int, per: int) -> int:
    """How many of a kind of planted record: about 1 in `per`, at least 1."""
    return max(1, n // per)


def _coco_rel(image_id: int) -> str:
    return f"{COCO_DIR}/{image_id:012d}.jpg"


def _vg_ids(rng: random.Random, n: int, exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
    ids: list[int] = []
    seen = set(exclude)
    while len(ids) < n:
        i = rng.randint(1, 2_417_997)
        if i not in seen:
            seen.add(i)
            ids.append(i)
    return ids


# --------------------------------------------------------------------------------------------
# question banks derived from a scene


def _vqa_qas(rng: random.Random, scene: Scene) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
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
        a, b = _choices(rng, s.kind, SHAPES)
        qas.append((f"Which is {s.color}, the {a} or the {b}?", s.kind, "which", "other", SHAPES))
    rng.shuffle(qas)
    return qas


def _choices(rng: random.Random, answer: str, domain: Sequence[str]) -> tuple[str, str]:
    """The two options of a choice question: the answer and another value of `domain`, in random order."""
    a, b = rng.sample([answer, rng.choice([d for d in domain if d != answer])], 2)
    return a, b


def _ten(rng: random.Random, answer: str, domain: Sequence[str]) -> list[tuple[str, str]]:
    """10 annotator (answer, confidence) pairs: the true answer with at most 2 noisy ones."""
    others = [d for d in domain if d != answer]
    out = []
    noisy = 0
    for _ in range(10):
        if others and noisy < 2 and rng.random() < 0.08:
            noisy += 1
            out.append((rng.choice(others), rng.choice(("maybe", "no"))))
        else:
            out.append((answer, "yes" if rng.random() < 0.9 else "maybe"))
    return out


_FRUITS = {  # colour -> (raw answer, stemmed answer), a knowledge question for OK-VQA / A-OKVQA
    "red": ("cherries", "cherry"),
    "green": ("limes", "lime"),
    "blue": ("blueberries", "blueberry"),
    "yellow": ("bananas", "banana"),
    "purple": ("grapes", "grape"),
    "orange": ("oranges", "orange"),
}
_CORNERS = {"square": "4", "triangle": "3", "circle": "0"}

# --------------------------------------------------------------------------------------------
# 1. LLaVA-Instruct-150K

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
            f"There {'is' if n == 1 else 'are'} {_NUM_WORDS[n]} shape{'s' if n > 1 else ''} "
            f"in the image: {_things(shapes)}.",
        )
    )
    s = rng.choice(shapes)
    pool.append(
        (f"Where is the {s.name} located?", f"The {s.name} is {_where_phrase(s, w, h)} of the image.")
    )
    kind = rng.choice(SHAPES)
    present = next((x for x in shapes if x.kind == kind), None)
    pool.append(
        (
            f"Is there a {kind} in the image?",
            f"Yes, there is {_a(present.name)} in the image."
            if present
            else f"No, there is no {kind} in the image. It shows {_things(shapes)}.",
        )
    )
    pool.append(("What is the color of the background?", "The background of the image is plain white."))
    rng.shuffle(pool)
    return pool[: rng.randint(2, min(4, len(pool)))]


def _instruct_detail(rng: random.Random, scene: Scene) -> list[tuple[str, str]]:
    shapes = scene.shapes
    parts = [f"The image shows {_things(shapes)} on a plain white background."]
    for s in shapes:
        parts.append(
            f"The {s.name} is {_where_phrase(s, scene.width, scene.height)} and is about {s.side} pixels wide."
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
            f"; the {_join([s.name for s in others])} {'has' if len(others) == 1 else 'have'} straight edges"
            if others
            else ""
        )
        answer = (
            f"I would pick the {circle.name}, because a circle is the only round shape in the image{why}."
        )
    else:
        answer = f"There is no round object in the image: {_things(shapes)} only {'has' if len(shapes) == 1 else 'have'} straight edges."
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


def _synth_llava_instruct(world: _World, n: int, pool: list[int], ghosts: list[int]) -> int:
    rng = world.rng("llava_instruct")
    ids = sorted(rng.sample(pool, n))
    tasks: list[tuple[Callable[[random.Random, Scene], list[tuple[str, str]]], float]] = [
        (_instruct_conversation, 1.0),  # conversation_58k, detail_23k, complex_reasoning_77k, concatenated
        (_instruct_detail, 0.5),
        (_instruct_complex, 0.7),
    ]
    records: list[dict[str, Any]] = []
    for make, p in tasks:
        for image_id in ids:
            if make is _instruct_conversation or rng.random() < p:
                scene = world.scene("coco", image_id, _coco_rel(image_id))
                records.append(
                    _llava_record(f"{image_id:012d}", f"{image_id:012d}.jpg", make(rng, scene), rng)
                )
    ghost = ghosts[0]
    ok = ids[0]
    bad = [
        _llava_record(
            f"{ghost:012d}", f"{ghost:012d}.jpg", [("What is in the image?", "A red circle.")], rng
        ),
        {"id": f"{ok:012d}", "image": f"{ok:012d}.jpg"},  # no conversations
    ]
    _plant(rng, records, bad)
    world.write_json("llava_instruct", "llava_instruct_150k.json", records)
    return len(records)


# --------------------------------------------------------------------------------------------
# 2. ShareGPT

_TALK = (
    ("Hi! How are you today?", "I'm doing well, thank you for asking. How can I help you today?"),
    (
        "Can you recommend a good book?",
        'Sure! "The Hobbit" by J. R. R. Tolkien is a classic adventure that many people enjoy.',
    ),
    ("What is the capital of France?", "The capital of France is Paris."),
    (
        "Give me a tip for staying focused.",
        "Try working in short blocks of 25 minutes with a 5-minute break after each one.",
    ),
    (
        "Write a haiku about rain.",
        "Soft rain on the roof,\nthe garden drinks in silence,\nclouds drift slowly east.",
    ),
    ("How many days are there in a week?", "There are seven days in a week."),
    (
        "What should I cook for dinner?",
        "How about a simple vegetable stir-fry with rice? It is quick and healthy.",
    ),
    ("Tell me a fun fact.", "Octopuses have three hearts and blue blood."),
    ("Thanks for your help!", "You're welcome! Let me know if there is anything else I can do."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
)
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _arith(rng: random.Random) -> list[tuple[str, str]]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op = rng.choice("+-*")
    res = a + b if op == "+" else a - b if op == "-" else a * b
    q = rng.choice(
        ("What is {a} {op} {b}?", "Can you compute {a} {op} {b} for me?", "Please calculate {a} {op} {b}.")
    )
    turns = [(q.format(a=a, op=op, b=b), f"{a} {op} {b} = {res}.")]
    if rng.random() < 0.4:
        c = rng.randint(1, 20)
        turns.append((f"And if you add {c} to that?", f"{res} + {c} = {res + c}."))
    return turns


def _sharegpt_turns(rng: random.Random) -> list[tuple[str, str]]:
    if rng.random() < 0.5:
        return _arith(rng)
    return rng.sample(_TALK, rng.randint(1, 3))


def _as_turns(qas: list[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for q, a in qas:
        out += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return out


def _synth_sharegpt(world: _World, n: int) -> int:
    rng = world.rng("sharegpt")
    bases: set[str] = set()

    def new_id() -> str:
        while True:
            base = "".join(rng.choice(_ALNUM) for _ in range(7))
            if base not in bases:
                bases.add(base)
                return base

    records: list[dict[str, Any]] = []
    while len(records) < n:
        base = new_id()
        records.append({"id": f"{base}_0", "conversations": _as_turns(_sharegpt_turns(rng))})
        if rng.random() < 0.1:  # a long conversation split by FastChat into chunks
            records.append({"id": f"{base}_1", "conversations": _as_turns(_sharegpt_turns(rng))})
    k = _few(n, 100)
    bad: list[dict[str, Any]] = []
    for _ in range(k):  # leading gpt turn: stripped by the normalizer, the rest kept
        turns = [{"from": "gpt", "value": "Hello! What can I do for you?"}, *_as_turns(_arith(rng))]
        bad.append({"id": f"{new_id()}_0", "conversations": turns})
    for _ in range(k):  # not alternating
        q, a = rng.choice(_TALK)
        turns = [
            {"from": "human", "value": q},
            {"from": "human", "value": "Hello?"},
            {"from": "gpt", "value": a},
        ]
        bad.append({"id": f"{new_id()}_0", "conversations": turns})
    for _ in range(k):  # an empty turn
        bad.append({"id": f"{new_id()}_0", "conversations": _as_turns([(rng.choice(_TALK)[0], "")])})
    for _ in range(k):  # a literal <image> in text-only data
        turns = _as_turns(
            [("What does the <image> tag do in HTML?", "HTML has no <image> tag; images use <img>.")]
        )
        bad.append({"id": f"{new_id()}_0", "conversations": turns})
    _plant(rng, records, bad)
    world.write_json("sharegpt", "ShareGPT_V3_unfiltered_cleaned_split.json", records)
    return len(records)


# --------------------------------------------------------------------------------------------
# 3. VQAv2

_VQA_INFO = {
    "description": "This is v2.0 of the VQA dataset.",
    "url": "http://visualqa.org",
    "version": "2.0",
    "year": 2017,
    "contributor": "VQA Team",
    "date_created": "2017-04-26 17:07:13",
}
_VQA_LICENSE = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}


def _synth_vqav2(world: _World, n: int, pool: list[int], ghosts: list[int]) -> int:
    rng = world.rng("vqav2")
    ids = sorted(rng.sample(pool, n))
    questions: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id in [*ids, ghosts[1]]:  # the ghost's picture is never written: image_missing
        scene = world.scene("coco", image_id, _coco_rel(image_id) if image_id != ghosts[1] else None)
        for k, (q, a, qtype, atype, domain) in enumerate(_vqa_qas(rng, scene)):
            qid = image_id * 1000 + k
            questions.append({"image_id": image_id, "question": q, "question_id": qid})
            answers = [
                {"answer": ans, "answer_confidence": conf, "answer_id": j + 1}
                for j, (ans, conf) in enumerate(_ten(rng, a, domain))
            ]
            annotations.append(
                {
                    "question_type": qtype,
                    "multiple_choice_answer": a,
                    "answers": answers,
                    "image_id": image_id,
                    "answer_type": atype,
                    "question_id": qid,
                }
            )
    # planted: a question without its text; an annotation of a question that does not exist
    bad_q = {"image_id": ids[-1], "question_id": ids[-1] * 1000 + 99}
    _plant(rng, questions, [bad_q])
    orphan = copy.deepcopy(annotations[0])
    orphan["question_id"] = ids[0] * 1000 + 98
    _plant(rng, annotations, [orphan])
    world.write_json(
        "vqav2",
        "v2_OpenEnded_mscoco_train2014_questions.json",
        {
            "info": _VQA_INFO,
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "license": _VQA_LICENSE,
            "data_subtype": "train2014",
            "questions": questions,
        },
    )
    world.write_json(
        "vqav2",
        "v2_mscoco_train2014_annotations.json",
        {
            "info": _VQA_INFO,
            "license": _VQA_LICENSE,
            "data_subtype": "train2014",
            "annotations": annotations,
            "data_type": "mscoco",
        },
    )
    return len(ids) + 1


# --------------------------------------------------------------------------------------------
# 4. GQA


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
        a, b = _choices(rng, s.kind, SHAPES)
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


def _synth_gqa(world: _World, n: int, vg_ids: list[int]) -> int:
    rng = world.rng("gqa")
    shared = rng.sample(vg_ids, min(len(vg_ids), n // 4))  # GQA reuses VG pictures
    n_prefixed = max(1, n // 100)
    image_ids = [str(i) for i in shared]
    image_ids += [str(i) for i in _vg_ids(rng, n - len(shared) - n_prefixed, exclude=set(vg_ids))]
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
    entries.sort(key=lambda e: e[0])  # the real file is ordered by question id, not by image
    world.write_json("gqa", "train_balanced_questions.json", dict(entries))
    return len(image_ids) + 1


# --------------------------------------------------------------------------------------------
# 5. OK-VQA

_OK_QUESTION_TYPES = {
    "eight": "Plants and Animals",
    "nine": "Science and Technology",
    "four": "Sports and Recreation",
    "six": "Geography, History, Language and Culture",
    "two": "Brands, Companies and Products",
    "other": "Other",
    "one": "Vehicles and Transportation",
    "five": "Cooking and Food",
    "ten": "Weather and Climate",
    "seven": "People and Everyday life",
    "three": "Objects, Material and Clothing",
}
_OK_INFO = {
    "description": "This is v1.1 of the OK-VQA dataset.",
    "url": "http://okvqa.allenai.org",
    "version": "1.1",
    "year": 2019,
    "contributor": "OK-VQA Team",
    "date_created": "2019-05-25 14:43:06",
}
_OK_LICENSE = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}


def _okvqa_qas(rng: random.Random, scene: Scene) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(question, question_type, [(raw_answer, stemmed)] x 10)."""
    out = []
    s = rng.choice(scene.shapes)
    raw, stem = _FRUITS[s.color]
    out.append(
        (
            f"What fruit has the same color as the {s.kind}?",
            "five",
            [(raw if rng.random() < 0.7 else stem, stem) for _ in range(10)],
        )
    )
    angular = [x for x in scene.shapes if x.kind != "circle"]
    if angular and rng.random() < 0.4:
        x = rng.choice(angular)
        n = _CORNERS[x.kind]
        word = _NUM_WORDS[int(n)]
        out.append(
            (
                f"How many corners does a shape like the {x.color} one have?",
                "nine",
                [(n, n) if rng.random() < 0.7 else (word, word) for _ in range(10)],
            )
        )
    return out


def _synth_okvqa(world: _World, n: int, pool: list[int], ghosts: list[int]) -> int:
    rng = world.rng("okvqa")
    ids = sorted(rng.sample(pool, n))
    questions: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id in [*ids, ghosts[2]]:
        scene = world.scene("coco", image_id, _coco_rel(image_id) if image_id != ghosts[2] else None)
        for k, (q, qtype, answers) in enumerate(_okvqa_qas(rng, scene)):
            qid = image_id * 10 + k
            questions.append({"image_id": image_id, "question": q, "question_id": qid})
            annotations.append(
                {
                    "image_id": image_id,
                    "answer_type": "other",
                    "question_type": qtype,
                    "question_id": qid,
                    "answers": [
                        {"answer_id": j + 1, "raw_answer": r, "answer_confidence": "yes", "answer": st}
                        for j, (r, st) in enumerate(answers)
                    ],
                    "confidence": 3,
                }
            )
    # planted: an annotation without answers (its question then has no usable annotation)
    annotations[rng.randrange(len(annotations))].pop("answers")
    world.write_json(
        "okvqa",
        "OpenEnded_mscoco_train2014_questions.json",
        {
            "license": _OK_LICENSE,
            "data_subtype": "train2014",
            "question_types": _OK_QUESTION_TYPES,
            "questions": questions,
            "info": _OK_INFO,
            "task_type": "Open-Ended",
            "data_type": "mscoco",
        },
    )
    world.write_json(
        "okvqa",
        "mscoco_train2014_annotations.json",
        {
            "license": _OK_LICENSE,
            "data_subtype": "train2014",
            "question_types": _OK_QUESTION_TYPES,
            "annotations": annotations,
            "info": _OK_INFO,
            "data_type": "mscoco",
        },
    )
    return len(ids) + 1


# --------------------------------------------------------------------------------------------
# 6. A-OKVQA

_SHORTUUID = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_DISTRACTOR_SHAPES = ("circle", "square", "triangle", "star", "heart", "hexagon")


def _aokvqa_question(rng: random.Random, scene: Scene) -> dict[str, Any]:
    s = rng.choice(scene.shapes)
    form = rng.choice(("color", "shape", "count", "fruit"))
    if form == "color":
        q, answer, domain = f"What color is the {s.kind} in the picture?", s.color, list(COLORS)
        rationales = [
            f"The {s.kind} is filled with {s.color}.",
            f"There is {_a(s.name)}.",
            f"The {s.kind} looks {s.color}.",
        ]
    elif form == "shape":
        q, answer, domain = f"What shape is the {s.color} object?", s.kind, list(_DISTRACTOR_SHAPES)
        rationales = [
            f"The {s.color} object is a {s.kind}.",
            f"The only {s.color} thing is shaped like a {s.kind}.",
            f"It is {_a(s.name)}.",
        ]
    elif form == "count":
        n = len(scene.shapes)
        q, answer, domain = "How many shapes can be seen in the picture?", str(n), ["1", "2", "3", "4"]
        rationales = [
            f"There are {_things(scene.shapes)}.",
            f"I can count {_NUM_WORDS[n]} shapes.",
            "Each shape has a different color.",
        ]
    else:
        fruit = _FRUITS[s.color][1]
        q, answer, domain = (
            f"Which fruit has the same color as the {s.kind}?",
            fruit,
            [v[1] for v in _FRUITS.values()],
        )
        rationales = [
            f"The {s.kind} is {s.color} like {_a(fruit)}.",
            f"{_cap(_a(fruit))} is {s.color}.",
            f"Both are {s.color}.",
        ]
    choices = [answer, *rng.sample([d for d in domain if d != answer], 3)]
    rng.shuffle(choices)
    direct = [answer if rng.random() < 0.85 else rng.choice(choices) for _ in range(10)]
    return {
        "split": "train",
        "image_id": 0,
        "question_id": "".join(rng.choice(_SHORTUUID) for _ in range(22)),
        "question": q,
        "choices": choices,
        "correct_choice_idx": choices.index(answer),
        "direct_answers": direct,
        "difficult_direct_answer": rng.random() < 0.05,
        "rationales": rationales,
    }


def _synth_aokvqa(world: _World, n: int, pool: list[int], ghosts: list[int]) -> int:
    rng = world.rng("aokvqa")
    ids = sorted(rng.sample(pool, n))
    records: list[dict[str, Any]] = []
    for image_id in [*ids, ghosts[3]]:
        scene = world.scene("coco", image_id, _coco_rel(image_id) if image_id != ghosts[3] else None)
        for _ in range(2 if rng.random() < 0.1 else 1):
            rec = _aokvqa_question(rng, scene)
            rec["image_id"] = image_id
            records.append(rec)
    rng.shuffle(records)
    # planted: choices as one string instead of a list
    bad = copy.deepcopy(records[0])
    bad.update(
        choices=", ".join(bad["choices"]), question_id="".join(rng.choice(_SHORTUUID) for _ in range(22))
    )
    _plant(rng, records, [bad])
    world.write_json("aokvqa", "aokvqa_v1p0_train.json", records)
    return len(ids) + 1


# --------------------------------------------------------------------------------------------
# 7. OCR-VQA

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
        digits[0] = 0  # leading zeros are dropped from dataset.json keys (sources.md P3)
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


def _synth_ocrvqa(world: _World, n: int) -> int:
    rng = world.rng("ocrvqa")
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
            (f"Is this {_a(adj)} book?", "Yes" if ask_true else "No"),
            (f"Is this book related to {rel_genre}?", "Yes" if rel_genre == genre else "No"),
        ]
        kind = special.get(i, "jpg")
        ext = {"gif": ".gif", "png": ".png"}.get(kind, ".jpg")
        url = (
            "http://ecx.images-amazon.com/images/I/"
            + "".join(rng.choice(_ALNUM + "+") for _ in range(10))
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
    world.write_json("ocrvqa", "dataset.json", data)
    return len(keys)


# --------------------------------------------------------------------------------------------
# 8. TextCaps (+ TextVQA Rosetta OCR tokens)

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
    things = _things(shapes)
    s = rng.choice(shapes)
    if word:
        caps = [
            f"{things} above the word {word}.",
            f"The word {word} is written under {_a(s.name)}.",
            f"A white sign that says {word} with {things} on it.",
            f"{_NUM_WORDS[len(shapes)]} colorful shape{'s' if len(shapes) > 1 else ''} and the text {word}.",
            f"{_a(s.name)} and the word {word} in black letters.",
        ]
    else:
        caps = [
            f"{things} on a white background.",
            f"An image showing {things}.",
            f"A plain white picture with {_a(s.name)}.",
            f"{_NUM_WORDS[len(shapes)]} colorful shape{'s' if len(shapes) > 1 else ''} with no text.",
            f"A simple drawing of {things}.",
        ]
    return [_cap(c) for c in caps]


def _synth_textcaps(world: _World, n: int) -> int:
    rng = world.rng("textcaps")
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
        toks = [_tokens(c) for c in caps]
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
    world.write_json(
        "textcaps",
        "TextCaps_0.1_train.json",
        {"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1", "data": data},
    )
    world.write_json(
        "textcaps",
        "TextVQA_Rosetta_OCR_v0.2_train.json",
        {"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.2", "data": ocr},
    )
    return len(ids)


# --------------------------------------------------------------------------------------------
# 9. Visual Genome


def _free_box(rng: random.Random, scene: Scene) -> tuple[int, int, int, int] | None:
    for _ in range(50):
        w, h = rng.randint(10, 30), rng.randint(10, 30)
        x, y = rng.randint(0, scene.width - w), rng.randint(0, scene.height - h)
        box = (x, y, x + w, y + h)
        if not any(_overlaps(box, s.box, 1) for s in scene.shapes):
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
            (_a(s.name), jitter(s.box)),
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


def _synth_vg(world: _World, n: int) -> tuple[int, list[int]]:
    rng = world.rng("vg")
    ids = sorted(_vg_ids(rng, n + 1))
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
    world.write_json("vg", "image_data.json", image_data)
    world.write_json("vg", "region_descriptions.json", regions_out)
    return len(ids) + 1, ids


# --------------------------------------------------------------------------------------------
# 10. RefCOCO / RefCOCO+ / RefCOCOg

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
            f"{_a(s.name)} on a white background",
            f"the {s.name} {_where_phrase(s, scene.width, scene.height)} of the picture",
            f"{_a(s.color)} colored {s.kind} next to {_things(others)}"
            if others
            else f"a single {s.name} in an empty picture",
        ]
    return rng.sample(options, rng.randint(1, min(3, len(options))))


def _synth_refcoco(world: _World, n: int, pool: list[int], ghosts: list[int]) -> int:
    rng = world.rng("refcoco")
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

    datasets = (
        ("refcoco", "refs(unc).p", unc),
        ("refcoco+", "refs(unc).p", unc),
        ("refcocog", "refs(umd).p", [*umd, ghost]),
    )
    unc_splits = {i: ("train" if rng.random() < 0.8 else rng.choice(("val", "testA", "testB"))) for i in unc}
    umd_splits = {i: ("train" if rng.random() < 0.8 else rng.choice(("val", "test"))) for i in umd}
    umd_splits[ghost] = "train"
    for dataset, refs_name, image_ids in datasets:
        splits = umd_splits if dataset == "refcocog" else unc_splits
        images, annotations, refs = [], [], []
        ref_id = rng.randint(1, 20_000)
        sent_id = rng.randint(1, 50_000)
        for image_id in image_ids:
            scene = world.scene("coco", image_id, _coco_rel(image_id) if image_id != ghost else None)
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
                    raw = _cap(text) + "." if rng.random() < 0.3 else text
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
            _plant(rng, refs, [bad])
        world.write_json(
            "refcoco",
            f"{dataset}/instances.json",
            {
                "info": _COCO_INFO,
                "images": images,
                "licenses": _COCO_LICENSES,
                "annotations": annotations,
                "categories": _REF_CATEGORIES,
            },
        )
        world.write_pickle("refcoco", f"{dataset}/{refs_name}", refs)
    return len(set(unc) | set(umd)) + 1


# --------------------------------------------------------------------------------------------
# 11. LCS-558K (stage 1)

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
        return _join([_a(x) for x in names]) + " on a white background"
    if form == 1:
        return " , ".join(names) + f" - {len(names)} shape{'s' if len(names) > 1 else ''} on white"
    return "illustration of " + _join([_a(x) for x in names])


def _synth_llava_pretrain(world: _World, n: int) -> int:
    rng = world.rng("llava_pretrain")
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
    _plant(rng, records, bad)
    world.write_json("llava_pretrain", "blip_laion_cc_sbu_558k.json", records)
    return len(records)


# --------------------------------------------------------------------------------------------
# entry point


class SynthError(Exception):
    """`synth` cannot run here (a root that holds data it did not write)."""


_SYNTH_MARKER = Path("raw") / "synth.json"


def check_target(root: Path) -> None:
    """Refuse a root that holds data `synth` did not write: synthetic files would overwrite real raw
    files and images of the same names. An empty or missing root, or one whose `raw/synth.json` says
    an earlier `synth` made it, is fine."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise SynthError(f"{root} is not a folder")
    if not root.is_dir() or (root / _SYNTH_MARKER).is_file():
        return
    found = next((p for p in sorted(root.iterdir()) if p.name in ("raw", "images", "normalized", "mixes", "downloads")), None)
    if found is not None:
        raise SynthError(
            f"{root} already holds data that synth did not write ({found.name}/ without raw/synth.json); "
            "synthetic files would overwrite real ones: choose an empty --root, or pass --force"
        )


def synth(root: Path, scale: str = "tiny", seed: int = 0, *, force: bool = False) -> dict[str, int]:
    """Write every source's raw files and images under `root`; return the units written per source.

    Units: conversation records for llava_instruct, sharegpt and llava_pretrain; annotated images
    (planted-bad ones included) for every other source. Same (scale, seed) -> byte-identical files.
    Files are overwritten in place; nothing else under `root` is removed. A root holding data that an
    earlier `synth` did not write is refused (`SynthError`, see `check_target`) unless `force`.
    """
    if scale not in _SIZES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    root = Path(root)
    if not force:
        check_target(root)
    sizes = _SIZES[scale]
    # claim the root first, so a run killed halfway can be rerun over its own partial output
    marker = root / _SYNTH_MARKER
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"generator": "datamix.synth", "complete": False}) + "\n", encoding="utf-8")
    world = _World(root, seed)
    t0 = time.perf_counter()

    # one shared pool of COCO pictures (ids as in real COCO, up to 581929) plus ghost ids that are
    # named by annotations but never written (image_missing drops)
    rng = world.rng("coco-pool")
    chosen = rng.sample(range(9, 581_930), sizes["coco_pool"] + 5)
    pool, ghosts = sorted(chosen[: sizes["coco_pool"]]), chosen[sizes["coco_pool"] :]

    counts: dict[str, int] = {}
    counts["llava_instruct"] = _synth_llava_instruct(world, sizes["llava_instruct"], pool, ghosts)
    counts["sharegpt"] = _synth_sharegpt(world, sizes["sharegpt"])
    counts["vqav2"] = _synth_vqav2(world, sizes["vqav2"], pool, ghosts)
    counts["vg"], vg_ids = _synth_vg(world, sizes["vg"])
    counts["gqa"] = _synth_gqa(world, sizes["gqa"], vg_ids)
    counts["okvqa"] = _synth_okvqa(world, sizes["okvqa"], pool, ghosts)
    counts["aokvqa"] = _synth_aokvqa(world, sizes["aokvqa"], pool, ghosts)
    counts["ocrvqa"] = _synth_ocrvqa(world, sizes["ocrvqa"])
    counts["textcaps"] = _synth_textcaps(world, sizes["textcaps"])
    counts["refcoco"] = _synth_refcoco(world, sizes["refcoco"], pool, ghosts)
    counts["llava_pretrain"] = _synth_llava_pretrain(world, sizes["llava_pretrain"])
    counts = {s: counts[s] for s in SOURCES}

    # the resolved configuration that made these files (house style 12)
    with atomic_path(marker) as tmp:
        meta = {
            "generator": "datamix.synth",
            "scale": scale,
            "seed": seed,
            "counts": counts,
            "images": world.n_images,
        }
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - t0
    log.info(
        "synth %s seed=%d: %d images, %s in %.1fs",
        scale,
        seed,
        world.n_images,
        ", ".join(f"{s}={c}" for s, c in counts.items()),
        seconds,
    )
    return counts
