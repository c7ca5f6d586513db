"""`datamix contamination` (a) same image + (c) same question, timed on a built mix against benchmark
annotation files written at their real sizes (no benchmark pictures: the content-hash and
near-duplicate checks need the pictures and are not part of this figure).

    python benchmarks/bench_contamination.py --mix DIR/mixes/llava15_665k --root DIR [--out bench-results.json]

Real sizes written under ROOT/benchmarks/ (overwriting): VQAv2 test-dev 107,394 questions on 36,807
images, GQA test-dev 12,578 on 398, POPE 3 x 3,000 on 500 COCO images (half of them taken from the
mix's COCO pictures, so that the question check has work), TextVQA val 5,000 on 3,166, VizWiz 4,319 val
+ 8,000 test, ScienceQA 4,241 test (2,017 with a picture), MMBench 4,377 (+ CN), SEED-Bench 14,233
image questions, LLaVA-Bench 60, MM-Vet 218, MME 2,374. The command runs as a child process; wall
time and peak RSS (os.wait4) are printed and appended to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from datamix.contamination import image_ident
from datamix.evalsets import folder, readers


def _w(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_real_size(root: Path, mix: Path, seed: int = 0) -> int:
    rng = random.Random(seed)
    images = pq.read_table(mix / "manifest.parquet", columns=["image"]).column("image").to_pylist()
    coco = sorted({int(i.split(":")[1]) for i in map(image_ident, images) if i and i.startswith("coco:")})
    n = 0

    def ids(k: int) -> list[int]:
        return [rng.randrange(1, 600_000) for _ in range(k)]

    qs = []
    for iid in ids(36_807):
        for _ in range(3):
            qs.append({"image_id": iid, "question": "What is the man holding?", "question_id": len(qs)})
    qs = qs[:107_394]
    _w(folder(root, "vqav2_testdev") / readers.VQAV2_FILE, json.dumps({"questions": qs}))
    n += len(qs)
    g = {
        str(i): {
            "imageId": f"n{rng.randrange(10**5, 10**6)}",
            "question": "Is the sky blue?",
            "answer": "yes",
        }
        for i in range(12_578)
    }
    _w(folder(root, "gqa_testdev") / readers.GQA_FILE, json.dumps(g))
    n += len(g)
    pope_imgs = rng.sample(coco, min(250, len(coco))) + ids(250)
    for f in readers.POPE_FILES:
        lines = [
            json.dumps(
                {
                    "question_id": j,
                    "image": f"COCO_val2014_{pope_imgs[j % 500]:012d}.jpg",
                    "text": "Is there a person in the image?",
                    "label": "yes",
                }
            )
            for j in range(3000)
        ]
        _w(folder(root, "pope") / f, "\n".join(lines) + "\n")
        n += 3000
    data = [
        {
            "question": "what brand is this?",
            "image_id": f"{rng.getrandbits(64):016x}",
            "question_id": j,
            "answers": ["x"],
        }
        for j in range(5000)
    ]
    _w(folder(root, "textvqa") / readers.TEXTVQA_FILE, json.dumps({"data": data}))
    n += 5000
    for split, k in (("val", 4319), ("test", 8000)):
        _w(
            folder(root, "vizwiz") / f"{split}.json",
            json.dumps(
                [{"image": f"VizWiz_{split}_{j:08d}.jpg", "question": "What is this?"} for j in range(k)]
            ),
        )
        n += k
    probs = {
        str(j): {
            "question": "Which is a mammal?",
            "choices": ["a", "b"],
            "answer": 0,
            "image": "image.png" if j < 2017 else None,
            "split": "test",
        }
        for j in range(4241)
    }
    _w(folder(root, "scienceqa") / "problems.json", json.dumps(probs))
    _w(folder(root, "scienceqa") / "pid_splits.json", json.dumps({"test": list(probs)}))
    n += 2017
    for name, fname in readers.MMBENCH_FILES.items():
        p = folder(root, name) / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["index", "question", "A", "B", "answer", "image"])
            for j in range(4377):
                w.writerow([j, "Which one is shown?", "x", "y", "A", ""])
        n += 4377
    sq = [
        {
            "question_id": str(j),
            "question": "How many?",
            "choice_a": "1",
            "choice_b": "2",
            "choice_c": "3",
            "choice_d": "4",
            "answer": "A",
            "data_id": f"{j}_1.jpg",
            "data_type": "image",
        }
        for j in range(14_233)
    ]
    _w(folder(root, "seed") / readers.SEED_FILE, json.dumps({"questions": sq}))
    n += len(sq)
    _w(
        folder(root, "llava_bench") / "questions.jsonl",
        "".join(
            json.dumps({"question_id": j, "image": f"{j % 24 + 1:03d}.jpg", "text": "Describe."}) + "\n"
            for j in range(60)
        ),
    )
    n += 60
    _w(
        folder(root, "mmvet") / readers.MMVET_FILE,
        json.dumps(
            {f"v1_{j}": {"imagename": f"v1_{j}.png", "question": "What?", "answer": "x"} for j in range(218)}
        ),
    )
    n += 218
    for j in range(1187):
        _w(
            folder(root, "mme") / readers.MME_DIR / "existence" / f"{j:06d}.txt",
            "Is there a dog?\tYes\nIs there a cat?\tNo\n",
        )
    n += 2374
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mix", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    items = write_real_size(args.root, args.mix)
    exe = Path(sys.executable).parent / "datamix"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "contamination", str(args.mix), "--root", str(args.root), "--no-near", "--format", "json"],
        stdout=subprocess.PIPE,
    )
    out = proc.stdout.read() if proc.stdout else b""
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    report = json.loads(out)
    res = {
        "name": "contamination_image_question",
        "value": round(wall, 1),
        "unit": "s",
        "samples": report["samples"],
        "benchmark_items": items,
        "peak_rss_mib": round(ru.ru_maxrss / 1024),
        "seconds": report["seconds"],
        "matched": {k: v["counts"]["any"] for k, v in report["benchmarks"].items()},
    }
    print(json.dumps(res))
    if args.out:
        prev = json.loads(args.out.read_text()) if args.out.is_file() else []
        args.out.write_text(json.dumps([*prev, res], indent=2) + "\n")


if __name__ == "__main__":
    main()
