"""The trainer's data path per CPU core, against the original LLaVA way of reading data, same run.

Builds a synthetic mix of N image samples (photo-like 640x480 JPEGs of tens of KB: gradients,
smooth blobs and sensor-like noise, several distinct images; a share in portrait) with
`datamix.shards`, then times one epoch in ONE process with ONE torch thread (so the figure is per
core; DataLoader workers scale it by the number of cores):

- ours: `trainer.data.ShardStream` + `ShardLoader` (num_workers=0): read shard, parse, shuffle
  buffer, group by modality/length, decode, pad, resize to 336, normalise (exact, float32),
  tokenize (stub), collate;
- naive (baseline): what LLaVA's `LazySupervisedDataset` does (llava/train/train.py): one JSON
  file of all records, loose image files, per sample `Image.open(path).convert("RGB")`,
  `expand2square`, `CLIPImageProcessor.preprocess` (transformers' PIL processor), the same
  tokenizer stub, collate with `pad_sequence`.

Also reported: our uint8 output (normalisation moved to the accelerator with
`trainer.images.normalize_pixels`), JPEG draft mode, a per-stage breakdown, and ours on PRESIZED
shards of the same samples (`datamix.shards.write_mix(presize=PresizeSpec(size=336))`, the recipe's
`shards: presize`: the padded 336 px square stored as a quality-95 JPEG at build time; the loader
then decodes a small square and skips pad + resize; inexact: the max / mean uint8 difference to the
exact path over the distinct images is reported with it).

    python benchmarks/bench_loader.py [--n 1000] [--work DIR] [--out bench-results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 336
QUESTION = "<image>\nWhat is happening in this picture? Describe the scene in detail, including colours."
ANSWER = "A street scene with a red bus, two people crossing, and tall buildings under a cloudy sky. " * 3


def photo_jpeg(seed: int, w: int = 640, h: int = 480) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(5, 40, 2)
        img[..., c] = (
            rng.uniform(40, 200)
            + rng.uniform(-60, 60) * x / w
            + rng.uniform(-60, 60) * y / h
            + 35 * np.sin(x / fx + rng.uniform(0, 6)) * np.cos(y / fy)
        )
    img += rng.normal(0, 6, (h, w, 1))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def tokenize_stub(text: str) -> list[int]:
    """Stands in for a tokenizer (same in both paths): ~4 chars per token, LLaMA-sized ids."""
    b = text.encode()
    return [1] + [int.from_bytes(b[i : i + 4].ljust(4, b"\0"), "little") % 32000 for i in range(0, len(b), 4)]


def transform(record, image):
    ids = []
    labels = []
    for turn in record["conversations"]:
        t = tokenize_stub(turn["value"])
        ids += t
        labels += t if turn["from"] == "gpt" else [-100] * len(t)
    return {"input_ids": ids, "labels": labels}


# --------------------------------------------------------------------------------------------
# data


def build(work: Path, n: int, distinct: int) -> tuple[Path, Path | None, Path, Path, int]:
    """(mix dir, presized mix dir or None, LLaVA json file, image folder, mean JPEG bytes)."""
    images = work / "images"
    (images / "bench").mkdir(parents=True, exist_ok=True)
    blobs = [photo_jpeg(i, *((480, 640) if i % 5 == 4 else (640, 480))) for i in range(distinct)]
    records = []
    for i in range(n):
        rel = f"bench/{i:07d}.jpg"
        (images / rel).write_bytes(blobs[i % distinct])
        records.append(
            {
                "id": str(i),
                "image": rel,
                "conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": ANSWER}],
            }
        )
    json_path = work / "llava.json"
    json_path.write_text(json.dumps(records))
    mix = work / "mix"
    presized: Path | None = work / "mix-presized"
    try:
        from datamix.schema import Sample
        from datamix.shards import write_mix

        samples = [
            Sample.create(
                key=f"bench-{i}",
                id=r["id"],
                source="bench",
                image=r["image"],
                conversations=r["conversations"],
            )
            for i, r in enumerate(records)
        ]
        write_mix(mix, "bench", samples, images, summary={}, max_samples=500, force=True)
    except (ImportError, TypeError, AttributeError) as e:  # datamix API moved: write the same contract here
        print(f"datamix.shards unavailable ({e}); writing shards directly", file=sys.stderr)
        _write_shards(mix, records, images)
    try:
        from datamix.recipe import PresizeSpec

        write_mix(
            presized,
            "bench",
            samples,
            images,
            summary={},
            max_samples=500,
            force=True,
            presize=PresizeSpec(size=SIZE),
        )
    except (ImportError, TypeError, AttributeError, NameError) as e:
        print(f"presized shards unavailable ({e}); figure skipped", file=sys.stderr)
        presized = None
    return mix, presized, json_path, images, int(np.mean([len(b) for b in blobs]))


def presize_difference(image_folder: Path, presized: Path) -> dict[str, float]:
    """max / mean absolute uint8 difference, exact path vs presized, over the distinct images."""
    from datamix.mixio import MixReader
    from trainer.images import ImageProcessor

    proc = ImageProcessor(size=SIZE, output="uint8")
    stored = {}
    with MixReader(presized) as reader:
        for sample in reader.iter_samples(images=True):
            rec = sample.record()
            if sample.image is not None and rec["image"] not in stored:
                stored[rec["image"]] = sample.image
    diffs = [
        np.abs(proc((image_folder / rel).read_bytes()).astype(np.int16) - proc(data).astype(np.int16))
        for rel, data in stored.items()
    ]
    return {
        "max_abs": int(max(d.max() for d in diffs)),
        "mean_abs": round(float(np.mean([d.mean() for d in diffs])), 3),
    }


def _write_shards(mix: Path, records: list[dict], images: Path) -> None:
    (mix / "shards").mkdir(parents=True, exist_ok=True)
    for s in range(0, len(records), 500):
        with tarfile.open(
            mix / "shards" / f"bench-{s // 500:06d}.tar", "w", format=tarfile.GNU_FORMAT
        ) as tar:
            for i, r in enumerate(records[s : s + 500], start=s):
                key = f"bench-{i}"
                for name, data in (
                    (f"{key}.json", json.dumps({**r, "source": "bench", "key": key}).encode()),
                    (f"{key}.jpg", (images / r["image"]).read_bytes()),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


# --------------------------------------------------------------------------------------------
# the two pipelines


def run_ours(mix: Path, batch_size: int, **proc) -> tuple[float, int]:
    from trainer.data import ShardLoader, ShardStream
    from trainer.images import ImageProcessor

    ds = ShardStream(
        mix,
        batch_size=batch_size,
        transform=transform,
        image_processor=ImageProcessor(size=SIZE, **proc),
        seed=0,
    )
    t0 = time.perf_counter()
    n = 0
    for batch in ShardLoader(ds, num_workers=0):
        n += batch["input_ids"].shape[0]
    return time.perf_counter() - t0, n


def expand2square(pil_img, background_color):  # llava/mm_utils.py
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


def run_naive(json_path: Path, image_folder: Path, batch_size: int) -> tuple[float, int]:
    import torch
    from torch.nn.utils.rnn import pad_sequence

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from transformers import CLIPImageProcessorPil as Proc
        except ImportError:
            from transformers import CLIPImageProcessor as Proc
    processor = Proc(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    t0 = time.perf_counter()
    data = json.load(open(json_path))  # LazySupervisedDataset: the whole file at start
    n = 0
    batch = []
    for rec in data:  # __getitem__
        image = Image.open(os.path.join(image_folder, rec["image"])).convert("RGB")
        image = expand2square(image, tuple(int(x * 255) for x in processor.image_mean))
        pixel_values = processor.preprocess(image, return_tensors="pt")["pixel_values"][0]
        enc = transform(rec, pixel_values)
        batch.append((torch.tensor(enc["input_ids"]), torch.tensor(enc["labels"]), pixel_values))
        if len(batch) == batch_size or n + len(batch) == len(data):  # DataCollatorForSupervisedDataset
            ids = pad_sequence([b[0] for b in batch], batch_first=True, padding_value=0)
            labels = pad_sequence([b[1] for b in batch], batch_first=True, padding_value=-100)
            images = torch.stack([b[2] for b in batch])
            n += ids.shape[0]
            assert labels.shape == ids.shape and images.shape[0] == ids.shape[0]
            batch = []
    return time.perf_counter() - t0, n


def stage_breakdown(image_folder: Path, k: int = 100) -> dict[str, float]:
    from trainer.images import decode, normalization_lut, normalize, resize_padded

    paths = sorted((image_folder / "bench").glob("*.jpg"))[:k]
    blobs = [p.read_bytes() for p in paths]
    t = {}
    t0 = time.perf_counter()
    ims = [decode(b) for b in blobs]
    t["decode_ms"] = (time.perf_counter() - t0) / k * 1e3
    t0 = time.perf_counter()
    rs = [resize_padded(im, SIZE) for im in ims]
    t["pad_resize_ms"] = (time.perf_counter() - t0) / k * 1e3
    lut = normalization_lut()
    t0 = time.perf_counter()
    for r in rs:
        normalize(np.asarray(r), lut)
    t["normalize_ms"] = (time.perf_counter() - t0) / k * 1e3
    return {k_: round(v, 2) for k_, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="image samples in the synthetic mix")
    ap.add_argument("--distinct", type=int, default=50, help="distinct JPEGs (reused across samples)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="JSON list file to append results to")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        mix, presized, json_path, images, jpeg_bytes = build(work, args.n, args.distinct)
        run_ours(mix, args.batch_size)  # warm the page cache and imports for both paths
        run_naive(json_path, images, args.batch_size)
        t_naive, n_naive = run_naive(json_path, images, args.batch_size)
        t_ours, n_ours = run_ours(mix, args.batch_size)
        t_u8, _ = run_ours(mix, args.batch_size, output="uint8")
        t_draft, _ = run_ours(mix, args.batch_size, draft=True)
        t_pre = n_pre = diff = None
        if presized is not None:
            t_pre, n_pre = run_ours(presized, args.batch_size)
            diff = presize_difference(images, presized)
        stages = stage_breakdown(images)
    assert n_naive == n_ours == args.n and n_pre in (None, args.n), (n_naive, n_ours, n_pre)
    naive, ours, u8, draft = (args.n / t for t in (t_naive, t_ours, t_u8, t_draft))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    common = (
        f"{args.n} samples of 640x480/480x640 JPEG (mean {jpeg_bytes // 1024} KiB), batch {args.batch_size}, "
        f"1 process, 1 torch thread; {machine}"
    )
    results = [
        {
            "name": "loader_samples_per_s_per_core",
            "value": round(ours, 1),
            "unit": "samples/s/core",
            "baseline": round(naive, 1),
            "ratio": round(ours / naive, 2),
            "notes": f"exact float32 path (bit-identical to CLIPImageProcessor); baseline = LLaVA LazySupervisedDataset way; "
            f"{common}; per-sample stages {stages}",
        },
        {
            "name": "loader_vs_naive",
            "value": round(ours / naive, 2),
            "unit": "x",
            "baseline": round(naive, 1),
            "ratio": round(ours / naive, 2),
            "notes": f"ours {ours:.1f} vs naive {naive:.1f} samples/s/core; {common}",
        },
        {
            "name": "loader_uint8_samples_per_s_per_core",
            "value": round(u8, 1),
            "unit": "samples/s/core",
            "baseline": round(naive, 1),
            "ratio": round(u8 / naive, 2),
            "notes": "uint8 pixels, normalisation deferred to the accelerator (trainer.images.normalize_pixels, "
            f"bit-identical); {common}",
        },
        {
            "name": "loader_draft_samples_per_s_per_core",
            "value": round(draft, 1),
            "unit": "samples/s/core",
            "baseline": round(naive, 1),
            "ratio": round(draft / naive, 2),
            "notes": "JPEG draft mode on (inexact); it only acts when the long side >= 2 x 336, so on 640 px images "
            f"it is a no-op; {common}",
        },
    ]
    if t_pre is not None:
        pre = args.n / t_pre
        results.append(
            {
                "name": "loader_presized_samples_per_s_per_core",
                "value": round(pre, 1),
                "unit": "samples/s/core",
                "baseline": round(naive, 1),
                "ratio": round(pre / naive, 2),
                "notes": f"same samples, shards built with presize (336 px square, JPEG q95 4:4:4; inexact: uint8 "
                f"difference to the exact path {diff}); exact float32 output otherwise; {pre / ours:.2f}x ours exact; "
                f"{common}",
            }
        )
    for r in results:
        print(json.dumps(r))
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(existing + results, indent=2) + "\n")


if __name__ == "__main__":
    main()
