"""The last step of benchmarks/gpu_check.sh: reload the export in bf16, compare its logits with the run's
training model, and gather every figure of the check into one JSON file.

Inputs (all under the check's work folder `--work`): `bench.json` (bench_train_step.py), the four
training runs `runs/z{2,3}_{padded,packed}/` (`log.jsonl`, `partition.json`, `deepspeed_config.json`),
`export/` (`python -m trainer export` of `runs/z3_padded/final`), `phases.tsv` (phase, seconds, exit
code, written by the shell script).

Logits: the export (the llava-hf layout) loaded with plain `LlavaForConditionalGeneration.from_pretrained`
in bf16 against the run's `final/` (the training model as it was gathered from ZeRO-3 at the end of the
run) in bf16 on the same input (576 image tokens + 64 text tokens, fixed random pixels): max |diff|, and
both against an fp32 load of `final/` (bf16 rounding, for scale).

    python benchmarks/gpu_check_report.py --work DIR --out gpu-check.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RUNS = ("z2_padded", "z2_packed", "z3_padded", "z3_packed")


def run_figures(run: Path, skip: int) -> dict[str, Any]:
    """Median tokens/s, MFU, s/step over the steps after the first `skip` (start-up), and every loss."""
    if not (run / "log.jsonl").is_file():
        return {"status": "missing", "dir": str(run)}
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steady = rows[skip:] or rows

    def med(key: str) -> float | None:
        vals = [r[key] for r in steady if r.get(key) is not None]
        return round(statistics.median(vals), 4) if vals else None

    out: dict[str, Any] = {
        "status": "ok",
        "steps": len(rows),
        "losses": [round(r["last_loss"], 5) for r in rows],
        "tokens_per_s_median": med("tokens_per_s"),
        "mfu_median": med("mfu"),
        "seconds_per_step_median": med("seconds_per_step"),
        "padding_share_median": med("padding"),
        "steady_from_step": steady[0]["step"] if steady else None,
    }
    if (run / "partition.json").is_file():
        out["partition"] = json.loads((run / "partition.json").read_text())
    if (run / "deepspeed_config.json").is_file():
        ds = json.loads((run / "deepspeed_config.json").read_text())
        out["zero_stage"] = ds["zero_optimization"]["stage"]
        out["bf16"] = ds["bf16"]["enabled"]
        out["global_batch"] = ds["train_batch_size"]
    return out


def compare_logits(final: Path, export: Path, image_tokens: int, image_size: int) -> dict[str, Any]:
    import torch
    import transformers
    from transformers import LlavaForConditionalGeneration

    transformers.utils.logging.disable_progress_bar()
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    low = torch.bfloat16
    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor(
        [[1, *[32000] * image_tokens, *torch.randint(3, 32000, (64,), generator=gen).tolist()]]
    )
    pixels = torch.randn(1, 3, image_size, image_size, generator=gen)

    def logits(folder: Path, dtype: torch.dtype) -> torch.Tensor:
        model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=dtype).to(device).eval()
        with torch.no_grad():
            out = (
                model(
                    input_ids=ids.to(device),
                    pixel_values=pixels.to(device, dtype),
                    attention_mask=torch.ones_like(ids).to(device),
                )
                .logits.float()
                .cpu()
            )
        del model
        if on_gpu:
            torch.cuda.empty_cache()
        return out

    t0 = time.perf_counter()
    exported = logits(export, low)
    trained = logits(final, low)
    reference = logits(final, torch.float32)
    scale = reference.abs().max().item()
    return {
        "export_vs_final_bf16_max_abs_diff": (exported - trained).abs().max().item(),
        "export_bf16_vs_final_fp32_max_abs_diff": (exported - reference).abs().max().item(),
        "final_bf16_vs_final_fp32_max_abs_diff": (trained - reference).abs().max().item(),
        "logits_abs_max_fp32": scale,
        "argmax_agreement_export_bf16_vs_fp32": (exported.argmax(-1) == reference.argmax(-1))
        .float()
        .mean()
        .item(),
        "shape": list(exported.shape),
        "device": str(device),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--skip-steps", type=int, default=2, help="start-up steps left out of the medians")
    ap.add_argument("--image-size", type=int, default=336)
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--dry", action="store_true", help="the CPU dry run at tiny width")
    args = ap.parse_args()

    report: dict[str, Any] = {"dry": args.dry, "environment": environment()}
    phases = args.work / "phases.tsv"
    if phases.is_file():
        report["phases"] = [
            {"phase": p, "seconds": float(s), "rc": int(rc)}
            for p, s, rc in (line.split("\t") for line in phases.read_text().splitlines() if line.strip())
        ]
    bench = args.work / "bench.json"
    report["bench_train_step"] = json.loads(bench.read_text()) if bench.is_file() else {"status": "missing"}
    report["training"] = {name: run_figures(args.work / "runs" / name, args.skip_steps) for name in RUNS}
    z2, z3 = report["training"].get("z2_padded", {}), report["training"].get("z3_padded", {})
    if z2.get("losses") and z3.get("losses"):
        report["training"]["z3_vs_z2_padded_max_loss_diff"] = max(
            abs(a - b) for a, b in zip(z2["losses"], z3["losses"], strict=False)
        )
    export, final = args.work / "export", args.work / "runs" / "z3_padded" / "final"
    if export.is_dir() and final.is_dir():
        try:
            image_tokens = (args.image_size // args.patch_size) ** 2
            report["export_logits"] = compare_logits(final, export, image_tokens, args.image_size)
        except Exception as e:  # report it; the other figures still count
            report["export_logits"] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    else:
        report["export_logits"] = {"status": "missing", "export": export.is_dir(), "final": final.is_dir()}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 0


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": sys.version.split()[0]}
    for mod in ("torch", "transformers", "deepspeed"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            env[mod] = f"unavailable ({type(e).__name__})"
    try:
        import torch

        env["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001
        env["device"] = "unknown"
    return env


def print_table(report: dict[str, Any]) -> None:
    print(f"\ngpu-check ({report['environment'].get('device')}, dry={report['dry']})")
    for r in report["bench_train_step"] if isinstance(report["bench_train_step"], list) else []:
        print(f"  bench {r['name']:<38} {r['value']!s:>12} {r['unit']}")
    for name in RUNS:
        t = report["training"].get(name, {})
        if t.get("status") != "ok":
            print(f"  train {name:<12} {t.get('status')}")
            continue
        mfu = "-" if t["mfu_median"] is None else f"{t['mfu_median']:.1%}"
        held = t.get("partition", {}).get("held_elements_per_rank")
        print(
            f"  train {name:<12} {t['tokens_per_s_median']!s:>10} tok/s  MFU {mfu:>6}  {t['seconds_per_step_median']} s/step"
            f"  padding {t['padding_share_median']}  loss {t['losses'][0]} -> {t['losses'][-1]}  held {held}"
        )
    lg = report["export_logits"]
    if "export_vs_final_bf16_max_abs_diff" in lg:
        print(
            f"  export logits (bf16): max|export - final| {lg['export_vs_final_bf16_max_abs_diff']:.3g}; vs fp32 "
            f"{lg['export_bf16_vs_final_fp32_max_abs_diff']:.3g} (logits up to {lg['logits_abs_max_fp32']:.3g})"
        )
    else:
        print(f"  export logits: {lg}")


if __name__ == "__main__":
    raise SystemExit(main())
