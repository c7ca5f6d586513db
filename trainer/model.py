"""Model assembly: a transformers `LlavaForConditionalGeneration` from a CLIP vision tower + a Llama LLM.

Responsible for: building the LLaVA-1.5 model (training.md "Model", "Hugging Face export") from local
folders / hub ids or the random `tiny` preset; adding `<image>` (32000) and `<pad>` (32001) and
resizing the embeddings to a multiple of 64 (32064); the `mlp2x_gelu` projector
(transformers' `LlavaMultiModalProjector`: Linear -> GELU -> Linear, freshly initialised);
feature layer -2 with the CLS token dropped; freezing per stage; carrying stage 1's projector (and,
for the tiny preset, its trained vision tower) into stage 2; and the labelled-positions-only loss.

Upstream references: LLaVA `llava/model/multimodal_projector/builder.py` (mlp2x_gelu),
`llava/model/multimodal_encoder/clip_encoder.py` (layer -2, CLS dropped), `llava/train/train.py`
(stage 1 trains `mm_projector` only; stage 2 projector + LLM, tower frozen), and transformers'
`convert_llava_weights_to_hf.py` (tokens 32000/32001, pad to 64).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainer.config import ModelConfig, TrainConfig
from trainer.templates import (
    IGNORE_INDEX,
    IMAGE_TOKEN_ID,
    PAD_TOKEN_ID,
    add_llava_special_tokens,
    load_tokenizer,
)

log = logging.getLogger(__name__)

PAD_TO_MULTIPLE = 64
PROJECTOR_PREFIX = "model.multi_modal_projector."
VISION_PREFIX = "model.vision_tower."
LLM_PREFIXES = ("model.language_model.", "lm_head.")
STAGE1_FILE = "stage1.safetensors"  # what a stage-1 run leaves for stage 2 (see save_stage1_parts)


def _llava_config(vision_config: Any, text_config: Any, mcfg: ModelConfig) -> Any:
    from transformers import LlavaConfig

    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=IMAGE_TOKEN_ID,
        projector_hidden_act="gelu",
        vision_feature_layer=mcfg.vision_feature_layer,
        vision_feature_select_strategy=mcfg.vision_feature_select_strategy,
        image_seq_length=mcfg.image_seq_length,
        multimodal_projector_bias=True,
        pad_token_id=PAD_TOKEN_ID,
        tie_word_embeddings=False,
    )


def tiny_configs(mcfg: ModelConfig) -> tuple[Any, Any]:
    """(CLIPVisionConfig, LlamaConfig) of the random tiny preset (vocabulary 32000 before resizing)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    t = mcfg.tiny
    vision = CLIPVisionConfig(
        hidden_size=t.vision_hidden_size,
        intermediate_size=t.vision_intermediate_size,
        num_hidden_layers=t.vision_layers,
        num_attention_heads=t.vision_heads,
        image_size=mcfg.image_size,
        patch_size=mcfg.patch_size,
        projection_dim=t.vision_hidden_size,
        hidden_act="quick_gelu",
    )
    text = LlamaConfig(
        vocab_size=32000,
        hidden_size=t.llm_hidden_size,
        intermediate_size=t.llm_intermediate_size,
        num_hidden_layers=t.llm_layers,
        num_attention_heads=t.llm_heads,
        num_key_value_heads=t.llm_kv_heads,
        max_position_embeddings=t.max_position_embeddings,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    return vision, text


def build_model(
    cfg: TrainConfig | ModelConfig,
    *,
    dtype: torch.dtype | None = None,
    load_pretrained_projector: bool = True,
) -> tuple[Any, Any]:
    """Assemble `(LlavaForConditionalGeneration, tokenizer)` for `cfg`, frozen per stage.

    With a TrainConfig: stage 2 loads `pretrained_projector` (when set and `load_pretrained_projector`)
    and `apply_freezing` is applied. With a bare ModelConfig: everything stays trainable.
    """
    from transformers import LlavaForConditionalGeneration

    mcfg = cfg.model if isinstance(cfg, TrainConfig) else cfg
    if mcfg.preset == "tiny":
        tokenizer = load_tokenizer(mcfg.tokenizer, add_llava_tokens=True)
        vision_cfg, text_cfg = tiny_configs(mcfg)
        config = _llava_config(vision_cfg, text_cfg, mcfg)
        config._attn_implementation = mcfg.attn_implementation
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mcfg.tiny.init_seed)
            model = LlavaForConditionalGeneration(config)
            _resize_embeddings(model, tokenizer)
        if mcfg.vision_tower:
            _load_tiny_tower(model, vision_cfg, mcfg.vision_tower)
    else:
        model, tokenizer = _assemble_pretrained(mcfg, dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            _resize_embeddings(model, tokenizer)
    if dtype is not None:
        model.to(dtype)
    if isinstance(cfg, TrainConfig):
        if cfg.stage == 2 and cfg.pretrained_projector is not None and load_pretrained_projector:
            load_stage1_parts(model, cfg.pretrained_projector)
        apply_freezing(model, cfg)
    return model, tokenizer


def _load_tiny_tower(model: Any, expected: Any, source: str) -> None:
    """Replace the tiny preset's random tower with a pretrained one (`python -m trainer clip`)."""
    from transformers import CLIPVisionModel

    tower = CLIPVisionModel.from_pretrained(source)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
    diff = {k: (getattr(tower.config, k), getattr(expected, k)) for k in keys if getattr(tower.config, k) != getattr(expected, k)}
    if diff:
        raise ValueError(f"model.vision_tower {source}: (its value, the tiny config's) differ: {diff}")
    model.model.vision_tower.load_state_dict(tower.state_dict())


def _assemble_pretrained(mcfg: ModelConfig, dtype: torch.dtype | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, CLIPVisionModel, LlavaForConditionalGeneration

    vision = CLIPVisionModel.from_pretrained(mcfg.vision_tower, dtype=dtype)
    vcfg = vision.config
    if vcfg.image_size != mcfg.image_size or vcfg.patch_size != mcfg.patch_size:
        raise ValueError(
            f"model.image_size/patch_size {mcfg.image_size}/{mcfg.patch_size} disagree with the vision tower "
            f"{mcfg.vision_tower}: {vcfg.image_size}/{vcfg.patch_size}"
        )
    llm = AutoModelForCausalLM.from_pretrained(mcfg.llm, dtype=dtype)
    if llm.config.model_type != "llama":
        raise ValueError(f"model.llm {mcfg.llm}: model_type {llm.config.model_type!r}, expected 'llama'")
    tokenizer = load_tokenizer(mcfg.tokenizer or mcfg.llm, add_llava_tokens=True)
    config = _llava_config(vcfg, llm.config, mcfg)
    config._attn_implementation = mcfg.attn_implementation
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision.state_dict(), assign=True)
    model.model.language_model.load_state_dict(llm.model.state_dict(), assign=True)
    model.lm_head.load_state_dict(llm.lm_head.state_dict(), assign=True)
    projector = model.model.multi_modal_projector
    projector.to_empty(device="cpu")
    for layer in (projector.linear_1, projector.linear_2):
        layer.reset_parameters()  # fresh mlp2x_gelu, as LLaVA stage 1 starts
    if dtype is not None:
        projector.to(dtype)
    leftover = [n for n, p in model.named_parameters() if p.is_meta] + [n for n, b in model.named_buffers() if b.is_meta]
    if leftover:
        raise RuntimeError(f"parameters not loaded from the vision tower / LLM: {leftover[:5]}")
    return model, tokenizer


def _resize_embeddings(model: Any, tokenizer: Any) -> None:
    """Room for <image>/<pad> (32002 rows) rounded up to a multiple of 64 (32064)."""
    add_llava_special_tokens(tokenizer)
    model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=PAD_TO_MULTIPLE)
    model.config.image_token_index = IMAGE_TOKEN_ID
    model.config.pad_token_id = PAD_TOKEN_ID
    model.config.text_config.pad_token_id = PAD_TOKEN_ID


