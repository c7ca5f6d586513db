"""The LLaVA-1.5 ablation ladder (paper Table 2): seven data recipes and their train configs.

Each data recipe validates, is one rung of a nested ladder whose last rung is `llava15_665k`, expects
the official per-source counts at full scale, and builds on tiny synth data with `allow_short`
(through `datamix build --set`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamix.cli import app
from datamix.formats import MCQ_SUFFIX, SHORT_ANSWER_SUFFIX
from datamix.llava_json import export_llava_json, read_llava_json
from datamix.recipe import load_recipe, recipe_dir

REPO = Path(__file__).resolve().parent.parent
LADDER = [
    "llava15_ablation_1_llava",
    "llava15_ablation_2_vqav2_no_prompt",
    "llava15_ablation_3_format_prompt",
    "llava15_ablation_4_okvqa_ocr",
    "llava15_ablation_5_region",
    "llava15_ablation_6_gqa",
    "llava15_ablation_7_sharegpt",
]
# the sources each Table 2 data row adds (paper section 3.3; docs/ablations.md)
ADDS = [
    {"llava_instruct"},
    {"vqav2"},
    set(),
    {"okvqa", "aokvqa", "ocrvqa", "textcaps"},
    {"vg", "refcoco"},
    {"gqa"},
    {"sharegpt"},
]
OFFICIAL = json.loads((REPO / "manifests" / "llava15_665k.json").read_text())["counts"]


def test_the_ladder_is_shipped_and_nothing_else():
    assert sorted(p.stem for p in recipe_dir().glob("llava15_ablation_*.yaml")) == sorted(LADDER)


@pytest.mark.parametrize("step", range(len(LADDER)))
def test_each_rung_adds_its_row_and_follows_llava15_665k(step):
    recipe = load_recipe(LADDER[step])
    full = load_recipe("llava15_665k")
    assert recipe.name == LADDER[step] and recipe.stage == 2 and recipe.template == "vicuna_v1"
    assert set(recipe.sources) == set().union(*ADDS[: step + 1])
    if step:
        assert set(load_recipe(LADDER[step - 1]).sources) <= set(recipe.sources)
    # same seed and options as the full mix (so the rungs draw nested subsets), except step 2's prompt
    assert recipe.seed == full.seed
    for name, spec in recipe.sources.items():
        if (step, name) == (1, "vqav2"):
            assert spec.format_prompt is False
            assert spec.model_copy(update={"format_prompt": True}) == full.sources[name]
        else:
            assert spec == full.sources[name], name
    # full-scale counts: the official per-source counts (LLaVA issue #702)
    expected = recipe.expected()
    assert expected == {
        **{s: OFFICIAL[s] for s in recipe.sources},
        "total": sum(OFFICIAL[s] for s in recipe.sources),
    }


def test_last_rung_is_the_full_mix():
    last, full = load_recipe(LADDER[-1]), load_recipe("llava15_665k")
    assert last.sources == full.sources and last.expected() == full.expected()
    assert last.expected()["total"] == 665_298


@pytest.mark.parametrize("step", range(len(LADDER)))
def test_each_rung_builds_on_synth_data(step, tiny_root, tmp_path):
    name = LADDER[step]
    recipe = load_recipe(name)
    sets = [f"--set=sources.{s}.allow_short=true" for s in recipe.sources]
    if "vg" in recipe.sources:
        sets.append("--set=sources.vg.min_regions=1")  # synth images carry fewer than 10 regions
    out = tmp_path / name
    runner = CliRunner()
    dry = runner.invoke(app, ["build", "--recipe", name, "--root", str(tiny_root), "--dry-run", *sets])
    assert dry.exit_code == 0, dry.output
    res = runner.invoke(app, ["build", "--recipe", name, "--root", str(tiny_root), "--out", str(out), *sets])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == name and summary["overrides"] == [s.removeprefix("--set=") for s in sets]
    assert set(summary["sources"]) == set(recipe.sources)
    assert all(c["actual"] > 0 for c in summary["sources"].values())
    export_llava_json(out, tmp_path / "mix.json")
    records = list(read_llava_json(tmp_path / "mix.json"))
    assert len(records) == summary["total"]["actual"]
    firsts = [r["conversations"][0]["value"] for r in records if r.get("image", "").startswith("coco/")]
    has_short = any(SHORT_ANSWER_SUFFIX in v for v in firsts)
    assert has_short == (step >= 2)  # the format prompt row: no suffix before it, suffix from it on
    assert any(MCQ_SUFFIX in v for v in firsts) == (step >= 3)


TRAIN = REPO / "recipes" / "train"
TRAIN_ROWS = {  # Table 2 row -> (projector, image size, LLM, data recipe)
    0: ("linear", 224, "lmsys/vicuna-7b-v1.5", LADDER[0]),
    1: ("linear", 224, "lmsys/vicuna-7b-v1.5", LADDER[1]),
    2: ("linear", 224, "lmsys/vicuna-7b-v1.5", LADDER[2]),
    3: ("mlp2x_gelu", 224, "lmsys/vicuna-7b-v1.5", LADDER[2]),
    4: ("mlp2x_gelu", 224, "lmsys/vicuna-7b-v1.5", LADDER[3]),
    5: ("mlp2x_gelu", 224, "lmsys/vicuna-7b-v1.5", LADDER[4]),
    6: ("mlp2x_gelu", 336, "lmsys/vicuna-7b-v1.5", LADDER[4]),
    7: ("mlp2x_gelu", 336, "lmsys/vicuna-7b-v1.5", LADDER[5]),
    8: ("mlp2x_gelu", 336, "lmsys/vicuna-7b-v1.5", LADDER[6]),
    9: ("mlp2x_gelu", 336, "lmsys/vicuna-13b-v1.5", LADDER[6]),
}


def _row_file(row: int) -> Path:
    (path,) = TRAIN.glob(f"llava15_ablation_row{row}_*.yaml")
    return path


def test_train_configs_cover_every_table2_row():
    rows = sorted(TRAIN.glob("llava15_ablation_row*.yaml"))
    assert len(rows) == len(TRAIN_ROWS)
    assert sorted(p.stem for p in TRAIN.glob("llava15_ablation_stage1_*.yaml")) == [
        "llava15_ablation_stage1_linear_224",
        "llava15_ablation_stage1_mlp_224",
    ]


@pytest.mark.parametrize("row", sorted(TRAIN_ROWS))
def test_train_config_of_each_row(row):
    from trainer.config import load_config

    projector, size, llm, mix = TRAIN_ROWS[row]
    path = _row_file(row)
    cfg = load_config(path)
    assert cfg.name == path.stem and cfg.stage == 2
    assert (cfg.model.projector, cfg.model.image_size, cfg.model.llm) == (projector, size, llm)
    assert cfg.model.vision_tower == (
        "openai/clip-vit-large-patch14-336" if size == 336 else "openai/clip-vit-large-patch14"
    )
    assert cfg.image_seq_length == (size // 14) ** 2
    assert cfg.data.mix == Path("data/mixes") / mix
    official = load_config(TRAIN / ("llava15_13b_stage2.yaml" if "13b" in llm else "llava15_7b_stage2.yaml"))
    same = ("global_batch_size", "learning_rate", "epochs", "max_length", "zero_stage", "warmup_ratio")
    assert {k: getattr(cfg, k) for k in same} == {k: getattr(official, k) for k in same}


@pytest.mark.parametrize("name", ["llava15_ablation_stage1_linear_224", "llava15_ablation_stage1_mlp_224"])
def test_stage1_configs(name):
    from trainer.config import load_config

    cfg = load_config(TRAIN / f"{name}.yaml")
    assert cfg.stage == 1 and cfg.model.image_size == 224 and cfg.image_seq_length == 256
