"""Synthetic raw data for every source, in its real public format: one generator, two profiles.

`synth(root, scale, seed)` writes, for each of the 11 sources, the raw annotation files under
`ROOT/raw/<source>/` with their official names and field layouts (docs/sources.md) and the images
they point to in the LLaVA layout under `ROOT/images/`. One writer module per source
(`datamix/synth/<source>.py`) knows that source's raw format, taking file names from the source's
reader module; it has one function per profile:

- `demo` (`write_demo`, scales tiny / small): drawn scenes with learnable content (`scene.py`):
  every annotation is derived from what is drawn (VQA answers, A-OKVQA choices, VG / RefCOCO boxes,
  captions, conversations); OCR-VQA covers show their title and author, TextCaps images a word;
  ShareGPT is small talk and arithmetic. For the demo, `make demo` and the tests.
- `volume` (`write_volume`, a fraction of the real sizes): the real record counts and file sizes
  with fast filler text, images hard-linked to a few tiny files (`bulk.py`), for the benchmarks.
  Every planted bad record is tallied with the `DropReason` the reader must give it, and the items
  normalize must produce are known in advance (`VolumeResult`).

Real-world quirks are reproduced where docs/sources.md names them: train2014 names in VQAv2 / OK-VQA
/ RefCOCO annotations for pictures stored as `coco/train2017/<12-digit>.jpg`; COCO ids shared
between the COCO sources; GQA pictures that are also VG pictures; OCR-VQA covers saved as GIF or
PNG bytes under a `.jpg` name, one truncated and one missing; keys with dropped leading zeros;
LLaVA-Instruct `<image>` leading or trailing; ShareGPT records with a leading `gpt` turn; VG images
with fewer than 10 regions; non-train splits. A small minority of deliberately bad records is
planted in most sources so that the drops tables are not empty.

Determinism: every random choice comes from a `random.Random` seeded from (seed, purpose), never the
global generator; fixed serialisations; the same arguments give byte-identical files.

`draw_scene` / `render_scene` are public so that the trainer's demo can render fresh eval images.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from datamix.errors import UsageError
from datamix.fileio import atomic_path
from datamix.sources import SOURCE_NAMES
from datamix.synth.demo import SCALES, write_demo
from datamix.synth.scene import (
    BACKGROUND,
    COLORS,
    JPEG_QUALITY,
    MAX_SIDE,
    MIN_SIDE,
    NON_SQUARE_SIZES,
    SHAPES,
    SIZE,
    Scene,
    Shape,
    color_question,
    draw_scene,
    nearest_color,
    render_scene,
)
from datamix.synth.volume import VolumeResult, write_volume

__all__ = [
    "BACKGROUND",
    "COLORS",
    "JPEG_QUALITY",
    "MAX_SIDE",
    "MIN_SIDE",
    "NON_SQUARE_SIZES",
    "PROFILES",
    "SCALES",
    "SHAPES",
    "SIZE",
    "SOURCES",
    "Scene",
    "Shape",
    "SynthError",
    "VolumeResult",
    "check_target",
    "color_question",
    "draw_scene",
    "nearest_color",
    "render_scene",
    "synth",
    "synth_volume",
]

log = logging.getLogger(__name__)

PROFILES = ("demo", "volume")
SOURCES = SOURCE_NAMES  # the registry's names (datamix.sources)


class SynthError(UsageError):
    """`synth` cannot run here (a root that holds data it did not write)."""


_SYNTH_MARKER = Path("raw") / "synth.json"


def check_target(root: Path) -> None:
    """Refuse a root that holds data `synth` did not write: synthetic files would overwrite real raw
    files and images of the same names. An empty or missing root, or one whose `raw/synth.json` says
    an earlier `synth` made it, is fine."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise SynthError(f"{root} is not a folder")
    if not root.is_dir() or (root / _SYNTH_MARKER).is_file():
        return
    found = next(
        (
            p
            for p in sorted(root.iterdir())
            if p.name in ("raw", "images", "normalized", "mixes", "downloads")
        ),
        None,
    )
    if found is not None:
        raise SynthError(
            f"{root} already holds data that synth did not write ({found.name}/ without raw/synth.json); "
            "synthetic files would overwrite real ones: choose an empty --root, or pass --force"
        )


def _claim(root: Path, force: bool) -> Path:
    """Refuse a foreign root (unless `force`), then claim it with an incomplete marker first, so a run
    killed halfway can be rerun over its own partial output."""
    if not force:
        check_target(root)
    marker = root / _SYNTH_MARKER
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(marker) as tmp:
            tmp.write_text(
                json.dumps({"generator": "datamix.synth", "complete": False}) + "\n", encoding="utf-8"
            )
    return marker


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def synth(
    root: Path,
    scale: str = "tiny",
    seed: int = 0,
    *,
    force: bool = False,
    profile: str = "demo",
    fraction: float | None = None,
) -> dict[str, int]:
    """Write every source's raw files and images under `root`; return the units written per source.

    Profile `demo` (`scale` tiny or small): units are conversation records for llava_instruct,
    sharegpt and llava_pretrain, annotated images (planted-bad ones included) for every other source.
    Profile `volume` (`fraction` of the real sizes, default 1.0; `scale` is ignored): units are the
    items `normalize` must produce per source (see `synth_volume` for the full result).
    Same arguments -> byte-identical files. Files are overwritten in place; nothing else under `root`
    is removed. A root holding data that an earlier `synth` did not write is refused (`SynthError`,
    see `check_target`) unless `force`.
    """
    if profile == "volume":
        return synth_volume(root, 1.0 if fraction is None else fraction, seed, force=force).expected_items
    if profile != "demo":
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if fraction is not None:
        raise ValueError("fraction applies to the volume profile only (the demo profile has --scale)")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    _check_seed(seed)
    root = Path(root)
    marker = _claim(root, force)
    t0 = time.perf_counter()
    result = write_demo(root, scale, seed)
    counts, n_images = {s: result.counts[s] for s in SOURCES}, result.images

    # the resolved configuration that made these files (house style 12)
    with atomic_path(marker) as tmp:
        meta = {
            "generator": "datamix.synth",
            "scale": scale,
            "seed": seed,
            "counts": counts,
            "images": n_images,
        }
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - t0
    log.info(
        "synth %s seed=%d: %d images, %s in %.1fs",
        scale,
        seed,
        n_images,
        ", ".join(f"{s}={c}" for s, c in counts.items()),
        seconds,
    )
    return counts


def synth_volume(
    root: Path,
    fraction: float = 1.0,
    seed: int = 0,
    *,
    sources: Iterable[str] | None = None,
    force: bool = False,
) -> VolumeResult:
    """The volume profile: `sources` (default all) at `fraction` of their real sizes under `root`.

    Returns what was written and what normalize and the 665K / 558K recipes must make of it: items
    per source, planted drops per source and `DropReason`, recipe targets, seconds and bytes.
    """
    if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    _check_seed(seed)
    names = list(SOURCES) if sources is None else list(sources)
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    root = Path(root)
    marker = _claim(root, force)
    result = write_volume(root, float(fraction), seed, [s for s in SOURCES if s in names])
    with atomic_path(marker) as tmp:
        meta = {
            "generator": "datamix.synth",
            "profile": "volume",
            "fraction": float(fraction),
            "seed": seed,
            "counts": result.expected_items,
            "images": result.image_links,
        }
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "synth volume %.4g seed=%d: %d image links, %.1f MiB of annotations in %.1fs",
        fraction,
        seed,
        result.image_links,
        sum(result.raw_bytes.values()) / 2**20,
        result.seconds["total"],
    )
    return result
