"""Recipes: the shipped ones load and agree with manifests/; every user error names file, field, value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamix.recipe import (
    SOURCE_NAMES,
    SPEC_TYPES,
    RecipeError,
    available_recipes,
    canonical_json,
    load_recipe,
    parse_recipe,
    recipe_dir,
    recipe_hash,
)

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
name: t
seed: 1
sources:
  vqav2:
    choose: all
"""


def error_of(tmp_path: Path, text: str) -> RecipeError:
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(path) in str(info.value)
    return info.value


# ------------------------------------------------------------------------------------------------
# shipped recipes


def test_shipped_recipes_load():
    assert recipe_dir() == REPO / "recipes"
    assert {"llava15_665k", "llava15_pretrain_558k", "demo"} <= set(available_recipes())
    for name in ("llava15_665k", "llava15_pretrain_558k", "demo"):
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe == load_recipe(REPO / "recipes" / f"{name}.yaml")


@pytest.mark.parametrize("name", ["llava15_665k", "llava15_pretrain_558k"])
def test_expect_matches_committed_manifest(name):
    manifest = json.loads((REPO / "manifests" / f"{name}.json").read_text())
    recipe = load_recipe(name)
    expected = recipe.expected()
    assert expected == {**manifest["counts"], "total": manifest["total"]}
    assert sum(manifest["counts"].values()) == manifest["total"]
    assert "issues/702" in " ".join(manifest["provenance"])


def test_llava15_665k_defaults():
    recipe = load_recipe("llava15_665k")
    assert list(recipe.sources) == [n for n in SOURCE_NAMES if n != "llava_pretrain"]
    assert recipe.expected()["total"] == 665298
    s = recipe.sources
    assert s["sharegpt"].choose == 40688 and s["sharegpt"].max_tokens == 2048
    assert s["ocrvqa"].choose == 80000 and s["vg"].choose == 86417 and s["refcoco"].choose == 48447
    assert s["vqav2"].answer == "consensus" and s["okvqa"].answer == "most_common"
    assert s["vqav2"].answer_case == "capitalize_first" and s["gqa"].shuffle_turns is True
    assert s["aokvqa"].augment == "rotate_choices"
    assert s["textcaps"].caption == "first" and s["textcaps"].ocr_tokens is True
    assert s["vg"].pairs == 10 and s["refcoco"].max_pairs == 9
    assert s["vg"].region_tasks == ["reg", "rec"]
    # the release's conventions (tests/test_release_conventions.py tests each on a real record)
    assert s["vg"].box_frame == "padded_square" and s["refcoco"].box_frame == "original"
    assert s["llava_instruct"].image_placement == "raw"
    assert s["ocrvqa"].shuffle_turns is False and s["textcaps"].final_period is True
    assert all(s[n].format_prompt is True for n in ("vqav2", "gqa", "okvqa", "aokvqa", "ocrvqa"))
    pre = load_recipe("llava15_pretrain_558k")
    assert pre.stage == 1 and pre.sources["llava_pretrain"].image_placement == "raw"
    demo = load_recipe("demo")
    assert set(demo.sources) == {"vqav2", "gqa"}  # the shape-colour task's sources
    every = load_recipe(Path(__file__).parent / "fixtures" / "recipes" / "every_source.yaml")
    assert set(every.sources) == set(SOURCE_NAMES) - {"llava_pretrain"}
    assert demo.eval_split == {"gqa": 0.1, "vqav2": 0.1}


def test_llava15_665k_fixed_differs_only_by_the_corrections():
    release, fixed = load_recipe("llava15_665k"), load_recipe("llava15_665k_fixed")
    assert (
        fixed.name == "llava15_665k_fixed" and fixed.seed == release.seed and fixed.expect == release.expect
    )
    a = json.loads(canonical_json(release))
    b = json.loads(canonical_json(fixed))
    diffs = {
        (name, key): (spec[key], b["sources"][name][key])
        for name, spec in a["sources"].items()
        for key in spec
        if spec[key] != b["sources"][name][key]
    }
    assert diffs == {
        ("llava_instruct", "image_placement"): ("raw", "front"),
        ("ocrvqa", "shuffle_turns"): (False, True),
        ("refcoco", "box_frame"): ("original", "padded_square"),
    }
    assert {k: v for k, v in a.items() if k not in ("sources", "name", "description")} == {
        k: v for k, v in b.items() if k not in ("sources", "name", "description")
    }


def test_format_prompt_option_on_vqa_and_mcq_only(tmp_path):
    recipe = parse_recipe(
        {
            "name": "t",
            "seed": 1,
            "sources": {
                "vqav2": {"choose": 1, "format_prompt": False},
                "aokvqa": {"choose": 1, "format_prompt": False},
            },
        }
    )
    assert recipe.sources["vqav2"].format_prompt is False and recipe.sources["aokvqa"].format_prompt is False
    assert load_recipe("demo").sources["vqav2"].format_prompt is True  # default: the release's prompts
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  textcaps: {choose: all, format_prompt: false}\n")
    assert err.field == "sources.textcaps.format_prompt"
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {choose: all, format_prompt: 'no'}\n")
    assert err.field == "sources.vqav2.format_prompt"


# ------------------------------------------------------------------------------------------------
# errors


def test_unknown_option_names_file_field_value(tmp_path):
    err = error_of(tmp_path, BASE + "    pairs: 3\n")
    assert err.field == "sources.vqav2.pairs" and err.value == 3
    assert "sources.vqav2.pairs" in str(err) and "unknown option" in str(err) and "(got 3)" in str(err)
    assert "answer_case" in str(err)  # lists what vqav2 accepts


