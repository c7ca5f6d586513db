"""datamix.synth volume profile: a smoke run at 0.001 of the real sizes writes every source, normalizes
cleanly, and lands exactly on the requested counts and the planted drop reasons."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from datamix.schema import DropReason
from datamix.synth import SOURCES, VolumeResult, synth, synth_volume
from datamix.synth.bulk import REAL

FRACTION = 0.001


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VolumeResult]:
    root = tmp_path_factory.mktemp("volume")
    return root, synth_volume(root, FRACTION, seed=0)


def _n(key: str) -> int:
    return max(1, round(REAL[key] * FRACTION))


def test_counts_are_the_requested_fraction(volume) -> None:
    _, result = volume
    assert result.sources == SOURCES
    # the `choose: all` sources and LCS: exactly the real figure at this fraction survives normalize
    want = {
        "llava_instruct": _n("llava_instruct_records"),
        "vqav2": _n("vqav2_images"),
        "gqa": _n("gqa_images"),
        "okvqa": _n("okvqa_images"),
        "aokvqa": _n("aokvqa_images"),
        "textcaps": _n("textcaps_images"),
        "vg": _n("vg_images"),
        "refcoco": _n("refcoco_images"),
        "llava_pretrain": _n("llava_pretrain_records"),
    }
    assert {s: result.expected_items[s] for s in want} == want
    assert all(result.planted[s] for s in SOURCES), result.planted
    assert all(isinstance(r, DropReason) for p in result.planted.values() for r in p)
    assert result.image_links > _n("coco_train2017") + _n("llava_pretrain_records")


def test_raw_files_hold_the_requested_records(volume) -> None:
    root, result = volume
    raw = root / "raw"
    gqa = json.loads((raw / "gqa" / "train_balanced_questions.json").read_text(encoding="utf-8"))
    extra = (
        sum(result.planted["gqa"].values()) + result.planted["gqa"][DropReason.IMAGE_MISSING]
    )  # 2 per ghost
    assert len(gqa) == _n("gqa_questions") + extra
    lcs = json.loads((raw / "llava_pretrain" / "blip_laion_cc_sbu_558k.json").read_text(encoding="utf-8"))
    assert len(lcs) == _n("llava_pretrain_records") + sum(result.planted["llava_pretrain"].values())
    meta = json.loads((raw / "synth.json").read_text(encoding="utf-8"))
    assert meta["profile"] == "volume" and meta["fraction"] == FRACTION
    assert meta["counts"] == result.expected_items and meta["images"] == result.image_links
    # images are hard links to a few base files
    some = root / "images" / "coco" / "train2017"
    assert next(some.iterdir()).stat().st_nlink > 1


def test_normalizes_to_the_expected_items_and_planted_drops(volume) -> None:
    from datamix.normalize import normalize

    root, result = volume
    stats = {st["source"]: st for st in normalize(root=root, force=True)}
    assert {s: st.get("error") for s, st in stats.items() if st.get("error")} == {}
    assert {s: stats[s]["items"] for s in SOURCES} == result.expected_items
    got = {s: Counter(stats[s]["drops_by_reason"]) for s in SOURCES}
    want = {s: Counter({r.value: n for r, n in result.planted[s].items()}) for s in SOURCES}
    assert got == want


def test_same_arguments_same_bytes_and_reruns_over_its_own_root(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ra = synth_volume(a, 0.0003, seed=1, sources=["sharegpt", "vqav2"])
    synth_volume(b, 0.0003, seed=1, sources=["vqav2", "sharegpt"])
    files = [p.relative_to(a) for p in sorted((a / "raw").rglob("*.json"))]
    assert [f.name for f in files] == [
        "ShareGPT_V3_unfiltered_cleaned_split.json",
        "synth.json",
        "v2_OpenEnded_mscoco_train2014_questions.json",
        "v2_mscoco_train2014_annotations.json",
    ]
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    again = synth_volume(a, 0.0003, seed=1, sources=["sharegpt", "vqav2"])  # links replaced, no error
    assert again.expected_items == ra.expected_items


def test_cli_and_arguments(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datamix.cli import app

    res = CliRunner().invoke(
        app, ["synth", "--root", str(tmp_path / "v"), "--profile", "volume", "--fraction", "0.0002"]
    )
    assert res.exit_code == 0, res.output
    assert "profile volume, fraction 0.0002" in res.output
    assert json.loads((tmp_path / "v" / "raw" / "synth.json").read_text())["profile"] == "volume"
    for args in (["--fraction", "0.1"], ["--profile", "volume", "--scale", "small"], ["--profile", "huge"]):
        res = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "x"), *args])
        assert res.exit_code == 2 and "Traceback" not in res.output, (args, res.output)
    with pytest.raises(ValueError, match="fraction"):
        synth_volume(tmp_path / "y", 2.0)
    with pytest.raises(ValueError, match="unknown source"):
        synth_volume(tmp_path / "y", 0.001, sources=["nope"])
    with pytest.raises(ValueError, match="profile"):
        synth(tmp_path / "y", profile="huge")
    with pytest.raises(ValueError, match="fraction applies to the volume profile"):
        synth(tmp_path / "y", fraction=0.5)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
