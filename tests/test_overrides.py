"""`datamix build --set dotted.path=value`: recipe overrides, validated like the file, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamix.build import build
from datamix.cli import app
from datamix.recipe import RecipeError, apply_overrides, load_recipe, recipe_hash

RECIPE = """
name: ovr
seed: 3
sources:
  vqav2: {choose: all}
  gqa: {proportion: 0.5}
  textcaps: {choose: all}
"""


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "ovr.yaml"
    path.write_text(RECIPE)
    return path


def test_values_are_yaml_and_the_hash_changes(recipe):
    base = load_recipe(recipe)
    r = apply_overrides(
        base,
        [
            "sources.vqav2.choose=5",
            "sources.vqav2.shuffle_turns=false",
            "sources.textcaps.caption=random",
            "seed=9",
        ],
        file=recipe,
    )
    assert r.sources["vqav2"].choose == 5 and r.sources["vqav2"].shuffle_turns is False
    assert r.sources["textcaps"].caption == "random" and r.seed == 9
    assert recipe_hash(r) != recipe_hash(base)
    assert apply_overrides(base, []) is base
    # the same override twice, or spelled as in the file, gives the same hash
    assert recipe_hash(apply_overrides(base, ["sources.vqav2.choose=5"])) == recipe_hash(
        apply_overrides(base, ["sources.vqav2={choose: 5}"])
    )
    # later overrides win
    assert apply_overrides(base, ["seed=1", "seed=2"]).seed == 2


def test_a_selection_rule_replaces_the_other_and_sources_can_be_added(recipe):
    base = load_recipe(recipe)
    r = apply_overrides(
        base, ["sources.gqa.choose=4", "sources.okvqa.choose=all", "sources.refcoco.repeat=2"]
    )
    assert (r.sources["gqa"].choose, r.sources["gqa"].proportion) == (4, None)
    assert r.sources["okvqa"].choose == "all" and r.sources["refcoco"].repeat == 2
    assert list(r.sources) == ["vqav2", "gqa", "okvqa", "textcaps", "refcoco"]  # canonical order
    assert apply_overrides(base, ["sources.vqav2.max_turns=null"]).sources["vqav2"].max_turns is None
    assert apply_overrides(base, ["sources.vg.region_tasks=[reg]", "sources.vg.choose=1"]).sources[
        "vg"
    ].region_tasks == ["reg"]


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ("sources.vqav2.choose=abc", "sources.vqav2.choose", "abc"),
        ("sources.vqav2.choose=0", "sources.vqav2.choose", 0),
        ("sources.vqav2.answer_case=upper", "sources.vqav2.answer_case", "upper"),
        ("sources.vqav2.pairs=10", "sources.vqav2.pairs", 10),  # a VG option on VQAv2
        ("sources.nosuch.choose=1", "sources.nosuch", {"choose": 1}),
        ("shards.max_samples=-1", "shards.max_samples", -1),
        ("sources.gqa.allow_short=yes please", "sources.gqa.allow_short", "yes please"),
        ("seed", "seed", "seed"),
        ("=3", "", "=3"),
        ("sources..choose=1", "sources..choose", "sources..choose=1"),
        ("sources.vqav2.choose.deeper=1", "sources.vqav2.choose", "all"),
        ("seed=[1", "seed", "[1"),
    ],
)
def test_a_wrong_override_names_the_field_and_the_value(recipe, override, field, value):
    with pytest.raises(RecipeError) as err:
        apply_overrides(load_recipe(recipe), [override], file=recipe)
    assert err.value.field == field and err.value.value == value
    assert f"with --set {override}" in str(err.value) and str(recipe) in str(err.value)


def test_override_is_recorded_in_summary(recipe, tiny_root, tmp_path):
    plain = build(recipe, tiny_root, out=tmp_path / "plain")
    over = build(recipe, tiny_root, out=tmp_path / "over", overrides=["sources.vqav2.choose=3"])
    s_plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    s_over = json.loads((tmp_path / "over" / "summary.json").read_text())
    assert s_plain["overrides"] == [] and s_over["overrides"] == ["sources.vqav2.choose=3"]
    assert s_over["recipe_resolved"]["sources"]["vqav2"]["choose"] == 3
    assert s_over["recipe_hash"] != s_plain["recipe_hash"]
    assert s_over["sources"]["vqav2"]["actual"] == 3 < s_plain["sources"]["vqav2"]["actual"]
    assert over["samples"] == plain["samples"] - s_plain["sources"]["vqav2"]["actual"] + 3
    dry = build(recipe, tiny_root, dry_run=True, overrides=["sources.vqav2.choose=3"])
    assert dry["overrides"] == ["sources.vqav2.choose=3"] and dry["recipe_hash"] == s_over["recipe_hash"]


def test_cli_set_option(recipe, tiny_root, tmp_path):
    runner = CliRunner()

    def dry_run(*sets: str):
        args = ["build", "--recipe", str(recipe), "--root", str(tiny_root), "--dry-run"]
        return runner.invoke(app, args + [a for s in sets for a in ("--set", s)])

    res = dry_run("sources.vqav2.choose=2", "sources.gqa.choose=1")
    assert res.exit_code == 0, res.output
    assert "overrides: sources.vqav2.choose=2 sources.gqa.choose=1" in res.output
    bad = dry_run("sources.vqav2.choose=lots")
    assert bad.exit_code == 2  # a bad recipe value: the command cannot run (datamix.errors)
    assert "sources.vqav2.choose" in bad.output and "'lots'" in bad.output
