"""The volume profile's shared world: real sizes, fast filler text, hard-linked images, planted drops.

`Bulk` is what every source's `write_volume` writes through: `n(key)` is a real raw figure
(docs/sources.md) times the fraction asked for; annotation files are hand-built JSON text streamed
by `Out` (~4 GB at fraction 1); images in the LLaVA layout are hard links to a handful of tiny
base files (one per aspect ratio; a new base file every 60,000 links, below ext4's per-inode
limit), so ~1.1 M image paths cost seconds and almost no disk. Widths/heights used for boxes come
from the annotations (VG image_data.json, RefCOCO instances.json, TextCaps), as in the real data.

Every planted bad record is tallied (`plant`) with the `DropReason` its reader must give it, and
every writer states the items normalize must produce (`expected_items`) and what the llava15_665k /
llava15_pretrain_558k recipes must select at this fraction (`mix_counts`). For the `choose: all`
sources planted records are EXTRA records beyond the real counts, so exactly the official number
survives. At small fractions the planted kinds shrink with `few` (at least one of each).
"""

from __future__ import annotations

import io
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from datamix.schema import DropReason
from datamix.synth.scene import SHORTUUID, derive

_T = TypeVar("_T", bound=Hashable)

# real raw figures (docs/sources.md sections 0.3, 1-11, P12)
REAL = {
    "coco_train2017": 118_287,
    "llava_instruct_records": 157_712,
    "llava_instruct_images": 81_479,
    "sharegpt_records": 94_145,
    "vqav2_images": 82_783,
    "vqav2_questions": 443_757,
    "gqa_images": 72_140,
    "gqa_questions": 943_000,
    "gqa_image_files": 148_854,
    "okvqa_images": 8_998,
    "okvqa_questions": 9_009,
    "aokvqa_images": 16_540,
    "aokvqa_questions": 17_056,
    "aokvqa_val": 1_145,
    "aokvqa_test": 6_702,
    "ocrvqa_books": 207_572,
    "ocrvqa_train": 166_041,
    "textcaps_images": 21_953,
    "textcaps_captions": 109_765,
    "textvqa_image_files": 25_119,
    "vg_images": 108_077,
    "vg_regions": 5_410_000,
    "vg_100k": 64_346,
    "refcoco_images": 24_407,
    "refcoco_unc_images": 16_994,
    "refcocog_images": 21_899,
    "refcoco_unc_eval_images": 3_000,
    "refcocog_eval_images": 3_900,
    "llava_pretrain_records": 558_128,
}

HARDLINK_LIMIT = 60_000  # ext4 allows 65,000 links per inode
FLUSH = 1 << 22
BASE_DIR = ".synth_volume_base"  # under ROOT: the few files every image path links to

# aspect ratios of the tiny files and the "real" sizes the annotations claim for them
COCO_SIZES = ((640, 480), (480, 640), (640, 427), (427, 640), (640, 640), (500, 375))
_OTHER_SIZES = ((800, 600), (600, 800), (1024, 768), (768, 1024), (500, 500), (336, 336))


def js(s: str) -> str:
    """A JSON string literal (hand-built JSON is what makes gigabytes fast to write)."""
    return json.dumps(s, ensure_ascii=False)


