"""Image preprocessing of LLaVA-1.5 (`image_aspect_ratio = pad`), exact and fast.

Responsible for: bytes -> decoded image (decompression-bomb guard, first frame of animations) ->
RGB -> pad to a square with the CLIP mean colour -> CLIP preprocessing (resize the shortest side
with bicubic, centre crop, rescale 1/255, normalise). The result is bit-identical to
transformers' `CLIPImageProcessor(size={"shortest_edge": S}, crop_size={"height": S, "width": S})`
applied to the padded image (training.md "Images"; tests/trainer/test_images.py checks it), which
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

Choices that differ from the original LLaVA code, on purpose:
- transparency (RGBA, LA, PA, palette or greyscale with a `transparency` entry) is composited onto
  white, as transformers' `convert_to_rgb` does at inference, so that the exported processor and
  training agree; `alpha="drop"` gives LLaVA's plain `Image.convert("RGB")` instead;
- 16-bit and 32-bit greyscale (`I;16*`, `I`, `F`) are scaled to 8 bits (/257) instead of being
  clipped at 255 by Pillow's conversion;
- EXIF orientation is NOT applied (the original code does not either).

JPEG draft mode (`draft=True`, off by default) lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the
padded square stays at least `size` pixels wide. It changes pixels (DCT scaling instead of the
bicubic filter on the full image), so it is an explicit speed/exactness trade-off; it does nothing
for images whose long side is under 2 x size (COCO's 640 px at 336).

Presized shards (datamix recipe `shards: presize`, another opt-in pixel trade-off) hold
`ImageProcessor.square` re-encoded as JPEG at build time: decode is then of a small square, and
padding and resizing are skipped (`resize_padded` returns a `size` x `size` image as is).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
# LLaVA: `tuple(int(x * 255) for x in processor.image_mean)`
PAD_COLOR: tuple[int, int, int] = tuple(int(x * 255) for x in CLIP_MEAN)  # (122, 116, 104)
RESCALE = 1 / 255  # CLIPImageProcessor's rescale_factor
MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb threshold (Image.MAX_IMAGE_PIXELS)

AlphaMode = Literal["white", "drop"]
Output = Literal["float32", "uint8"]


class ImageError(ValueError):
    """An image that cannot be used: undecodable, truncated, too large, unsupported mode."""


# --------------------------------------------------------------------------------------------
# decode + RGB


def decode(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    alpha: AlphaMode = "white",
    draft_size: int | None = None,
) -> Image.Image:
    """Decode image bytes (any format Pillow reads; the first frame of a GIF) to an RGB image.

    `max_pixels` guards against decompression bombs (checked from the header, before decoding).
    `draft_size`: for JPEGs, let libjpeg decode at a reduced scale as long as the long side stays
    >= draft_size (changes pixels; see the module docstring). Raises ImageError."""
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageError(f"empty image {w}x{h}")
        if w * h > max_pixels:
            raise ImageError(f"image of {w}x{h} pixels exceeds max_pixels={max_pixels}")
        if draft_size is not None and im.format == "JPEG" and im.mode in ("RGB", "L", "YCbCr"):
            long = max(w, h)
            if long >= 2 * draft_size:
                # draft() keeps each side >= the requested one, so the long side stays >= draft_size
                req = (max(1, math.ceil(draft_size * w / long)), max(1, math.ceil(draft_size * h / long)))
                im.draft(im.mode, req)
        im.load()  # the first frame for animated formats (Image.open leaves the file at frame 0)
        return to_rgb(im, alpha=alpha)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on hostile input; never crash a run
        raise ImageError(f"{type(e).__name__}: {e}") from None


def to_rgb(im: Image.Image, *, alpha: AlphaMode = "white") -> Image.Image:
    """Any Pillow mode -> RGB. Transparency is composited onto white (transformers'
    `convert_to_rgb`) or dropped (`alpha="drop"`, LLaVA's `convert("RGB")`)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr / 257.0
        im = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    if has_alpha and alpha == "white":
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode == "P" and has_alpha:
        im = im.convert("RGBA")  # avoids Pillow's palette-transparency warning; alpha dropped below
    return im.convert("RGB")


# --------------------------------------------------------------------------------------------
# pad + resize


def expand2square(im: Image.Image, fill: tuple[int, int, int] = PAD_COLOR) -> Image.Image:
    """LLaVA's `expand2square` (llava/mm_utils.py): paste centred on a square of `fill`, offset
    (long - short) // 2 on the short axis."""
    w, h = im.size
    if w == h:
        return im
    s = max(w, h)
    out = Image.new(im.mode, (s, s), fill)
    out.paste(im, ((s - w) // 2, (s - h) // 2))
    return out


@lru_cache(maxsize=256)
def _padding_rows(width: int, size: int, fill: tuple[int, int, int]) -> Image.Image:
    """Pillow's horizontal bicubic pass of one constant row of `width` pixels down/up to `size`."""
    return Image.new("RGB", (width, 1), fill).resize((size, 1), Image.Resampling.BICUBIC)


def resize_padded(im: Image.Image, size: int, fill: tuple[int, int, int] = PAD_COLOR) -> Image.Image:
    """`expand2square(im, fill).resize((size, size), BICUBIC)`, bit for bit, with less work.

    Pillow resamples horizontally first (over the rows the vertical pass needs), rounds to uint8,
    then vertically. For a landscape image (w > h) the padded square's rows are either a constant
    row or an original row of the same width, so its horizontal pass equals: the horizontal pass of
    the original (`im.resize((size, h))`, a horizontal-only call since the height is unchanged)
    between copies of the horizontal pass of one constant row. The vertical pass is then Pillow's
    own vertical-only call on that intermediate (`resize((size, size))` of a `size`-wide image).
    Portrait and square images take the plain path; an image that is already `size` x `size` (a
    presized one, datamix `shards: presize`) is returned as is: padding does nothing to a square and
    Pillow's resize to the same size is a copy, as it is in CLIPImageProcessor (whose centre crop of
    a `size` square is the identity too), so the pixels are the reference's."""
    w, h = im.size
    if im.mode != "RGB":
        raise ValueError(f"resize_padded expects RGB, got {im.mode}")
    if w == h == size:
        return im
    if w <= h:
        return expand2square(im, fill).resize((size, size), Image.Resampling.BICUBIC)
    s, top = w, (w - h) // 2
    mid_rows = im.resize((size, h), Image.Resampling.BICUBIC)
    row = _padding_rows(s, size, fill)
    inter = row.resize((size, s), Image.Resampling.NEAREST)  # the constant row, repeated
    inter.paste(mid_rows, (0, top))
    return inter.resize((size, size), Image.Resampling.BICUBIC)


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


def normalize_pixels(pixels: Any, mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD) -> Any:
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
        return tuple(int(x * 255) for x in self.mean)  # type: ignore[return-value]

    def __call__(self, data: bytes) -> np.ndarray:
        """Raises ImageError for unusable bytes."""
        return self._chw(self.square(data))

    def square(self, data: bytes) -> Image.Image:
        """bytes -> the padded, resized RGB `size` x `size` image: exactly the uint8 pixels that
        `output="uint8"` returns (as a PIL image). datamix's presized builds store it re-encoded.
        Raises ImageError for unusable bytes."""
        im = decode(data, max_pixels=self.max_pixels, alpha=self.alpha, draft_size=self.size if self.draft else None)
        return resize_padded(im, self.size, self.pad_color)

    def process_rgb(self, im: Image.Image) -> np.ndarray:
        return self._chw(resize_padded(im, self.size, self.pad_color))

    def _chw(self, resized: Image.Image) -> np.ndarray:
        hwc = np.asarray(resized)
        if self.output == "uint8":
            return np.ascontiguousarray(hwc.transpose(2, 0, 1))
        return normalize(hwc, normalization_lut(tuple(self.mean), tuple(self.std)))
