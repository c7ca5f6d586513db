"""TrainConfig validation, the official recipes, and the generated DeepSpeed JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import TrainConfig, deepspeed_config, gradient_accumulation, load_config

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "train"
NAMES = [
    "llava15_7b_stage1",
    "llava15_7b_stage2",
    "llava15_13b_stage1",
    "llava15_13b_stage2",
    "tiny_stage1",
    "tiny_stage2",
]


def test_every_recipe_validates():
    # the ablation configs (llava15_ablation_*) are checked in tests/test_ablation_recipes.py
    assert sorted(
        p.stem for p in RECIPES.glob("*.yaml") if not p.stem.startswith("llava15_ablation_")
    ) == sorted(NAMES)
    for name in NAMES:
        cfg = load_config(RECIPES / f"{name}.yaml")
        assert cfg.name == name


@pytest.mark.parametrize("size,llm", [("7b", "lmsys/vicuna-7b-v1.5"), ("13b", "lmsys/vicuna-13b-v1.5")])
def test_official_hyperparameters(size, llm):
    s1 = load_config(RECIPES / f"llava15_{size}_stage1.yaml")
    s2 = load_config(RECIPES / f"llava15_{size}_stage2.yaml")
    for cfg in (s1, s2):
        assert cfg.model.vision_tower == "openai/clip-vit-large-patch14-336" and cfg.model.llm == llm
        assert cfg.model.image_seq_length == 576 and cfg.model.vision_feature_layer == -2
        assert (cfg.warmup_ratio, cfg.weight_decay, cfg.epochs, cfg.max_length) == (0.03, 0.0, 1, 2048)
        assert cfg.lr_scheduler == "cosine" and cfg.gradient_checkpointing and not cfg.train_vision_tower
        assert cfg.resolved_precision(on_gpu=True) == "bf16" and cfg.tf32
    assert (s1.stage, s1.template, s1.global_batch_size, s1.learning_rate, s1.zero_stage) == (
        1,
        "plain",
        256,
        1e-3,
        2,
    )
    assert (s2.stage, s2.template, s2.global_batch_size, s2.learning_rate, s2.zero_stage) == (
        2,
        "vicuna_v1",
        128,
        2e-5,
        3,
    )
    assert s2.data.group_by_modality_length and s2.pretrained_projector is not None
    assert not s1.train_llm and s2.train_llm
    assert s1.gradient_accumulation_steps(8) == 1 and s2.gradient_accumulation_steps(8) == 1
    assert s1.gradient_accumulation_steps(4) == 2


def test_tiny_recipes():
    for name in ("tiny_stage1", "tiny_stage2"):
        cfg = load_config(RECIPES / f"{name}.yaml")
        assert cfg.model.preset == "tiny" and cfg.model.image_size == 112 and cfg.image_seq_length == 64
        assert cfg.model.tiny.vision_layers == 3 and cfg.model.tiny.vision_hidden_size == 96
        assert cfg.model.tiny.llm_layers == 3 and cfg.model.tiny.llm_hidden_size == 96
        # a random LLM learns in stage 1 too; the tower (CLIP-pretrained by `make demo`) stays frozen
        assert not cfg.train_vision_tower and cfg.train_llm
        # one process: no accumulation (stage 1 batches of 16, stage 2 of 12)
        assert (
            cfg.per_device_batch_size == cfg.global_batch_size == {"tiny_stage1": 16, "tiny_stage2": 12}[name]
        )
        assert cfg.resolved_precision(on_gpu=False) == "fp32"


def test_extra_keys_and_bad_values_are_refused(tmp_path):
    good = (RECIPES / "tiny_stage1.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(good + "\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        load_config(bad)
    with pytest.raises(ValueError, match="not a multiple of per_device_batch_size"):
        load_config(RECIPES / "tiny_stage1.yaml", ["per_device_batch_size=5"])
    with pytest.raises(ValueError, match="preset"):
        load_config(RECIPES / "tiny_stage1.yaml", ["model.llm=x"])
    with pytest.raises(ValueError, match="pretrained_projector is for stage 2"):
        load_config(RECIPES / "tiny_stage1.yaml", ["pretrained_projector=somewhere"])
    assert not load_config(RECIPES / "tiny_stage1.yaml", ["train_llm=false"]).train_llm
    assert not load_config(RECIPES / "tiny_stage2.yaml", ["train_llm=false"]).train_llm
    cfg = load_config(RECIPES / "tiny_stage2.yaml", ["max_steps=7", "model.tiny.llm_layers=1"])
    assert cfg.max_steps == 7 and cfg.model.tiny.llm_layers == 1


def test_gradient_accumulation():
    assert gradient_accumulation(128, 16, 8) == 1
    assert gradient_accumulation(128, 4, 8) == 4
    assert gradient_accumulation(256, 16, 2) == 8
    with pytest.raises(ValueError, match="not divisible by per_device_batch_size 16 x world_size 3"):
        gradient_accumulation(128, 16, 3)
    with pytest.raises(ValueError, match="world_size must be positive"):
        gradient_accumulation(128, 16, 0)


def test_deepspeed_config_stage1_gpu():
    cfg = load_config(RECIPES / "llava15_7b_stage1.yaml")
    ds = deepspeed_config(cfg, 4, on_gpu=True, total_steps=2180, hidden_size=4096)
    assert ds["train_batch_size"] == 256 and ds["train_micro_batch_size_per_gpu"] == 32
    assert ds["gradient_accumulation_steps"] == 2
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert (
        ds["zero_optimization"]["stage"] == 2 and ds["zero_optimization"]["reduce_bucket_size"] == 4096 * 4096
    )
    opt = ds["optimizer"]
    assert opt["type"] == "AdamW" and opt["params"]["lr"] == 1e-3 and opt["params"]["weight_decay"] == 0.0
    sched = ds["scheduler"]["params"]
    assert sched["total_num_steps"] == 2180 and sched["warmup_num_steps"] == 65  # round(0.03 * 2180)


def test_deepspeed_config_stage2_cpu():
    cfg = load_config(RECIPES / "llava15_7b_stage2.yaml")
    ds = deepspeed_config(cfg, 8, on_gpu=False)
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["bf16"] == {"enabled": False}  # fp32 on CPU
    assert "scheduler" not in ds
    with pytest.raises(ValueError, match="not divisible"):
        deepspeed_config(cfg, 3)
    bf16 = TrainConfig.model_validate({**cfg.model_dump(), "precision": "bf16"})
    with pytest.raises(ValueError, match="CPU"):
        deepspeed_config(bf16, 8, on_gpu=False)


def test_deepspeed_buckets_never_below_the_7b_size():
    # hidden^2 of a tiny model would be a 9K-element bucket: ~1000 collective calls per step
    cfg = load_config(RECIPES / "tiny_stage2.yaml")
    assert (
        deepspeed_config(cfg, 1, on_gpu=False, hidden_size=96)["zero_optimization"]["reduce_bucket_size"]
        == 4096**2
    )
    cfg13 = load_config(RECIPES / "llava15_13b_stage2.yaml")
    zero = deepspeed_config(cfg13, 8, on_gpu=True, hidden_size=5120)["zero_optimization"]
    assert zero["reduce_bucket_size"] == 5120**2 and zero["stage3_prefetch_bucket_size"] == int(0.9 * 5120**2)
    assert zero["stage3_param_persistence_threshold"] == 51200


def test_a_mix_presized_to_another_size_is_refused(tmp_path):
    from trainer.loop import check_presize

    (tmp_path / "summary.json").write_text('{"presize": {"size": 336, "quality": 95}}')
    check_presize(tmp_path, 336)
    with pytest.raises(ValueError, match="presized to 336 px at build time but model.image_size is 112"):
        check_presize(tmp_path, 112)
    (tmp_path / "summary.json").write_text('{"presize": null}')
    check_presize(tmp_path, 112)
    check_presize(tmp_path / "nowhere", 112)
