"""One stage-2 training step at Vicuna-7B width on the 665K mix's length profile: padded vs
length-grouped vs packed batches, against plain transformers, in the same run (GPU only).

The model is LLaVA-1.5's shape with fewer layers: a CLIP ViT-L/14-336 tower (1024 wide, frozen, as in
stage 2) and a Llama of Vicuna-7B width (4096 hidden, 11008 MLP, 32 heads) with `--layers` layers,
random weights, bf16, gradient checkpointing, AdamW (torch, fused). A sample set of `--samples`
sequences is drawn from the length profile below (576 image tokens + the text of each source, by
the 665K mix's source shares; ShareGPT is text-only, truncated at 2048), then every mode trains on
the same samples in micro batches of `--batch` samples:

- `hf_padded` (baseline): plain transformers, `LlavaForConditionalGeneration(..., labels=)` (logits
  over the whole 32K vocabulary at every position), random batches padded to the longest, SDPA;
- `padded`: ours (`trainer.model.labelled_loss`: the output layer only where labels are set) on the
  same padded batches;
- `grouped`: ours, batches of similar length (`group_by_modality_length`'s idea);
- `packed`: ours, each micro batch packed into rows of `--max-length` tokens (`trainer.packing`),
  SDPA with the block-diagonal mask transformers builds from restarting position ids;
- `packed_flex` / `packed_flash`: the same with FlexAttention / flash-attention 2 when available.

Reported per mode: useful (non-padding) tokens/s, padding share and MFU = 6 x trainable parameters x
useful tokens / time / peak bf16 FLOP/s (the issue's definition; the peak comes from the device name,
or DATAMIX_PEAK_FLOPS). `train_step_mfu` is the best of ours, with `hf_padded` as its baseline.
On a machine without a GPU the figure is written as skipped; `--smoke` runs a tiny version on CPU
(used by the tests to keep the script working).

    python benchmarks/bench_train_step.py [--layers 4] [--samples 64] [--batch 8] [--out bench-results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from results import merge_results

from trainer.config import ModelConfig, TinySizes  # noqa: E402
from trainer.data import collate  # noqa: E402
from trainer.loop import peak_flops  # noqa: E402
from trainer.model import build_model, labelled_loss  # noqa: E402
from trainer.packing import pack_batch, padding_stats  # noqa: E402
from trainer.templates import IGNORE_INDEX, IMAGE_TOKEN_ID, PAD_TOKEN_ID  # noqa: E402

# source -> (count in the 665K mix, has image, text tokens low, high): counts from manifests/; text
# lengths are estimates from each source's released format (questions merged per image, turns x
# typical tokens per turn), drawn log-uniformly between low and high. `--lengths` takes real ones.
PROFILE: dict[str, tuple[int, bool, int, int]] = {
    "llava_instruct": (157_712, True, 120, 520),
    "sharegpt": (40_688, False, 250, 2048),
    "vqav2": (82_783, True, 60, 220),
    "gqa": (72_140, True, 90, 420),
    "okvqa": (8_998, True, 40, 90),
    "aokvqa": (66_160, True, 70, 130),
    "ocrvqa": (80_000, True, 110, 240),
    "textcaps": (21_953, True, 40, 70),
    "vg": (86_417, True, 230, 360),
    "refcoco": (48_447, True, 180, 380),
}
SYSTEM_TOKENS = 35  # the vicuna_v1 system prompt and roles


def draw_lengths(n: int, image_tokens: int, max_length: int, seed: int = 0) -> list[tuple[int, bool]]:
    """(sequence length, has image) for n samples of the mix's profile, capped at max_length."""
    rng = random.Random(seed)
    names = list(PROFILE)
    weights = [PROFILE[s][0] for s in names]
    out = []
    for source in rng.choices(names, weights, k=n):
        _, image, lo, hi = PROFILE[source]
        text = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        out.append((min(max_length, SYSTEM_TOKENS + text + (image_tokens if image else 0)), image))
    return out


