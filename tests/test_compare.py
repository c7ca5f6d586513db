"""compare: pairs of synth builds that differ by exactly one recipe option, a build against its own
export, doctored exports (id form, image path, ShareGPT ids), several records per image, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamix.build import build
from datamix.cli import app
from datamix.compare import CLASSES, CompareError, compare, format_text, image_key
from datamix.llava_json import export_llava_json, read_llava_json
from datamix.normalize import normalize
from datamix.recipe import SPEC_TYPES
from datamix.synth import synth

SOURCES = ["llava_instruct", "sharegpt", "vqav2", "okvqa", "aokvqa", "textcaps", "refcoco"]

BASE = """
name: cmp
seed: 7
stage: 2
sources:
  llava_instruct: {choose: all}
  sharegpt: {choose: all}
  vqav2: {choose: all}
  okvqa: {choose: all}
  aokvqa: {choose: all}
  textcaps: {choose: all}
  refcoco: {choose: all}
shards:
  max_samples: 64
"""


@pytest.fixture(scope="module")
def cmp_root(tmp_path_factory) -> Path:
    """Tiny synth data; TextCaps captions without their final period, as most real `caption_str` are
    (so that `final_period` has something to change)."""
    root = tmp_path_factory.mktemp("cmp_root")
    synth(root, scale="tiny", seed=0)
    path = root / "raw" / "textcaps" / "TextCaps_0.1_train.json"
    data = json.loads(path.read_text())
    for entry in data["data"]:
        if isinstance(entry.get("caption_str"), str):
            entry["caption_str"] = entry["caption_str"].rstrip(".")
    path.write_text(json.dumps(data))
    assert not [r for r in normalize(SOURCES + ["ocrvqa", "gqa", "vg"], root=root) if "error" in r]
    return root


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cmp_recipe") / "cmp.yaml"
    path.write_text(BASE)
    return path


@pytest.fixture(scope="module")
def base(cmp_root, recipe_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmp_builds") / "base"
    build(recipe_file, cmp_root, out=out)
    return out


def _variant(cmp_root: Path, recipe_file: Path, tmp_path: Path, *overrides: str) -> Path:
    out = tmp_path / "variant"
    build(recipe_file, cmp_root, out=out, overrides=overrides)
    return out


def _only_differences(result: dict) -> dict[str, dict]:
    return {name: r for name, r in result["sources"].items() if r["differing"] or r["only_a"] or r["only_b"]}


def _has(field: str, spec: str) -> bool:
    return field in SPEC_TYPES[spec].model_fields


# one recipe option flipped -> exactly one source differs, every differing pair in exactly these classes
ONE_OPTION = [
    ("sources.vqav2.shuffle_turns=false", "vqav2", {"turn_order"}),
    ("sources.vqav2.answer_case=as_is", "vqav2", {"answer_case"}),
    ("sources.refcoco.box_frame=original", "refcoco", {"boxes"}),
    ("sources.llava_instruct.image_placement=raw", "llava_instruct", {"image_placement"}),
    ("sources.textcaps.caption=random", "textcaps", {"answer_text"}),
    ("sources.vqav2.max_turns=2", "vqav2", {"n_turns"}),
    pytest.param(
        "sources.textcaps.final_period=false",
        "textcaps",
        {"answer_case"},
        marks=pytest.mark.skipif(
            not _has("final_period", "textcaps"), reason="no TextCaps final_period option"
        ),
    ),
    pytest.param(
        "sources.vqav2.format_prompt=false",
        "vqav2",
        {"prompt_text"},
        marks=pytest.mark.skipif(not _has("format_prompt", "vqav2"), reason="no format_prompt option"),
    ),
    pytest.param(
        "sources.aokvqa.format_prompt=false",
        "aokvqa",
        {"prompt_text"},
        marks=pytest.mark.skipif(not _has("format_prompt", "aokvqa"), reason="no format_prompt option"),
    ),
]


@pytest.mark.parametrize(("override", "source", "classes"), ONE_OPTION)
def test_one_option_is_detected_and_attributed(
    cmp_root, recipe_file, base, tmp_path, override, source, classes
):
    variant = _variant(cmp_root, recipe_file, tmp_path, override)
    result = compare(base, variant, examples=2)
    assert not result["identical"]
    diffs = _only_differences(result)
    assert list(diffs) == [source], diffs
    r = diffs[source]
    assert r["a"] == r["b"] == r["matched"] and r["only_a"] == r["only_b"] == 0
    assert r["differing"] > 0 and r["unclassified"] == 0
    assert r["classes"] == {c: r["differing"] for c in classes}
    for c in classes:
        assert 1 <= len(r["examples"][c]) <= 2
    # every other source matched one to one, identical
    for name, other in result["sources"].items():
        if name != source:
            assert other["identical"] == other["a"] == other["b"] > 0
    text = format_text(result)
    assert f"{source}: " in text and text.rstrip().endswith("0 only in A, 0 only in B")


def test_build_against_its_own_export_is_identical(base, tmp_path):
    exported = tmp_path / "export.json"
    n = export_llava_json(base, exported)
    for a, b in ((base, exported), (exported, base), (base / "manifest.parquet", exported)):
        result = compare(a, b)
        assert result["identical"], _only_differences(result)
        assert result["total"]["matched"] == result["total"]["identical"] == n
    runner = CliRunner()
    res = runner.invoke(app, ["compare", str(base), str(exported)])
    assert res.exit_code == 0, res.output
    assert "compare: identical" in res.output


def test_doctored_export_id_form_image_path_and_sharegpt_ids(base, tmp_path):
    """The release's int ids and another image folder spelling; ShareGPT matched by its first turn."""
    exported = tmp_path / "export.json"
    export_llava_json(base, exported)
    records = list(read_llava_json(exported))
    changed = {"vqav2": 0, "textcaps": 0, "sharegpt": 0}
    for rec in records:
        image = rec.get("image", "")
        if (
            image.startswith("coco/")
            and rec["conversations"][0]["value"].count("single word")
            and rec["id"].isdigit()
        ):
            rec["id"] = int(rec["id"])  # as the release's GQA records: a JSON integer (docs/sources.md#ids)
        elif image.startswith("textvqa/"):
            rec["image"] = "textvqa/train_images_copy/" + image.rsplit("/", 1)[1]
            changed["textcaps"] += 1
        elif not image:
            rec["id"] = rec["id"] + "_x"
            changed["sharegpt"] += 1
    doctored = tmp_path / "doctored.json"
    doctored.write_text(json.dumps(records))
    result = compare(base, doctored, examples=1)
    diffs = _only_differences(result)
    assert set(diffs) == {"vqav2", "okvqa", "textcaps", "sharegpt"}
    for name in ("vqav2", "okvqa"):
        assert diffs[name]["classes"] == {"id_form": diffs[name]["matched"]}
    assert diffs["textcaps"]["classes"] == {"image_path": changed["textcaps"]}
    assert diffs["sharegpt"]["classes"] == {"id_form": changed["sharegpt"]}
    ex = diffs["vqav2"]["examples"]["id_form"][0]
    assert ex["where"] == "id" and ex["a_value"].startswith("'") and not ex["b_value"].startswith("'")
    assert all(r["only_a"] == r["only_b"] == 0 for r in result["sources"].values())