class Out:
    """Buffered text writer for hand-built JSON; the file appears under its name only when closed."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        self.f = open(self.tmp, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
        self.parts: list[str] = []
        self.size = 0

    def w(self, s: str) -> None:
        self.parts.append(s)
        self.size += len(s)
        if self.size >= FLUSH:
            self.f.write("".join(self.parts))
            self.parts, self.size = [], 0

    def close(self) -> int:
        self.f.write("".join(self.parts))
        self.f.close()
        os.replace(self.tmp, self.path)
        return self.path.stat().st_size


def tiny_jpeg(w: int, h: int, color: tuple[int, int, int], stripes: bool = False) -> bytes:
    im = Image.new("RGB", (w, h), color)
    if stripes:  # a little structure so the cover is not a flat colour
        px = im.load()
        assert px is not None
        for y in range(0, h, 3):
            for x in range(w):
                px[x, y] = (20, 20, 20)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def aspect_key(w: int, h: int) -> str:
    return f"img{round(16 * w / max(w, h))}x{round(16 * h / max(w, h))}"


class Images:
    """Image paths in the LLaVA layout as hard links to a few tiny base files."""

    def __init__(self, root: Path, base: Path):
        self.root = str(root)
        self.base = base
        self.data: dict[str, bytes] = {}
        self.cur: dict[str, list[Any]] = {}  # key -> [path, links]
        self.dirs: set[str] = set()
        self.n = 0
        self.copies = 0

    def register(self, key: str, data: bytes) -> None:
        self.data[key] = data

    def _base(self, key: str) -> list[Any]:
        entry = self.cur.get(key)
        if entry is None or entry[1] >= HARDLINK_LIMIT:
            self.copies += 1
            self.base.mkdir(parents=True, exist_ok=True)
            path = str(self.base / f"{key}-{self.copies}.jpg")
            with open(f"{path}.tmp", "wb") as f:  # a new inode: links of an earlier run stay as they are
                f.write(self.data[key])
            os.replace(f"{path}.tmp", path)
            entry = [path, 0]
            self.cur[key] = entry
        return entry

    def place(self, rel: str, key: str) -> None:
        d = rel.rpartition("/")[0]
        if d not in self.dirs:
            os.makedirs(f"{self.root}/{d}", exist_ok=True)
            self.dirs.add(d)
        entry = self._base(key)
        target = f"{self.root}/{rel}"
        try:
            os.link(entry[0], target)
        except FileExistsError:  # an earlier synth run's file
            os.unlink(target)
            os.link(entry[0], target)
        entry[1] += 1
        self.n += 1


WORDS = (
    "the a man woman dog cat bus car train table chair street sign building tree sky cloud person people "
    "child player ball kite plate pizza sandwich cake bowl cup bottle laptop phone book clock window door "
    "wall floor road field grass water beach boat bird horse sheep cow elephant giraffe zebra bear red blue "
    "green yellow white black brown orange purple large small tall short old young left right top bottom "
    "front back near behind next to on in under over holding wearing sitting standing walking riding eating "
    "looking playing carrying parked crowded empty sunny cloudy wooden metal glass plastic bright dark "
    "several two three many some one image picture scene photo view background foreground corner center side"
).split()
_ML_WORDS = ("café", "naïve", "straße", "日本語", "привет", "mañana", "déjà", "中文", "한국어", "ünïcødé")
SHORT_ANSWERS = (
    "yes no 2 3 1 red blue white black green left right table dog cat man woman tennis pizza bus train "
    "water wood metal grass kitchen street sunny cloudy frisbee"
).split()


def sentence(rng: random.Random, lo: int, hi: int, ml: bool = False) -> str:
    n = rng.randint(lo, hi)
    words = [rng.choice(WORDS) for _ in range(n)]
    if ml and rng.random() < 0.3:
        words[rng.randrange(n)] = rng.choice(_ML_WORDS)
    s = " ".join(words)
    return s[0].upper() + s[1:] + "."


def paragraph(rng: random.Random, chars: int, ml: bool = False) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        s = sentence(rng, 6, 18, ml)
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def shortuuid(rng: random.Random, n: int = 22) -> str:
    return "".join(rng.choice(SHORTUUID) for _ in range(n))


class Bulk:
    """The volume profile's writer state, shared by the sources' `write_volume` functions."""

    def __init__(self, root: Path, fraction: float, seed: int = 0):
        self.root = root
        self.fraction = fraction
        self.seed = seed
        self.raw = root / "raw"
        self.images = Images(root / "images", root / BASE_DIR)
        self.planted: dict[str, Counter[DropReason]] = {}
        self.expected_items: dict[str, int] = {}
        self.mix_counts: dict[str, int] = {}  # what llava15_665k / 558k must select at this fraction
        self.notes: dict[str, str] = {}
        for w, h in (*COCO_SIZES, *_OTHER_SIZES):
            k = aspect_key(w, h)
            if k not in self.images.data:
                kw, kh = (int(v) for v in k[3:].split("x"))
                self.images.register(k, tiny_jpeg(kw, kh, (120, 160, 200)))
        # OCR-VQA covers: decodable JPEG, GIF and PNG bytes under .jpg names, truncated, empty
        cover = Image.new("RGB", (20, 30), (230, 220, 200))
        self.images.register("cover", tiny_jpeg(20, 30, (230, 220, 200), stripes=True))
        gif, png = io.BytesIO(), io.BytesIO()
        cover.convert("P").save(gif, "GIF")
        cover.save(png, "PNG")
        self.images.register("cover_gif", gif.getvalue())
        self.images.register("cover_png", png.getvalue())
        full = self.images.data["cover"]
        self.images.register("cover_truncated", full[: len(full) // 2])
        self.images.register("empty", b"")
        # text pools every source draws its filler from
        rng = self.rng("pools")
        self.q_pool = [sentence(rng, 4, 10)[:-1] + "?" for _ in range(3000)]
        self.a_pool = [paragraph(rng, rng.randint(60, 900)) for _ in range(3000)]
        self.long_pool = [paragraph(rng, rng.randint(500, 1500)) for _ in range(800)]
        self.short_answers = SHORT_ANSWERS
        # the COCO train2017 pictures (ids as in real COCO), in a seeded order; train2014 = a prefix
        rng = self.rng("coco")
        n_pool = self.n("coco_train2017")
        self.coco_pool: list[int] = rng.sample(range(9, 581_930), n_pool + 100)[:n_pool]
        self.coco_ghosts = iter(range(600_000, 700_000, 7))  # never on disk
        self.train2014 = self.coco_pool[: self.n("vqav2_images")]
        self._coco_placed = False
        self._vg_ids: list[int] | None = None

    def n(self, key: str) -> int:
        """A real raw figure at this fraction (at least 1)."""
        return max(1, round(REAL[key] * self.fraction))

    def sc(self, value: int) -> int:
        """Any count at this fraction (at least 1)."""
        return max(1, round(value * self.fraction))

    def few(self, k: int) -> int:
        """How many of one kind of planted record: k from fraction 0.01 up, fewer below (at least 1)."""
        return max(1, min(k, round(k * self.fraction * 100)))

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(derive(self.seed, "volume", *parts))

    def expect_drop(self, source: str, reason: DropReason, k: int = 1) -> None:
        """Tally `k` planted records that the reader must drop with `reason`."""
        self.planted.setdefault(source, Counter())[reason] += k

    def out(self, source: str, name: str) -> Out:
        return Out(self.raw / source / name)

    def finish(self, source: str, files: dict[Out, str], items: int, samples: int | None = None) -> None:
        """End each open file with its closing text and close it; record the items normalize must
        make of `source` and the samples the recipes select (default: one per item)."""
        for out, tail in files.items():
            out.w(tail)
            out.close()
        self.expected_items[source] = items
        self.mix_counts[source] = items if samples is None else samples

    def coco_images(self, rng: random.Random, n_img: int, pool: list[int] | None = None) -> list[int]:
        """Link the COCO pictures (`place_coco`) and draw `n_img` of `pool` (default: the train2017
        pool), in id order."""
        self.place_coco()
        return sorted(rng.sample(self.coco_pool if pool is None else pool, n_img))

    @staticmethod
    def twice(rng: random.Random, n_img: int, n_q: int) -> set[int]:
        """Which of `n_img` pictures get a second question, for `n_q` questions in all."""
        return set(rng.sample(range(n_img), max(0, n_q - n_img)))

    def place_coco(self) -> None:
        """Link every COCO train2017 picture (once, whichever COCO source asks first)."""
        if self._coco_placed:
            return
        self._coco_placed = True
        for i in self.coco_pool:
            self.images.place(f"coco/train2017/{i:012d}.jpg", aspect_key(*self.coco_size(i)))

    @staticmethod
    def coco_size(image_id: int) -> tuple[int, int]:
        return COCO_SIZES[image_id % len(COCO_SIZES)]

    def vg_ids_all(self) -> list[int]:
        """Visual Genome image ids (GQA reuses half of its pictures from them)."""
        if self._vg_ids is None:
            self._vg_ids = sorted(self.rng("vg-ids").sample(range(1, 2_417_998), self.n("vg_images")))
        return self._vg_ids

    def answers10(self, rng: random.Random, stem: bool = False) -> list[tuple[str, str]]:
        """400 (main answer, JSON array of 10 annotator answers) pairs, VQAv2 or OK-VQA (stem) style."""
        out = []
        for _ in range(400):
            main = rng.choice(self.short_answers)
            answers = []
            for j in range(10):
                a = main if rng.random() < 0.7 else rng.choice(self.short_answers)
                conf = rng.choice(("yes", "yes", "yes", "maybe", "no"))
                if stem:
                    answers.append(
                        f'{{"answer_id": {j + 1}, "raw_answer": "{a}", "answer_confidence": "{conf}", '
                        f'"answer": "{a.rstrip("s")}"}}'
                    )
                else:
                    answers.append(
                        f'{{"answer": "{a}", "answer_confidence": "{conf}", "answer_id": {j + 1}}}'
                    )
            out.append((main, "[" + ", ".join(answers) + "]"))
        return out


def distinct(n: int, draw: Callable[[], _T]) -> list[_T]:
    """`n` distinct values of `draw()` in the order first drawn (a repeat is drawn again)."""
    out: dict[_T, None] = {}
    while len(out) < n:
        out.setdefault(draw(), None)
    return list(out)
