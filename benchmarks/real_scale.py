"""End to end at real scale: raw files of all 11 sources in their real formats and official names,
at the real sizes (82,783 VQAv2 images with 443,757 questions, 72,140 GQA images with 943,000
questions, 5.4 M VG regions, 558,128 LCS records, ...), then `datamix normalize` and
`datamix build --recipe llava15_665k` / `llava15_pretrain_558k`, each in a child process measured for
wall time and peak RSS; checks that the mixes land exactly on the official per-source counts
(665,298 and 558,128) and that every planted bad record shows up in the drops tables.

    python benchmarks/real_scale.py --work DIR [--scale 1.0] [--out bench-results.json] [--keep]

What is generated (deterministic; the same --scale gives byte-identical raw files):

- annotation files written directly as JSON text (or a protocol-2 pickle for RefCOCO refs), with
  the fields of sources.md sections 1-11 and sizes close to the real files (~4 GB at scale 1);
- images in the LLaVA layout as hard links to a handful of tiny JPEGs (one per aspect ratio; a new
  base file every 60,000 links, below ext4's per-inode limit), so ~1.1 M image paths cost seconds
  and almost no disk. OCR-VQA covers are real decodable JPEGs (plus planted GIF/PNG bytes, which are
  kept, and truncated/empty/missing covers, which are dropped). Widths/heights used for boxes come
  from the annotations (VG image_data.json, RefCOCO instances.json, TextCaps), as in the real data;
- planted bad records (missing images, missing fields, wrong types, bad boxes, orphan/duplicate
  annotations, ...). For the `choose: all` sources of llava15_665k (llava_instruct, vqav2, gqa,
  okvqa, aokvqa, textcaps) and for llava_pretrain they are EXTRA records beyond the real counts, so
  exactly the official number survives; for the `choose: N` sources they may sit inside the counts.
  Every planted record's expected drop reason is tallied and compared with `<source>.stats.json`.

Measurements: each step is one child process reaped with os.wait4, whose rusage covers the child and
the workers it reaped (ru_maxrss = the largest of them). Normalize runs twice: once one source per
process, two at a time (per-source seconds and peak RSS, the same parallelism as --jobs 2), then
`datamix normalize --root DIR --jobs 2 --force` as the headline figure.

At --scale below 1 the recipes are copied under DIR/recipes/ with their `choose: N` and `expect:`
counts scaled the same way, so the count check stays exact at any scale.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import random
import shutil
import string
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MARKER = ".real_scale_bench"
SOURCES = (
    "llava_instruct", "sharegpt", "vqav2", "gqa", "okvqa", "aokvqa", "ocrvqa", "textcaps", "vg", "refcoco",
    "llava_pretrain",
)

# real raw figures (sources.md sections 0.3, 1-11, P12)
REAL = {
    "coco_train2017": 118_287,
    "llava_instruct_records": 157_712, "llava_instruct_images": 81_479,
    "sharegpt_records": 94_145,
    "vqav2_images": 82_783, "vqav2_questions": 443_757,
    "gqa_images": 72_140, "gqa_questions": 943_000, "gqa_image_files": 148_854,
    "okvqa_images": 8_998, "okvqa_questions": 9_009,
    "aokvqa_images": 16_540, "aokvqa_questions": 17_056, "aokvqa_val": 1_145, "aokvqa_test": 6_702,
    "ocrvqa_books": 207_572, "ocrvqa_train": 166_041,
    "textcaps_images": 21_953, "textcaps_captions": 109_765, "textvqa_image_files": 25_119,
    "vg_images": 108_077, "vg_regions": 5_410_000, "vg_100k": 64_346,
    "refcoco_images": 24_407, "refcoco_unc_images": 16_994, "refcocog_images": 21_899,
    "refcoco_unc_eval_images": 3_000, "refcocog_eval_images": 3_900,
    "llava_pretrain_records": 558_128,
}

HARDLINK_LIMIT = 60_000  # ext4 allows 65,000 links per inode
FLUSH = 1 << 22


# ------------------------------------------------------------------------------------------------
# small helpers


def js(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


class Out:
    """Buffered text writer for hand-built JSON."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = open(path, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
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
        return self.path.stat().st_size


def tiny_jpeg(w: int, h: int, color: tuple[int, int, int], stripes: bool = False) -> bytes:
    im = Image.new("RGB", (w, h), color)
    if stripes:  # a little structure so the cover is not a flat colour
        px = im.load()
        for y in range(0, h, 3):
            for x in range(w):
                px[x, y] = (20, 20, 20)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue()


class Images:
    """Image paths in the LLaVA layout as hard links to a few tiny base files."""

    def __init__(self, root: Path, base: Path):
        self.root = str(root)
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
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
            path = str(self.base / f"{key}-{self.copies}.jpg")
            with open(path, "wb") as f:
                f.write(self.data[key])
            entry = [path, 0]
            self.cur[key] = entry
        return entry

    def place(self, rel: str, key: str) -> None:
        d = rel.rpartition("/")[0]
        if d not in self.dirs:
            os.makedirs(f"{self.root}/{d}", exist_ok=True)
            self.dirs.add(d)
        entry = self._base(key)
        os.link(entry[0], f"{self.root}/{rel}")
        entry[1] += 1
        self.n += 1


# aspect ratios of the tiny files and the "real" sizes the annotations claim for them
COCO_SIZES = ((640, 480), (480, 640), (640, 427), (427, 640), (640, 640), (500, 375))


def aspect_key(w: int, h: int) -> str:
    return f"img{round(16 * w / max(w, h))}x{round(16 * h / max(w, h))}"


_WORDS = (
    "the a man woman dog cat bus car train table chair street sign building tree sky cloud person people "
    "child player ball kite plate pizza sandwich cake bowl cup bottle laptop phone book clock window door "
    "wall floor road field grass water beach boat bird horse sheep cow elephant giraffe zebra bear red blue "
    "green yellow white black brown orange purple large small tall short old young left right top bottom "
    "front back near behind next to on in under over holding wearing sitting standing walking riding eating "
    "looking playing carrying parked crowded empty sunny cloudy wooden metal glass plastic bright dark "
    "several two three many some one image picture scene photo view background foreground corner center side"
).split()
_ML_WORDS = ("café", "naïve", "straße", "日本語", "привет", "mañana", "déjà", "中文", "한국어", "ünïcødé")
_SPLIT_WORDS = ("code", "function", "python", "return", "value", "list", "loop", "error", "data", "model")


def sentence(rng: random.Random, lo: int, hi: int, ml: bool = False) -> str:
    n = rng.randint(lo, hi)
    words = [rng.choice(_WORDS) for _ in range(n)]
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
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    return "".join(rng.choice(alphabet) for _ in range(n))


# ------------------------------------------------------------------------------------------------
# the generator


