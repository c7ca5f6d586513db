"""Normalize at real scale: GQA (72,140 images, 943,000 questions) and VQAv2 (82,783 images,
443,757 questions) in their real JSON layouts, generated here with planted bad records.

Each source is normalized in a fresh child process so that its peak RSS is its own. Baseline (same
run): the time to `json.load` the same file with the standard library (what the original tooling
does), and its peak RSS.

    python benchmarks/bench_normalize.py [--work DIR] [--scale 1.0] [--out bench-results.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GQA_IMAGES, GQA_QUESTIONS = 72_140, 943_000
VQA_IMAGES, VQA_QUESTIONS = 82_783, 443_757

_GQA_EXTRA = (
    '"fullAnswer": "Yes, the sky is dark.", "isBalanced": true, "groups": {"global": null, "local": "06-sky_dark"}, '
    '"types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"}, '
    '"semantic": [{"operation": "select", "dependencies": [], "argument": "sky (2486325)"}, '
    '{"operation": "verify color", "dependencies": [0], "argument": "dark"}], '
    '"semanticStr": "select: sky (2486325)->verify color: dark [0]", '
    '"annotations": {"question": {"2": "2486325"}, "answer": {}, "fullAnswer": {"2": "2486325"}}, '
    '"entailed": ["02930160", "02930158", "02930159"], "equivalent": ["02930152"]'
)


def _touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"\xff\xd8\xff")  # non-empty; normalize of these sources checks presence only


def gen_gqa(root: Path, scale: float) -> int:
    n_img, n_q = int(GQA_IMAGES * scale), int(GQA_QUESTIONS * scale)
    rng = random.Random(0)
    ids = [str(1_000_000 + i) for i in range(n_img)]
    _touch_images(root / "images/gqa/images", [f"{i}.jpg" for i in ids[:-50]])  # 50 images missing
    path = root / "raw/gqa/train_balanced_questions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("{")
        for q in range(n_q):
            img = ids[q % n_img]
            sep = "," if q else ""
            if q % 50_000 == 7:  # planted bad record: no answer
                f.write(f'{sep}"{q:08d}": {{"question": "Broken?", "imageId": "{img}", {_GQA_EXTRA}}}')
                continue
            ans = rng.choice(["yes", "no", "left", "right", "table", "white"])
            f.write(
                f'{sep}"{q:08d}": {{"question": "Is the object number {q} on the left side of the picture?", '
                f'"imageId": "{img}", "answer": "{ans}", {_GQA_EXTRA}}}'
            )
        f.write("}")
    return path.stat().st_size


def gen_vqav2(root: Path, scale: float) -> int:
    n_img, n_q = int(VQA_IMAGES * scale), int(VQA_QUESTIONS * scale)
    rng = random.Random(1)
    ids = [100_000 + 3 * i for i in range(n_img)]
    _touch_images(root / "images/coco/train2017", [f"{i:012d}.jpg" for i in ids[:-20]])
    raw = root / "raw/vqav2"
    raw.mkdir(parents=True, exist_ok=True)
    questions, annotations = [], []
    for q in range(n_q):
        img = ids[q % n_img]
        qid = img * 1000 + q // n_img
        questions.append({"image_id": img, "question": f"What color is thing {q}?", "question_id": qid})
        if q % 40_000 == 3:
            continue  # planted: question without annotation
        words = [rng.choice(["red", "blue", "2", "yes", "no"]) for _ in range(10)]
        annotations.append({
            "question_id": qid, "image_id": img, "question_type": "what color is the", "answer_type": "other",
            "multiple_choice_answer": words[0],
            "answers": [{"answer_id": j + 1, "answer": w, "answer_confidence": "yes"} for j, w in enumerate(words)],
        })
    head = {"info": {"description": "synthetic"}, "license": {}, "data_subtype": "train2014", "data_type": "mscoco"}
    (raw / "v2_OpenEnded_mscoco_train2014_questions.json").write_text(
        json.dumps({**head, "task_type": "Open-Ended", "questions": questions})
    )
    (raw / "v2_mscoco_train2014_annotations.json").write_text(json.dumps({**head, "annotations": annotations}))
    return sum(p.stat().st_size for p in raw.iterdir())


_CHILD_NORMALIZE = """
import json, resource, sys, time
from datamix.normalize import normalize_source
t = time.perf_counter()
s = normalize_source(sys.argv[1], sys.argv[2], force=True)
print(json.dumps({"seconds": time.perf_counter() - t, "items": s["items"], "drops": s["drops"],
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_CHILD_JSON = """
import json, resource, sys, time
t = time.perf_counter()
n = 0
for p in sys.argv[1:]:
    with open(p, encoding="utf-8") as f:
        n += len(json.load(f))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(work: Path, scale: float) -> list[dict]:
    results = []
    for name, gen, files in (
        ("gqa", gen_gqa, ["raw/gqa/train_balanced_questions.json"]),
        ("vqav2", gen_vqav2, ["raw/vqav2/v2_mscoco_train2014_annotations.json",
                              "raw/vqav2/v2_OpenEnded_mscoco_train2014_questions.json"]),
    ):
        t = time.perf_counter()
        size = gen(work, scale)
        gen_s = time.perf_counter() - t
        ours = _child(_CHILD_NORMALIZE, name, str(work))
        base = _child(_CHILD_JSON, *[str(work / f) for f in files])
        note = (f"{ours['items']:,} items, {ours['drops']:,} drops from {size / 2**20:.0f} MiB of JSON "
                f"(generated in {gen_s:.0f}s, scale {scale}); baseline = stdlib json.load of the same files")
        results += [
            {"name": f"normalize_{name}_seconds", "value": round(ours["seconds"], 2), "unit": "s",
             "baseline": round(base["seconds"], 2), "ratio": round(base["seconds"] / ours["seconds"], 2), "notes": note},
            {"name": f"normalize_{name}_peak_rss_mib", "value": round(ours["rss_mib"]), "unit": "MiB",
             "baseline": round(base["rss_mib"]), "ratio": round(base["rss_mib"] / ours["rss_mib"], 2), "notes": note},
        ]
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes")
    ap.add_argument("--out", type=Path, default=None, help="append results to this JSON list file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = run(work, args.scale)
    for r in results:
        print(f"{r['name']:<32} {r['value']:>10} {r['unit']:<4} baseline {r['baseline']} (x{r['ratio']})  {r['notes']}")
    if args.out:
        old = json.loads(args.out.read_text()) if args.out.exists() else []
        names = {r["name"] for r in results}
        args.out.write_text(json.dumps([o for o in old if o["name"] not in names] + results, indent=2) + "\n")


if __name__ == "__main__":
    main()