def lengths_from_manifest(path: Path, n: int, max_length: int, seed: int = 0) -> list[tuple[int, bool]]:
    """n (length, has image) pairs drawn from a mix's manifest.parquet (its `n_tokens` must be set)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["n_tokens", "image"]).to_pylist()
    rows = [(min(max_length, r["n_tokens"]), r["image"] is not None) for r in table if r["n_tokens"]]
    if not rows:
        raise SystemExit(f"{path}: no n_tokens in this manifest (build the mix with a tokenizer)")
    return random.Random(seed).choices(rows, k=n)


def make_samples(
    lengths: list[tuple[int, bool]], image_tokens: int, image_size: int, vocab: int, seed: int = 0
):
    """Token sequences with an image block after the system prompt and the last 40% of the text labelled."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for k, (n, image) in enumerate(lengths):
        ids = torch.randint(3, vocab, (n,), generator=g)
        ids[0] = 1
        start = SYSTEM_TOKENS
        if image:
            ids[start : start + image_tokens] = IMAGE_TOKEN_ID
            start += image_tokens
        labels = torch.full((n,), IGNORE_INDEX)
        first_label = start + int(0.6 * (n - start))
        labels[first_label:] = ids[first_label:]
        pixels = torch.randn(3, image_size, image_size, generator=g) if image else None
        samples.append(
            {
                "input_ids": ids.tolist(),
                "labels": labels.tolist(),
                "pixel_values": pixels,
                "key": f"s{k}",
                "length": n,
            }
        )
    return samples


def batches_of(samples: list[dict], batch: int, grouped: bool, seed: int = 0) -> list[list[dict]]:
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    if grouped:  # megabatches of 8 batches sorted by length, image and text-only kept apart
        mega = batch * 8
        order = [
            i
            for m in range(0, len(order), mega)
            for i in sorted(
                order[m : m + mega], key=lambda i: (samples[i]["pixel_values"] is None, -samples[i]["length"])
            )
        ]
    return [[samples[i] for i in order[b : b + batch]] for b in range(0, len(order), batch)]


