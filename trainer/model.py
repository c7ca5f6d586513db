"""Model assembly: a transformers `LlavaForConditionalGeneration` from a CLIP vision tower + a Llama LLM.

Responsible for: building the LLaVA-1.5 model (docs/trainer.md#model, docs/trainer.md#export) from local
folders / hub ids or the random `tiny` preset; loading the base models as published (Vicuna v1.5:
`.bin` shards in float16 + `tokenizer.model`; CLIP ViT-L/14-336: a full `CLIPModel` checkpoint, its
vision part taken), in the run's precision, and under ZeRO-3 partitioned at creation (`zero.Init`,
rank 0 streaming the files in); adding `<image>` (32000) and `<pad>` (32001) and
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

    kwargs: dict[str, Any] = dict(  # pad_token_id goes through PretrainedConfig's **kwargs
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=IMAGE_TOKEN_ID,
        projector_hidden_act="gelu" if mcfg.projector == "mlp2x_gelu" else "linear",
        vision_feature_layer=mcfg.vision_feature_layer,
        vision_feature_select_strategy=mcfg.vision_feature_select_strategy,
        image_seq_length=mcfg.image_seq_length,
        multimodal_projector_bias=True,
        pad_token_id=PAD_TOKEN_ID,
        tie_word_embeddings=False,
    )
    return LlavaConfig(**kwargs)


def tiny_configs(mcfg: ModelConfig) -> tuple[Any, Any]:
    """(CLIPVisionConfig, LlamaConfig) of the random tiny preset (vocabulary 32000 before resizing)."""
    from transformers import CLIPVisionConfig, LlamaConfig

    t = mcfg.tiny

    def sizes(part: str) -> dict[str, Any]:  # the transformer sizes both configs name alike
        return {
            "hidden_size": getattr(t, f"{part}_hidden_size"),
            "intermediate_size": getattr(t, f"{part}_intermediate_size"),
            "num_hidden_layers": getattr(t, f"{part}_layers"),
            "num_attention_heads": getattr(t, f"{part}_heads"),
        }

    vision = CLIPVisionConfig(
        **sizes("vision"),
        image_size=mcfg.image_size,
        patch_size=mcfg.patch_size,
        projection_dim=t.vision_hidden_size,
        hidden_act="quick_gelu",
    )
    text = LlamaConfig(
        vocab_size=32000,
        **sizes("llm"),
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
    zero3_config: dict | None = None,
) -> tuple[Any, Any]:
    """Assemble `(LlavaForConditionalGeneration, tokenizer)` for `cfg`, frozen per stage.

    With a TrainConfig: stage 2 loads `pretrained_projector` (when set and `load_pretrained_projector`)
    and `apply_freezing` is applied. With a bare ModelConfig: everything stays trainable.
    `dtype`: of the pretrained weights (default float32; the published Vicuna is stored in float16).
    `zero3_config`: the run's DeepSpeed JSON when it uses ZeRO-3; the pretrained model is then built
    partitioned (`deepspeed.zero.Init`, as LLaVA gets through transformers' `HfDeepSpeedConfig`):
    every rank holds only its share of each parameter, rank 0 reads the checkpoint files.
    torch.distributed must be initialised.
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
            model: Any = LlavaForConditionalGeneration(config)
            _resize_embeddings(model, tokenizer)
        if mcfg.vision_tower:
            _load_tiny_tower(model, vision_cfg, mcfg.vision_tower)
        if dtype is not None:
            model.to(dtype)
    else:
        model, tokenizer = _assemble_pretrained(mcfg, dtype or torch.float32, zero3_config)
    if mcfg.projector == "linear":
        _set_identity_second_layer(model)
    if isinstance(cfg, TrainConfig):
        if cfg.stage == 2 and cfg.pretrained_projector is not None and load_pretrained_projector:
            load_stage1_parts(model, cfg.pretrained_projector)
        apply_freezing(model, cfg)
    return model, tokenizer


LINEAR_FROZEN_PREFIX = PROJECTOR_PREFIX + "linear_2."


def _set_identity_second_layer(model: Any) -> None:
    """`projector: linear`: the projector module's second layer becomes the identity (weight I, bias
    0; `apply_freezing` keeps it frozen), so with the config's `linear` activation the module computes
    exactly one Linear(vision width -> LLM width), LLaVA's `linear` projector."""
    layer = model.model.multi_modal_projector.linear_2
    if layer.in_features != layer.out_features:
        raise ValueError(f"projector linear_2 is {layer.in_features} -> {layer.out_features}, not square")
    with torch.no_grad(), _gathered([layer.weight, layer.bias]):
        if _writer() or not hasattr(layer.weight, "ds_id"):
            layer.weight.copy_(torch.eye(layer.out_features, dtype=layer.weight.dtype))
            layer.bias.zero_()


def llm_hidden_size(mcfg: ModelConfig) -> int:
    """The LLM's width, read before the model is built (DeepSpeed's bucket sizes depend on it)."""
    if mcfg.preset == "tiny":
        return mcfg.tiny.llm_hidden_size
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(_named(mcfg.llm, "model.llm")).hidden_size)


