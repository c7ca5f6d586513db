"""Shard writing speed: a 100K-sample mix with realistic JPEG sizes (tens of KB) written by
`datamix.shards.write_mix`, against a plain copy of the same image bytes into one file (the I/O
bound), measured in the same run on the same (page-cached) files.

    python benchmarks/bench_build.py [--samples 100000] [--images N] [--jobs 2] [--out bench-results.json]
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter
from results import report

from datamix.schema import Sample
from datamix.shards import write_mix


def _photo(rng: random.Random, w: int, h: int) -> bytes:
    """A photo-like JPEG: gradients, shapes and noise, so it compresses like a real picture (tens of KB)."""
    im = Image.effect_noise((w, h), rng.uniform(30, 70)).convert("RGB")
    grad = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    im = Image.blend(im, grad, 0.5)
    d = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = rng.randrange(w), rng.randrange(h)
        d.ellipse(
            [x, y, x + rng.randrange(20, 160), y + rng.randrange(20, 160)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    im = im.filter(ImageFilter.GaussianBlur(0.6))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=rng.choice([75, 85, 90]))
    return buf.getvalue()


def make_images(root: Path, n: int, seed: int = 0, pool: int = 600) -> list[str]:
    """`n` distinct image files (as many paths as the mix has pictures), their bytes drawn from a pool
    of `pool` encoded photos (encoding every picture would dominate the benchmark's own runtime)."""
    rng = random.Random(seed)
    blobs = [
        _photo(rng, *rng.choice([(640, 480), (480, 640), (500, 375), (640, 427)]))
        for _ in range(min(pool, n))
    ]
    rels = []
    folder = root / "coco/train2017"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rel = f"coco/train2017/{i:012d}.jpg"
        (root / rel).write_bytes(blobs[i % len(blobs)])
        rels.append(rel)
    return rels


def make_samples(images: list[str], n: int, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        if i % 16 == 15:  # text-only share like the mix (~6%)
            image = None
            conv = [
                {"from": "human", "value": "Explain recursion. " * 20},
                {"from": "gpt", "value": "It is... " * 60},
            ]
        else:
            image = images[rng.randrange(len(images))]
            turns = rng.randrange(1, 6)
            conv = []
            for t in range(turns):
                q = (
                    "<image>\n" if t == 0 else ""
                ) + "What color is the object on the left side of the table?"
                conv += [{"from": "human", "value": q}, {"from": "gpt", "value": "Red"}]
        samples.append(
            Sample.create(key=f"bench-{i}", id=f"{i:012d}", source="vqav2", image=image, conversations=conv)
        )
    return samples


def plain_copy(samples: list[Sample], images_root: Path, dest: Path) -> float:
    t = time.perf_counter()
    with open(dest, "wb") as out:
        for s in samples:
            if s.image is not None:
                with open(images_root / s.image, "rb") as f:
                    shutil.copyfileobj(f, out)
    return time.perf_counter() - t


def run(work: Path, n_samples: int, n_images: int, jobs: int) -> list[dict]:
    images_root = work / "images"
    rels = make_images(images_root, n_images)
    samples = make_samples(rels, n_samples)
    image_bytes = sum((images_root / s.image).stat().st_size for s in samples if s.image)
    plain_copy(samples[: min(len(samples), 5000)], images_root, work / "warm.bin")  # warm the page cache
    copy_s = plain_copy(samples, images_root, work / "copy.bin")
    (work / "copy.bin").unlink()
    t = time.perf_counter()
    result = write_mix(work / "mix", "bench", samples, images_root, summary={}, max_samples=2000, jobs=jobs)
    build_s = time.perf_counter() - t
    ours, base = n_samples / build_s, n_samples / copy_s
    note = (
        f"{n_samples:,} samples, {n_images:,} distinct JPEGs (mean {image_bytes / max(1, n_samples - n_samples // 16) / 1024:.0f} KiB), "
        f"{result['shards']} shards, {result['shard_bytes'] / 2**20:.0f} MiB, --jobs {jobs}; baseline = plain copy of the "
        f"same image bytes into one file, one stream, same run"
    )
    return [
        {
            "name": "build_samples_per_s",
            "value": round(ours),
            "unit": "samples/s",
            "baseline": round(base),
            "ratio": round(ours / base, 3),
            "notes": note,
        },
        {
            "name": "build_vs_copy",
            "value": round(ours / base, 3),
            "unit": "x",
            "baseline": 1.0,
            "ratio": round(ours / base, 3),
            "notes": "goal >= 0.5; " + note,
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument(
        "--images",
        type=int,
        default=None,
        help="distinct image files (default samples / 2.3, as in the 665K mix)",
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="merge results into this JSON list file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        n_images = args.images or int(args.samples / 2.3)
        results = run(Path(tmp), args.samples, n_images, args.jobs)
    report(results, args.out, name_width=24, unit_width=10)


if __name__ == "__main__":
    main()
