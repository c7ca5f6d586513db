"""Host memory of loading the pretrained model on several ranks: ZeRO-3 (built partitioned with
`zero.Init`, rank 0 reading the files) against a whole load on every rank (ZeRO-0/1/2), on CPU.

Run under torchrun; each rank builds the model of the 7B stage-2 recipe from the given folders
(e.g. written by `python tests/published_models.py OUT --width 4096 --layers 2 --heads 32
--intermediate 11008`), then every rank reports the parameter elements it holds and its peak RSS;
rank 0 prints one JSON line.

    torchrun --standalone --nproc_per_node=2 benchmarks/zero3_host_memory.py --llm DIR --vision-tower DIR \\
        --image-size 56 --zero 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", required=True)
    ap.add_argument("--vision-tower", required=True)
    ap.add_argument("--image-size", type=int, default=336)
    ap.add_argument("--zero", type=int, choices=[2, 3], default=3)
    args = ap.parse_args()

    import deepspeed
    import torch
    import torch.distributed as dist

    from trainer.config import deepspeed_config, load_config
    from trainer.model import build_model, held_numel, llm_hidden_size, numel

    deepspeed.init_distributed(dist_backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "train" / "llava15_7b_stage2.yaml"
    cfg = load_config(
        recipe,
        [
            f"model.llm={args.llm}",
            f"model.vision_tower={args.vision_tower}",
            f"model.image_size={args.image_size}",
            f"zero_stage={args.zero}",
            "data.mix=unused",
            "output_dir=unused",
            "pretrained_projector=null",
            f"global_batch_size={world}",
            "per_device_batch_size=1",
        ],
    )
    ds = deepspeed_config(cfg, world, on_gpu=False, hidden_size=llm_hidden_size(cfg.model))
    t0 = time.perf_counter()
    model, _ = build_model(cfg.model, zero3_config=ds if args.zero == 3 else None)
    seconds = time.perf_counter() - t0
    full = sum(numel(p) for p in model.parameters())
    held = sum(held_numel(p) for p in model.parameters())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mine = torch.tensor([float(held), rss, seconds], dtype=torch.float64)
    every = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    if rank == 0:
        print(
            json.dumps(
                {
                    "zero_stage": args.zero,
                    "world_size": world,
                    "full_elements": full,
                    "held_elements_per_rank": [int(t[0]) for t in every],
                    "peak_host_mib_per_rank": [round(float(t[1]), 1) for t in every],
                    "build_seconds_per_rank": [round(float(t[2]), 1) for t in every],
                    "threads": os.environ.get("OMP_NUM_THREADS"),
                }
            )
        )
    dist.barrier()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