def _named(value: str | None, field: str) -> str:
    """A pretrained model's folder or hub id, which the config requires unless `preset: tiny`."""
    if not value:
        raise ValueError(f"{field} is required unless model.preset is tiny")
    return value


def _load_tiny_tower(model: Any, expected: Any, source: str) -> None:
    """Replace the tiny preset's random tower with a pretrained one (`python -m trainer clip`)."""
    from transformers import CLIPVisionModel

    tower = CLIPVisionModel.from_pretrained(source)
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "image_size",
        "patch_size",
    )
    diff = {
        k: (getattr(tower.config, k), getattr(expected, k))
        for k in keys
        if getattr(tower.config, k) != getattr(expected, k)
    }
    if diff:
        raise ValueError(f"model.vision_tower {source}: (its value, the tiny config's) differ: {diff}")
    model.model.vision_tower.load_state_dict(tower.state_dict())


def _zero_init(zero3_config: dict | None, dtype: torch.dtype):
    """Modules created inside are partitioned at creation (ZeRO-3); a null context otherwise."""
    import contextlib

    if zero3_config is None:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.Init(config_dict_or_path=zero3_config, dtype=dtype)


def _gathered(params: list, modifier_rank: int | None = 0):
    """DeepSpeed's GatheredParameters for ZeRO-3-partitioned parameters; a null context for plain ones."""
    import contextlib

    if not any(hasattr(p, "ds_id") for p in params):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def _writer() -> bool:
    """The rank that writes into gathered ZeRO-3 parameters (modifier_rank 0); every rank otherwise."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _load_vision_tower(mcfg: ModelConfig, dtype: torch.dtype, zero3_config: dict | None) -> Any:
    """A `CLIPVisionModel` from a CLIP folder / hub id: a vision-only checkpoint, or a full `CLIPModel`
    one (as `openai/clip-vit-large-patch14-336` is published) whose text tower and projections are
    skipped, as LLaVA's `CLIPVisionModel.from_pretrained` does (`clip_encoder.py`)."""
    import transformers
    from transformers import AutoConfig, CLIPVisionConfig, CLIPVisionModel

    source = _named(mcfg.vision_tower, "model.vision_tower")
    kind = AutoConfig.from_pretrained(source).model_type
    if kind not in ("clip", "clip_vision_model"):
        raise ValueError(
            f"model.vision_tower {mcfg.vision_tower}: model_type {kind!r}, expected a CLIP model"
        )
    if zero3_config is not None:
        config = CLIPVisionConfig.from_pretrained(source)  # the vision part of a CLIPConfig
        vision = _zero3_from_pretrained(
            CLIPVisionModel, config, source, mcfg, dtype, zero3_config, prefixes=("", "vision_model.")
        )
    else:
        level = transformers.logging.get_verbosity()
        if kind == "clip":  # the load report would list every text-tower tensor as unexpected
            transformers.logging.set_verbosity_error()
        try:
            vision = CLIPVisionModel.from_pretrained(
                source, dtype=dtype, attn_implementation=mcfg.attn_implementation
            )
        finally:
            transformers.logging.set_verbosity(level)
    if kind == "clip":
        log.info(
            "vision tower %s: the vision part of a full CLIPModel checkpoint (text tower skipped)",
            mcfg.vision_tower,
        )
    return vision