def test_two_selection_rules(tmp_path):
    err = error_of(tmp_path, BASE + "    proportion: 0.5\n")
    assert err.field == "sources.vqav2"
    assert "exactly one of choose, proportion, repeat" in str(err) and "choose, proportion" in str(err)
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {allow_short: true}\n")
    assert "(got none)" in err.message


def test_wrong_enum_value(tmp_path):
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vg: {choose: 5, box_frame: padded}\n")
    assert err.field == "sources.vg.box_frame" and err.value == "padded"
    assert "'padded_square' or 'original'" in str(err) and "(got 'padded')" in str(err)
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vg: {choose: 5, region_tasks: [reg, ref]}\n")
    assert err.field == "sources.vg.region_tasks.1" and err.value == "ref"


def test_unknown_source(tmp_path):
    err = error_of(tmp_path, BASE + "  coco:\n    choose: all\n")
    assert err.field == "sources.coco" and "unknown source 'coco'" in str(err)


def test_option_on_wrong_source(tmp_path):
    # okvqa has no consensus answer
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  okvqa: {choose: all, answer: consensus}\n")
    assert err.field == "sources.okvqa.answer" and err.value == "consensus"
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  textcaps: {choose: all, box_frame: original}\n")
    assert err.field == "sources.textcaps.box_frame"


def test_strict_types(tmp_path):
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {choose: '10'}\n")
    assert err.field == "sources.vqav2.choose" and err.value == "10"
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {choose: 0}\n")
    assert err.field == "sources.vqav2.choose"
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {choose: all, shuffle_turns: 'yes'}\n")
    assert err.field == "sources.vqav2.shuffle_turns"
    err = error_of(tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {proportion: 1.5}\n")
    assert err.field == "sources.vqav2.proportion" and err.value == 1.5


def test_top_level_errors(tmp_path):
    err = error_of(tmp_path, BASE + "colour: blue\n")
    assert err.field == "colour" and err.value == "blue"
    err = error_of(tmp_path, "name: t\nsources:\n  vqav2: {choose: all}\n")
    assert err.field == "seed" and "Field required" in str(err)
    err = error_of(tmp_path, BASE.replace("name: t", "name: my.mix"))
    assert err.field == "name" and err.value == "my.mix"
    err = error_of(tmp_path, BASE + "expect:\n  gqa: 5\n")
    assert err.field == "expect.gqa" and "not a source of this recipe" in str(err)
    err = error_of(tmp_path, BASE + "expect:\n  vqav2: 5\n  total: 6\n")
    assert err.field == "expect.total" and err.value == 6
    err = error_of(tmp_path, BASE + "eval_split:\n  vqav2: 1.0\n")
    assert err.field == "eval_split.vqav2"
    err = error_of(tmp_path, BASE + "shards: {max_samples: null}\n")
    assert err.field == "shards"
    err = error_of(tmp_path, "name: t\nseed: 1\nsources: {}\n")
    assert err.field == "sources"


def test_duplicate_source_and_bad_yaml(tmp_path):
    err = error_of(tmp_path, BASE + "  vqav2:\n    choose: 5\n")
    assert "duplicate key 'vqav2'" in str(err)
    err = error_of(tmp_path, "name: [unclosed\n")
    assert "not valid YAML" in str(err)
    err = error_of(tmp_path, "- a\n- b\n")
    assert "mapping" in str(err)


def test_several_problems_reported_together(tmp_path):
    err = error_of(
        tmp_path, "name: t\nseed: 1\nsources:\n  vqav2: {choose: all, pairz: 1}\n  vg: {choose: x}\n"
    )
    fields = [p[0] for p in err.problems]
    assert fields == ["sources.vqav2.pairz", "sources.vg.choose"]
    assert len(str(err).splitlines()) == 2


def test_missing_recipe():
    with pytest.raises(RecipeError, match="no recipe named 'nope'"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("does/not/exist.yaml")


# ------------------------------------------------------------------------------------------------
# hashing and defaults


def test_hash_is_canonical(tmp_path):
    a = load_recipe(write(tmp_path, BASE, "a.yaml"))
    b = load_recipe(
        write(
            tmp_path,
            "sources:\n  vqav2: {answer_case: capitalize_first, choose: all, shuffle_turns: true}\nseed: 1\nname: t\n",
            "b.yaml",
        )
    )
    assert recipe_hash(a) == recipe_hash(b)
    c = load_recipe(write(tmp_path, BASE + "    shuffle_turns: false\n", "c.yaml"))
    assert recipe_hash(c) != recipe_hash(a)
    d = load_recipe(write(tmp_path, BASE.replace("seed: 1", "seed: 2"), "d.yaml"))
    assert recipe_hash(d) != recipe_hash(a)
    assert len(recipe_hash(a)) == 64


def test_sources_in_canonical_order_and_shard_sizes():
    recipe = parse_recipe(
        {
            "name": "x",
            "seed": 0,
            "sources": {"vg": {"choose": 3}, "sharegpt": {"repeat": 2}},
            "shards": {"max_bytes": "1GiB", "max_samples": None},
        }
    )
    assert list(recipe.sources) == ["sharegpt", "vg"]
    assert type(recipe.sources["vg"]) is SPEC_TYPES["vg"]
    assert recipe.shards.max_bytes == 1 << 30 and recipe.shards.max_samples is None
    assert (
        parse_recipe(
            {"name": "x", "seed": 0, "sources": {"vg": {"choose": 3}}, "shards": {"max_bytes": "512MB"}}
        ).shards.max_bytes
        == 512_000_000
    )


def test_every_source_has_a_spec():
    assert set(SPEC_TYPES) == set(SOURCE_NAMES)
    for name, spec_type in SPEC_TYPES.items():
        spec = spec_type(choose="all")
        assert spec.choose == "all", name
