"""Presized images (recipe `shards: presize`): validation, deterministic shards that hold the trainer's
padded square as a JPEG, the original image's identity kept in the manifest, corrupt images stored as
is, plan refusal and resume, and the trainer's loader within a stated tolerance of the exact path.

Tolerance (stated, checked below): on these photo-like fixtures (48 px squares, quality 95, 4:4:4
chroma) the loader's uint8 pixels from a presized mix differ from those of the plain mix by at most 8
levels, and by less than 1 level on average per image (measured: max 4-7, mean 0.42-0.89). The
difference is one JPEG generation of the padded square; noisier content gives more (benchmarks/README).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image, JpegImagePlugin

from datamix import shards as shards_mod
from datamix.build import build
from datamix.imaging import PAD_COLOR, resize_padded
from datamix.lint import lint_path
from datamix.mixio import MixReader
from datamix.normalize import normalize as normalize_sources
from datamix.recipe import PresizeSpec, RecipeError, canonical_json, load_recipe, parse_recipe, recipe_hash
from datamix.schema import Sample
from datamix.shards import BuildError, write_mix
from datamix.synth import synth
from trainer.images import ImageProcessor, normalize

SIZE = 48
MAX_ABS, MAX_MEAN = 8, 1.0  # the tolerance of the module docstring


# --------------------------------------------------------------------------------------------
# fixtures


def _photo(seed: int, w: int, h: int) -> np.ndarray:
    """Smooth gradients and waves with mild noise: photo-like content."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = (
            rng.uniform(60, 190)
            + rng.uniform(-50, 50) * x / w
            + 30 * np.sin(x / rng.uniform(6, 16)) * np.cos(y / rng.uniform(6, 16))
        )
    img += rng.normal(0, 2, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _jpeg(px: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, "JPEG", quality=92, **save)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    """A valid small JPEG whose SOF claims 20000 x 20000 pixels: refused from the header, never decoded."""
    data = bytearray(_jpeg(_photo(9, 16, 16)))
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = (20000).to_bytes(2, "big") * 2
    return bytes(data)


def _turns(text: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": text}, {"from": "gpt", "value": "an answer"}]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, list[Sample]]:
    """Images of every shape the presizer meets + a text-only sample; 12 samples, 3 per shard."""
    root = tmp_path_factory.mktemp("presize")
    images = root / "images"
    images.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: ignored by the trainer, dropped from the stored JPEG
    files = {
        "land.jpg": _jpeg(_photo(0, 64, 40), exif=exif.tobytes(), comment=b"original comment"),
        "portrait.jpg": _jpeg(_photo(1, 30, 56)),
        "square.jpg": _jpeg(_photo(2, 50, 50)),
        "exact.jpg": _jpeg(_photo(3, SIZE, SIZE)),  # already the target size: re-encoded all the same
        "grey.jpg": _jpeg(_photo(4, 60, 36)[..., 0]),
        "alpha.png": _png(Image.fromarray(np.dstack([_photo(5, 40, 52), np.full((52, 40), 128, np.uint8)]))),
        "wide.jpg": _jpeg(_photo(6, 96, 24)),
        "truncated.jpg": _jpeg(_photo(7, 64, 48))[:400],  # header fine, scan cut: the trainer skips it
        "bomb.jpg": _bomb(),
    }
    for name, data in files.items():
        (images / name).write_bytes(data)
    names = list(files)

    def sample(key: str, id: str, image: str | None, text: str) -> Sample:
        return Sample.create(key=key, id=id, source="synth", image=image, conversations=_turns(text))

    samples = [sample(f"p-{i}", str(i), name, "<image>\nq" + "x" * i) for i, name in enumerate(names)]
    samples.insert(4, sample("p-text", "t", None, "no image"))
    samples += [sample("p-again", "a", "land.jpg", "<image>\nagain")]
    samples += [sample("p-text2", "t2", None, "none")]
    return images, samples


def _write(out: Path, world, presize: PresizeSpec | None = PresizeSpec(size=SIZE), **kw) -> dict:
    images, samples = world
    return write_mix(out, "pre", samples, images, summary={"caller": 1}, max_samples=3, presize=presize, **kw)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("summary.json", "plan.json")
    }


def _members(mix: Path) -> dict[str, tuple[dict, bytes | None]]:
    with MixReader(mix) as reader:
        return {s.key: (s.record(), s.image) for s in reader.iter_samples(images=True)}


@pytest.fixture(scope="module")
def mixes(world, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("mixes")
    _write(base / "plain", world, presize=None)
    _write(base / "presized", world)
    return base / "plain", base / "presized"


# --------------------------------------------------------------------------------------------
# recipe option


BASE = {"name": "r", "seed": 1, "sources": {"gqa": {"choose": 1}}}


@pytest.mark.parametrize(
    "presize, field, message",
    [
        ({"quality": 0}, "shards.presize.quality", "greater than or equal to 1"),
        ({"quality": 101}, "shards.presize.quality", "less than or equal to 100"),
        ({"quality": "95"}, "shards.presize.quality", "valid integer"),
        ({"size": 0}, "shards.presize.size", "greater than or equal to 1"),
        ({"size": 336.0}, "shards.presize.size", "valid integer"),
        ({"subsampling": "4:1:1"}, "shards.presize.subsampling", "'4:4:4', '4:2:2' or '4:2:0'"),
        ({"sise": 336}, "shards.presize.sise", "unknown option (accepted: size, quality, subsampling)"),
        (336, "shards.presize", "valid dictionary"),
    ],
)
def test_invalid_presize_values_fail_naming_the_field(presize, field, message):
    with pytest.raises(RecipeError) as err:
        parse_recipe({**BASE, "shards": {"presize": presize}}, file="r.yaml")
    assert err.value.field == field and err.value.file == "r.yaml"
    assert message in err.value.message
    assert str(err.value).startswith(f"r.yaml: {field}: ")


def test_presize_defaults_hash_and_absence():
    off = parse_recipe(BASE)
    on = parse_recipe({**BASE, "shards": {"presize": {}}})
    assert off.shards.presize is None and "presize" not in canonical_json(off)
    assert on.shards.presize == PresizeSpec(size=336, quality=95, subsampling="4:4:4")
    assert json.loads(canonical_json(on))["shards"]["presize"] == {
        "size": 336,
        "quality": 95,
        "subsampling": "4:4:4",
    }
    assert recipe_hash(on) != recipe_hash(off)
    assert recipe_hash(parse_recipe({**BASE, "shards": {"presize": {"quality": 90}}})) != recipe_hash(on)
    for name in ("demo", "llava15_665k", "llava15_pretrain_558k"):  # the shipped recipes stay off
        assert load_recipe(name).shards.presize is None


def test_original_box_frame_with_presize_is_refused():
    sources = {"vg": {"choose": 2, "box_frame": "original"}, "refcoco": {"choose": 1}, "gqa": {"choose": 1}}
    assert parse_recipe({**BASE, "sources": sources}).sources["vg"].box_frame == "original"  # fine without
    with pytest.raises(RecipeError) as err:
        parse_recipe({**BASE, "sources": sources, "shards": {"presize": {"size": 336}}}, file="r.yaml")
    assert [p[0] for p in err.value.problems] == ["sources.vg.box_frame"]
    assert err.value.value == "original"
    assert (
        "cannot be combined with shards.presize" in err.value.message
        and "padded squares" in err.value.message
    )
    ok = {**sources, "vg": {"choose": 2, "box_frame": "padded_square"}}
    assert parse_recipe({**BASE, "sources": ok, "shards": {"presize": {}}}).shards.presize is not None


# --------------------------------------------------------------------------------------------
# shards


def test_presized_build_is_byte_identical_across_runs_and_jobs(world, mixes, tmp_path):
    _, presized = mixes
    a = _write(tmp_path / "a", world, jobs=2)
    assert a["shards"] == 4 and a["samples"] == 12
    assert _digest(tmp_path / "a") == _digest(presized)
    summary_a = json.loads((tmp_path / "a" / "summary.json").read_text())
    summary_p = json.loads((presized / "summary.json").read_text())
    assert summary_a == summary_p


def test_stored_images_are_presized_squares_and_manifest_keeps_the_originals(world, mixes):
    images, _ = world
    plain, presized = mixes
    manifest = pl.read_parquet(presized / "manifest.parquet")
    assert manifest.drop("stored_sha256", "presized").equals(
        pl.read_parquet(plain / "manifest.parquet").drop("stored_sha256", "presized")
    )
    members = _members(presized)
    proc = ImageProcessor(size=SIZE)
    presized_rows = 0
    for row in manifest.iter_rows(named=True):
        record, stored = members[row["key"]]
        if row["image"] is None:
            assert stored is None and row["stored_sha256"] is None and row["presized"] is None
            continue
        original = (images / row["image"]).read_bytes()
        assert row["image_sha256"] == hashlib.sha256(original).hexdigest()
        assert record["image"] == row["image"]
        assert row["stored_sha256"] == hashlib.sha256(stored).hexdigest()
        if row["image"] in ("truncated.jpg", "bomb.jpg"):
            assert row["presized"] is False and stored == original  # as without presize
            continue
        presized_rows += 1
        assert row["presized"] is True and stored != original
        with Image.open(io.BytesIO(original)) as im:
            assert (row["width"], row["height"]) == im.size  # the original's size (boxes use it)
        with Image.open(io.BytesIO(stored)) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (SIZE, SIZE))
            assert not im.info.get("progressive") and JpegImagePlugin.get_sampling(im) == 0  # baseline, 4:4:4
            assert "exif" not in im.info and "comment" not in im.info and "icc_profile" not in im.info
            im.load()
            # the stored square is the trainer's own padded+resized image, up to JPEG error
            ref = np.asarray(proc.square(original)).astype(np.int16)
            assert np.abs(np.asarray(im).astype(np.int16) - ref).max() <= MAX_ABS
    assert presized_rows == 8
    same = manifest.filter(pl.col("image") == "land.jpg")["stored_sha256"].to_list()
    assert len(same) == 2 and same[0] == same[1]
    plain_rows = pl.read_parquet(plain / "manifest.parquet").filter(pl.col("image").is_not_null())
    assert plain_rows["stored_sha256"].to_list() == plain_rows["image_sha256"].to_list()
    assert plain_rows["presized"].to_list() == [False] * 10
    assert lint_path(presized).clean and lint_path(plain).clean


def test_summary_records_presize(mixes):
    plain, presized = mixes
    assert json.loads((plain / "summary.json").read_text())["presize"] is None
    summary = json.loads((presized / "summary.json").read_text())
    assert summary["caller"] == 1
    p = summary["presize"]
    assert (p["size"], p["quality"], p["subsampling"]) == (SIZE, 95, "4:4:4")
    assert p["pad_color"] == list(PAD_COLOR) and p["format"].startswith("JPEG")
    assert (p["presized"], p["kept_original"], p["kept_original_keys"]) == (8, 2, ["p-7", "p-8"])


def test_different_presize_settings_are_a_different_build(world, tmp_path):
    out = tmp_path / "m"
    _write(out, world)
    for other in (PresizeSpec(size=SIZE, quality=90), PresizeSpec(size=SIZE + 16), None):
        with pytest.raises(BuildError, match="different build"):
            _write(out, world, presize=other)
    again = _write(out, world, presize=PresizeSpec(size=SIZE, quality=90), force=True)
    assert again["shards_resumed"] == 0 and again["presize"]["quality"] == 90


def test_killed_presized_build_resumes(world, mixes, tmp_path, monkeypatch):
    _, presized = mixes
    real, calls = shards_mod.write_shard, {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(shards_mod, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path / "m", world)
    monkeypatch.setattr(shards_mod, "write_shard", real)
    resumed = _write(tmp_path / "m", world, jobs=2)
    assert resumed["shards_resumed"] == 2 and resumed["presize"]["presized"] == 8
    assert _digest(tmp_path / "m") == _digest(presized)


# --------------------------------------------------------------------------------------------
# the trainer side


def test_square_of_target_size_is_not_padded_or_resized_and_equals_clip_reference():
    px = _photo(11, SIZE, SIZE)
    im = Image.fromarray(px)
    assert resize_padded(im, SIZE) is im  # no work
    assert resize_padded(im, SIZE + 1).size == (SIZE + 1, SIZE + 1)
    out = ImageProcessor(size=SIZE, output="uint8")(_png(im))
    assert np.array_equal(out, px.transpose(2, 0, 1))
    transformers = pytest.importorskip("transformers")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
        ref = cls(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    expected = np.asarray(ref(images=im, return_tensors="np")["pixel_values"][0])
    assert np.array_equal(ImageProcessor(size=SIZE)(_png(im)), expected)


def test_loader_pixels_are_within_tolerance_of_the_exact_build(mixes):
    torch = pytest.importorskip("torch")
    from trainer.data import ShardLoader, ShardStream

    def pixels(mix: Path, output: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        stream = ShardStream(
            mix, batch_size=2, image_processor=ImageProcessor(size=SIZE, output=output), shuffle=False
        )
        loader = ShardLoader(stream)
        out = {}
        for batch in loader:
            if batch.get("pixel_values") is None:
                continue
            for key, px in zip(batch["keys"], batch["pixel_values"], strict=True):
                out[key] = px.numpy()
        return out, loader.skipped

    plain, presized = mixes
    with torch.no_grad():
        exact, skipped_exact = pixels(plain, "uint8")
        near, skipped_near = pixels(presized, "uint8")
    assert sorted(exact) == sorted(near) and len(exact) == 8
    assert skipped_exact == skipped_near and skipped_exact["bad_image"] == 2  # truncated + bomb, as before
    worst = 0
    for key in exact:
        diff = np.abs(exact[key].astype(np.int16) - near[key].astype(np.int16))
        assert diff.max() <= MAX_ABS and diff.mean() < MAX_MEAN, (key, diff.max(), diff.mean())
        worst = max(worst, int(diff.max()))
    assert worst > 0  # it is a lossy trade-off, not a no-op
    floats, _ = pixels(presized, "float32")  # the trainer's default output: the same pixels, normalised
    for key in floats:
        assert np.array_equal(floats[key], normalize(np.ascontiguousarray(near[key].transpose(1, 2, 0))))


# --------------------------------------------------------------------------------------------
# end to end: recipe -> build


def test_build_with_presize_recipe_records_it(tmp_path):
    root = tmp_path / "root"
    synth(root, scale="tiny", seed=0)
    assert not [r for r in normalize_sources(root=root) if "error" in r]
    text = (Path(__file__).parent / "fixtures" / "recipes" / "every_source.yaml").read_text()
    text = text.replace("max_samples: 256", "max_samples: 64\n  presize: {size: 32, quality: 90}")
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(text)
    result = build(recipe, root, out=tmp_path / "m", jobs=2)
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["presize"]["size"] == 32 and summary["presize"]["quality"] == 90
    assert summary["recipe_resolved"]["shards"]["presize"] == {
        "size": 32,
        "quality": 90,
        "subsampling": "4:4:4",
    }
    manifest = pl.read_parquet(tmp_path / "m" / "manifest.parquet")
    n_images = manifest.filter(pl.col("image").is_not_null()).height
    assert summary["presize"]["presized"] == n_images > 0 and summary["presize"]["kept_original"] == 0
    assert result["eval"]["presize"]["presized"] > 0  # held-out eval shards are presized too
    sizes = {Image.open(io.BytesIO(img)).size for _, (_, img) in _members(tmp_path / "m").items() if img}
    assert sizes == {(32, 32)}
    assert lint_path(tmp_path / "m").clean
    bad = text.replace("vg: {choose: all,", "vg: {box_frame: original, choose: all,")
    assert bad != text
    recipe.write_text(bad)
    with pytest.raises(RecipeError, match=r"sources\.vg\.box_frame: box_frame 'original' cannot be combined"):
        build(recipe, root, out=tmp_path / "m2")