def _load_llm(mcfg: ModelConfig, dtype: torch.dtype, zero3_config: dict | None, vocab_size: int) -> Any:
    """The Llama LLM; under ZeRO-3 built partitioned with its embeddings already `vocab_size` rows."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    source = _named(mcfg.llm, "model.llm")
    config = AutoConfig.from_pretrained(source)
    if config.model_type != "llama":
        raise ValueError(f"model.llm {source}: model_type {config.model_type!r}, expected 'llama'")
    if zero3_config is not None:
        return _zero3_from_pretrained(
            LlamaForCausalLM, config, source, mcfg, dtype, zero3_config, vocab_size=vocab_size
        )
    return AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, attn_implementation=mcfg.attn_implementation
    )


def _zero3_from_pretrained(
    cls: Any,
    config: Any,
    source: str,
    mcfg: ModelConfig,
    dtype: torch.dtype,
    zero3_config: dict,
    *,
    prefixes: tuple[str, ...] = ("",),
    vocab_size: int | None = None,
) -> Any:
    """`cls.from_pretrained(source)` built partitioned: the modules are created under DeepSpeed's
    `zero.Init` (each rank keeps only its share of every parameter), then filled module by module:
    the module's parameters are gathered, rank 0 copies the checkpoint's tensors in (read lazily
    from `.bin` shards / safetensors), and the partitions are taken back. What transformers does
    under `HfDeepSpeedConfig` (LLaVA's path), without its accelerate dependency. Checkpoint tensors
    the model does not have (a CLIPModel's text tower, old `rotary_emb.inv_freq` / `position_ids`
    buffers) are skipped; a model parameter the checkpoint lacks is an error. `prefixes`: where the
    checkpoint may keep a parameter (transformers 5's `CLIPVisionModel` is flat, CLIP checkpoints
    say `vision_model.embeddings.*`). `vocab_size`: build the embeddings and `lm_head` with that many
    rows, the checkpoint's first and the mean of its rows after (what `_resize_pretrained_embeddings`
    does), so that no rank ever gathers the old and the new matrices together."""
    import deepspeed
    import torch.distributed as dist
    from transformers.initialization import no_init_weights

    config._attn_implementation = mcfg.attn_implementation
    grow = ("model.embed_tokens.weight", "lm_head.weight")
    if vocab_size is not None and vocab_size > config.vocab_size:
        config.vocab_size = vocab_size
    # the random init is skipped (every value is overwritten), as from_pretrained does
    with no_init_weights(), deepspeed.zero.Init(config_dict_or_path=zero3_config, dtype=dtype):
        model = cls(config)
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    if rotary is not None:  # zero.Init makes float constructors bf16: RoPE's inv_freq again, in fp32
        model.model.rotary_emb = type(rotary)(config=config).to(rotary.inv_freq.device)
    rank0 = dist.get_rank() == 0
    tensors = _CheckpointTensors(_local_folder(source, weights=rank0)) if rank0 else None
    missing: list[str] = []
    wrong: list[str] = []
    with torch.no_grad():
        for prefix, module in model.named_modules():
            params = dict(module.named_parameters(prefix=prefix, recurse=False))
            if not params:
                continue
            with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=0):
                if rank0:
                    assert tensors is not None  # rank 0 opened the checkpoint above
                    for name, p in params.items():
                        t = next(
                            (x for x in (tensors.get(pre + name) for pre in prefixes) if x is not None), None
                        )
                        if t is None:
                            missing.append(name)
                        elif tuple(t.shape) == tuple(p.shape):
                            p.copy_(t.to(p.dtype))
                        elif name in grow and t.shape[1:] == p.shape[1:] and t.shape[0] < p.shape[0]:
                            p[: t.shape[0]].copy_(t.to(p.dtype))
                            p[t.shape[0] :] = p[: t.shape[0]].float().mean(0, keepdim=True).to(p.dtype)
                        else:
                            wrong.append(
                                f"{name}: {tuple(t.shape)} in the checkpoint, {tuple(p.shape)} in the model"
                            )
    box = [(missing, wrong)]
    dist.broadcast_object_list(box, src=0)  # every rank raises, none waits on a collective
    missing, wrong = box[0]
    if missing:
        raise ValueError(
            f"{source}: the checkpoint lacks {len(missing)} parameters of {cls.__name__}: {missing[:5]}"
        )
    if wrong:
        raise ValueError(f"{source}: shapes differ: {wrong[:5]}")
    model.config.dtype = dtype
    return model


def _local_folder(source: str, *, weights: bool) -> Path:
    """A local folder for a folder path or a hub id (downloaded to the Hugging Face cache)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.bin"] if weights else ["*.json"]
    return Path(snapshot_download(source, allow_patterns=patterns))