# --------------------------------------------------------------------------------------------
# freezing and stage 1 -> stage 2


def apply_freezing(model: Any, cfg: TrainConfig) -> dict[str, int]:
    """Stage 1: projector only; stage 2: projector + LLM; the vision tower only if `train_vision_tower`.
    Returns trainable parameter counts per part."""
    counts = {"projector": 0, "llm": 0, "vision_tower": 0}
    for name, p in model.named_parameters():
        part = _part(name)
        train = part == "projector" or (part == "llm" and cfg.train_llm) or (part == "vision_tower" and cfg.train_vision_tower)
        p.requires_grad_(train)
        if train:
            counts[part] += p.numel()
    log.info("trainable parameters: %s", counts)
    return counts


def _part(name: str) -> str:
    if name.startswith(PROJECTOR_PREFIX):
        return "projector"
    if name.startswith(VISION_PREFIX):
        return "vision_tower"
    if name.startswith(LLM_PREFIXES):
        return "llm"
    raise ValueError(f"parameter {name!r} belongs to no known part")


def parameter_groups(model: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Optimizer groups of the trainable parameters (vision tower at `vision_tower_learning_rate`)."""
    main = [p for n, p in model.named_parameters() if p.requires_grad and _part(n) != "vision_tower"]
    tower = [p for n, p in model.named_parameters() if p.requires_grad and _part(n) == "vision_tower"]
    groups = [{"params": main, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay}]
    if tower:
        groups.append({"params": tower, "lr": cfg.vision_tower_learning_rate or cfg.learning_rate, "weight_decay": cfg.weight_decay})
    return groups


def save_stage1_parts(model: Any, out_dir: str | Path) -> Path:
    """Write what stage 2 starts from (`stage1.safetensors`): the projector and every other part that
    trained (the tiny recipes train the tower and the LLM too). Full-precision copies of the model's
    own names."""
    from safetensors.torch import save_file

    state = {
        n: p.detach().to("cpu").contiguous().clone()
        for n, p in model.named_parameters()
        if _part(n) == "projector" or p.requires_grad
    }
    path = Path(out_dir) / STAGE1_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return path


_LLAVA_ORIGINAL_NAMES = {  # original LLaVA mm_projector.bin -> transformers names
    "model.mm_projector.0.weight": "model.multi_modal_projector.linear_1.weight",
    "model.mm_projector.0.bias": "model.multi_modal_projector.linear_1.bias",
    "model.mm_projector.2.weight": "model.multi_modal_projector.linear_2.weight",
    "model.mm_projector.2.bias": "model.multi_modal_projector.linear_2.bias",
}


def load_stage1_parts(model: Any, source: str | Path) -> list[str]:
    """Load stage 1's projector (required) and, when stage 1 trained them, its vision tower and LLM.

    `source`: a folder holding `stage1.safetensors` or a Hugging Face LLaVA folder
    (`model.safetensors` / sharded), or a file: `.safetensors`, or the original LLaVA `mm_projector.bin`.
    Only a `stage1.safetensors` file hands over an LLM; from a LLaVA folder the projector and tower are
    read, and stage 2's LLM stays the one its config names.
    """
    state = _read_parts(Path(source))
    own = dict(model.named_parameters())
    loaded = []
    for name, tensor in state.items():
        name = _LLAVA_ORIGINAL_NAMES.get(name, name)
        if name.startswith("multi_modal_projector.") or name.startswith("vision_tower."):
            name = "model." + name
        if _part_or_none(name) is None or name not in own:
            continue
        target = own[name]
        if target.shape != tensor.shape:
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)}, model has {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(tensor.to(target.dtype))
        loaded.append(name)
    if not any(n.startswith(PROJECTOR_PREFIX) for n in loaded):
        raise ValueError(f"{source}: no projector weights found")
    log.info("loaded %d stage-1 tensors from %s", len(loaded), source)
    return loaded


def _part_or_none(name: str) -> str | None:
    try:
        return _part(name)
    except ValueError:
        return None


def _read_parts(source: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    if source.is_dir():
        for cand in (STAGE1_FILE, "model.safetensors"):
            if (source / cand).exists():
                return _read_parts(source / cand)
        shards = sorted(source.glob("model-*.safetensors"))
        if shards:
            out: dict[str, torch.Tensor] = {}
            for s in shards:
                out.update(_read_parts(s))
            return out
        raise FileNotFoundError(f"{source}: no {STAGE1_FILE} or model*.safetensors")
    if source.suffix == ".safetensors":
        out = {}
        everything = source.name == STAGE1_FILE  # our own stage-1 file holds only what stage 1 trained
        with safe_open(str(source), framework="pt") as f:
            for k in f.keys():
                if everything or _projector_or_tower(k):
                    out[k] = f.get_tensor(k)
        return out
    state = torch.load(str(source), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if _projector_or_tower(k)}


def _projector_or_tower(key: str) -> bool:
    return "multi_modal_projector" in key or "vision_tower" in key or "mm_projector" in key


# --------------------------------------------------------------------------------------------
# loss on the labelled positions only


def labelled_loss(
    model: Any,
    *,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    pixel_values: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy computed with `lm_head` applied only where a label is set.

    Equal to `model(input_ids, labels=labels, ...).loss` (transformers' ForCausalLMLoss: logits in
    fp32, shift by one, ignore -100, mean over labelled tokens) but the 32K-wide output layer runs on
    the labelled positions only (~5x faster steps on the tiny model). Returns `(loss, n_labelled)`;
    with `num_items_in_batch` the sum is divided by it instead (gradient accumulation over micro
    batches normalised by the global token count).
    """
    out = model.model(
        input_ids=input_ids,
        pixel_values=pixel_values,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    )
    hidden = out.last_hidden_state[:, :-1]
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    n = int(mask.sum())
    if n == 0:
        return hidden.sum() * 0.0, 0
    logits = model.lm_head(hidden[mask]).float()
    loss = F.cross_entropy(logits, target[mask], reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else n
    return loss / denom, n


def image_processor_size(model: Any) -> int:
    return int(model.config.vision_config.image_size)


__all__ = [
    "STAGE1_FILE",
    "apply_freezing",
    "build_model",
    "image_processor_size",
    "labelled_loss",
    "load_stage1_parts",
    "parameter_groups",
    "save_stage1_parts",
    "tiny_configs",
]
