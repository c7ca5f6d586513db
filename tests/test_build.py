"""build: synth -> normalize -> build end to end; byte-identical rebuilds; resume; refusal; export/import/lint."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from datamix import shards as shards_mod
from datamix.build import build, import_llava
from datamix.cli import app
from datamix.lint import lint_path
from datamix.llava_json import export_llava_json, read_llava_json
from datamix.mixio import MixReader
from datamix.shards import BuildError


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("summary.json", "plan.json")
    }


def _recipe(tmp_path: Path, max_samples: int = 16) -> Path:
    text = (Path(__file__).parent / "fixtures" / "recipes" / "every_source.yaml").read_text()
    text = text.replace("max_samples: 256", f"max_samples: {max_samples}")
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path


def test_build_is_byte_identical_and_matches_manifest(tiny_root, tmp_path):
    recipe = _recipe(tmp_path)
    a = build(recipe, tiny_root, out=tmp_path / "a", jobs=2)
    b = build(recipe, tiny_root, out=tmp_path / "b", jobs=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a["samples"] == b["samples"] > 50 and a["shards"] > 2
    manifest = pl.read_parquet(tmp_path / "a" / "manifest.parquet")
    assert manifest.height == a["samples"] and manifest["key"].n_unique() == manifest.height
    assert not manifest["key"].str.contains(r"\.").any()
    # every manifest row is in its shard, with the image bytes it hashes, and nothing else is
    rows = list(manifest.iter_rows(named=True))
    with MixReader(tmp_path / "a") as reader:
        samples = list(reader.iter_samples(images=True))
        assert [s.key for s in samples] == manifest["key"].to_list()
        for sample, row in zip(samples, rows, strict=True):
            rec = sample.record()
            assert rec["key"] == sample.key and rec["source"] == row["source"] and rec["id"] == row["id"]
            assert ("image" in rec) == (row["image"] is not None) == (sample.image is not None)
            if sample.image is not None:
                assert hashlib.sha256(sample.image).hexdigest() == row["image_sha256"]
        members = [m for shard in reader.shard_files() for m in reader.members(shard)]
    assert len(members) == manifest.height + manifest["image"].is_not_null().sum()
    for shard in sorted((tmp_path / "a" / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in tar} == {
                (0, 0, 0, "", "", 0o644)
            }
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["seed"] == 1234 and len(summary["recipe_hash"]) == 64
    assert summary["raw_inputs"]["vqav2"][0]["sha256"]
    assert summary["sources"]["gqa"]["actual"] == manifest.filter(pl.col("source") == "gqa").height
    assert (tmp_path / "a" / "eval" / "manifest.parquet").is_file()


def test_killed_build_resumes_without_duplicates_or_holes(tiny_root, tmp_path, monkeypatch):
    recipe = _recipe(tmp_path)
    ref = build(recipe, tiny_root, out=tmp_path / "ref")
    calls = {"n": 0}
    real = shards_mod.write_shard

    def dying(path, part, samples, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # die halfway through the third shard: a partial temp tar is left behind
            with open(path.with_name(path.name + ".tmp-999"), "wb") as f:
                f.write(b"partial")
            raise KeyboardInterrupt
        return real(path, part, samples, *args, **kwargs)

    monkeypatch.setattr(shards_mod, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        build(recipe, tiny_root, out=tmp_path / "run")
    finished = sorted(p.name for p in (tmp_path / "run" / "shards").glob("*.tar"))
    assert finished == [f"every_source-{i:06d}.tar" for i in range(2)]
    assert not (tmp_path / "run" / "manifest.parquet").exists()
    monkeypatch.setattr(shards_mod, "write_shard", real)
    resumed = build(recipe, tiny_root, out=tmp_path / "run")
    assert resumed["shards_resumed"] == 2
    assert not (tmp_path / "run" / "shards" / "every_source-000002.tar.tmp-999").exists()  # removed on resume
    assert _digest(tmp_path / "run") == _digest(tmp_path / "ref")
    assert resumed["samples"] == ref["samples"]


def test_a_different_build_is_refused_without_force(tiny_root, tmp_path):
    build(_recipe(tmp_path, 16), tiny_root, out=tmp_path / "m")
    with pytest.raises(BuildError, match="different build"):
        build(_recipe(tmp_path, 8), tiny_root, out=tmp_path / "m")
    again = build(_recipe(tmp_path, 8), tiny_root, out=tmp_path / "m", force=True)
    assert again["shards_resumed"] == 0


def test_export_import_round_trip_and_lint(tiny_root, tmp_path):
    build(_recipe(tmp_path), tiny_root, out=tmp_path / "m")
    exported = tmp_path / "mix.json"
    n = export_llava_json(tmp_path / "m", exported)
    records = list(read_llava_json(exported))
    assert len(records) == n
    manifest = pl.read_parquet(tmp_path / "m" / "manifest.parquet")
    # stage 2: paths relative to the data root's images/ folder (LLaVA's --image_folder), as released
    assert [r.get("image") for r in records] == manifest["image"].to_list()  # text-only: no `image` key
    assert all((tiny_root / "images" / r["image"]).is_file() for r in records if "image" in r)
    assert (
        sum("image" not in r for r in records) == manifest.filter(pl.col("source") == "sharegpt").height > 0
    )
    assert lint_path(exported).clean and lint_path(tmp_path / "m").clean
    result = import_llava(exported, tiny_root / "images", tmp_path / "imported", max_samples=32)
    assert result["samples"] == n
    back = tmp_path / "back.json"
    export_llava_json(tmp_path / "imported", back)
    assert list(read_llava_json(back)) == records
    inferred = pl.read_parquet(tmp_path / "imported" / "manifest.parquet")["source"].value_counts()
    original = pl.read_parquet(tmp_path / "m" / "manifest.parquet")["source"].value_counts()
    assert set(inferred["source"]) <= set(original["source"]) | {"unknown"}


def test_stage1_export_paths_feed_llava_and_round_trip(tiny_root, tmp_path):
    recipe = tmp_path / "stage1.yaml"
    recipe.write_text(
        "name: stage1\nseed: 0\nstage: 1\ntemplate: plain\n"
        "sources:\n  llava_pretrain: {choose: all, image_placement: raw}\nshards: {max_samples: 16}\n"
    )
    build(recipe, tiny_root, out=tmp_path / "m")
    runner = CliRunner()
    exported = tmp_path / "blip.json"
    res = runner.invoke(app, ["export", str(tmp_path / "m"), "--out", str(exported)])
    assert res.exit_code == 0, res.output
    assert "--image_folder" in res.output and "llava_pretrain/images" in res.output
    records = list(read_llava_json(exported))
    lcs = tiny_root / "images" / "llava_pretrain" / "images"  # what LLaVA's --image_folder names
    assert records and all(
        "/" in r["image"] and not r["image"].startswith("llava_pretrain/") and (lcs / r["image"]).is_file()
        for r in records
    )
    assert lint_path(exported).clean
    # import-llava reads it back relative to the LCS-558K folder, every record inferred as llava_pretrain
    result = import_llava(exported, lcs, tmp_path / "imported", max_samples=16)
    assert result["samples"] == len(records)
    assert set(pl.read_parquet(tmp_path / "imported" / "manifest.parquet")["source"]) == {"llava_pretrain"}
    back = tmp_path / "back.json"
    export_llava_json(tmp_path / "imported", back)
    assert back.read_bytes() == exported.read_bytes()
    # --image-prefix '' keeps the paths under the data root's images/ folder
    res = runner.invoke(
        app, ["export", str(tmp_path / "m"), "--out", str(back), "--force", "--image-prefix", ""]
    )
    assert res.exit_code == 0, res.output
    assert [r["image"] for r in read_llava_json(back)] == [
        "llava_pretrain/images/" + r["image"] for r in records
    ]


def test_import_llava_presize_from_the_cli(tiny_root, tmp_path):
    import io

    from PIL import Image

    build(_recipe(tmp_path), tiny_root, out=tmp_path / "m")
    exported = tmp_path / "mix.json"
    export_llava_json(tmp_path / "m", exported)
    runner = CliRunner()
    args = [
        "import-llava",
        str(exported),
        "--images",
        str(tiny_root / "images"),
        "--out",
        str(tmp_path / "p"),
    ]
    res = runner.invoke(app, [*args, "--presize", "32", "--presize-quality", "90"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert (summary["presize"]["size"], summary["presize"]["quality"], summary["presize"]["subsampling"]) == (
        32,
        90,
        "4:4:4",
    )
    manifest = pl.read_parquet(tmp_path / "p" / "manifest.parquet")
    with_image = manifest.filter(pl.col("image").is_not_null())
    assert summary["presize"]["presized"] == with_image.height > 0 and with_image["presized"].all()
    with MixReader(tmp_path / "p") as reader:
        sizes = {Image.open(io.BytesIO(s.image)).size for s in reader.iter_samples(images=True) if s.image}
    assert sizes == {(32, 32)}
    bad = runner.invoke(app, [*args, "--presize", "32", "--presize-subsampling", "4:1:1"])
    assert bad.exit_code == 2 and "--presize-subsampling" in bad.output


def test_cli_build_dry_run_inspect(tiny_root, tmp_path):
    runner = CliRunner()
    recipe = str(_recipe(tmp_path))
    res = runner.invoke(app, ["build", "--recipe", recipe, "--root", str(tiny_root), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "dry run, nothing written" in res.output and not (tiny_root / "mixes").exists()
    out = tmp_path / "m"
    res = runner.invoke(app, ["build", "--recipe", recipe, "--root", str(tiny_root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "samples in" in res.output
    res = runner.invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0 and "text-only share" in res.output
    res = runner.invoke(app, ["lint", str(out), "--format", "json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["violations"] == []
    res = runner.invoke(app, ["build", "--recipe", "no_such_recipe", "--root", str(tiny_root)])
    assert (
        res.exit_code == 2 and "no recipe named 'no_such_recipe'" in res.output
    )  # cannot run (datamix.errors)