class _CheckpointTensors:
    """Lazy name -> tensor access over a Hugging Face weights folder: safetensors preferred
    (`model.safetensors` or its sharded index), else PyTorch `pytorch_model.bin` or its shards
    (memory-mapped, read only where used)."""

    def __init__(self, folder: Path):
        import json

        self._handles: dict[Path, Any] = {}
        self.files: dict[str, Path] = {}
        for index, single in (
            ("model.safetensors.index.json", "model.safetensors"),
            ("pytorch_model.bin.index.json", "pytorch_model.bin"),
        ):
            if (folder / index).is_file():
                weight_map = json.loads((folder / index).read_text())["weight_map"]
                self.files = {k: folder / v for k, v in weight_map.items()}
                return
            if (folder / single).is_file():
                self.files = dict.fromkeys(self._open(folder / single).keys(), folder / single)
                return
        raise FileNotFoundError(f"{folder}: no model.safetensors / pytorch_model.bin (or a sharded index)")

    def _open(self, path: Path) -> Any:
        if path not in self._handles:
            if path.suffix == ".safetensors":
                from safetensors import safe_open

                self._handles[path] = safe_open(str(path), framework="pt")
            else:
                self._handles[path] = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        return self._handles[path]

    def get(self, name: str) -> torch.Tensor | None:
        path = self.files.get(name)
        if path is None:
            return None
        handle = self._open(path)
        return handle.get_tensor(name) if path.suffix == ".safetensors" else handle[name]


def _assemble_pretrained(
    mcfg: ModelConfig, dtype: torch.dtype, zero3_config: dict | None = None
) -> tuple[Any, Any]:
    """The published folders in (Vicuna: `LlamaForCausalLM`, `.bin` shards or safetensors; CLIP: a full
    `CLIPModel` checkpoint), a LLaVA model out: the loaded modules themselves become the LLaVA model's
    tower, LLM and head (no copy), the projector is fresh, the embeddings are resized."""
    from transformers import LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    vision = _load_vision_tower(mcfg, dtype, zero3_config)
    vcfg = vision.config
    if vcfg.image_size != mcfg.image_size or vcfg.patch_size != mcfg.patch_size:
        raise ValueError(
            f"model.image_size/patch_size {mcfg.image_size}/{mcfg.patch_size} disagree with the vision tower "
            f"{mcfg.vision_tower}: {vcfg.image_size}/{vcfg.patch_size}"
        )
    tokenizer = load_tokenizer(mcfg.tokenizer or mcfg.llm, add_llava_tokens=True)
    llm = _load_llm(mcfg, dtype, zero3_config, _padded_vocab(tokenizer))
    config = _llava_config(vcfg, llm.config, mcfg)
    config._attn_implementation = mcfg.attn_implementation
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision
    model.model.language_model = llm.model
    model.lm_head = llm.lm_head
    with torch.random.fork_rng(devices=[]), _zero_init(zero3_config, dtype):
        torch.manual_seed(0)  # fresh mlp2x_gelu, as LLaVA stage 1 starts; the same on every rank
        model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    _resize_pretrained_embeddings(model, tokenizer, dtype, zero3_config)
    leftover = [n for n, p in model.named_parameters() if p.is_meta] + [
        n for n, b in model.named_buffers() if b.is_meta
    ]
    if leftover:
        raise RuntimeError(f"parameters not loaded from the vision tower / LLM: {leftover[:5]}")
    return model, tokenizer


