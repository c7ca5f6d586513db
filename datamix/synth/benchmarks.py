"""Synthetic evaluation benchmarks (`datamix.evalsets`) in their real formats, with planted overlaps.

Written by the demo profile after every source's writer, under `ROOT/benchmarks/<name>/` only, from
generators derived from (seed, "benchmarks", ...), so no other synthetic file changes. Some items are
planted from the training pool, the rest are not:

- by id: POPE images named `COCO_val2014_<id>.jpg` for COCO pictures of the VQAv2 training questions
  (byte-identical copies, so also by content); GQA test-dev questions on VG ids of GQA training images.
- by content: MM-Vet images that are byte copies of GQA training pictures under another name.
- near-duplicates: TextVQA val images that are TextCaps training pictures re-encoded as JPEG quality
  75 or resized to 0.5x (under fresh OpenImages-style ids); MMBench TSV images that are 0.5x copies of
  COCO training pictures.
- same question: VQAv2 test-dev questions copied from the VQAv2 training questions of the same image
  id, with case and punctuation changed (found through the VQA evaluation's normalisation).

Unplanted items use fresh ids and pictures of another kind (smooth random colour fields, unlike the
white-background shape scenes of the training data). `ROOT/benchmarks/synth_truth.json` lists, per
benchmark, every planted item (qid -> how, the training picture) and every unplanted qid: the tests
check that `datamix contamination` finds exactly the planted ones whose training picture is in the mix.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
from pathlib import Path
from typing import Any

from PIL import Image

from datamix.evalsets import folder, readers
from datamix.fileio import atomic_path
from datamix.paths import COCO_DIR, GQA_DIR, TEXTVQA_DIR
from datamix.sources import gqa as gqa_src
from datamix.sources import textcaps as textcaps_src
from datamix.sources import vqav2 as vqav2_src
from datamix.synth.scene import derive

TRUTH = "synth_truth.json"
SIZES = {"tiny": 1, "small": 3}  # multiplier of the planted / unplanted counts


def _jpeg(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _field(rng: random.Random, size: int = 112) -> bytes:
    """A smooth random colour field: a 6x6 grid of random colours, bicubic-upscaled."""
    small = Image.new("RGB", (6, 6))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(36)])
    return _jpeg(small.resize((size, size), Image.Resampling.BICUBIC))


def _q75(data: bytes) -> bytes:
    return _jpeg(Image.open(io.BytesIO(data)), 75)


def _half(data: bytes) -> bytes:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return _jpeg(im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.BICUBIC))


class _Writer:
    def __init__(self, root: Path, seed: int):
        self.root = root
        self.seed = seed
        self.truth: dict[str, dict[str, Any]] = {}

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(derive(self.seed, "benchmarks", *parts))

    def path(self, name: str, rel: str) -> Path:
        p = folder(self.root, name) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_bytes(self, name: str, rel: str, data: bytes) -> None:
        with atomic_path(self.path(name, rel)) as tmp:
            tmp.write_bytes(data)

    def write_json(self, name: str, rel: str, obj: Any, lines: bool = False) -> None:
        text = "".join(json.dumps(o) + "\n" for o in obj) if lines else json.dumps(obj)
        self.write_bytes(name, rel, text.encode("utf-8"))

    def plant(self, name: str, qid: str, how: str, training: str | None, question: str | None = None) -> None:
        t = self.truth.setdefault(name, {"planted": {}, "unplanted": []})
        t["planted"][qid] = {"how": how, "training": training, **({"question": question} if question else {})}

    def unplanted(self, name: str, qid: str) -> None:
        self.truth.setdefault(name, {"planted": {}, "unplanted": []})["unplanted"].append(qid)


def _pool(root: Path) -> dict[str, Any]:
    """Training pictures on disk: COCO ids (+ their questions), VG ids of GQA, TextCaps ids."""
    images = root / "images"
    coco_q: dict[int, list[str]] = {}
    qfile = next((root / "raw").glob(f"*/{vqav2_src.QUESTIONS}"), None)
    if qfile is not None:
        for q in json.loads(qfile.read_text(encoding="utf-8")).get("questions", []):
            iid = q.get("image_id")
            if isinstance(iid, int) and (images / COCO_DIR / f"{iid:012d}.jpg").is_file():
                coco_q.setdefault(iid, []).append(q.get("question", ""))
    vg_ids: list[int] = []
    gfile = next((root / "raw").glob(f"*/{gqa_src.FILE}"), None)
    if gfile is not None:
        seen = {
            str(q.get("imageId"))
            for q in json.loads(gfile.read_text(encoding="utf-8")).values()
            if isinstance(q, dict)
        }
        vg_ids = sorted(int(i) for i in seen if i.isdigit() and (images / GQA_DIR / f"{i}.jpg").is_file())
    tc_ids: list[str] = []
    tfile = next((root / "raw").glob(f"*/{textcaps_src.FILE}"), None)
    if tfile is not None:
        seen = {str(r.get("image_id")) for r in json.loads(tfile.read_text(encoding="utf-8")).get("data", [])}
        tc_ids = sorted(i for i in seen if (images / TEXTVQA_DIR / f"{i}.jpg").is_file())
    return {"coco": dict(sorted(coco_q.items())), "vg_ids": vg_ids, "openimages": tc_ids}


def write_demo(root: Path, scale: str, seed: int) -> dict[str, int]:
    """Write every benchmark's files; return items per benchmark."""
    root = Path(root)
    k = SIZES.get(scale, 1)
    w = _Writer(root, seed)
    pool = _pool(root)
    images = root / "images"
    counts: dict[str, int] = {}

    # POPE: planted by id (byte copies of COCO training pictures), unplanted fresh ids
    rng = w.rng("pope")
    coco_ids = list(pool["coco"])
    planted = rng.sample(coco_ids, min(len(coco_ids), 3 * k))
    used = set(pool["coco"])
    fresh: list[int] = []
    while len(fresh) < 4 * k:
        i = rng.randrange(9, 581_930)
        if i not in used and i not in fresh:
            fresh.append(i)
    lines: dict[str, list[dict[str, Any]]] = {f: [] for f in readers.POPE_FILES}
    qn = 0
    for iid in planted + fresh:
        name = f"COCO_val2014_{iid:012d}.jpg"
        data = (
            (images / COCO_DIR / f"{iid:012d}.jpg").read_bytes()
            if iid in planted
            else _field(w.rng("pope", iid))
        )
        w.write_bytes("pope", f"val2014/{name}", data)
        for f in readers.POPE_FILES:
            for obj in rng.sample(["circle", "square", "triangle", "dog", "car"], 2):
                qn += 1
                lines[f].append(
                    {
                        "question_id": qn,
                        "image": name,
                        "text": f"Is there a {obj} in the image?",
                        "label": rng.choice(["yes", "no"]),
                    }
                )
                split = f.removeprefix("coco_pope_").removesuffix(".json")
                qid = f"{split}-{qn}"
                if iid in planted:
                    w.plant("pope", qid, "id", f"{COCO_DIR}/{iid:012d}.jpg")
                else:
                    w.unplanted("pope", qid)
    for f, recs in lines.items():
        w.write_json("pope", f, recs, lines=True)
    counts["pope"] = qn

    # VQAv2 test-dev: same question on the same image id (planted), fresh ids (unplanted)
    rng = w.rng("vqav2_testdev")
    questions = []
    qn = 0
    for iid in rng.sample(coco_ids, min(len(coco_ids), 3 * k)):
        q = rng.choice(pool["coco"][iid])
        changed = q.upper().rstrip("?") if rng.random() < 0.5 else "  " + q.replace("?", " ?")
        qn += 1
        questions.append({"image_id": iid, "question": changed, "question_id": iid * 1000 + qn})
        w.plant("vqav2_testdev", str(iid * 1000 + qn), "question", f"{COCO_DIR}/{iid:012d}.jpg", q)
    for _ in range(3 * k):
        iid = rng.randrange(9, 581_930)
        while iid in used:
            iid = rng.randrange(9, 581_930)
        qn += 1
        questions.append(
            {"image_id": iid, "question": "What is the man holding?", "question_id": iid * 1000 + qn}
        )
        w.unplanted("vqav2_testdev", str(iid * 1000 + qn))
    w.write_json(
        "vqav2_testdev",
        readers.VQAV2_FILE,
        {
            "info": {},
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "license": {},
            "data_subtype": "test-dev2015",
            "questions": questions,
        },
    )
    counts["vqav2_testdev"] = qn

    # GQA test-dev: VG ids of GQA training pictures (planted), n-ids (unplanted)
    rng = w.rng("gqa_testdev")
    gq: dict[str, Any] = {}
    for j, vid in enumerate(rng.sample(pool["vg_ids"], min(len(pool["vg_ids"]), 3 * k))):
        qid = f"20{j:06d}"
        gq[qid] = {
            "imageId": str(vid),
            "question": "Is the sky blue?",
            "answer": "yes",
            "fullAnswer": "Yes, it is.",
        }
        w.plant("gqa_testdev", qid, "id", f"{GQA_DIR}/{vid}.jpg")
    for j in range(3 * k):
        qid = f"21{j:06d}"
        gq[qid] = {
            "imageId": f"n{rng.randrange(10**5, 10**6)}",
            "question": "What color is the car?",
            "answer": "red",
            "fullAnswer": "The car is red.",
        }
        w.unplanted("gqa_testdev", qid)
    w.write_json("gqa_testdev", readers.GQA_FILE, gq)
    counts["gqa_testdev"] = len(gq)

    # TextVQA val: q75 and 0.5x copies of TextCaps pictures under fresh ids (planted near-duplicates)
    rng = w.rng("textvqa")
    data_rows = []
    chosen = rng.sample(pool["openimages"], min(len(pool["openimages"]), 4 * k))
    for j, tid in enumerate(chosen):
        src = (images / TEXTVQA_DIR / f"{tid}.jpg").read_bytes()
        how = "near_q75" if j % 2 == 0 else "near_half"
        new = f"{rng.getrandbits(64):016x}"
        w.write_bytes("textvqa", f"train_images/{new}.jpg", _q75(src) if how == "near_q75" else _half(src))
        data_rows.append(
            {
                "question": "what does the sign say?",
                "image_id": new,
                "question_id": 34602 + j,
                "answers": ["stop"] * 10,
                "image_classes": [],
                "set_name": "val",
            }
        )
        w.plant("textvqa", str(34602 + j), how, f"{TEXTVQA_DIR}/{tid}.jpg")
    for j in range(4 * k):
        new = f"{rng.getrandbits(64):016x}"
        w.write_bytes("textvqa", f"train_images/{new}.jpg", _field(w.rng("textvqa", new)))
        data_rows.append(
            {
                "question": "what brand is this?",
                "image_id": new,
                "question_id": 35602 + j,
                "answers": ["nike"] * 10,
                "image_classes": [],
                "set_name": "val",
            }
        )
        w.unplanted("textvqa", str(35602 + j))
    w.write_json(
        "textvqa",
        readers.TEXTVQA_FILE,
        {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data_rows},
    )
    counts["textvqa"] = len(data_rows)

    # MMBench (+ CN): base64 images in a TSV; 0.5x copies of COCO training pictures (planted, en only)
    for name in ("mmbench", "mmbench_cn"):
        rng = w.rng(name)
        rows = []
        plant = rng.sample(coco_ids, min(len(coco_ids), 2 * k)) if name == "mmbench" else []
        for j in range(len(plant) + 3 * k):
            if j < len(plant):
                img = _half((images / COCO_DIR / f"{plant[j]:012d}.jpg").read_bytes())
                w.plant(name, str(j), "near_half", f"{COCO_DIR}/{plant[j]:012d}.jpg")
            else:
                img = _field(w.rng(name, j))
                w.unplanted(name, str(j))
            rows.append(
                {
                    "index": str(j),
                    "question": "Which shape is shown?",
                    "hint": "",
                    "A": "circle",
                    "B": "square",
                    "C": "triangle",
                    "D": "star",
                    "answer": "A",
                    "category": "shape",
                    "image": base64.b64encode(img).decode("ascii"),
                    "source": "synth",
                    "l2-category": "perception",
                    "comment": "",
                    "split": "dev",
                }
            )
        buf = io.StringIO()
        wr = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        wr.writeheader()
        wr.writerows(rows)
        w.write_bytes(name, readers.MMBENCH_FILES[name], buf.getvalue().encode("utf-8"))
        counts[name] = len(rows)

    # MM-Vet: byte copies of GQA training pictures (planted by content), fields (unplanted)
    rng = w.rng("mmvet")
    mv: dict[str, Any] = {}
    for j, vid in enumerate(rng.sample(pool["vg_ids"], min(len(pool["vg_ids"]), 2 * k))):
        mv[f"v1_{j}"] = {
            "imagename": f"v1_{j}.jpg",
            "capability": ["rec"],
            "question": "What is shown?",
            "answer": "shapes",
        }
        w.write_bytes("mmvet", f"mm-vet/images/v1_{j}.jpg", (images / GQA_DIR / f"{vid}.jpg").read_bytes())
        w.plant("mmvet", f"v1_{j}", "content", f"{GQA_DIR}/{vid}.jpg")
    for j in range(len(mv), len(mv) + 2 * k):
        mv[f"v1_{j}"] = {
            "imagename": f"v1_{j}.jpg",
            "capability": ["ocr"],
            "question": "What is written?",
            "answer": "nothing",
        }
        w.write_bytes("mmvet", f"mm-vet/images/v1_{j}.jpg", _field(w.rng("mmvet", j)))
        w.unplanted("mmvet", f"v1_{j}")
    w.write_json("mmvet", readers.MMVET_FILE, mv)
    counts["mmvet"] = len(mv)

    # the others: unplanted only
    rng = w.rng("vizwiz")
    for split in ("val", "test"):
        recs = []
        for j in range(2 * k):
            name = f"VizWiz_{split}_{j:08d}.jpg"
            w.write_bytes("vizwiz", f"{split}/{name}", _field(w.rng("vizwiz", split, j)))
            recs.append(
                {
                    "image": name,
                    "question": "What is this?",
                    "answerable": 1,
                    "answer_type": "other",
                    **(
                        {"answers": [{"answer": "a can", "answer_confidence": "yes"}] * 10}
                        if split == "val"
                        else {}
                    ),
                }
            )
            w.unplanted("vizwiz", name.removesuffix(".jpg"))
        w.write_json("vizwiz", f"{split}.json", recs)
    counts["vizwiz"] = 4 * k

    problems, test = {}, []
    for j in range(3 * k):
        pid = str(100 + j)
        problems[pid] = {
            "question": "Which animal's feet are also adapted for swimming?",
            "choices": ["duck", "cat"],
            "answer": 0,
            "hint": "",
            "image": "image.png" if j % 3 else None,
            "task": "closed choice",
            "grade": "grade3",
            "subject": "natural science",
            "topic": "biology",
            "category": "adaptations",
            "skill": "",
            "lecture": "",
            "solution": "",
            "split": "test",
        }
        test.append(pid)
        if j % 3:
            png = io.BytesIO()
            Image.open(io.BytesIO(_field(w.rng("scienceqa", j)))).save(png, "PNG")
            w.write_bytes("scienceqa", f"test/{pid}/image.png", png.getvalue())
            w.unplanted("scienceqa", pid)
    w.write_json("scienceqa", "problems.json", problems)
    w.write_json("scienceqa", "pid_splits.json", {"train": [], "val": [], "test": test})
    counts["scienceqa"] = sum(1 for p in problems.values() if p["image"])

    seedq = []
    for j in range(3 * k):
        data_id = f"{1000 + j}_{2591111986 + j}"
        w.write_bytes("seed", f"SEED-Bench-image/{data_id}", _field(w.rng("seed", j)))
        seedq.append(
            {
                "answer": "B",
                "choice_a": "one",
                "choice_b": "two",
                "choice_c": "three",
                "choice_d": "four",
                "data_id": data_id,
                "data_type": "image",
                "question": "How many cups are there?",
                "question_id": str(101669 + j),
                "question_type_id": 5,
            }
        )
        w.unplanted("seed", str(101669 + j))
    w.write_json("seed", readers.SEED_FILE, {"question_type": {"Instances Counting": 5}, "questions": seedq})
    counts["seed"] = len(seedq)

    lbq, lba = [], []
    for j in range(2 * k):
        w.write_bytes("llava_bench", f"images/{j + 1:03d}.jpg", _field(w.rng("llava_bench", j)))
        lbq.append(
            {
                "question_id": j,
                "image": f"{j + 1:03d}.jpg",
                "text": "Describe this photo in detail.",
                "category": "detail",
            }
        )
        lba.append({"question_id": j, "text": "A colourful blur.", "category": "detail"})
        w.unplanted("llava_bench", str(j))
    w.write_json("llava_bench", "questions.jsonl", lbq, lines=True)
    w.write_json("llava_bench", "answers_gpt4.jsonl", lba, lines=True)
    counts["llava_bench"] = len(lbq)

    n = 0
    for cat in ("color", "OCR"):
        for j in range(k):
            stem = f"{cat.lower()}_{j:03d}"
            w.write_bytes("mme", f"{readers.MME_DIR}/{cat}/{stem}.jpg", _field(w.rng("mme", cat, j)))
            w.write_bytes(
                "mme",
                f"{readers.MME_DIR}/{cat}/{stem}.txt",
                b"Is there a red object in the image? Please answer yes or no.\tYes\n"
                b"Is there a blue object in the image? Please answer yes or no.\tNo\n",
            )
            for q in range(2):
                w.unplanted("mme", f"{cat}/{stem}/{q}")
            n += 2
    counts["mme"] = n

    with atomic_path(folder(root, "x").parent / TRUTH) as tmp:
        tmp.write_text(json.dumps(w.truth, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return counts
