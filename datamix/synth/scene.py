"""The demo profile's shared world: the palette, drawn scenes, seeded generators, text helpers.

Pictures carry learnable content: white images (mostly 112x112) with 1-3 non-overlapping filled
shapes (circle, square, triangle; 20-45 px; distinct kinds and distinct colours per image, so "What
color is the circle?" always has one answer). Every source writer (`datamix/synth/<source>.py`)
derives its annotations from the `Scene` it asked `World.scene` for.

Determinism: every random choice comes from a `random.Random` seeded by a hash of (seed, purpose)
(`derive`), never the global generator; JSON is written with a fixed serialisation, pickles with
protocol 2, images with fixed encoder settings, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from datamix.fileio import atomic_path
from datamix.paths import coco_image
from datamix.schema import DropReason

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
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SHORTUUID = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # A-OKVQA question ids


# probability that a picture of a namespace is not square (region sources need real frames)
NON_SQUARE = {"coco": 0.25, "vg": 0.3, "lcs": 0.0}


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


def overlaps(a: Sequence[int], b: Sequence[int], gap: int) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def paint(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
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
            if any(overlaps(box, s.box, 3) for s in shapes) or any(overlaps(box, r, 3) for r in reserved):
                continue
            shapes.append(Shape(kind=kind, color=color, box=box))
            break
    if not shapes:  # pragma: no cover - only with absurd `reserved` areas
        raise ValueError(f"no room for a shape in {width}x{height} with reserved {list(reserved)}")
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        paint(draw, shape)
    return image, shapes


def render_scene(seed: int, width: int = SIZE, height: int = SIZE) -> tuple[Image.Image, list[Shape]]:
    """A fresh scene from an integer seed (never equal to a `synth` training picture's seed stream)."""
    return draw_scene(random.Random(derive("render", seed)), width, height)


def color_question(shape: Shape) -> tuple[str, str]:
    """The demo task: ("What color is the <kind>?", "<color>") for a drawn shape."""
    return f"What color is the {shape.kind}?", shape.color


# --------------------------------------------------------------------------------------------
# text helpers

NUM_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four"}


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def join_words(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def things_phrase(shapes: Sequence[Shape]) -> str:
    return join_words([article(s.name) for s in shapes])


def where(shape: Shape, width: int, height: int) -> tuple[str, str]:
    cx, cy = shape.center
    h = "left" if cx < width / 3 else "right" if cx > 2 * width / 3 else ""
    v = "top" if cy < height / 3 else "bottom" if cy > 2 * height / 3 else ""
    return v, h


def where_phrase(shape: Shape, width: int, height: int) -> str:
    v, h = where(shape, width, height)
    if v and h:
        return f"in the {v} {h} corner"
    if h:
        return f"on the {h} side"
    if v:
        return f"at the {v}"
    return "in the center"


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def derive(*parts: Any) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


# --------------------------------------------------------------------------------------------
# the writer: seeded generators, scenes, image and annotation files


class World:
    """The demo profile's writer: seeded generators, scenes drawn once per (namespace, key), images
    saved once, annotation files written atomically with a fixed serialisation."""

    def __init__(self, root: Path, seed: int):
        self.root = root
        self.seed = seed
        self.images = root / "images"
        self._scenes: dict[tuple[str, str], Scene] = {}
        self._written: set[str] = set()
        self.planted: dict[str, Counter[DropReason]] = {}  # drops the readers must record
        # shared between writers (`datamix.synth.demo`): the COCO pictures the COCO-based sources draw
        # from, ids named but never written (image_missing drops), and the VG pictures GQA reuses
        self.coco_pool: list[int] = []
        self.coco_ghosts: list[int] = []
        self.vg_ids: list[int] = []

    def expect_drop(self, source: str, reason: DropReason, k: int = 1) -> None:
        """Tally `k` planted records that the reader of `source` must drop with `reason`."""
        self.planted.setdefault(source, Counter())[reason] += k

    def coco_sample(self, rng: random.Random, n: int) -> list[int]:
        """`n` pictures of the shared COCO pool, in id order."""
        return sorted(rng.sample(self.coco_pool, n))

    def coco_scenes(self, ids: list[int], ghost: int) -> Iterator[tuple[int, Scene]]:
        """The COCO pictures `ids`, then ghost id number `ghost`, whose picture is never written
        (image_missing): `(image_id, scene)`, each drawn when it is reached."""
        gid = self.coco_ghosts[ghost]
        for image_id in [*ids, gid]:
            yield image_id, self.scene("coco", image_id, coco_image(image_id) if image_id != gid else None)

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(derive(self.seed, *parts))

    def raw(self, source: str, name: str) -> Path:
        return self.root / "raw" / source / name

    def scene(self, ns: str, key: Any, rel: str | None) -> Scene:
        """The picture (ns, key), drawn from its own seed; saved as images/<rel> once (None: not saved)."""
        k = (ns, str(key))
        scene = self._scenes.get(k)
        if scene is not None and (rel is None or rel in self._written):
            return scene
        rng = self.rng("scene", ns, key)
        width, height = rng.choice(NON_SQUARE_SIZES) if rng.random() < NON_SQUARE[ns] else (SIZE, SIZE)
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

    def write_planted(
        self,
        source: str,
        name: str,
        rng: random.Random,
        records: list[Any],
        bad: Sequence[Any],
        drops: Sequence[DropReason],
        k: int = 1,
    ) -> None:
        """Plant `bad` among `records` (`plant`), tally `k` drops of each reason in `drops` that
        normalize must record for them, and write the records as the JSON file `name`."""
        plant(rng, records, bad)
        for reason in drops:
            self.expect_drop(source, reason, k)
        self.write_json(source, name, records)

    def write_pickle(self, source: str, name: str, obj: Any) -> None:
        with atomic_path(self.raw(source, name)) as tmp:
            tmp.write_bytes(pickle.dumps(obj, protocol=2))

    @property
    def n_images(self) -> int:
        return len(self._written)


def plant(rng: random.Random, records: list[Any], bad: Sequence[Any]) -> None:
    """Insert the bad records at seeded positions (never first, so a file still starts sane)."""
    for rec in bad:
        records.insert(rng.randint(1, len(records)), rec)


def few(n: int, per: int) -> int:
    """How many of a kind of planted record: about 1 in `per`, at least 1."""
    return max(1, n // per)


def new_vg_ids(rng: random.Random, n: int, exclude: frozenset[int] | set[int] = frozenset()) -> list[int]:
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


def choices(rng: random.Random, answer: str, domain: Sequence[str]) -> tuple[str, str]:
    """The two options of a choice question: the answer and another value of `domain`, in random order."""
    a, b = rng.sample([answer, rng.choice([d for d in domain if d != answer])], 2)
    return a, b


def ten_answers(rng: random.Random, answer: str, domain: Sequence[str]) -> list[tuple[str, str]]:
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


FRUITS = {  # colour -> (raw answer, stemmed answer), a knowledge question for OK-VQA / A-OKVQA
    "red": ("cherries", "cherry"),
    "green": ("limes", "lime"),
    "blue": ("blueberries", "blueberry"),
    "yellow": ("bananas", "banana"),
    "purple": ("grapes", "grape"),
    "orange": ("oranges", "orange"),
}
CORNERS = {"square": "4", "triangle": "3", "circle": "0"}
