"""`datamix contamination`, the benchmark readers and the recipe option `exclude:` on synthetic data
whose overlaps are planted (datamix/synth/benchmarks.py, `ROOT/benchmarks/synth_truth.json`)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from datamix import contamination, evalsets
from datamix.build import build
from datamix.evalsets import textnorm
from datamix.mixio import MixReader
from datamix.normalize import normalize
from datamix.synth import synth
from datamix.synth.benchmarks import TRUTH
from datamix.synth.scene import draw_scene

IMAGE_SOURCES = ["llava_instruct", "vqav2", "gqa", "okvqa", "aokvqa", "ocrvqa", "textcaps", "vg", "refcoco"]


def _recipe(tmp: Path, name: str, exclude: dict | None = None) -> Path:
    data = {"name": name, "seed": 1, "sources": {s: {"choose": "all"} for s in IMAGE_SOURCES}}
    if exclude:
        data["exclude"] = exclude
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("contam")
    synth(root, "tiny", 0)
    normalize(None, root, jobs=1)
    build(_recipe(root, "all"), root)
    report = contamination.run(root / "mixes" / "all", root, list(evalsets.NAMES))
    truth = json.loads((root / "benchmarks" / TRUTH).read_text(encoding="utf-8"))
    images = set(MixReader(root / "mixes" / "all").read_manifest(["image"]).column("image").to_pylist())
    return {"root": root, "report": report, "truth": truth, "images": images}


def test_every_benchmark_reads_its_synthetic_files(world: dict) -> None:
    for name in evalsets.NAMES:
        items = evalsets.get(name).read(world["root"])
        assert items, name
        truth = world["truth"][name]
        assert {it.qid for it in items} >= set(truth["planted"]) | set(truth["unplanted"])


def test_planted_overlaps_found_exactly_and_no_false_positive(world: dict) -> None:
    _check_exact(world["report"], world["truth"], world["images"])


@pytest.mark.slow
def test_planted_overlaps_found_exactly_at_small_scale(tmp_path: Path) -> None:
    synth(tmp_path, "small", 0)
    normalize(None, tmp_path, jobs=2)
    build(_recipe(tmp_path, "all"), tmp_path)
    mix = tmp_path / "mixes" / "all"
    truth = json.loads((tmp_path / "benchmarks" / TRUTH).read_text(encoding="utf-8"))
    images = set(MixReader(mix).read_manifest(["image"]).column("image").to_pylist())
    _check_exact(contamination.run(mix, tmp_path, list(evalsets.NAMES)), truth, images)


def _check_exact(report: dict, truth: dict, images: set) -> None:
    planted_any = 0
    for name, t in truth.items():
        r = report["benchmarks"][name]
        got = {k: set(v) for k, v in r["matched"].items()}
        in_mix = {q: p for q, p in t["planted"].items() if p["training"] in images}
        exp_image = {q for q, p in in_mix.items() if p["how"] in ("id", "content", "question")}
        exp_near = {q for q, p in in_mix.items() if p["how"].startswith("near_")}
        exp_question = {q for q, p in in_mix.items() if p["how"] == "question"}
        assert got["image"] == exp_image, name
        assert exp_near <= got["near_image"] <= set(in_mix), name  # byte copies on disk are near too
        assert got["question"] == exp_question, name
        assert not (got["image"] | got["near_image"] | got["question"]) & set(t["unplanted"]), name
        planted_any += len(in_mix)
    assert planted_any >= 15
    hows = {p["how"] for t in truth.values() for p in t["planted"].values() if p["training"] in images}
    assert hows == {"id", "content", "near_q75", "near_half", "question"}


def test_sources_responsible_and_formats(world: dict) -> None:
    r = world["report"]["benchmarks"]
    assert set(r["textvqa"]["by_source"]) == {"textcaps"}
    assert "gqa" in r["mmvet"]["by_source"]
    text = contamination.format_text(world["report"])
    assert "pope" in text and "per training source" in text
    assert (
        json.loads(contamination.format_json(world["report"]))["near_threshold"]
        == contamination.NEAR_THRESHOLD
    )
    assert contamination.format_html(world["report"]).startswith("<!doctype html>")


def test_phash_cache_next_to_the_manifest(world: dict) -> None:
    mix = world["root"] / "mixes" / "all"
    assert (mix / contamination.PHASH_CACHE).is_file()
    again = contamination.training_fingerprints(mix)
    assert again and all(isinstance(v[0], int) and len(v[1]) == 192 for v in again.values() if v is not None)


def _jpeg(im: Image.Image, q: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def test_near_threshold_measured_on_q75_and_half_copies() -> None:
    """The threshold's basis: over 200 synthetic pictures, q75 re-encodes and 0.5x resizes stay within
    it; smooth colour fields (the unplanted synthetic benchmark pictures) stay far from every scene."""
    from datamix.synth.benchmarks import _field, _half, _q75

    worst = worst_thumb = 0
    scenes = []
    for i in range(200):
        im, _ = draw_scene(random.Random(i))
        data = _jpeg(im)
        h, thumb = contamination.fingerprint(data)
        scenes.append(h)
        for copy in (_q75(data), _half(data)):
            ch, ct = contamination.fingerprint(copy)
            worst = max(worst, bin(h ^ ch).count("1"))
            diff = np.abs(
                np.frombuffer(thumb, np.uint8).astype(int) - np.frombuffer(ct, np.uint8).astype(int)
            )
            worst_thumb = max(worst_thumb, int(diff.max()))
    assert worst <= contamination.NEAR_THRESHOLD
    assert worst_thumb <= contamination.THUMB_MAX
    pool = np.array(scenes, dtype=np.uint64)
    fields = np.array([contamination.phash(_field(random.Random(i))) for i in range(200)], dtype=np.uint64)
    closest = min(int(np.bitwise_count(f ^ pool).min()) for f in fields)
    assert closest > contamination.NEAR_THRESHOLD


def test_vqa_normalisation_is_the_evaluations() -> None:
    assert textnorm.vqa("What's the  COLOR of the two cats?") == textnorm.vqa("whats color of 2 cats")
    assert textnorm.vqa("Is there a dog?") == "is there dog"
    assert textnorm.vqa("  WHAT IS 3.5 , 10,000?") == "what is 3.5 10000"


def test_identities_across_coco_splits() -> None:
    assert contamination.image_ident("coco/train2017/000000310196.jpg") == "coco:310196"
    assert contamination.image_ident("gqa/images/2354786.jpg") == "vg:2354786"
    assert contamination.image_ident("vg/VG_100K_2/12.jpg") == "vg:12"
    assert contamination.image_ident("textvqa/train_images/0a1b.jpg") == "openimages:0a1b"
    assert contamination.image_ident("ocr_vqa/images/1.jpg") is None
    from datamix.evalsets.readers import gqa_ident

    assert gqa_ident("2354786") == "vg:2354786" and gqa_ident("n161313") == "gqa:n161313"


def test_catalog_lists_benchmark_files_under_benchmarks() -> None:
    from datamix.catalog import parse_catalog

    assert {e.source for e in evalsets.CATALOG} | {"mme"} == set(evalsets.NAMES)
    for e in evalsets.CATALOG:
        assert e.path.startswith(("benchmarks/", "downloads/benchmarks/")), e
    assert all(e.kind == "annotation" for e in evalsets.select(None, annotations_only=True))
    with pytest.raises(ValueError, match="unknown benchmark"):
        evalsets.parse_names(["pope,nope"])
    del parse_catalog


def test_exclude_builds_a_clean_mix(world: dict) -> None:
    root = world["root"]
    spec = {"benchmarks": ["all"], "match": ["image", "near_image", "question"]}
    build(_recipe(root, "clean", spec), root)
    summary = json.loads((root / "mixes" / "clean" / "summary.json").read_text(encoding="utf-8"))
    ex = summary["excluded"]
    assert ex["removed"] > 0 and ex["match"] == spec["match"]
    assert sum(v["samples"] for v in ex["sources"].values()) == ex["removed"]
    assert summary["total"]["actual"] + ex["removed"] == len(MixReader(root / "mixes" / "all"))
    for v in ex["sources"].values():
        assert all(":" in why for why in v["why"])
    again = contamination.run(root / "mixes" / "clean", root, list(evalsets.NAMES))
    assert all(r["counts"]["any"] == 0 for r in again["benchmarks"].values())


def test_recipe_refuses_unknown_benchmark(tmp_path: Path) -> None:
    from datamix.recipe import RecipeError, load_recipe

    path = _recipe(tmp_path, "bad", {"benchmarks": ["nope"]})
    with pytest.raises(RecipeError, match="unknown benchmark"):
        load_recipe(path)


def test_cli_contamination_and_download_benchmarks(world: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datamix.cli import app

    runner = CliRunner()
    root = world["root"]
    res = runner.invoke(
        app,
        [
            "contamination",
            str(root / "mixes" / "all"),
            "--root",
            str(root),
            "--benchmarks",
            "pope,textvqa",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["benchmarks"]) == {"pope", "textvqa"}
    res = runner.invoke(
        app, ["contamination", str(root / "mixes" / "all"), "--root", str(root), "--benchmarks", "nope"]
    )
    assert res.exit_code == 2
    res = runner.invoke(app, ["download", "--benchmarks", "mme", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (
        "MME_Benchmark_release_version" in res.output and str(tmp_path / "benchmarks" / "mme") in res.output
    )
