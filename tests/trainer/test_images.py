"""trainer.images against the reference path: PIL RGB -> LLaVA expand2square -> transformers'
CLIPImageProcessor (the PIL backend, as LLaVA used it), on awkward images at 336 and 112."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from trainer.images import (
    CLIP_MEAN,
    CLIP_STD,
    PAD_COLOR,
    ImageError,
    ImageProcessor,
    decode,
    expand2square,
    normalization_lut,
    normalize_pixels,
    resize_padded,
    to_rgb,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from transformers import CLIPImageProcessorPil as cls
        except ImportError:  # older transformers: the slow processor is the PIL one
            from transformers import CLIPImageProcessor as cls
    cache = {}

    def run(rgb: Image.Image, size: int) -> np.ndarray:
        if size not in cache:
            cache[size] = cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        padded = expand2square(rgb, PAD_COLOR)  # LLaVA: expand2square(image, tuple(int(x*255) for x in mean))
        return np.asarray(cache[size](images=padded, return_tensors="np")["pixel_values"][0])

    return run


def _rng_pixels(h: int, w: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 3 + y * 5)[..., None] % 256 + rng.integers(0, 60, (h, w, c))
    return np.clip(base, 0, 255).astype(np.uint8)


def _img(px: np.ndarray, mode: str) -> Image.Image:
    """Image of `mode` from an (H, W[, C]) array (Pillow 13 infers modes from dtype and shape)."""
    h, w = px.shape[:2]
    return Image.frombytes(mode, (w, h), np.ascontiguousarray(px).tobytes())


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _cases() -> dict[str, bytes]:
    rgb = _img(_rng_pixels(37, 91, 3, 1), "RGB")  # odd, landscape
    tall = _img(_rng_pixels(203, 57, 3, 2), "RGB")  # odd, portrait
    big = _img(_rng_pixels(480, 640, 3, 3), "RGB")
    rgba_px = _rng_pixels(45, 77, 4, 4)
    rgba_px[::3, :, 3] = 0  # fully transparent rows, half transparent elsewhere
    rgba_px[1::3, :, 3] = 128
    grey = _img(_rng_pixels(61, 40, 1, 5)[..., 0], "L")
    cmyk = _img(_rng_pixels(50, 70, 4, 6), "CMYK")
    pal = _img(_rng_pixels(33, 65, 3, 7), "RGB").quantize(16)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    frames = [_img(_rng_pixels(40, 60, 3, s), "RGB").quantize(32) for s in (8, 9)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50)
    la = _img(_rng_pixels(29, 31, 2, 10), "LA")
    i16 = Image.fromarray(_rng_pixels(30, 44, 1, 11)[..., 0].astype(np.uint16) * 257)
    return {
        "jpeg_landscape_odd": _bytes(rgb, "JPEG", quality=90),
        "jpeg_portrait_odd": _bytes(tall, "JPEG", quality=90),
        "jpeg_640x480": _bytes(big, "JPEG", quality=85),
        "png_square": _bytes(_img(_rng_pixels(50, 50, 3, 12), "RGB"), "PNG"),
        "png_rgba": _bytes(_img(rgba_px, "RGBA"), "PNG"),
        "jpeg_grey": _bytes(grey, "JPEG"),
        "png_grey": _bytes(grey, "PNG"),
        "jpeg_cmyk": _bytes(cmyk, "JPEG"),
        "png_palette": _bytes(pal, "PNG"),
        "png_palette_transparency": _bytes(pal_t, "PNG", transparency=3),
        "gif_animated": gif.getvalue(),
        "png_la": _bytes(la, "PNG"),
        "png_i16": _bytes(i16, "PNG"),
        "tiny_1x3": _bytes(_img(_rng_pixels(1, 3, 3, 13), "RGB"), "PNG"),
    }


CASES = _cases()


def _reference_rgb(data: bytes) -> Image.Image:
    """The reference conversion, written independently: transformers' convert_to_rgb semantics."""
    im = Image.open(io.BytesIO(data))
    if im.mode.startswith("I;16"):
        arr = np.asarray(im).astype(np.float64) / 257.0
        im = _img(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if "A" in im.getbands() or im.info.get("transparency") is not None:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


@pytest.mark.parametrize("size", [336, 112])
@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_clip_image_processor(name, size, reference):
    data = CASES[name]
    ours = ImageProcessor(size=size)(data)
    ref = reference(_reference_rgb(data), size)
    assert ours.dtype == np.float32 and ours.shape == (3, size, size)
    assert ref.shape == ours.shape
    assert np.array_equal(ours, ref), float(np.abs(ours - ref).max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_to_rgb_matches_reference_conversion(name):
    ours = decode(CASES[name])
    assert ours.mode == "RGB"
    assert np.array_equal(np.asarray(ours), np.asarray(_reference_rgb(CASES[name])))


def test_gif_first_frame():
    frames = [Image.new("RGB", (8, 6), c).quantize(4) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(decode(buf.getvalue()))[0, 0].tolist() == [255, 0, 0]


def test_rgba_alpha_modes():
    px = np.zeros((4, 6, 4), np.uint8)
    px[..., 0] = 200  # red, fully transparent
    data = _bytes(_img(px, "RGBA"), "PNG")
    assert np.asarray(decode(data))[0, 0].tolist() == [255, 255, 255]  # onto white (transformers)
    assert np.asarray(decode(data, alpha="drop"))[0, 0].tolist() == [200, 0, 0]  # LLaVA convert("RGB")


def test_i16_scaled_not_clipped():
    im = Image.fromarray(np.full((4, 4), 32896, np.uint16))  # 128 * 257
    assert np.asarray(to_rgb(im))[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize("wh", [(91, 37), (640, 480), (337, 336), (1000, 3), (5, 4), (336, 200), (2, 1)])
@pytest.mark.parametrize("size", [336, 112])
def test_resize_padded_is_bit_identical_to_pad_then_resize(wh, size):
    im = _img(_rng_pixels(wh[1], wh[0], 3, sum(wh)), "RGB")
    fast = resize_padded(im, size)
    slow = expand2square(im).resize((size, size), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(fast), np.asarray(slow))


def test_expand2square_geometry():
    im = Image.new("RGB", (7, 4), (1, 2, 3))
    sq = np.asarray(expand2square(im))
    assert sq.shape == (7, 7, 3)
    # offset (7 - 4) // 2 = 1: row 0 padding, rows 1..4 image, rows 5..6 padding
    assert sq[0, 0].tolist() == list(PAD_COLOR) == [122, 116, 104]
    assert sq[1, 0].tolist() == [1, 2, 3] and sq[4, 6].tolist() == [1, 2, 3]
    assert sq[5, 0].tolist() == [122, 116, 104]


def test_uint8_output_then_normalize_pixels_equals_float_path():
    torch = pytest.importorskip("torch")
    data = CASES["jpeg_landscape_odd"]
    u8 = ImageProcessor(size=112, output="uint8")(data)
    assert u8.dtype == np.uint8 and u8.shape == (3, 112, 112)
    f32 = normalize_pixels(torch.from_numpy(u8)[None])[0].numpy()
    assert np.array_equal(f32, ImageProcessor(size=112)(data))


def test_lut_matches_transformers_arithmetic():
    from transformers.image_transforms import normalize as t_normalize
    from transformers.image_transforms import rescale as t_rescale

    ramp = np.tile(np.arange(256, dtype=np.uint8), (3, 1))[:, None, :]  # (3, 1, 256) channel-first
    ref = t_normalize(t_rescale(ramp, 1 / 255), CLIP_MEAN, CLIP_STD, input_data_format="channels_first")
    assert np.array_equal(ref[:, 0, :], normalization_lut())


@pytest.mark.parametrize(
    "data", [b"", b"not an image", CASES["jpeg_640x480"][:200], b"\x89PNG\r\n\x1a\n" + b"\0" * 40]
)
def test_undecodable_raises_image_error(data):
    with pytest.raises(ImageError):
        ImageProcessor(size=112)(data)


def test_decompression_bomb_guard():
    data = _bytes(Image.new("L", (300, 300)), "PNG")
    with pytest.raises(ImageError, match="max_pixels"):
        ImageProcessor(size=112, max_pixels=300 * 299)(data)
    assert ImageProcessor(size=112, max_pixels=300 * 300)(data).shape == (3, 112, 112)


def test_draft_mode_is_opt_in_and_close():
    y, x = np.mgrid[0:900, 0:1200]
    smooth = np.stack([x * 255 // 1200, y * 255 // 900, (x + y) * 255 // 2100], -1).astype(np.uint8)
    big = _img(smooth, "RGB")  # photo-like low-frequency content
    data = _bytes(big, "JPEG", quality=90)
    exact = ImageProcessor(size=112)(data)
    drafted = ImageProcessor(size=112, draft=True)(data)
    assert drafted.shape == exact.shape
    assert not np.array_equal(drafted, exact)  # draft changes pixels: that is why it is off by default
    assert np.abs(drafted - exact).mean() < 0.05  # but stays close on smooth content (normalised units)
    # an image below 2 x size is never drafted
    small = CASES["jpeg_640x480"]
    assert np.array_equal(ImageProcessor(size=336, draft=True)(small), ImageProcessor(size=336)(small))


def test_the_torch_free_parts_are_datamix_imaging_s():
    """One definition: decoding, padding, resizing and the CLIP constants live in datamix.imaging
    (shared with presized builds and the report); trainer.images adds only normalisation."""
    import datamix.imaging as imaging
    import trainer.images as images

    for name in (
        "CLIP_MEAN",
        "CLIP_STD",
        "PAD_COLOR",
        "MAX_PIXELS",
        "ImageError",
        "decode",
        "to_rgb",
        "expand2square",
        "resize_padded",
    ):
        assert getattr(images, name) is getattr(imaging, name), name
    assert imaging.PAD_COLOR == (122, 116, 104) == ImageProcessor().pad_color
    data = io.BytesIO()
    Image.new("RGB", (30, 18), (10, 200, 30)).save(data, "PNG")
    square = imaging.padded_square(data.getvalue(), 16)
    assert np.array_equal(
        np.asarray(square).transpose(2, 0, 1), ImageProcessor(size=16, output="uint8")(data.getvalue())
    )
