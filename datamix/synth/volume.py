"""The volume profile: every source at a fraction of its real size, for the benchmarks.

`write_volume` runs the sources' `write_volume` functions (each descriptor's `synth_writer()`,
`datamix/synth/<source>.py`) over one
`Bulk` world and returns a `VolumeResult`: what was written (seconds, bytes, image links) and what
must come of it (items per source after normalize, planted drops per `DropReason`, the samples the
llava15_665k / llava15_pretrain_558k recipes select at this fraction). `benchmarks/real_scale.py`
and `benchmarks/bench_normalize.py` measure on top of it; `tests/test_synth_volume.py` checks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datamix.schema import DropReason
from datamix.sources import SOURCES
from datamix.synth.bulk import Bulk

#: Each source's volume writer, in registry order.
WRITERS: dict[str, Callable[[Bulk], None]] = {
    name: src.synth_writer().write_volume for name, src in SOURCES.items()
}


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeResult:
    """What a volume run wrote and what normalize and the recipes must make of it, per source."""

    fraction: float
    seed: int
    sources: tuple[str, ...]
    expected_items: dict[str, int]  # items normalize must produce
    planted: dict[str, dict[DropReason, int]]  # drops normalize must record, by reason
    mix_counts: dict[str, int]  # samples llava15_665k / llava15_pretrain_558k select at this fraction
    notes: dict[str, str]
    seconds: dict[str, float]  # per source, and "total"
    raw_bytes: dict[str, int]  # annotation bytes under raw/<source>/
    image_links: int
    base_files: int


def write_volume(root: Path, fraction: float, seed: int, sources: list[str]) -> VolumeResult:
    """Write `sources` (in registry order) at `fraction` of their real sizes under `root`."""
    t0 = time.perf_counter()
    world = Bulk(root, fraction, seed)
    seconds: dict[str, float] = {}
    raw_bytes: dict[str, int] = {}
    for name in sources:
        t = time.perf_counter()
        WRITERS[name](world)
        seconds[name] = time.perf_counter() - t
        raw_bytes[name] = sum(p.stat().st_size for p in (root / "raw" / name).rglob("*") if p.is_file())
    seconds["total"] = time.perf_counter() - t0
    return VolumeResult(
        fraction=fraction,
        seed=seed,
        sources=tuple(sources),
        expected_items={s: world.expected_items[s] for s in sources},
        planted={s: dict(sorted(world.planted.get(s, {}).items())) for s in sources},
        mix_counts={s: world.mix_counts[s] for s in sources},
        notes=dict(world.notes),
        seconds=seconds,
        raw_bytes=raw_bytes,
        image_links=world.images.n,
        base_files=world.images.copies,
    )