class Gen:
    def __init__(self, work: Path, scale: float, seed: int = 0):
        self.work = work
        self.scale = scale
        self.seed = seed
        self.raw = work / "raw"
        self.images = Images(work / "images", work / "_base_images")
        self.planted: dict[str, Counter[str]] = {s: Counter() for s in SOURCES}
        self.expected_items: dict[str, int] = {}
        self.mix_counts: dict[str, int] = {}  # what llava15_665k / 558k must select at this scale
        self.gen_seconds: dict[str, float] = {}
        self.raw_bytes: dict[str, int] = {}
        self.notes: dict[str, str] = {}
        for w, h in set(COCO_SIZES) | {(800, 600), (600, 800), (1024, 768), (768, 1024), (500, 500), (336, 336)}:
            k = aspect_key(w, h)
            if k not in self.images.data:
                self.images.register(k, tiny_jpeg(int(k[3:].split("x")[0]), int(k.split("x")[1]), (120, 160, 200)))
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

    def n(self, key: str) -> int:
        return max(1, round(REAL[key] * self.scale))

    def sc(self, value: int) -> int:
        return max(1, round(value * self.scale))

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(f"{self.seed}/" + "/".join(map(str, parts)))

    def plant(self, source: str, reason: str, k: int = 1) -> None:
        self.planted[source][reason] += k

    def out(self, source: str, name: str) -> Out:
        return Out(self.raw / source / name)

    # --------------------------------------------------------------------------------------------
    def run(self) -> None:
        t0 = time.perf_counter()
        self._pools()
        self._coco_pool()
        for name in SOURCES:
            t = time.perf_counter()
            getattr(self, f"gen_{name}")()
            self.gen_seconds[name] = time.perf_counter() - t
            d = self.raw / name
            self.raw_bytes[name] = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        self.gen_seconds["total"] = time.perf_counter() - t0

    def _pools(self) -> None:
        rng = self.rng("pools")
        self.q_pool = [sentence(rng, 4, 10)[:-1] + "?" for _ in range(3000)]
        self.a_pool = [paragraph(rng, rng.randint(60, 900)) for _ in range(3000)]
        self.long_pool = [paragraph(rng, rng.randint(500, 1500)) for _ in range(800)]
        self.short_answers = ["yes", "no", "2", "3", "1", "red", "blue", "white", "black", "green", "left", "right",
                              "table", "dog", "cat", "man", "woman", "tennis", "pizza", "bus", "train", "water",
                              "wood", "metal", "grass", "kitchen", "street", "sunny", "cloudy", "frisbee"]

    def _coco_pool(self) -> None:
        rng = self.rng("coco")
        n_pool = self.n("coco_train2017")
        ids = rng.sample(range(9, 581_930), n_pool + 100)
        self.coco_pool = ids[:n_pool]  # shuffled order
        self.coco_ghosts = iter(range(600_000, 700_000, 7))  # never on disk
        self.train2014 = self.coco_pool[: self.n("vqav2_images")]
        for i in self.coco_pool:
            w, h = COCO_SIZES[i % len(COCO_SIZES)]
            self.images.place(f"coco/train2017/{i:012d}.jpg", aspect_key(w, h))

    @staticmethod
    def coco_size(image_id: int) -> tuple[int, int]:
        return COCO_SIZES[image_id % len(COCO_SIZES)]

    # --------------------------------------------------------------------------------------------
    # 1. LLaVA-Instruct-150K
    def gen_llava_instruct(self) -> None:
        src = "llava_instruct"
        rng = self.rng(src)
        n_rec, n_img = self.n("llava_instruct_records"), self.n("llava_instruct_images")
        images = sorted(rng.sample(self.coco_pool, n_img))
        qf = [js("<image>\n" + q) for q in self.q_pool]
        qb = [js(q + "\n<image>") for q in self.q_pool]
        qp = [js(q) for q in self.q_pool]
        ap = [js(a) for a in self.a_pool]
        lp = [js(a) for a in self.long_pool]
        o = self.out(src, "llava_instruct_150k.json")
        o.w("[")

        def turns_json(r: random.Random) -> str:
            kind = r.random()
            first = (qf if r.random() < 0.5 else qb)[r.randrange(len(qf))]
            if kind < 0.37:  # conversation_58k: several turns
                k = r.randint(2, 5)
                parts = [f'{{"from": "human", "value": {first}}}', f'{{"from": "gpt", "value": {ap[r.randrange(len(ap))]}}}']
                for _ in range(k - 1):
                    parts.append(f'{{"from": "human", "value": {qp[r.randrange(len(qp))]}}}')
                    parts.append(f'{{"from": "gpt", "value": {ap[r.randrange(len(ap))]}}}')
                return ", ".join(parts)
            pool = lp if kind < 0.52 else ap  # detail_23k / complex_reasoning_77k
            return f'{{"from": "human", "value": {first}}}, {{"from": "gpt", "value": {pool[r.randrange(len(pool))]}}}'

        bad: list[str] = []
        for _ in range(10):  # image not on disk
            g = next(self.coco_ghosts)
            bad.append(f'{{"id": "{g:012d}", "image": "{g:012d}.jpg", "conversations": [{turns_json(rng)}]}}')
            self.plant(src, "image_missing")
        for _ in range(10):
            i = rng.choice(images)
            bad.append(f'{{"id": "{i:012d}", "image": "{i:012d}.jpg"}}')
            self.plant(src, "missing_field")
        for _ in range(10):
            i = rng.choice(images)
            bad.append(f'{{"id": "{i:012d}", "image": "{i:012d}.jpg", "conversations": "What is this?"}}')
            self.plant(src, "bad_type")
        for _ in range(5):
            i = rng.choice(images)
            bad.append(f'{{"id": "{i:012d}", "image": "{i:012d}.jpg", "conversations": [{{"from": "gpt", "value": "Hi"}}, '
                       f'{{"from": "human", "value": "<image>\\nWhat?"}}]}}')
            self.plant(src, "not_alternating")
        for _ in range(5):
            i = rng.choice(images)
            bad.append(f'{{"id": [{i}], "image": "{i:012d}.jpg", "conversations": [{turns_json(rng)}]}}')
            self.plant(src, "bad_type")
        for _ in range(5):
            i = rng.choice(images)
            bad.append(f'{{"id": "{i:012d}", "image": "coco/train2017/{i:012d}.jpg", "conversations": [{turns_json(rng)}]}}')
            self.plant(src, "bad_value")
        bad_at = {p: b for p, b in zip(sorted(rng.sample(range(1, n_rec), len(bad))), bad, strict=True)}
        first = True
        for k in range(n_rec):
            if k in bad_at:
                o.w(",\n" + bad_at[k])
            i = images[k % n_img]  # 157,712 records over 81,479 images: ids repeat
            o.w(("" if first else ",\n") + f'{{"id": "{i:012d}", "image": "{i:012d}.jpg", "conversations": [{turns_json(rng)}]}}')
            first = False
        o.w("]")
        o.close()
        self.expected_items[src] = n_rec
        self.mix_counts[src] = n_rec

    # --------------------------------------------------------------------------------------------
    # 2. ShareGPT
    def gen_sharegpt(self) -> None:
        src = "sharegpt"
        rng = self.rng(src)
        n_rec = self.n("sharegpt_records")
        pool = [js(paragraph(rng, rng.randint(100, 3200), ml=True)) for _ in range(3000)]
        qs = [js(sentence(rng, 5, 25, ml=True)[:-1] + "?") for _ in range(2000)]
        alnum = string.ascii_letters + string.digits
        bad_kinds = ["leading_gpt", "not_alternating", "empty_turn", "image_token", "missing_conv", "unknown_role",
                     "gpt_only", "trailing_human"]
        per = 40 if n_rec > 20_000 else 4
        slots = rng.sample(range(1, n_rec), per * len(bad_kinds))
        kind_at = {p: bad_kinds[j // per] for j, p in enumerate(slots)}
        o = self.out(src, "ShareGPT_V3_unfiltered_cleaned_split.json")
        o.w("[")
        base, chunk = "", 0
        valid = 0
        for k in range(n_rec):
            if chunk == 0 or rng.random() < 0.5:  # 94,145 entries of ~50K base conversations
                base, chunk = "".join(rng.choice(alnum) for _ in range(7)), 0
            rid = f"{base}_{chunk}"
            chunk += 1
            n_pairs = rng.randint(1, 7)
            turns = []
            for _ in range(n_pairs):
                turns.append(f'{{"from": "human", "value": {qs[rng.randrange(len(qs))]}}}')
                turns.append(f'{{"from": "gpt", "value": {pool[rng.randrange(len(pool))]}}}')
            kind = kind_at.get(k)
            model = ', "model": ""' if rng.random() < 0.2 else ""
            if kind == "leading_gpt":
                turns.insert(0, '{"from": "gpt", "value": "Hello! How can I help you today?"}')
                valid += 1
            elif kind == "trailing_human":
                turns.append(f'{{"from": "human", "value": {qs[0]}}}')
                valid += 1
            elif kind == "not_alternating":
                turns.insert(1, '{"from": "human", "value": "Hello?"}')
                self.plant(src, "not_alternating")
            elif kind == "empty_turn":
                turns[1] = '{"from": "gpt", "value": ""}'
                self.plant(src, "empty_turn")
            elif kind == "image_token":
                turns[0] = '{"from": "human", "value": "What does the <image> tag do in HTML?"}'
                self.plant(src, "image_token_in_text")
            elif kind == "unknown_role":
                turns[0] = '{"from": "system", "value": "You are ChatGPT."}'
                self.plant(src, "unknown_role")
            elif kind == "gpt_only":
                turns = ['{"from": "gpt", "value": "I am sorry, I cannot do that."}']
                self.plant(src, "empty_conversation")
            else:
                valid += int(kind is None)
            if kind == "missing_conv":
                o.w(("" if k == 0 else ",\n") + f'{{"id": "{rid}"{model}}}')
                self.plant(src, "missing_field")
            else:
                o.w(("" if k == 0 else ",\n") + f'{{"id": "{rid}"{model}, "conversations": [{", ".join(turns)}]}}')
        o.w("]")
        o.close()
        self.expected_items[src] = valid
        self.mix_counts[src] = self.sc(40_688)

    # --------------------------------------------------------------------------------------------
    # 3. VQAv2
    def _answers10(self, rng: random.Random, field: str = "answer", stem: bool = False) -> list[tuple[str, str]]:
        out = []
        for _ in range(400):
            main = rng.choice(self.short_answers)
            answers = []
            for j in range(10):
                a = main if rng.random() < 0.7 else rng.choice(self.short_answers)
                conf = rng.choice(("yes", "yes", "yes", "maybe", "no"))
                if stem:
                    answers.append(f'{{"answer_id": {j + 1}, "raw_answer": "{a}", "answer_confidence": "{conf}", "answer": "{a.rstrip("s")}"}}')
                else:
                    answers.append(f'{{"answer": "{a}", "answer_confidence": "{conf}", "answer_id": {j + 1}}}')
            out.append((main, "[" + ", ".join(answers) + "]"))
        return out

    _VQA_HEAD = ('"info": {"description": "This is v2.0 of the VQA dataset.", "url": "http://visualqa.org", '
                 '"version": "2.0", "year": 2017, "contributor": "VQA Team", "date_created": "2017-04-26 17:07:13"}, '
                 '"license": {"url": "http://creativecommons.org/licenses/by/4.0/", '
                 '"name": "Creative Commons Attribution 4.0 International License"}, "data_subtype": "train2014", '
                 '"data_type": "mscoco"')

    def gen_vqav2(self) -> None:
        src = "vqav2"
        rng = self.rng(src)
        n_img, n_q = self.n("vqav2_images"), self.n("vqav2_questions")
        images = sorted(self.train2014)
        assert len(images) == n_img
        per, rem = divmod(n_q, n_img)
        ans = self._answers10(rng)
        qtypes = ("what color is the", "is the", "how many", "what is the", "are there", "what")
        qo = self.out(src, "v2_OpenEnded_mscoco_train2014_questions.json")
        ao = self.out(src, "v2_mscoco_train2014_annotations.json")
        qo.w("{" + self._VQA_HEAD + ', "task_type": "Open-Ended", "questions": [')
        ao.w("{" + self._VQA_HEAD + ', "annotations": [')
        qsep = asep = ""
        qp = [js(q) for q in self.q_pool]

        def ann(qid: int, image_id: int, with_mca: bool = True) -> str:
            main, arr = ans[(qid * 2654435761) % len(ans)]
            mca = f'"multiple_choice_answer": "{main}", ' if with_mca else ""
            return (f'{{"question_type": "{qtypes[qid % len(qtypes)]}", {mca}"answers": {arr}, '
                    f'"image_id": {image_id}, "answer_type": "other", "question_id": {qid}}}')

        extra_imgs = set(rng.sample(range(n_img), rem))
        for idx, image_id in enumerate(images):
            k = per + (1 if idx in extra_imgs else 0)
            for j in range(k):
                qid = image_id * 1000 + j
                qo.w(f'{qsep}{{"image_id": {image_id}, "question": {qp[qid % len(qp)]}, "question_id": {qid}}}')
                ao.w(asep + ann(qid, image_id))
                qsep = asep = ", "
        # planted, all EXTRA questions on good images (or extra images)
        victims = rng.sample(images, 60)
        for image_id in victims[:10]:  # question without its text (and no annotation)
            qo.w(f', {{"image_id": {image_id}, "question_id": {image_id * 1000 + 900}}}')
            self.plant(src, "missing_field")
        for image_id in victims[10:20]:  # question id as a string
            qo.w(f', {{"image_id": {image_id}, "question": "Why?", "question_id": "q{image_id}"}}')
            self.plant(src, "bad_type")
        for image_id in victims[20:30]:  # annotation of a question that does not exist
            ao.w(", " + ann(image_id * 1000 + 901, image_id))
            self.plant(src, "orphan_annotation")
        for image_id in victims[30:40]:  # annotation without multiple_choice_answer -> its question unannotated
            qid = image_id * 1000 + 902
            qo.w(f', {{"image_id": {image_id}, "question": "What is it?", "question_id": {qid}}}')
            ao.w(", " + ann(qid, image_id, with_mca=False))
            self.plant(src, "missing_field")
            self.plant(src, "missing_annotation")
        for image_id in victims[40:45]:  # a question listed twice
            qo.w(f', {{"image_id": {image_id}, "question": "Again?", "question_id": {image_id * 1000}}}')
            self.plant(src, "duplicate")
        for _ in range(5):  # an image that is not on disk
            g = next(self.coco_ghosts)
            for j in range(3):
                qo.w(f', {{"image_id": {g}, "question": "Is it there?", "question_id": {g * 1000 + j}}}')
                ao.w(", " + ann(g * 1000 + j, g))
            self.plant(src, "image_missing")
        qo.w("]}")
        ao.w("]}")
        qo.close()
        ao.close()
        self.expected_items[src] = n_img
        self.mix_counts[src] = n_img

    # --------------------------------------------------------------------------------------------
    # 4. GQA
    def gen_gqa(self) -> None:
        src = "gqa"
        rng = self.rng(src)
        n_img, n_q, n_files = self.n("gqa_images"), self.n("gqa_questions"), self.n("gqa_image_files")
        n_prefixed = max(1, n_img // 100)
        vg_shared = rng.sample(self.vg_ids_all(), min(len(self.vg_ids_all()), n_img // 2))
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
            self.images.place(f"gqa/images/{i}.jpg", aspect_key(*((800, 600) if int(i.lstrip("n")) % 3 else (600, 800))))
        for j in range(n_files - n_img):  # the rest of the 148,854 GQA pictures (not in train_balanced)
            self.images.place(f"gqa/images/{9_000_000 + j}.jpg", aspect_key(800, 600))
        objs = ("table", "chair", "man", "woman", "shirt", "car", "tree", "sky", "plate", "window", "dog", "bag")
        qpool = [js(f"{q} ({o})?") for q in ("Is the object on the left", "What is on the", "Which color is the",
                                                "Is there a", "Who is wearing the", "What is the material of the")
                 for o in objs]
        o = self.out(src, "train_balanced_questions.json")
        o.w("{")
        tail_groups = ['"groups": {"global": null, "local": "06-sky_dark"}', '"groups": {"global": "color", "local": "10c-table_color"}']
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

        answers = [js(a) for a in self.short_answers]
        for q in range(n_q):
            h = (q * 2654435761) & 0xFFFFFFFF
            o.w(sep + record(f"{q * 10 + 2_000_000:08d}", f'"{ids[q % n_img]}"', qpool[h % len(qpool)],
                             answers[(h >> 7) % len(answers)], h))
            sep = ", "
        # planted (EXTRA questions; ids past the real ones)
        nq = 99_000_000
        for k in range(10):
            o.w(", " + record(f"{nq + k}", f'"{ids[k]}"', qpool[0], None, k))
            self.plant(src, "missing_field")
        for k in range(10, 20):
            o.w(", " + record(f"{nq + k}", f'"{ids[k]}"', "17", answers[0], k))
            self.plant(src, "bad_type")
        for k in range(20, 30):
            o.w(", " + record(f"{nq + k}", f'"{ids[k]}"', qpool[0], '""', k))
            self.plant(src, "bad_value")
        for k in range(30, 35):
            o.w(", " + record(f"{nq + k}", f'["{ids[k]}"]', qpool[0], answers[0], k))
            self.plant(src, "bad_type")
        for k in range(35, 40):  # an image that is not on disk, two questions
            o.w(", " + record(f"{nq + k}", f'"{9_900_000 + k}"', qpool[0], answers[0], k))
            o.w(", " + record(f"{nq + 100 + k}", f'"{9_900_000 + k}"', qpool[1], answers[1], k))
            self.plant(src, "image_missing")
        o.w("}")
        o.close()
        self.expected_items[src] = n_img
        self.mix_counts[src] = n_img

    _vg_ids: list[int] | None = None

    def vg_ids_all(self) -> list[int]:
        if self._vg_ids is None:
            self._vg_ids = sorted(self.rng("vg-ids").sample(range(1, 2_417_998), self.n("vg_images")))
        return self._vg_ids

    # --------------------------------------------------------------------------------------------
    # 5. OK-VQA
    def gen_okvqa(self) -> None:
        src = "okvqa"
        rng = self.rng(src)
        n_img, n_q = self.n("okvqa_images"), self.n("okvqa_questions")
        images = sorted(rng.sample(self.train2014, n_img))
        twice = set(rng.sample(range(n_img), max(0, n_q - n_img)))
        ans = self._answers10(rng, stem=True)
        head = ('"license": {"url": "http://creativecommons.org/licenses/by/4.0/", "name": "Creative Commons Attribution 4.0 '
                'International License"}, "data_subtype": "train2014", "question_types": {"one": "Vehicles and Transportation", '
                '"two": "Brands, Companies and Products", "other": "Other"}, "info": {"description": "This is v1.1 of the OK-VQA '
                'dataset.", "url": "http://okvqa.allenai.org", "version": "1.1", "year": 2019, "contributor": "OK-VQA Team", '
                '"date_created": "2019-05-23"}, "data_type": "mscoco"')
        qo, ao = self.out(src, "OpenEnded_mscoco_train2014_questions.json"), self.out(src, "mscoco_train2014_annotations.json")
        qo.w("{" + head + ', "task_type": "Open-Ended", "questions": [')
        ao.w("{" + head + ', "annotations": [')
        qp = [js(q) for q in self.q_pool]
        sep = ""

        def ann(qid: int, image_id: int, answers: bool = True) -> str:
            arr = f'"answers": {ans[qid % len(ans)][1]}, ' if answers else ""
            return (f'{{"image_id": {image_id}, "answer_type": "other", "question_type": "one", {arr}'
                    f'"question_id": {qid}, "confidence": 3}}')

        for idx, image_id in enumerate(images):
            for j in range(2 if idx in twice else 1):
                qid = image_id * 10 + j
                qo.w(f'{sep}{{"image_id": {image_id}, "question": {qp[qid % len(qp)]}, "question_id": {qid}}}')
                ao.w(sep + ann(qid, image_id))
                sep = ", "
        for image_id in rng.sample(images, 5):  # extra question whose annotation has no answers
            qid = image_id * 10 + 7
            qo.w(f', {{"image_id": {image_id}, "question": "What sport is this?", "question_id": {qid}}}')
            ao.w(", " + ann(qid, image_id, answers=False))
            self.plant(src, "missing_field")
            self.plant(src, "missing_annotation")
        for _ in range(5):
            g = next(self.coco_ghosts)
            qo.w(f', {{"image_id": {g}, "question": "What brand is this?", "question_id": {g * 10}}}')
            ao.w(", " + ann(g * 10, g))
            self.plant(src, "image_missing")
        qo.w("]}")
        ao.w("]}")
        qo.close()
        ao.close()
        self.expected_items[src] = n_img
        self.mix_counts[src] = n_img

    # --------------------------------------------------------------------------------------------
    # 6. A-OKVQA
    def gen_aokvqa(self) -> None:
        src = "aokvqa"
        rng = self.rng(src)
        n_img, n_q = self.n("aokvqa_images"), self.n("aokvqa_questions")
        images = sorted(rng.sample(self.coco_pool, n_img))
        twice = set(rng.sample(range(n_img), max(0, n_q - n_img)))
        qp = [js(q) for q in self.q_pool]
        words = self.short_answers

        def rec(split: str, image_id: int, *, choices: str | None = None, correct: int | None = None,
                qid: bool = True, answers: bool = True) -> str:
            h = rng.getrandbits(32)
            c = [words[(h >> k) % len(words)] for k in (0, 5, 10, 15)]
            if len(set(c)) < 4:
                c = [c[0], *(w for w in words if w != c[0])][:4]
            ch = choices if choices is not None else "[" + ", ".join(js(x) for x in c) + "]"
            cc = correct if correct is not None else h % 4
            qid_s = f'"question_id": "{shortuuid(rng)}", ' if qid else ""
            body = (f'{{"split": "{split}", "image_id": {image_id}, {qid_s}"question": {qp[h % len(qp)]}, '
                    f'"choices": {ch}')
            if answers:
                da = ", ".join(js(c[cc % 4 if k < 7 else (h >> k) % 4]) for k in range(10))
                body += (f', "correct_choice_idx": {cc}, "direct_answers": [{da}], "difficult_direct_answer": false, '
                         f'"rationales": [{js(self.a_pool[h % 3000][:120])}, {js(self.a_pool[(h >> 4) % 3000][:120])}, '
                         f'{js(self.a_pool[(h >> 8) % 3000][:120])}]')
            return body + "}"

        recs = []
        for idx, image_id in enumerate(images):
            for _ in range(2 if idx in twice else 1):
                recs.append(rec("train", image_id))
        bad = []
        for image_id in rng.sample(images, 20):
            bad.append(rec("val", image_id))  # wrong split inside the train file: skipped, not a drop
            bad.append(rec("test", image_id, answers=False))
        for image_id in rng.sample(images, 5):
            bad.append(rec("train", image_id, choices='"a, b, c, d"'))
            self.plant(src, "bad_type")
        for image_id in rng.sample(images, 5):
            bad.append(rec("train", image_id, correct=9))
            self.plant(src, "bad_value")
        for image_id in rng.sample(images, 5):
            bad.append(rec("train", image_id, qid=False))
            self.plant(src, "missing_field")
        for _ in range(3):
            bad.append(rec("train", next(self.coco_ghosts)))
            self.plant(src, "image_missing")
        for b in bad:
            recs.insert(rng.randint(1, len(recs)), b)
        o = self.out(src, "aokvqa_v1p0_train.json")
        o.w("[" + ", ".join(recs) + "]")
        o.close()
        for split, key in (("val", "aokvqa_val"), ("test", "aokvqa_test")):
            o = self.out(src, f"aokvqa_v1p0_{split}.json")
            o.w("[" + ", ".join(rec(split, rng.choice(self.coco_pool), answers=split == "val")
                                for _ in range(self.n(key))) + "]")
            o.close()
        self.expected_items[src] = n_img
        self.mix_counts[src] = 4 * n_img

    # --------------------------------------------------------------------------------------------
    # 7. OCR-VQA
    def gen_ocrvqa(self) -> None:
        src = "ocrvqa"
        rng = self.rng(src)
        n_books, n_train = self.n("ocrvqa_books"), self.n("ocrvqa_train")
        keys: list[str] = []
        seen: set[str] = set()
        while len(keys) < n_books:
            if rng.random() < 0.9:
                digits = [rng.randrange(10) for _ in range(9)]
                check = sum((10 - i) * d for i, d in enumerate(digits)) % 11
                check = (11 - check) % 11
                key = "".join(map(str, digits)) + ("X" if check == 10 else str(check))
                key = key.lstrip("0") or "0"  # leading zeros dropped (sources.md P3)
            else:
                key = "B00" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(7))
            if key not in seen:
                seen.add(key)
                keys.append(key)
        splits = [1] * n_train + [2] * ((n_books - n_train) // 2) + [3] * (n_books - n_train - (n_books - n_train) // 2)
        rng.shuffle(splits)
        train_idx = [i for i, s in enumerate(splits) if s == 1]
        special_kinds = (["missing"] * 60 + ["truncated"] * 30 + ["empty"] * 20 + ["gif"] * 30 + ["png"] * 30
                         + ["answers_str"] * 20 + ["mismatch"] * 20)
        special = dict(zip(rng.sample(train_idx, len(special_kinds)), special_kinds, strict=True))
        reason = {"missing": "image_missing", "truncated": "image_undecodable", "empty": "image_empty",
                  "answers_str": "bad_type", "mismatch": "bad_value"}
        genres = ("Calendars", "Comics & Graphic Novels", "Test Preparation", "Mystery, Thriller & Suspense",
                  "Science Fiction & Fantasy", "Romance", "Humor & Entertainment", "Literature & Fiction",
                  "Gay & Lesbian", "Engineering & Transportation", "Cookbooks, Food & Wine", "Crafts, Hobbies & Home",
                  "Arts & Photography", "Education & Teaching", "Parenting & Relationships", "Self-Help",
                  "Computers & Technology", "Medical Books", "Science & Math", "Health, Fitness & Dieting",
                  "Business & Money", "Law", "Biographies & Memoirs", "History", "Politics & Social Sciences",
                  "Reference", "Christian Books & Bibles", "Religion & Spirituality", "Sports & Outdoors",
                  "Teen & Young Adult", "Children's Books", "Travel")
        o = self.out(src, "dataset.json")
        o.w("{")
        kept = 0
        for i, key in enumerate(keys):
            h = rng.getrandbits(32)
            title = sentence(rng, 2, 8)[:-1]
            author = f"{_WORDS[h % len(_WORDS)].capitalize()} {_WORDS[(h >> 8) % len(_WORDS)].capitalize()}"
            genre = genres[h % len(genres)]
            other = genres[(h >> 5) % len(genres)]
            qs = ["Who wrote this book?" if h & 1 else "Who is the author of this book?", "What is the title of this book?",
                  "What is the genre of this book?" if h & 2 else "What type of book is this?",
                  f"Is this book related to {other}?", f"Is this a {genre.split(' ')[0].lower()} book?"]
            ans = [author, title, genre, "Yes" if other == genre else "No", "Yes"]
            kind = special.get(i)
            q_json = "[" + ", ".join(js(x) for x in qs) + "]"
            a_json = "[" + ", ".join(js(x) for x in ans) + "]"
            if kind == "answers_str":
                a_json = js(" / ".join(ans))
            elif kind == "mismatch":
                a_json = "[" + ", ".join(js(x) for x in ans[:3]) + "]"
            url = f"http://ecx.images-amazon.com/images/I/{shortuuid(rng, 10)}L.{'gif' if kind == 'gif' else 'png' if kind == 'png' else 'jpg'}"
            o.w(("" if i == 0 else ", ") + f'{js(key)}: {{"imageURL": "{url}", "questions": {q_json}, "answers": {a_json}, '
                f'"title": {js(title)}, "authorName": {js(author)}, "genre": {js(genre)}, "split": {splits[i]}}}')
            if kind in reason:
                self.plant(src, reason[kind])
            elif splits[i] == 1:
                kept += 1
            rel = f"ocr_vqa/images/{key}.jpg"
            if kind == "missing":
                continue
            self.images.place(rel, {"truncated": "cover_truncated", "empty": "empty", "gif": "cover_gif",
                                    "png": "cover_png"}.get(kind or "", "cover"))
        o.w("}")
        o.close()
        self.expected_items[src] = kept
        self.mix_counts[src] = self.sc(80_000)

    # --------------------------------------------------------------------------------------------
    # 8. TextCaps (+ Rosetta OCR)
    def gen_textcaps(self) -> None:
        src = "textcaps"
        rng = self.rng(src)
        n_img, n_cap = self.n("textcaps_images"), self.n("textcaps_captions")
        ids: list[str] = []
        seen: set[str] = set()
        while len(ids) < self.n("textvqa_image_files") + 3:
            i = f"{rng.getrandbits(64):016x}"
            if i not in seen:
                seen.add(i)
                ids.append(i)
        ghosts = ids[-3:]
        ids = ids[:-3]
        sizes = ((1024, 768), (768, 1024), (1024, 1024), (1024, 683))
        for i in ids:  # train + val pictures on disk (25,119)
            w, h = sizes[int(i[:4], 16) % len(sizes)]
            self.images.place(f"textvqa/train_images/{i}.jpg", aspect_key(w, h))
        train = ids[:n_img]
        per, rem = divmod(n_cap, n_img)
        more = set(rng.sample(range(n_img), rem))
        caption_id = 1
        o = self.out(src, "TextCaps_0.1_train.json")
        o.w('{"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": "0.1", "data": [')
        ocr = self.out(src, "TextVQA_Rosetta_OCR_v0.2_train.json")
        ocr.w('{"dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.2", "data": [')
        sep = ""

        def entries(image_id: str, k: int, w: int, h: int, caps: list[str], bad: str | None = None) -> None:
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
                o.w(f'{sep}{{"image_id": "{image_id}", "image_classes": ["Poster", "Text"], '
                    f'"flickr_original_url": "https://farm6.staticflickr.com/{caption_id % 9000}/{image_id}_o.jpg", '
                    f'"flickr_300k_url": "https://c6.staticflickr.com/6/{caption_id % 9000}/{image_id}_z.jpg", '
                    f'"image_width": {w}, "image_height": {h}, "set_name": "train", "image_name": "{image_id}", '
                    f'"image_path": "train/{image_id}.jpg", {cid}{cap}'
                    f'"caption_tokens": {tok_lists[j % len(caps)]}, "reference_strs": {refs}, '
                    f'"reference_tokens": {toks}}}')
                sep = ", "
                caption_id += 1

        for idx, image_id in enumerate(train):
            w, h = sizes[int(image_id[:4], 16) % len(sizes)]
            caps = [sentence(rng, 5, 12) for _ in range(5)]
            entries(image_id, per + (1 if idx in more else 0), w, h, caps)
            toks = [] if idx % 7 == 0 else [_WORDS[(idx * 31 + k) % len(_WORDS)].upper() for k in range(1 + idx % 5)]
            ocr.w(("" if idx == 0 else ", ") + f'{{"image_id": "{image_id}", "ocr_tokens": {json.dumps(toks)}, '
                  f'"ocr_info": [' + ", ".join(f'{{"word": "{t}", "bounding_box": {{"top_left_x": 0.1, "top_left_y": 0.2, '
                                               f'"width": 0.3, "height": 0.05, "rotation": 0, "roll": 0, "pitch": 0, "yaw": 0}}}}'
                                               for t in toks) + "]}")
        for image_id in rng.sample(train, 10):
            entries(image_id, 1, 1024, 768, ["An extra caption."], bad="missing_caption")
            self.plant(src, "missing_field")
        for image_id in rng.sample(train, 5):
            entries(image_id, 1, 1024, 768, ["Another caption."], bad="caption_id_str")
            self.plant(src, "bad_type")
        for g in ghosts:
            entries(g, 5, 1024, 768, [sentence(rng, 5, 12) for _ in range(5)])
            self.plant(src, "image_missing")
        o.w("]}")
        ocr.w("]}")
        o.close()
        ocr.close()
        self.expected_items[src] = n_img
        self.mix_counts[src] = n_img

    # --------------------------------------------------------------------------------------------
    # 9. Visual Genome
    def gen_vg(self) -> None:
        src = "vg"
        rng = self.rng(src)
        ids = self.vg_ids_all()
        avg = REAL["vg_regions"] / REAL["vg_images"]
        small_every = 10  # 1 image in 10 has fewer than 10 regions
        big_hi = round((avg - 0.1 * 5) / 0.9 * 2 - 10)  # 10..big_hi averages the rest to ~50
        phrases = [js(p) for p in (
            [sentence(rng, 2, 7)[:-1].lower() for _ in range(4000)]
            + ["the clock is green in colour", "man wearing a hat", "white clouds in blue sky", "a red car parked"]
        )]
        n_ph = len(phrases)
        io_ = self.out(src, "image_data.json")
        ro = self.out(src, "region_descriptions.json")
        io_.w("[")
        ro.w("[")
        region_id = 1
        eligible = 0
        items = 0
        n_vg100k = self.n("vg_100k")
        for idx, image_id in enumerate(ids):
            folder = "VG_100K" if idx < n_vg100k else "VG_100K_2"
            w, h = (800, 600) if image_id % 3 else ((600, 800) if image_id % 2 else (500, 500))
            self.images.place(f"vg/{folder}/{image_id}.jpg", aspect_key(w, h))
            coco = image_id * 3 % 581_929 if image_id % 2 else None
            io_.w(("" if idx == 0 else ", ") + f'{{"width": {w}, "url": "https://cs.stanford.edu/people/rak248/{folder}/{image_id}.jpg", '
                  f'"height": {h}, "image_id": {image_id}, "coco_id": {"null" if coco is None else coco}, '
                  f'"flickr_id": {image_id * 7 + 11}}}')
            hh = (image_id * 2654435761) & 0xFFFFFFFF
            n_reg = 1 + hh % 9 if idx % small_every == 0 else 10 + hh % (big_hi - 9)
            parts = []
            for k in range(n_reg):
                g = (hh + k * 40503) * 2246822519 & 0xFFFFFFFF
                x, y = g % (w - 20), (g >> 11) % (h - 20)
                rw, rh = 1 + (g >> 3) % (w - x - 1), 1 + (g >> 13) % (h - y - 1)
                parts.append(f'{{"region_id": {region_id}, "width": {rw}, "height": {rh}, "image_id": {image_id}, '
                             f'"phrase": {phrases[g % n_ph]}, "y": {y}, "x": {x}}}')
                region_id += 1
            # planted bad regions: EXTRA regions, so an image's usable count is unchanged
            if idx % 5000 == 17:
                parts.append(f'{{"region_id": {region_id}, "width": "12", "height": 5, "image_id": {image_id}, "phrase": "a string width", "y": 1, "x": 1}}')
                self.plant(src, "bad_type")
            elif idx % 5000 == 18:
                parts.append(f'{{"region_id": {region_id}, "width": 12, "height": 5, "image_id": {image_id}, "y": 1, "x": 1}}')
                self.plant(src, "missing_field")
            elif idx % 5000 == 19:
                parts.append(f'{{"region_id": {region_id}, "width": 12, "height": 5, "image_id": {image_id}, "phrase": "off the picture", "y": 1, "x": {w + 5}}}')
                self.plant(src, "bad_box")
            region_id += 1
            ro.w(("" if idx == 0 else ", ") + f'{{"regions": [{", ".join(parts)}], "id": {image_id}}}')
            items += 1
            eligible += n_reg >= 10
        # planted bad images (EXTRA images)
        extra = iter(range(2_500_000, 2_600_000))
        for _ in range(3):  # every region unusable -> no_regions
            i = next(extra)
            self.images.place(f"vg/VG_100K_2/{i}.jpg", aspect_key(800, 600))
            io_.w(f', {{"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/{i}.jpg", "height": 600, "image_id": {i}, "coco_id": null, "flickr_id": null}}')
            ro.w(f', {{"regions": [{{"region_id": {region_id}, "width": 0, "height": 5, "image_id": {i}, "phrase": "nothing", "y": 1, "x": 1}}, '
                 f'{{"region_id": {region_id + 1}, "width": 5, "height": 5, "image_id": {i}, "phrase": "   ", "y": 1, "x": 1}}], "id": {i}}}')
            region_id += 2
            self.plant(src, "bad_box")
            self.plant(src, "bad_value")
            self.plant(src, "no_regions")
        for _ in range(3):  # regions of an image that image_data.json does not list
            i = next(extra)
            ro.w(f', {{"regions": [{{"region_id": {region_id}, "width": 5, "height": 5, "image_id": {i}, "phrase": "lost", "y": 1, "x": 1}}], "id": {i}}}')
            region_id += 1
            self.plant(src, "missing_annotation")
        for _ in range(3):  # listed, but the picture is not on disk
            i = next(extra)
            io_.w(f', {{"width": 800, "url": "https://cs.stanford.edu/people/rak248/VG_100K/{i}.jpg", "height": 600, "image_id": {i}, "coco_id": null, "flickr_id": null}}')
            ro.w(f', {{"regions": [{{"region_id": {region_id}, "width": 5, "height": 5, "image_id": {i}, "phrase": "ghost", "y": 1, "x": 1}}], "id": {i}}}')
            region_id += 1
            self.plant(src, "image_missing")
        for _ in range(3):  # image_data record with a url in neither folder -> its regions are unlisted too
            i = next(extra)
            io_.w(f', {{"width": 800, "url": "https://example.org/elsewhere/{i}.jpg", "height": 600, "image_id": {i}, "coco_id": null, "flickr_id": null}}')
            ro.w(f', {{"regions": [{{"region_id": {region_id}, "width": 5, "height": 5, "image_id": {i}, "phrase": "elsewhere", "y": 1, "x": 1}}], "id": {i}}}')
            region_id += 1
            self.plant(src, "bad_value")
            self.plant(src, "missing_annotation")
        io_.w("]")
        ro.w("]")
        io_.close()
        ro.close()
        self.notes[src] = f"{region_id - 1:,} region ids, {eligible:,} images with >= 10 regions"
        self.expected_items[src] = items
        self.mix_counts[src] = self.sc(86_417)
        assert eligible >= self.mix_counts[src], (eligible, self.mix_counts[src])

    # --------------------------------------------------------------------------------------------
    # 10. RefCOCO / RefCOCO+ / RefCOCOg
    def gen_refcoco(self) -> None:
        src = "refcoco"
        rng = self.rng(src)
        n_img = self.n("refcoco_images")
        n_unc, n_umd = self.n("refcoco_unc_images"), self.n("refcocog_images")
        pool = list(self.train2014)
        rng.shuffle(pool)
        U = pool[:n_img]
        unc_imgs = set(U[:n_unc])
        umd_imgs = set(U[n_img - n_umd:]) if n_umd <= n_img else set(U)
        rest = iter(pool[n_img:])
        unc_eval = [next(rest) for _ in range(self.n("refcoco_unc_eval_images"))]
        umd_eval = [next(rest) for _ in range(self.n("refcocog_eval_images"))]
        datasets = {"refcoco": [], "refcoco+": [], "refcocog": []}  # refs
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
                    f" {_WORDS[(g >> 5) % len(_WORDS)]}" if g & 16 else "")
                raw = text.capitalize() + "." if g & 32 else text
                sents.append({"tokens": text.split(), "raw": raw, "sent_id": sent_ids[ds], "sent": text})
                sent_ids[ds] += 1
            ref = {"sent_ids": [s["sent_id"] for s in sents], "file_name": f"COCO_train2014_{image_id:012d}_{k + 1}.jpg",
                   "ann_id": image_id * 100 + k if ann_id is None else ann_id, "ref_id": ref_ids[ds],
                   "image_id": image_id, "split": split, "sentences": sents,
                   "category_id": 1 + (image_id + k) % len(cats)}
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
            dss = [d for d, ok in (("refcoco", image_id in unc_imgs), ("refcoco+", image_id in unc_imgs),
                                   ("refcocog", image_id in umd_imgs)) if ok]
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
        for ds_list, eval_imgs, splits in ((("refcoco", "refcoco+"), unc_eval, ("val", "testA", "testB")),
                                           (("refcocog",), umd_eval, ("val", "test"))):
            for j, image_id in enumerate(eval_imgs):
                for ds in ds_list:
                    for k in range(2):
                        make_ref(ds, image_id, k, 2, splits[j % len(splits)])
        # planted (EXTRA refs / sentences / images; train split)
        some = rng.sample([u for u in U if u in unc_imgs], 20)
        for image_id in some[:10]:
            make_ref("refcoco", image_id, 0, 2, "train", ann_id=900_000_000 + image_id)  # ann not in instances
            self.plant(src, "missing_annotation")
        bad_box_anns = []
        for image_id in some[10:20]:
            ref = make_ref("refcoco+", image_id, 95, 1, "train")  # its annotation gets a zero-width box
            bad_box_anns.append((image_id, ref["ann_id"]))
            self.plant(src, "bad_box")
        for ref in rng.sample([r for r in datasets["refcoco"] if r["split"] == "train" and r["ann_id"] < 900_000_000
                               and r["image_id"] not in set(some[10:20])], 10):
            ref["sentences"].append({"tokens": [], "raw": "", "sent_id": sent_ids["refcoco"], "sent": ""})
            sent_ids["refcoco"] += 1
            self.plant(src, "bad_value")
        for _ in range(2):  # an image in instances.json whose picture is not on disk
            g = next(self.coco_ghosts)
            make_ref("refcocog", g, 0, 3, "train")
            self.plant(src, "image_missing")
        nosplit = make_ref("refcoco", some[0], 1, 1, "train")
        del nosplit["split"]
        self.plant(src, "missing_field")

        for ds, refs_name in (("refcoco", "refs(unc).p"), ("refcoco+", "refs(unc).p"), ("refcocog", "refs(umd).p")):
            d = self.raw / src / ds
            d.mkdir(parents=True, exist_ok=True)
            with open(d / refs_name, "wb") as f:
                pickle.dump(datasets[ds], f, protocol=2)
            o = Out(d / "instances.json")
            o.w('{"info": {"description": "This is stable 1.0 version of the 2014 MS COCO dataset.", "url": '
                '"http://mscoco.org", "version": "1.0", "year": 2014, "contributor": "Microsoft COCO group", '
                '"date_created": "2015-01-27 09:11:52.357475"}, "images": [')
            imgs = sorted(ds_images[ds])
            o.w(", ".join(
                f'{{"license": 1, "file_name": "COCO_train2014_{i:012d}.jpg", "coco_url": "http://mscoco.org/images/{i}", '
                f'"height": {self.coco_size(i)[1]}, "width": {self.coco_size(i)[0]}, "date_captured": "2013-11-14 16:28:13", '
                f'"flickr_url": "http://farm4.staticflickr.com/{i % 9000}/{i}_z.jpg", "id": {i}}}' for i in imgs))
            o.w('], "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1, '
                '"name": "Attribution-NonCommercial-ShareAlike License"}], "annotations": [')
            bad_ids = {a for _, a in bad_box_anns}
            by_image: dict[int, set[int]] = {}
            for a in used_anns[ds]:
                if a < 900_000_000:
                    by_image.setdefault(a // 100, set()).add(a % 100)
            sep = ""
            for i in imgs:
                W, H = self.coco_size(i)
                for k in sorted(by_image.get(i, set()) | {99}):
                    g = ((i * 100 + k) * 2654435761) & 0xFFFFFFFF
                    x, y = float(g % (W - 40)), float((g >> 10) % (H - 40))
                    w = 0.0 if i * 100 + k in bad_ids else float(10 + (g >> 4) % (W - x - 10))
                    hgt = float(10 + (g >> 14) % (H - y - 10))
                    seg = [x, y, x + w, y, x + w, y + hgt, x, y + hgt]
                    o.w(f'{sep}{{"segmentation": [{json.dumps(seg)[1:-1].join("[]")}], "area": {w * hgt}, "iscrowd": 0, '
                        f'"image_id": {i}, "bbox": [{x}, {y}, {w}, {hgt}], "category_id": {1 + (i + k) % len(cats)}, '
                        f'"id": {i * 100 + k}}}')
                    sep = ", "
            if ds == "refcoco":  # an annotation with a 3-number bbox (nobody refers to it)
                i = imgs[0]
                o.w(f', {{"segmentation": [], "area": 1.0, "iscrowd": 0, "image_id": {i}, "bbox": [1.0, 2.0, 3.0], '
                    f'"category_id": 1, "id": {i * 100 + 98}}}')
                self.plant(src, "bad_box")
            o.w('], "categories": [' + ", ".join(
                f'{{"supercategory": "thing", "id": {j + 1}, "name": "{c}"}}' for j, c in enumerate(cats)) + "]}")
            o.close()
        self.notes[src] = f"{total_pairs:,} train pairs on {n_img:,} images -> {chunks:,} chunks of <= 9"
        self.expected_items[src] = n_img
        self.mix_counts[src] = self.sc(48_447)
        assert chunks >= self.mix_counts[src], (chunks, self.mix_counts[src])

    # --------------------------------------------------------------------------------------------
    # 11. LCS-558K
    def gen_llava_pretrain(self) -> None:
        src = "llava_pretrain"
        rng = self.rng(src)
        n_rec = self.n("llava_pretrain_records")
        nums = sorted(rng.sample(range(0, 6_000_000), n_rec + 5))
        ghosts = nums[-5:]  # never on disk
        nums = nums[:-5]
        prompts = ("Describe the image concisely.", "Provide a brief description of the given image.",
                   "Offer a succinct explanation of the picture presented.", "Summarize the visual content of the image.",
                   "Give a short and clear explanation of the subsequent image.", "Share a concise interpretation of the image provided.",
                   "Present a compact description of the photo's key features.", "Relay a brief, clear account of the picture shown.",
                   "Render a clear and concise summary of the photo.", "Write a terse but informative summary of the picture.",
                   "Create a compact narrative representing the image presented.")
        humans = [js(f"{p}\n<image>") for p in prompts] + [js(f"<image>\n{p}") for p in prompts]
        caps = [js(sentence(rng, 5, 14)[:-1].lower().replace(",", " ,")) for _ in range(5000)]
        o = self.out(src, "blip_laion_cc_sbu_558k.json")
        o.w("[")
        bad_at = set(rng.sample(range(1, n_rec), 25))
        bad_iter = iter(range(25))
        for k, num in enumerate(nums):
            rid = f"{num:09d}"
            self.images.place(f"llava_pretrain/images/{rid[:5]}/{rid}.jpg", aspect_key(336, 336))
            h = (num * 2654435761) & 0xFFFFFFFF
            conv = (f'[{{"from": "human", "value": {humans[h % len(humans)]}}}, '
                    f'{{"from": "gpt", "value": {caps[(h >> 6) % len(caps)]}}}]')
            o.w(("" if k == 0 else ",\n") + f'{{"id": "{rid}", "image": "{rid[:5]}/{rid}.jpg", "conversations": {conv}}}')
            if k in bad_at:  # EXTRA bad records
                j = next(bad_iter)
                kind = j % 5
                if kind == 0:
                    g = f"{ghosts[j // 5]:09d}"
                    o.w(f',\n{{"id": "{g}", "image": "{g[:5]}/{g}.jpg", "conversations": {conv}}}')
                    self.plant(src, "image_missing")
                elif kind == 1:
                    o.w(f',\n{{"id": "{rid}", "image": "{rid[:5]}/{rid}.jpg"}}')
                    self.plant(src, "missing_field")
                elif kind == 2:
                    o.w(f',\n{{"id": "{rid}", "image": "/etc/{rid}.jpg", "conversations": {conv}}}')
                    self.plant(src, "bad_value")
                elif kind == 3:
                    o.w(f',\n{{"id": null, "image": "{rid[:5]}/{rid}.jpg", "conversations": {conv}}}')
                    self.plant(src, "missing_field")
                else:
                    o.w(f',\n{{"id": "{rid}", "image": "{rid[:5]}/{rid}.jpg", "conversations": '
                        f'[{{"from": "gpt", "value": "a caption"}}, {{"from": "human", "value": "<image>"}}]}}')
                    self.plant(src, "not_alternating")
        o.w("]")
        o.close()
        self.expected_items[src] = n_rec
        self.mix_counts[src] = n_rec


# ------------------------------------------------------------------------------------------------
# running and measuring children


def datamix_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "datamix"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("datamix")
    if found:
        return [found]
    return [sys.executable, "-c", "from datamix.cli import app; app()"]


def _wrap(cmd: list[str], profile: Path | None, tag: str) -> list[str]:
    if profile is None:
        return cmd
    profile.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "cProfile", "-o", str(profile / f"{tag}.pstats"), *cmd]


TIME = "/usr/bin/time"


def _timed(cmd: list[str], log: Path) -> list[str]:
    """Launch through GNU time when present. Why: on Linux a child's maxrss starts at the RSS high-water
    mark of the process that forked it (exec records the old mm's hiwater), so measuring straight from
    this script (hundreds of MiB after generating) would floor every child at our own RSS. GNU time is
    a tiny forker; its %M is the child's peak (including the workers the child reaped)."""
    if os.access(TIME, os.X_OK):
        return [TIME, "-f", "%M", "-o", f"{log}.maxrss", *cmd]
    return cmd


def _measure(res: Any, status: int, t0: float, log: Path) -> dict[str, Any]:
    peak_kib = res.ru_maxrss
    side = Path(f"{log}.maxrss")
    if side.exists():
        lines = [x for x in side.read_text().split() if x.isdigit()]
        if lines:
            peak_kib = int(lines[-1])
    return {
        "seconds": time.perf_counter() - t0,
        "rc": os.waitstatus_to_exitcode(status),
        "peak_rss_mib": peak_kib / 1024,
        "cpu_seconds": res.ru_utime + res.ru_stime,
        "log": str(log),
    }


def run_child(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run one command; wall time and the rusage of it and the workers it reaped (os.wait4)."""
    print(f"$ {' '.join(cmd)}", flush=True)
    with open(log, "w") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen(_timed(cmd, log), stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, res = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    out = _measure(res, status, t0, log)
    print(f"  rc={out['rc']} {out['seconds']:.1f}s peak RSS {out['peak_rss_mib']:.0f} MiB", flush=True)
    if out["rc"] != 0:
        print(Path(log).read_text()[-3000:], file=sys.stderr)
    return out


def run_parallel(jobs: list[tuple[str, list[str], Path]], slots: int) -> dict[str, dict[str, Any]]:
    """Run (name, cmd, log) jobs `slots` at a time, each measured on its own."""
    pending = list(jobs)
    running: dict[int, tuple[str, float, Path, Any, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    while pending or running:
        while pending and len(running) < slots:
            name, cmd, log = pending.pop(0)
            f = open(log, "w")  # noqa: SIM115
            t0 = time.perf_counter()
            p = subprocess.Popen(_timed(cmd, log), stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
            running[p.pid] = (name, t0, log, f, p)
        pid, status, res = os.wait4(-1, 0)
        if pid not in running:
            continue
        name, t0, log, f, p = running.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        f.close()
        results[name] = _measure(res, status, t0, log)
        r = results[name]
        print(f"  {name:<15} rc={r['rc']} {r['seconds']:6.1f}s peak RSS {r['peak_rss_mib']:6.0f} MiB", flush=True)
        if r["rc"] != 0:
            print(Path(log).read_text()[-3000:], file=sys.stderr)
    return results


def scaled_recipe(work: Path, name: str, counts: dict[str, int]) -> str:
    """The recipe by name at scale 1; else a copy with choose: N and expect scaled to `counts`."""
    src = REPO / "recipes" / f"{name}.yaml"
    data = yaml.safe_load(src.read_text())
    for s, spec in data["sources"].items():
        if isinstance(spec.get("choose"), int):
            spec["choose"] = counts[s]
    data["expect"] = {s: counts[s] for s in data["sources"]} | {"total": sum(counts[s] for s in data["sources"])}
    path = work / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def disk_used(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else -1


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (created; must be new or a previous run's)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes (counts checked exactly at any scale)")
    ap.add_argument("--out", type=Path, default=None, help="append results to this JSON list file")
    ap.add_argument("--keep", action="store_true", help="keep --work afterwards (default: delete it)")
    ap.add_argument("--skip-per-source", action="store_true",
                    help="only the `normalize --jobs 2` run (no per-source seconds / peak RSS)")
    ap.add_argument("--lint", action="store_true", help="also run `datamix lint` on the 665K mix")
    ap.add_argument("--profile", type=Path, default=None, help="run every child under cProfile, .pstats into this folder")
    args = ap.parse_args()

    work = args.work.resolve()
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        print(f"{work} exists and is not a {Path(__file__).name} folder; refusing to touch it", file=sys.stderr)
        return 2
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("scratch folder of benchmarks/real_scale.py; safe to delete\n")
    logs = work / "logs"
    logs.mkdir()
    dm = datamix_cmd()
    started = time.perf_counter()
    ok = True
    try:
        # 1. raw files
        print(f"generating raw files at scale {args.scale} under {work} ...", flush=True)
        gen = Gen(work, args.scale)
        gen.run()
        raw_total = sum(gen.raw_bytes.values())
        print(f"  {gen.gen_seconds['total']:.1f}s, {raw_total / 2**30:.2f} GiB of annotations, "
              f"{gen.images.n:,} image paths ({gen.images.copies} base files)", flush=True)
        for s in SOURCES:
            print(f"  {s:<15} {gen.gen_seconds[s]:6.1f}s {gen.raw_bytes[s] / 2**20:8.1f} MiB  {gen.notes.get(s, '')}")

        # 2. normalize
        per_source: dict[str, dict[str, Any]] = {}
        per_source_start = per_source_wall = time.perf_counter()
        if not args.skip_per_source:
            print("normalize, one source per process, 2 at a time:", flush=True)
            # largest first so that the two slots finish together
            order = sorted(SOURCES, key=lambda s: -gen.raw_bytes[s])
            per_source = run_parallel(
                [(s, _wrap([*dm, "normalize", s, "--root", str(work), "--force"], args.profile, f"normalize-{s}"),
                  logs / f"normalize-{s}.log") for s in order], slots=2)
            per_source_wall = time.perf_counter()
        norm = run_child(_wrap([*dm, "normalize", "--root", str(work), "--jobs", "2", "--force"], args.profile, "normalize"),
                         logs / "normalize.log")
        ok &= norm["rc"] == 0
        stats = {}
        for s in SOURCES:
            p = work / "normalized" / f"{s}.stats.json"
            stats[s] = json.loads(p.read_text()) if p.exists() else {}

        # 3. builds
        if args.scale == 1.0:
            r665, r558 = "llava15_665k", "llava15_pretrain_558k"
        else:
            r665 = scaled_recipe(work, "llava15_665k", gen.mix_counts)
            r558 = scaled_recipe(work, "llava15_pretrain_558k", gen.mix_counts)
        builds = {}
        for name, ref in (("llava15_665k", r665), ("llava15_pretrain_558k", r558)):
            b = run_child(_wrap([*dm, "build", "--recipe", ref, "--root", str(work), "--jobs", "2"], args.profile,
                                f"build-{name}"), logs / f"build-{name}.log")
            summary_path = work / "mixes" / name / "summary.json"
            b["summary"] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
            b["shard_bytes"] = b["summary"].get("shard_bytes")
            b["shards"] = b["summary"].get("shards")
            builds[name] = b
            ok &= b["rc"] == 0
        lint = None
        if args.lint:
            lint = run_child([*dm, "lint", str(work / "mixes" / "llava15_665k"), "--format", "json"], logs / "lint.log")
        disk = disk_used(work)
    except Exception:
        if not args.keep:
            print(f"(keeping {work} for inspection after the error)", file=sys.stderr)
        raise

    # 4. checks and report
    official = {}
    for name in ("llava15_665k", "llava15_pretrain_558k"):
        rec = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())
        official.update(rec["expect"] if name == "llava15_665k" else {"llava_pretrain": rec["expect"]["llava_pretrain"]})
    problems: list[str] = []
    print()
    print(f"scale {args.scale}: per source (normalize seconds/RSS: own process, 2 at a time)")
    head = (f"{'source':<15} {'raw MiB':>8} {'items':>9} {'exp.items':>9} {'drops':>6} {'planted':>7} "
            f"{'norm s':>7} {'RSS MiB':>8} {'(jobs2 s)':>9} {'mix':>8} {'target':>8} {'official':>8}")
    print(head)
    print("-" * len(head))
    for s in SOURCES:
        st = stats[s]
        ps = per_source.get(s, {})
        mix_name = "llava15_pretrain_558k" if s == "llava_pretrain" else "llava15_665k"
        actual = builds[mix_name]["summary"].get("sources", {}).get(s, {}).get("actual")
        target = gen.mix_counts[s]
        planted = sum(gen.planted[s].values())
        drops = st.get("drops")
        print(f"{s:<15} {gen.raw_bytes[s] / 2**20:8.1f} {st.get('items', -1):>9,} {gen.expected_items[s]:>9,} "
              f"{drops if drops is not None else -1:>6} {planted:>7} {ps.get('seconds', float('nan')):7.1f} "
              f"{ps.get('peak_rss_mib', float('nan')):8.0f} {st.get('seconds', float('nan')):9.1f} "
              f"{actual if actual is not None else -1:>8,} {target:>8,} {official.get(s, 0):>8,}")
        if st.get("items") != gen.expected_items[s]:
            problems.append(f"{s}: {st.get('items')} normalized items, expected {gen.expected_items[s]}")
        got = Counter(st.get("drops_by_reason", {}))
        if got != gen.planted[s]:
            problems.append(f"{s}: drops {dict(sorted(got.items()))} != planted {dict(sorted(gen.planted[s].items()))}")
        if actual != target:
            problems.append(f"{s}: {actual} samples in the mix, expected {target}")
        if args.scale == 1.0 and target != official.get(s):
            problems.append(f"{s}: target {target} differs from the official {official.get(s)}")
    tot665 = builds["llava15_665k"]["summary"].get("total", {}).get("actual")
    tot558 = builds["llava15_pretrain_558k"]["summary"].get("total", {}).get("actual")
    exp665 = sum(gen.mix_counts[s] for s in SOURCES if s != "llava_pretrain")
    exp558 = gen.mix_counts["llava_pretrain"]
    if tot665 != exp665:
        problems.append(f"llava15_665k: total {tot665}, expected {exp665}")
    if tot558 != exp558:
        problems.append(f"llava15_pretrain_558k: total {tot558}, expected {exp558}")
    print("-" * len(head))
    ps_total = per_source_wall - per_source_start
    print(f"generate: {gen.gen_seconds['total']:.1f}s  ({raw_total / 2**30:.2f} GiB annotations, {gen.images.n:,} image links)")
    if per_source:
        print(f"normalize one-per-process x2: {ps_total:.1f}s wall, max peak RSS "
              f"{max(r['peak_rss_mib'] for r in per_source.values()):.0f} MiB")
    print(f"normalize --jobs 2: {norm['seconds']:.1f}s wall, {norm['cpu_seconds']:.1f}s CPU, peak RSS {norm['peak_rss_mib']:.0f} MiB")
    for name, b in builds.items():
        print(f"build {name}: {b['seconds']:.1f}s wall, {b['cpu_seconds']:.1f}s CPU, peak RSS {b['peak_rss_mib']:.0f} MiB, "
              f"{b.get('shards')} shards, {(b.get('shard_bytes') or 0) / 2**30:.2f} GiB, "
              f"{b['summary'].get('total', {}).get('actual')} samples")
    if lint:
        print(f"lint llava15_665k: rc={lint['rc']} {lint['seconds']:.1f}s peak RSS {lint['peak_rss_mib']:.0f} MiB")
    print(f"mix totals: llava15_665k {tot665} (expected {exp665}), llava15_pretrain_558k {tot558} (expected {exp558})")
    print(f"disk used under --work: {disk / 2**30:.2f} GiB; total wall {time.perf_counter() - started:.1f}s")
    if problems:
        ok = False
        print("PROBLEMS:")
        for p in problems:
            print("  - " + p)
    else:
        print("all counts exact; every planted bad record is in the drops tables with its reason")

    # 5. results file
    note = f"scale {args.scale}, 2 cores; raw {raw_total / 2**30:.2f} GiB, {gen.images.n:,} image links"
    results: list[dict[str, Any]] = []

    def add(name: str, value: Any, unit: str, notes: str = note) -> None:
        results.append({"name": name, "value": value, "unit": unit, "baseline": None, "ratio": None, "notes": notes})

    add("real_scale_generate_seconds", round(gen.gen_seconds["total"], 1), "s")
    for s in SOURCES:
        st = stats[s]
        n = f"{note}; {st.get('items')} items, {st.get('drops')} drops ({sum(gen.planted[s].values())} planted)"
        if s in per_source:
            add(f"real_scale_normalize_{s}_seconds", round(per_source[s]["seconds"], 1), "s", n)
            add(f"real_scale_normalize_{s}_peak_rss_mib", round(per_source[s]["peak_rss_mib"]), "MiB", n)
    add("real_scale_normalize_jobs2_seconds", round(norm["seconds"], 1), "s")
    add("real_scale_normalize_jobs2_peak_rss_mib", round(norm["peak_rss_mib"]), "MiB")
    for name, b in builds.items():
        n = f"{note}; {b['summary'].get('total', {}).get('actual')} samples, {b.get('shards')} shards"
        add(f"real_scale_build_{name}_seconds", round(b["seconds"], 1), "s", n)
        add(f"real_scale_build_{name}_peak_rss_mib", round(b["peak_rss_mib"]), "MiB", n)
        add(f"real_scale_build_{name}_shard_bytes", b.get("shard_bytes"), "bytes", n)
        add(f"real_scale_build_{name}_samples", b["summary"].get("total", {}).get("actual"), "samples", n)
    add("real_scale_counts_exact", int(not problems), "bool", "; ".join(problems) or note)
    if args.out:
        old = json.loads(args.out.read_text()) if args.out.exists() else []
        names = {r["name"] for r in results}
        args.out.write_text(json.dumps([o for o in old if o["name"] not in names] + results, indent=2) + "\n")
        print(f"results appended to {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        print(f"removed {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
