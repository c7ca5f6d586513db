"""Image preprocessing of LLaVA-1.5 (`image_aspect_ratio = pad`), exact and fast.

Responsible for: bytes -> decoded image (decompression-bomb guard, first frame of animations) ->
RGB -> pad to a square with the CLIP mean colour -> CLIP preprocessing (resize the shortest side
with bicubic, centre crop, rescale 1/255, normalise). Decoding, RGB, padding, resizing, the CLIP
constants and the pixel limit are torch-free and shared with datamix (presized shards, the report):
they live in `datamix.imaging` and are re-exported here; this module adds rescale + normalise (the
lookup table, the accelerator path) and `ImageProcessor`. The result is bit-identical to
transformers' `CLIPImageProcessor(size={"shortest_edge": S}, crop_size={"height": S, "width": S})`
applied to the padded image (docs/trainer.md "Images"; tests/trainer/test_images.py checks it), which
is what LLaVA does in `llava/train/train.py` (`expand2square` then `processor.preprocess`) and
`llava/mm_utils.py` (`expand2square`).

Why it is faster than that reference while giving the same numbers:
- normalisation is a 3 x 256 lookup table built with the reference's own float operations
  (float64 rescale, cast to float32, float32 `(x - mean) / std`), so each uint8 maps to the very
  float32 the reference computes; it can also run later on the accelerator (`normalize_pixels`)
  so that workers ship uint8 (4x fewer bytes);
- Pillow resamples in two separable passes, horizontal then vertical, rounding to uint8 in
  between. For a landscape image the padded rows are constant, so the horizontal pass of the
  padded square is the horizontal pass of the original rows with constant rows around it; we run
  Pillow's horizontal pass on the original only and Pillow's vertical pass on the assembled
  intermediate (`resize_padded`). Same kernels, same rounding, about a quarter less work, and no
  Python-level arithmetic on pixels;
- no float64 or PIL <-> numpy round trips per step.

Choices that differ from the original LLaVA code, on purpose (transparency onto white, 16-bit
greyscale scaled, no EXIF orientation): see `datamix.imaging`.

JPEG draft mode (`draft=True`, off by default) lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the
padded square stays at least `size` pixels wide. It changes pixels (DCT scaling instead of the
bicubic filter on the full image), so it is an explicit speed/exactness trade-off; it does nothing
for images whose long side is under 2 x size (COCO's 640 px at 336).

Presized shards (datamix recipe `shards: presize`, another opt-in pixel trade-off) hold
`ImageProcessor.square` re-encoded as JPEG at build time: decode is then of a small square, and
padding and resizing are skipped (`resize_padded` returns a `size` x `size` image as is).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image

from datamix.imaging import (
    CLIP_MEAN,
    CLIP_STD,
    MAX_PIXELS,
    PAD_COLOR,
    AlphaMode,
    ImageError,
    decode,
    expand2square,
    pad_color,
    padded_square,
    resize_padded,
    to_rgb,
)

RESCALE = 1 / 255  # CLIPImageProcessor's rescale_factor

Output = Literal["float32", "uint8"]


# --------------------------------------------------------------------------------------------
# rescale + normalise


@lru_cache(maxsize=16)
def normalization_lut(
    mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD, rescale: float = RESCALE
) -> np.ndarray:
    """(3, 256) float32: lut[c, v] is exactly what CLIPImageProcessor computes for value v of channel
    c (transformers `image_transforms.rescale`: float64 multiply, cast to float32; `normalize`:
    float32 `(x - mean) / std` with mean and std as float32 arrays)."""
    v = (np.arange(256, dtype=np.uint8).astype(np.float64) * rescale).astype(np.float32)
    m = np.asarray(mean, dtype=np.float32)
    sd = np.asarray(std, dtype=np.float32)
    lut = (v[None, :] - m[:, None]) / sd[:, None]
    lut.setflags(write=False)
    return lut


def normalize(hwc: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) through the lookup table (torch's index_select when
    torch is installed: about 4x faster than numpy's take on this strided input)."""
    lut = normalization_lut() if lut is None else lut
    h, w, _ = hwc.shape
    try:
        import torch
    except ImportError:  # pragma: no cover - the trainer always has torch
        out = np.empty((3, h, w), dtype=np.float32)
        for c in range(3):
            np.take(lut[c], hwc[:, :, c], out=out[c])
        return out
    with warnings.catch_warnings():  # read-only input (np.asarray of a PIL image): only read here
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(np.asarray(hwc)).permute(2, 0, 1)
        table = torch.from_numpy(lut)
    out_t = torch.empty((3, h, w), dtype=torch.float32)
    for c in range(3):
        torch.index_select(table[c], 0, src[c].reshape(-1).int(), out=out_t[c].view(-1))
    return out_t.numpy()


def normalize_pixels(
    pixels: Any, mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD
) -> Any:
    """torch uint8 (..., 3, H, W) -> float32 on the same device, bit-identical to the CPU path: lets
    workers ship uint8 and the accelerator normalise."""
    import torch

    lut = torch.from_numpy(normalization_lut(tuple(mean), tuple(std)).copy()).to(pixels.device)
    offset = (torch.arange(3, device=pixels.device) * 256).view(3, 1, 1)
    return lut.flatten()[pixels.long() + offset]


# --------------------------------------------------------------------------------------------
# the processor


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageProcessor:
    """bytes -> CHW array: decode -> RGB -> pad (LLaVA `pad`) -> CLIP resize/crop/rescale/normalise.

    output="float32": normalised (3, size, size) float32, equal to the transformers reference;
    output="uint8": the resized pixels (3, size, size) uint8, to be normalised by `normalize_pixels`.
    """

    size: int = 336
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    output: Output = "float32"
    draft: bool = False
    alpha: AlphaMode = "white"
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.output not in ("float32", "uint8"):
            raise ValueError(f"output must be 'float32' or 'uint8', got {self.output!r}")
        if self.alpha not in ("white", "drop"):
            raise ValueError(f"alpha must be 'white' or 'drop', got {self.alpha!r}")

    @property
    def pad_color(self) -> tuple[int, int, int]:
        return pad_color(self.mean)

    def __call__(self, data: bytes) -> np.ndarray:
        """Raises ImageError for unusable bytes."""
        return self._chw(self.square(data))

    def square(self, data: bytes) -> Image.Image:
        """bytes -> the padded, resized RGB `size` x `size` image: exactly the uint8 pixels that
        `output="uint8"` returns (as a PIL image). datamix's presized builds store it re-encoded.
        Raises ImageError for unusable bytes."""
        return padded_square(
            data,
            self.size,
            fill=self.pad_color,
            alpha=self.alpha,
            max_pixels=self.max_pixels,
            draft_size=self.size if self.draft else None,
        )

    def process_rgb(self, im: Image.Image) -> np.ndarray:
        return self._chw(resize_padded(im, self.size, self.pad_color))

    def _chw(self, resized: Image.Image) -> np.ndarray:
        hwc = np.asarray(resized)
        if self.output == "uint8":
            return np.ascontiguousarray(hwc.transpose(2, 0, 1))
        return normalize(hwc, normalization_lut(tuple(self.mean), tuple(self.std)))


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "MAX_PIXELS",
    "PAD_COLOR",
    "RESCALE",
    "AlphaMode",
    "ImageError",
    "ImageProcessor",
    "decode",
    "expand2square",
    "normalization_lut",
    "normalize",
    "normalize_pixels",
    "resize_padded",
    "to_rgb",
]