def run_mode(model, batches, mode: str, max_length: int, device, dtype, steps: int | None) -> dict[str, Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    prepared = []
    for group in batches:
        b = collate(group, pad_id=PAD_TOKEN_ID)
        if mode.startswith("packed"):
            b = pack_batch(b, max_length, PAD_TOKEN_ID)
        prepared.append(b)
    prepared = prepared[:steps] if steps else prepared

    def step(b):
        inputs = {
            "input_ids": b["input_ids"].to(device),
            "pixel_values": None if b["pixel_values"] is None else b["pixel_values"].to(device, dtype),
            "attention_mask": None if b["attention_mask"] is None else b["attention_mask"].to(device),
            "position_ids": None if b.get("position_ids") is None else b["position_ids"].to(device),
        }
        labels = b["labels"].to(device)
        if mode == "hf_padded":
            loss = model(labels=labels, use_cache=False, **inputs).loss
        else:
            loss = labelled_loss(model, labels=labels, **inputs)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(prepared[0])  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    useful = slots = 0
    for b in prepared:
        step(b)
        real, total = padding_stats(b)
        useful += real
        slots += total
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "seconds": seconds,
        "useful_tokens": useful,
        "slots": slots,
        "tokens_per_s": useful / seconds,
        "padding": 1 - useful / slots,
        "steps": len(prepared),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=4, help="LLM layers at Vicuna-7B width (of 32)")
    ap.add_argument("--vision-layers", type=int, default=3, help="CLIP ViT-L layers (of 24; frozen)")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8, help="samples per micro batch (all modes)")
    ap.add_argument("--max-length", type=int, default=2048, help="model_max_length and the packed row length")
    ap.add_argument(
        "--lengths",
        type=Path,
        default=None,
        help="a mix's manifest.parquet with n_tokens to draw lengths from",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny widths on CPU, to check the script runs")
    ap.add_argument("--out", type=Path, default=None, help="merge results into this JSON list file")
    args = ap.parse_args()

    on_gpu = torch.cuda.is_available()
    results: list[dict[str, Any]] = []
    if not on_gpu and not args.smoke:
        print("train_step_mfu: skipped (no GPU; --smoke runs a tiny CPU version)")
        results.append(
            {
                "name": "train_step_mfu",
                "value": None,
                "unit": "MFU",
                "baseline": None,
                "ratio": None,
                "notes": "skipped: needs a CUDA GPU",
            }
        )
    else:
        results = measure(args, on_gpu)
    for r in results:
        print(json.dumps(r))
    if args.out:
        merge_results(args.out, results)
    return 0


def measure(args: argparse.Namespace, on_gpu: bool) -> list[dict[str, Any]]:
    device = torch.device("cuda" if on_gpu else "cpu")
    dtype = torch.bfloat16 if on_gpu else torch.float32
    if args.smoke:
        sizes = TinySizes(
            vision_hidden_size=32,
            vision_layers=2,
            vision_heads=2,
            vision_intermediate_size=64,
            llm_hidden_size=64,
            llm_layers=2,
            llm_heads=2,
            llm_kv_heads=2,
            llm_intermediate_size=128,
            max_position_embeddings=args.max_length,
        )
        mcfg = ModelConfig(preset="tiny", image_size=112, patch_size=14, tiny=sizes)
    else:
        sizes = TinySizes(
            vision_hidden_size=1024,
            vision_layers=args.vision_layers,
            vision_heads=16,
            vision_intermediate_size=4096,
            llm_hidden_size=4096,
            llm_layers=args.layers,
            llm_heads=32,
            llm_kv_heads=32,
            llm_intermediate_size=11008,
            max_position_embeddings=4096,
        )
        mcfg = ModelConfig(preset="tiny", image_size=336, patch_size=14, tiny=sizes)
    model, _ = build_model(mcfg)
    model.model.vision_tower.requires_grad_(False)  # stage 2: projector + LLM
    model.to(device=device, dtype=dtype)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    image_tokens = (mcfg.image_size // mcfg.patch_size) ** 2
    if args.lengths:
        lengths = lengths_from_manifest(args.lengths, args.samples, args.max_length)
    else:
        lengths = draw_lengths(args.samples, image_tokens if not args.smoke else 576, args.max_length)
    samples = make_samples(lengths, image_tokens, mcfg.image_size, vocab=32000)
    plain = batches_of(samples, args.batch, grouped=False)
    grouped = batches_of(samples, args.batch, grouped=True)
    plans = [
        ("hf_padded", plain, "sdpa"),
        ("padded", plain, "sdpa"),
        ("grouped", grouped, "sdpa"),
        ("packed", plain, "sdpa"),
    ]
    if hasattr(torch.nn.attention, "flex_attention") and on_gpu:
        plans.append(("packed_flex", plain, "flex_attention"))
    try:
        import flash_attn  # noqa: F401

        if on_gpu:
            plans.append(("packed_flash", plain, "flash_attention_2"))
    except ImportError:
        pass
    peak = peak_flops()
    runs = []
    for mode, batches, attn in plans:
        try:
            model.set_attn_implementation(attn)
            r = run_mode(
                model, batches, mode, args.max_length, device, dtype, steps=1 if args.smoke else None
            )
        except Exception as e:  # an attention backend missing on this machine: say so, go on
            print(f"{mode}: failed ({type(e).__name__}: {e})")
            continue
        r["mfu"] = None if peak is None else 6 * trainable * r["tokens_per_s"] / peak
        runs.append(r)
        mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(f"{mode:<13} {r['tokens_per_s']:>10.0f} tok/s  padding {r['padding']:.1%}  MFU {mfu}")
        if on_gpu:
            torch.cuda.empty_cache()
    base = next(r for r in runs if r["mode"] == "hf_padded")
    best = max((r for r in runs if r["mode"] != "hf_padded"), key=lambda r: r["tokens_per_s"])
    where = torch.cuda.get_device_name() if on_gpu else "CPU smoke run"
    setup = (
        f"{where}; 7B-width LLM x {args.layers} layers, ViT-L x {args.vision_layers} (frozen), bf16, checkpointing; "
        f"{args.samples} samples of the 665K length profile, micro batch {args.batch}, rows {args.max_length}"
    )
    if args.smoke:
        setup = f"CPU smoke run (tiny widths): {args.samples} samples, micro batch {args.batch}"
    results = [
        {
            "name": "train_step_mfu",
            "value": None if best["mfu"] is None else round(best["mfu"], 4),
            "unit": "MFU",
            "baseline": None if base["mfu"] is None else round(base["mfu"], 4),
            "ratio": round(best["tokens_per_s"] / base["tokens_per_s"], 3),
            "notes": f"best of ours: {best['mode']}; baseline: plain transformers, padded; {setup}",
        }
    ]
    for r in runs:
        results.append(
            {
                "name": f"train_step_tokens_per_s_{r['mode']}",
                "value": round(r["tokens_per_s"], 1),
                "unit": "tokens/s",
                "baseline": round(base["tokens_per_s"], 1),
                "ratio": round(r["tokens_per_s"] / base["tokens_per_s"], 3),
                "notes": f"padding {r['padding']:.1%}; MFU {r['mfu'] if r['mfu'] is None else round(r['mfu'], 4)}; {setup}",
            }
        )
    return results


if __name__ == "__main__":
    raise SystemExit(main())
