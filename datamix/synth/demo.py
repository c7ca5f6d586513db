"""The demo profile: drawn scenes at two fixed scales (tiny for the tests, small for `make demo`).

Every source's writer (`datamix/synth/<source>.py`, `write_demo`) draws the pictures it annotates
through one shared `World`, so the COCO-based sources share pictures (and ids) as real COCO does and
GQA reuses some VG pictures. The order of the writers below is part of the output: each draws from
its own seeded generator, but pictures shared between sources are saved by whichever writer comes
first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datamix.schema import DropReason
from datamix.synth import (
    aokvqa,
    gqa,
    llava_instruct,
    llava_pretrain,
    ocrvqa,
    okvqa,
    refcoco,
    sharegpt,
    textcaps,
    vg,
    vqav2,
)
from datamix.synth.scene import World

SCALES = ("tiny", "small")

# units per source: conversation records (sharegpt) or images (all others); coco_pool = distinct
# COCO pictures the COCO-based sources draw from (they overlap, as in real COCO)
SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "coco_pool": 40,
        "llava_instruct": 12,
        "sharegpt": 16,
        "vqav2": 20,
        "gqa": 20,
        "okvqa": 10,
        "aokvqa": 10,
        "ocrvqa": 16,
        "textcaps": 10,
        "vg": 14,
        "refcoco": 10,
        "llava_pretrain": 20,
    },
    "small": {
        "coco_pool": 3000,
        "llava_instruct": 400,
        "sharegpt": 300,
        "vqav2": 2000,
        "gqa": 2000,
        "okvqa": 300,
        "aokvqa": 400,
        "ocrvqa": 400,
        "textcaps": 300,
        "vg": 500,
        "refcoco": 400,
        "llava_pretrain": 3000,
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What a demo run wrote: units per source (see `synth`), pictures, and the planted drops."""

    counts: dict[str, int]
    images: int
    planted: dict[str, dict[DropReason, int]]  # drops normalize must record, by source and reason


def write_demo(root: Path, scale: str, seed: int) -> DemoResult:
    """Write every source's raw files and drawn pictures."""
    sizes = SIZES[scale]
    world = World(root, seed)

    # one shared pool of COCO pictures (ids as in real COCO, up to 581929) plus ghost ids that are
    # named by annotations but never written (image_missing drops)
    rng = world.rng("coco-pool")
    chosen = rng.sample(range(9, 581_930), sizes["coco_pool"] + 5)
    pool, ghosts = sorted(chosen[: sizes["coco_pool"]]), chosen[sizes["coco_pool"] :]

    counts: dict[str, int] = {}
    counts["llava_instruct"] = llava_instruct.write_demo(world, sizes["llava_instruct"], pool, ghosts)
    counts["sharegpt"] = sharegpt.write_demo(world, sizes["sharegpt"])
    counts["vqav2"] = vqav2.write_demo(world, sizes["vqav2"], pool, ghosts)
    counts["vg"], vg_ids = vg.write_demo(world, sizes["vg"])
    counts["gqa"] = gqa.write_demo(world, sizes["gqa"], vg_ids)
    counts["okvqa"] = okvqa.write_demo(world, sizes["okvqa"], pool, ghosts)
    counts["aokvqa"] = aokvqa.write_demo(world, sizes["aokvqa"], pool, ghosts)
    counts["ocrvqa"] = ocrvqa.write_demo(world, sizes["ocrvqa"])
    counts["textcaps"] = textcaps.write_demo(world, sizes["textcaps"])
    counts["refcoco"] = refcoco.write_demo(world, sizes["refcoco"], pool, ghosts)
    counts["llava_pretrain"] = llava_pretrain.write_demo(world, sizes["llava_pretrain"])
    return DemoResult(
        counts=counts,
        images=world.n_images,
        planted={s: dict(sorted(p.items())) for s, p in world.planted.items()},
    )