def _padded_vocab(tokenizer: Any) -> int:
    """Rows of the resized embeddings: the tokenizer's with <image>/<pad>, up to a multiple of 64."""
    return -(-len(tokenizer) // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE


def _resize_pretrained_embeddings(
    model: Any, tokenizer: Any, dtype: torch.dtype, zero3_config: dict | None
) -> None:
    """Input embeddings and `lm_head` grown to room for <image>/<pad>, rounded up to a multiple of 64
    (32000 -> 32064). The new rows are the mean of the old ones (LLaVA `train.py`
    `smart_tokenizer_and_embedding_resize`): deterministic, so a ZeRO-3 build equals a plain one.
    Under ZeRO-3 the LLM was built with the new size already (`_zero3_from_pretrained`); should it not
    be, the new modules are created partitioned and filled on rank 0."""
    import torch.nn as nn

    add_llava_special_tokens(tokenizer)
    old_emb = model.get_input_embeddings()
    old_head = model.get_output_embeddings()
    n_old = getattr(old_emb.weight, "ds_shape", old_emb.weight.shape)[0]
    width = getattr(old_emb.weight, "ds_shape", old_emb.weight.shape)[1]
    n_new = _padded_vocab(tokenizer)
    if n_new > n_old:
        with _zero_init(zero3_config, dtype):
            emb = nn.Embedding(n_new, width, padding_idx=old_emb.padding_idx, dtype=dtype)
            head = nn.Linear(width, n_new, bias=False, dtype=dtype)
        with torch.no_grad(), _gathered([old_emb.weight, old_head.weight, emb.weight, head.weight]):
            if _writer():
                for new, old in ((emb.weight, old_emb.weight), (head.weight, old_head.weight)):
                    new[:n_old] = old
                    new[n_old:] = old.float().mean(0, keepdim=True).to(new.dtype)
        model.model.language_model.embed_tokens = emb
        model.lm_head = head
    model.config.text_config.vocab_size = n_new
    model.config.image_token_index = IMAGE_TOKEN_ID
    model.config.pad_token_id = PAD_TOKEN_ID
    model.config.text_config.pad_token_id = PAD_TOKEN_ID


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
        train = (
            part == "projector"
            or (part == "llm" and cfg.train_llm)
            or (part == "vision_tower" and cfg.train_vision_tower)
        )
        if cfg.model.projector == "linear" and name.startswith(LINEAR_FROZEN_PREFIX):
            train = False  # the identity that makes the two-layer module one Linear
        p.requires_grad_(train)
        if train:
            counts[part] += numel(p)
    log.info("trainable parameters: %s", counts)
    return counts


def numel(p: torch.Tensor) -> int:
    """Elements of a parameter, its full size also when ZeRO-3 holds only a partition here."""
    return int(getattr(p, "ds_numel", p.numel()))


def held_numel(p: torch.Tensor) -> int:
    """Elements this rank holds of a parameter (its ZeRO-3 partition, or all of it)."""
    return int(p.ds_tensor.numel()) if hasattr(p, "ds_tensor") else p.numel()


_PARTS = {"projector": (PROJECTOR_PREFIX,), "vision_tower": (VISION_PREFIX,), "llm": LLM_PREFIXES}


def _part(name: str) -> str:
    part = next((part for part, prefixes in _PARTS.items() if name.startswith(prefixes)), None)
    if part is None:
        raise ValueError(f"parameter {name!r} belongs to no known part")
    return part


def parameter_groups(model: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Optimizer groups of the trainable parameters (vision tower at `vision_tower_learning_rate`)."""
    main = [p for n, p in model.named_parameters() if p.requires_grad and _part(n) != "vision_tower"]
    tower = [p for n, p in model.named_parameters() if p.requires_grad and _part(n) == "vision_tower"]
    groups = [{"params": main, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay}]
    if tower:
        groups.append(
            {
                "params": tower,
                "lr": cfg.vision_tower_learning_rate or cfg.learning_rate,
                "weight_decay": cfg.weight_decay,
            }
        )
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


_LLAVA_ORIGINAL_NAMES = {  # original LLaVA mm_projector.bin (mlp2x_gelu, or linear) -> transformers names
    "model.mm_projector.weight": "model.multi_modal_projector.linear_1.weight",
    "model.mm_projector.bias": "model.multi_modal_projector.linear_1.bias",
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
    for stored, tensor in state.items():
        name = _stage1_name(stored)
        part = _part_or_none(name)
        if part is None:
            continue
        if name not in own:
            if part == "llm":
                continue  # an LLM this model does not have (e.g. a LLaVA folder's): stage 2 keeps its own
            # a projector or tower tensor with no place here would leave that part silently untrained
            raise ValueError(f"{source}: {stored} has no matching parameter ({name}) in this model")
        target = own[name]
        shape = tuple(getattr(target, "ds_shape", target.shape))
        if shape != tuple(tensor.shape):
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)}, model has {shape}")
        with torch.no_grad(), _gathered([target]):  # ZeRO-3: rank 0 writes, the partitions follow
            if _writer() or not hasattr(target, "ds_id"):
                target.copy_(tensor.to(target.dtype))
        loaded.append(name)
    if not any(n.startswith(PROJECTOR_PREFIX) for n in loaded):
        raise ValueError(f"{source}: no projector weights found")
    log.info("loaded %d stage-1 tensors from %s", len(loaded), source)
    return loaded


def _stage1_name(stored: str) -> str:
    """This model's parameter name for a tensor name as stored by stage 1 (`stage1.safetensors`: our
    own names), by an export or llava-hf (`vision_tower.vision_model.*`, `multi_modal_projector.*`,
    transformers' convert_llava_weights_to_hf.py layout), or by original LLaVA (`mm_projector.bin`)."""
    name = _LLAVA_ORIGINAL_NAMES.get(stored, stored)
    if name.startswith("vision_tower.vision_model."):
        return VISION_PREFIX + name.removeprefix("vision_tower.vision_model.")
    if name.startswith(("multi_modal_projector.", "vision_tower.")):
        return "model." + name
    return name


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
    "held_numel",
    "image_processor_size",
    "labelled_loss",
    "llm_hidden_size",
    "load_stage1_parts",
    "numel",
    "parameter_groups",
    "save_stage1_parts",
    "tiny_configs",
]
