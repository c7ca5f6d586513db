"""The published base models as users download them (issue 15): tiny random Vicuna v1.5 / CLIP
ViT-L/14-336 folders in the hub's exact file layout (tests/published_models.py) load as they are,
.bin shards and safetensors alike, and run the user's command end to end on CPU through DeepSpeed:
`make stage1 stage2 MODEL=7b ARGS="--set model.llm=... --set model.vision_tower=..."` (the 7B
recipes: ZeRO-2, then ZeRO-3 built partitioned), the export reloaded with plain transformers gives
the final training model's logits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from published_models import CLIP_FILES_BIN, VICUNA_FILES_BIN  # noqa: E402

from trainer.config import ModelConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _model_config(published: dict, suffix: str = "") -> ModelConfig:
    return ModelConfig(
        llm=str(published["llm" + suffix]),
        vision_tower=str(published["vision_tower" + suffix]),
        image_size=56,
    )


def test_folders_have_the_published_layout(published_models):
    assert sorted(p.name for p in published_models["llm"].iterdir()) == sorted(VICUNA_FILES_BIN)
    assert sorted(p.name for p in published_models["vision_tower"].iterdir()) == sorted(CLIP_FILES_BIN)
    assert sorted(p.name for p in published_models["llm_st"].iterdir()) == sorted(
        f.replace("pytorch_model", "model").replace(".bin", ".safetensors") for f in VICUNA_FILES_BIN
    )
    assert "model.safetensors" in {p.name for p in published_models["vision_tower_st"].iterdir()}
    llm = published_models["llm"]
    config = json.loads((llm / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["torch_dtype"] == "float16"
    assert config["pad_token_id"] == 0 and config["vocab_size"] == 32000
    index = json.loads((llm / "pytorch_model.bin.index.json").read_text())
    assert set(index["weight_map"].values()) == {
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    }
    assert any(k.endswith("rotary_emb.inv_freq") for k in index["weight_map"])  # old buffers, to be skipped
    tok = json.loads((llm / "tokenizer_config.json").read_text())
    assert (
        tok["tokenizer_class"] == "LlamaTokenizer"
        and "legacy" in tok
        and not (llm / "tokenizer.json").exists()
    )
    clip = published_models["vision_tower"]
    assert json.loads((clip / "config.json").read_text())["architectures"] == ["CLIPModel"]
    state = torch.load(clip / "pytorch_model.bin", weights_only=True)
    assert any(k.startswith("text_model.") for k in state) and "logit_scale" in state
    assert (
        json.loads((clip / "preprocessor_config.json").read_text())["feature_extractor_type"]
        == "CLIPFeatureExtractor"
    )


@pytest.mark.parametrize("suffix", ["", "_st"], ids=["bin", "safetensors"])
def test_build_model_loads_the_published_folders(published_models, suffix):
    from transformers import CLIPModel, LlamaForCausalLM

    from trainer.model import build_model

    mcfg = _model_config(published_models, suffix)
    model, tokenizer = build_model(mcfg)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # not the checkpoint's float16
    assert not [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert len(tokenizer) == 32002 and tokenizer.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]

    llm = LlamaForCausalLM.from_pretrained(mcfg.llm, dtype=torch.float32)
    for name, p in llm.model.named_parameters():
        if name != "embed_tokens.weight":
            assert torch.equal(p, model.model.language_model.get_parameter(name)), name
    for mine, theirs in (
        (model.get_input_embeddings().weight, llm.model.embed_tokens.weight),
        (model.lm_head.weight, llm.lm_head.weight),
    ):
        assert mine.shape == (32064, 64)
        assert torch.equal(mine[:32000], theirs)
        assert torch.allclose(mine[32000:], theirs.mean(0).expand(64, -1), atol=1e-6)  # new rows: the mean
    clip = CLIPModel.from_pretrained(mcfg.vision_tower, dtype=torch.float32)
    for name, p in clip.vision_model.named_parameters():
        assert torch.equal(p, model.model.vision_tower.get_parameter(name)), name
    assert model.config.vision_config.image_size == 56 and model.config.text_config.vocab_size == 32064


def _logits(model, ids: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids)).logits


def test_make_stage1_stage2_export_on_the_published_folders(published_models, every_source_mix, tmp_path):
    """The user's command on CPU: stage 1 (ZeRO-2) -> stage 2 (ZeRO-3, partitioned) -> export; the
    export reloaded with `LlavaForConditionalGeneration.from_pretrained` equals the final training
    model (stage 2's DeepSpeed checkpoint, consolidated) logit for logit."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import LlavaForConditionalGeneration

    from trainer.config import TrainConfig
    from trainer.model import build_model

    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on PATH")
    venv = Path(sys.executable).parent.parent
    out = tmp_path / "run"
    args = " ".join(
        f"--set {kv}"
        for kv in (
            f"model.llm={published_models['llm']}",
            f"model.vision_tower={published_models['vision_tower']}",
            "model.image_size=56",
            "global_batch_size=2",
            "per_device_batch_size=2",
            "max_steps=3",
            "data.num_workers=0",
            "data.shuffle_buffer=16",
        )
    )
    cmd = [
        make,
        "-C",
        str(REPO),
        "-o",
        f"{venv}/.installed",
        "stage1",
        "stage2",
        "MODEL=7b",
        f"VENV={venv}",
        f"MIX1={every_source_mix}",
        f"MIX={every_source_mix}",
        f"OUT={out}",
        f"ARGS={args}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"

    stage1, stage2 = out / "stage1", out / "stage2"
    assert json.loads((stage1 / "deepspeed_config.json").read_text())["zero_optimization"]["stage"] == 2
    assert json.loads((stage2 / "deepspeed_config.json").read_text())["zero_optimization"]["stage"] == 3
    for stage in (stage1, stage2):
        rows = [json.loads(line) for line in (stage / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2, 3] and all(10.0 < r["loss"] < 11.5 for r in rows), rows
    from safetensors import safe_open

    with safe_open(
        str(stage1 / "stage1.safetensors"), framework="pt"
    ) as f:  # stage 1 trains the projector only
        assert sorted(f.keys()) == [
            f"model.multi_modal_projector.linear_{i}.{w}" for i in (1, 2) for w in ("bias", "weight")
        ]
    partition = json.loads((stage2 / "partition.json").read_text())
    assert partition["zero_stage"] == 3 and partition["world_size"] == 1

    cfg = TrainConfig.model_validate_json((stage2 / "train_config.json").read_text())
    trained, _ = build_model(cfg.model)
    state = get_fp32_state_dict_from_zero_checkpoint(str(stage2 / "checkpoints"))
    trained.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    exported = LlavaForConditionalGeneration.from_pretrained(out / "export", dtype=torch.float32)

    gen = torch.Generator().manual_seed(0)
    ids = torch.tensor([[1, *[32000] * 16, *torch.randint(3, 32000, (12,), generator=gen).tolist()]])
    pixels = torch.randn(1, 3, 56, 56, generator=gen)
    want, got = _logits(trained, ids, pixels), _logits(exported, ids, pixels)
    assert got.shape == (1, 29, 32064)
    assert (got - want).abs().max().item() <= 1e-5
    # the run moved the LLM away from the published weights (stage 2 trains it)
    published = build_model(_model_config(published_models))[0]
    assert (_logits(published, ids, pixels) - want).abs().max().item() > 1e-4


def test_make_hostfile_launches_through_deepspeed(tmp_path):
    """`make stage1 stage2 HOSTFILE=F NGPUS=8` (multi-node): both stages go through `deepspeed --hostfile F`."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on PATH")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=8\nnode2 slots=8\n")

    def dry(*extra: str) -> list[str]:
        proc = subprocess.run(
            [make, "-n", "-C", str(REPO), "-o", ".venv/.installed", "stage1", "stage2", "MODEL=7b", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if " train --config " in line or " export " in line]

    lines = dry(f"HOSTFILE={hostfile}", "NGPUS=8")
    assert len(lines) == 3
    for line in lines[:2]:
        assert (
            f"bin/deepspeed --hostfile {hostfile} --num_gpus 8 " in line and "--module trainer train" in line
        )
    assert "-m trainer export" in lines[2]
    no_ssh = dry(
        f"HOSTFILE={hostfile}",
        "NGPUS=8",
        "LAUNCHER_ARGS=--no_ssh --node_rank 1 --master_addr node1",
        "EXPORT=0",
    )
    assert len(no_ssh) == 2 and all(
        "--no_ssh --node_rank 1 --master_addr node1 --module trainer" in x for x in no_ssh
    )
    assert "-m trainer train" in dry()[0]  # one GPU, no hostfile: a plain process