def test_prompt_off_export_is_still_attributed_to_its_source(cmp_root, recipe_file, base, tmp_path):
    """Without its suffix a VQAv2 record looks like LLaVA-Instruct to import-llava's inference; the
    build's recorded source wins, and the records still match by image and question."""
    if not _has("format_prompt", "vqav2"):
        pytest.skip("no format_prompt option")
    variant = _variant(cmp_root, recipe_file, tmp_path, "sources.vqav2.format_prompt=false")
    exported = tmp_path / "variant.json"
    export_llava_json(variant, exported)
    result = compare(base, exported)
    diffs = _only_differences(result)
    assert list(diffs) == ["vqav2"]
    assert diffs["vqav2"]["classes"] == {"prompt_text": diffs["vqav2"]["a"]}


def test_several_records_per_image_and_unmatched(cmp_root, recipe_file, base, tmp_path):
    """A-OKVQA's 4 rotated copies per image: `augment: none` keeps copy 0, the other 3 are only in A;
    a smaller `choose` leaves records only in A."""
    variant = _variant(
        cmp_root, recipe_file, tmp_path, "sources.aokvqa.augment=none", "sources.vqav2.choose=5"
    )
    result = compare(base, variant, examples=1)
    diffs = _only_differences(result)
    assert set(diffs) == {"aokvqa", "vqav2"}
    a = diffs["aokvqa"]
    assert a["b"] * 4 == a["a"] and a["identical"] == a["matched"] == a["b"] and a["only_a"] == 3 * a["b"]
    v = diffs["vqav2"]
    assert v["b"] == v["identical"] == 5 and v["only_a"] == v["a"] - 5 and v["only_b"] == 0
    assert set(v["examples"]) == {"only_a"}
    assert "only in A" in format_text(result)


