"""The demo profile: drawn scenes at two fixed scales (tiny for the tests, small for `make demo`).

Every source's writer (its descriptor's `synth_writer()`, `datamix/synth/<source>.py`:
`write_demo(world, n)` and `DEMO_SIZES`) draws the pictures it annotates through one shared `World`,
so the COCO-based sources share pictures (and ids) as real COCO does and GQA reuses some VG pictures.
The order of the writers is part of the output: each draws from its own seeded generator, but
pictures shared between sources are saved by whichever writer comes first. It is the registry's
order, except that a writer runs after those it needs (`DEMO_NEEDS`: GQA after VG).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from datamix.schema import DropReason
from datamix.sources import SOURCE_NAMES, get_source
from datamix.synth.scene import World

SCALES = ("tiny", "small")

#: Distinct COCO pictures the COCO-based sources draw from (they overlap, as in real COCO).
COCO_POOL = {"tiny": 40, "small": 3000}


def _writer(name: str) -> ModuleType:
    return get_source(name).synth_writer()


def _writer_order() -> tuple[str, ...]:
    """The registry's order, each writer after the writers it needs (`DEMO_NEEDS`)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name not in order:
            for need in getattr(_writer(name), "DEMO_NEEDS", ()):
                visit(need)
            order.append(name)

    for name in SOURCE_NAMES:
        visit(name)
    return tuple(order)


WRITER_ORDER = _writer_order()
# units per source (each writer's DEMO_SIZES): conversation records (sharegpt) or images (all others)
SIZES: dict[str, dict[str, int]] = {
    scale: {"coco_pool": COCO_POOL[scale], **{s: _writer(s).DEMO_SIZES[scale] for s in SOURCE_NAMES}}
    for scale in SCALES
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
    world.coco_pool, world.coco_ghosts = sorted(chosen[: sizes["coco_pool"]]), chosen[sizes["coco_pool"] :]

    counts = {name: _writer(name).write_demo(world, sizes[name]) for name in WRITER_ORDER}
    # evaluation benchmarks with planted overlaps, under ROOT/benchmarks/ only, from their own generators
    from datamix.synth import benchmarks as synth_benchmarks

    synth_benchmarks.write_demo(root, scale, seed)
    return DemoResult(
        counts=counts,
        images=world.n_images,
        planted={s: dict(sorted(p.items())) for s, p in world.planted.items()},
    )
