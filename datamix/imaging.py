"""Images as LLaVA-1.5 feeds them to the model, without torch: decode, RGB, pad to a square, resize.

Responsible for: bytes -> decoded image (decompression-bomb guard checked from the header, first
frame of animations) -> RGB -> pad to a square with the CLIP mean colour (LLaVA's `expand2square`,
`image_aspect_ratio = pad`) -> bicubic resize; the CLIP constants and the pixel limit. Shared by
the build's presized shards (`datamix.shards`), the report's thumbnails (`datamix.report`) and the
trainer (`trainer.images` adds the torch part: rescale + normalise, bit-identical to transformers'
`CLIPImageProcessor`; docs/trainer.md "Images"). Only Pillow and numpy: `import datamix` never
imports torch, and datamix never imports the trainer.

Choices that differ from the original LLaVA code, on purpose:
- transparency (RGBA, LA, PA, palette or greyscale with a `transparency` entry) is composited onto
  white, as transformers' `convert_to_rgb` does at inference, so that the exported processor and
  training agree; `alpha="drop"` gives LLaVA's plain `Image.convert("RGB")` instead;
- 16-bit and 32-bit greyscale (`I;16*`, `I`, `F`) are scaled to 8 bits (/257) instead of being
  clipped at 255 by Pillow's conversion;
- EXIF orientation is NOT applied (the original code does not either).

`resize_padded` equals `expand2square(im).resize((size, size), BICUBIC)` bit for bit with about a
quarter less work (see its docstring). JPEG draft mode (`draft_size`, off by default) lets libjpeg
decode at 1/2, 1/4 or 1/8 scale: it changes pixels, an explicit speed/exactness trade-off.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image

#: CLIP's image mean and std (openai/clip-vit-large-patch14-336 `preprocessor_config.json`).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
#: LLaVA's padding colour: `tuple(int(x * 255) for x in processor.image_mean)` (llava/train/train.py).
PAD_COLOR: tuple[int, int, int] = tuple(int(x * 255) for x in CLIP_MEAN)  # type: ignore[assignment]  # (122, 116, 104)
#: Pillow's default decompression-bomb threshold (`Image.MAX_IMAGE_PIXELS`): larger images are refused
#: from their header, before any decoding.
MAX_PIXELS = 89_478_485

AlphaMode = Literal["white", "drop"]


class ImageError(ValueError):
    """An image that cannot be used: undecodable, truncated, too large, unsupported mode."""


def pad_color(mean: tuple[float, ...] = CLIP_MEAN) -> tuple[int, int, int]:
    """LLaVA's padding colour of an image mean: each channel times 255, truncated."""
    return tuple(int(x * 255) for x in mean)  # type: ignore[return-value]


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
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", Image.DecompressionBombWarning
            )  # checked just below, as max_pixels
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


def padded_square(
    data: bytes,
    size: int,
    *,
    fill: tuple[int, int, int] = PAD_COLOR,
    alpha: AlphaMode = "white",
    max_pixels: int = MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """bytes -> the padded, resized RGB `size` x `size` image the model sees (before rescale and
    normalisation): `decode` then `resize_padded`. Raises ImageError for unusable bytes."""
    return resize_padded(decode(data, max_pixels=max_pixels, alpha=alpha, draft_size=draft_size), size, fill)


# --------------------------------------------------------------------------------------------
# size without decoding

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the image file at `path` cannot be used, judged cheaply from its header (`Image.open` +
    `verify`: the format, the size, the structure; nothing is decoded), or None when it looks fine.

    Catches a file that is not an image (a text file named `.jpg`), a decompression bomb (more than
    `MAX_PIXELS` pixels, refused from the header; Pillow's `DecompressionBombWarning` becomes this
    answer instead of a raw warning) and an empty image. A truncated image whose header is intact
    passes: the full decode (the trainer, presize) is what notices it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w <= 0 or h <= 0:
                    return f"empty image {w}x{h}"
                if w * h > MAX_PIXELS:
                    return f"image of {w}x{h} pixels exceeds the decompression-bomb limit of {MAX_PIXELS:,} pixels"
                im.verify()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        return f"decompression bomb: {e}"
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on hostile input
        return f"not a readable image: {type(e).__name__}: {e}"
    return None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of image bytes: JPEG read from its SOF marker directly, other formats from
    the header by Pillow (nothing is decoded). Raises what Pillow raises for unreadable bytes."""
    if data[:2] == b"\xff\xd8":
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                break
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in _SOF:
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            if 0xD0 <= marker <= 0xD9 or marker == 0x01:
                i += 2
                continue
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # one clear error, not a raw warning
        with Image.open(io.BytesIO(data)) as im:
            return im.size


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "MAX_PIXELS",
    "PAD_COLOR",
    "AlphaMode",
    "ImageError",
    "decode",
    "expand2square",
    "header_problem",
    "image_size",
    "pad_color",
    "padded_square",
    "resize_padded",
    "to_rgb",
]