def test_release_recipe_against_fixed_reports_exactly_the_corrections(cmp_root, tmp_path):
    """`llava15_665k` vs `llava15_665k_fixed` on synth data: the classes of the recipes' differences."""
    from datamix.recipe import load_recipe

    names = ["llava15_665k", "llava15_665k_fixed"]
    try:
        recipes = [load_recipe(n) for n in names]
    except Exception:  # noqa: BLE001 - the fixed recipe is another deliverable
        pytest.skip("llava15_665k_fixed not available")
    outs = []
    for name, recipe in zip(names, recipes, strict=True):
        sets = [f"sources.{s}.allow_short=true" for s in recipe.sources] + ["sources.vg.min_regions=1"]
        outs.append(tmp_path / name)
        build(name, cmp_root, out=outs[-1], overrides=sets)
    result = compare(*outs, examples=1)
    diffs = _only_differences(result)
    expected = {}
    a, b = recipes
    for source in a.sources:
        sa, sb = a.sources[source], b.sources[source]
        if getattr(sa, "image_placement", None) != getattr(sb, "image_placement", None):
            expected.setdefault(source, set()).add("image_placement")
        if getattr(sa, "shuffle_turns", None) != getattr(sb, "shuffle_turns", None):
            expected.setdefault(source, set()).add("turn_order")
        if getattr(sa, "box_frame", None) != getattr(sb, "box_frame", None):
            expected.setdefault(source, set()).add("boxes")
    assert {name: set(r["classes"]) for name, r in diffs.items()} == expected
    assert all(r["only_a"] == r["only_b"] == r["unclassified"] == 0 for r in result["sources"].values())
    print(format_text(result))


def test_cli_json_and_exit_codes(base, tmp_path, cmp_root, recipe_file):
    runner = CliRunner()
    variant = _variant(cmp_root, recipe_file, tmp_path, "sources.vqav2.answer_case=as_is")
    res = runner.invoke(app, ["compare", str(base), str(variant), "--format", "json", "--examples", "1"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data["identical"] is False and data["sources"]["vqav2"]["classes"] == {"answer_case": 20}
    assert len(data["sources"]["vqav2"]["examples"]["answer_case"]) == 1
    assert runner.invoke(app, ["compare", str(base), str(tmp_path / "missing.json")]).exit_code == 2
    (tmp_path / "empty").mkdir()
    assert runner.invoke(app, ["compare", str(tmp_path / "empty"), str(base)]).exit_code == 2
    (tmp_path / "bad.json").write_text("[{")
    assert runner.invoke(app, ["compare", str(tmp_path / "bad.json"), str(base)]).exit_code == 2
    assert runner.invoke(app, ["compare", str(base), str(base), "--format", "xml"]).exit_code == 2
    with pytest.raises(CompareError):
        compare(base, tmp_path / "missing.json")


def test_image_key_matches_path_spellings():
    assert image_key("coco/train2017/000000033471.jpg") == image_key(
        "train2014/COCO_train2014_000000033471.jpg"
    )
    assert image_key("coco/train2017/000000033471.jpg") == ("coco", "33471")
    assert image_key("gqa/images/2345678.jpg") != image_key("vg/VG_100K/2345678.jpg")
    assert image_key("00453/004539375.jpg") == image_key("llava_pretrain/images/00453/004539375.jpg")
    assert image_key("ocr_vqa/images/761183272.jpg") == image_key("./ocr_vqa/images/761183272.gif")
    assert [c for c, _ in CLASSES][:2] == ["prompt_text", "question_text"]


def test_stage_two_pairs_by_image_when_the_questions_change(cmp_root, recipe_file, tmp_path):
    """VG with 2 instead of 10 regions per image: no question set is equal, each image has one record
    a side, so they pair by image and differ in the number of turns only."""
    sets = ["sources.vg.choose=all", "sources.vg.min_regions=1"]
    a = _variant(cmp_root, recipe_file, tmp_path / "a", *sets)
    b = _variant(cmp_root, recipe_file, tmp_path / "b", *sets, "sources.vg.pairs=2")
    result = compare(a, b)
    diffs = _only_differences(result)
    assert list(diffs) == ["vg"]
    vg = diffs["vg"]
    assert vg["matched"] == vg["a"] == vg["b"] and vg["only_a"] == vg["only_b"] == 0
    assert vg["classes"] == {"n_turns": vg["differing"]} and vg["differing"] > 0
