"""Tiny random models in exactly the file layout of the published base models (issue 15).

A user's first `make stage1` loads `lmsys/vicuna-7b-v1.5` and `openai/clip-vit-large-patch14-336`
as the hub serves them; these builders write folders of the same shape with the sizes shrunk, so
that tests (and `benchmarks/gpu_check.sh`, at 7B width) take the same loading path:

- `write_vicuna`: `config.json` (`LlamaForCausalLM`, the published keys: `pad_token_id` 0,
  `pretraining_tp`, `rope_scaling` null, `torch_dtype` float16, `transformers_version` 4.31.0),
  `generation_config.json` (temperature 0.9 / top_p 0.6 without `do_sample`, as published),
  the weights in float16 as `pytorch_model-0000N-of-0000M.bin` + `pytorch_model.bin.index.json`
  (or `model-0000N-of-0000M.safetensors` + `model.safetensors.index.json`), `tokenizer.model`
  (the project's SentencePiece model of the LLaMA vocabulary), `tokenizer_config.json`
  (`LlamaTokenizer`, with `legacy`), `special_tokens_map.json` (`pad_token` "<unk>"); no `tokenizer.json`.
- `write_clip`: a full `CLIPModel` checkpoint (text and vision towers, both projections,
  `logit_scale`, and the `position_ids` buffers old checkpoints carry) as `pytorch_model.bin` (or
  `model.safetensors`), a `config.json` with `architectures: ["CLIPModel"]` and the old
  `text_config_dict` / `vision_config_dict` keys beside `text_config` / `vision_config`, and
  `preprocessor_config.json` (`CLIPFeatureExtractor`, integer `size` / `crop_size`).

Published contents mirrored (keys and values, sizes shrunk), as served on huggingface.co:
`lmsys/vicuna-7b-v1.5` config.json (also in "Duplicate from lmsys/vicuna-7b-v1.5" copies),
generation_config.json, special_tokens_map.json (revision 8ab3c06), tokenizer_config.json (the
749-byte file, `legacy: false`, `model_max_length` 4096, `padding_side` right);
`openai/clip-vit-large-patch14-336` config.json and preprocessor_config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_MODEL = REPO / "trainer" / "assets" / "llama-spm-tokenizer" / "tokenizer.model"

VICUNA_FILES_BIN = (
    "config.json",
    "generation_config.json",
    "pytorch_model-00001-of-00002.bin",
    "pytorch_model-00002-of-00002.bin",
    "pytorch_model.bin.index.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "tokenizer_config.json",
)
CLIP_FILES_BIN = ("config.json", "preprocessor_config.json", "pytorch_model.bin")

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _added_token(content: str, *, typed: bool) -> dict[str, Any]:
    tok: dict[str, Any] = {"__type": "AddedToken"} if typed else {}
    tok.update(content=content, lstrip=False, normalized=False, rstrip=False, single_word=False)
    return tok


def _dump(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _save_weights(folder: Path, state: dict, *, safetensors: bool, shards: int) -> list[str]:
    """Write `state` as the hub does: one file, or `shards` files plus an index (weight_map, total_size)."""
    import torch

    keys = list(state)
    shards = max(1, min(shards, len(keys)))
    if shards == 1:
        name = "model.safetensors" if safetensors else "pytorch_model.bin"
        _save_one(folder / name, state, safetensors)
        return [name]
    per = -(-len(keys) // shards)
    names, weight_map = [], {}
    for i in range(shards):
        part = {k: state[k] for k in keys[i * per : (i + 1) * per]}
        stem, ext = ("model", "safetensors") if safetensors else ("pytorch_model", "bin")
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.{ext}"
        _save_one(folder / name, part, safetensors)
        weight_map.update(dict.fromkeys(part, name))
        names.append(name)
    total = sum(t.numel() * t.element_size() for t in state.values() if isinstance(t, torch.Tensor))
    index = "model.safetensors.index.json" if safetensors else "pytorch_model.bin.index.json"
    _dump(folder / index, {"metadata": {"total_size": total}, "weight_map": weight_map})
    return [*names, index]


def _save_one(path: Path, state: dict, safetensors: bool) -> None:
    import torch

    state = {k: v.contiguous() for k, v in state.items()}
    if safetensors:
        from safetensors.torch import save_file

        save_file(state, str(path), metadata={"format": "pt"})
    else:
        torch.save(state, str(path))


def write_vicuna(
    folder: str | Path,
    *,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 4096,
    legacy: bool = False,
    safetensors: bool = False,
    shards: int = 2,
    seed: int = 0,
    inv_freq: bool = True,
    tokenizer_model: str | Path | None = None,
) -> Path:
    """A random Llama in the layout of `lmsys/vicuna-7b-v1.5` (float16 weights, vocabulary 32000).

    `inv_freq`: also store `model.layers.N.self_attn.rotary_emb.inv_freq`, the buffers Llama
    checkpoints saved by transformers of the Llama-2 release carry (a loader must skip them).
    At 7B width: hidden_size 4096, num_attention_heads 32, intermediate_size 11008.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "_name_or_path": "vicuna-7b-v1.5",
        "architectures": ["LlamaForCausalLM"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": max_position_embeddings,
        "model_type": "llama",
        "num_attention_heads": num_attention_heads,
        "num_hidden_layers": num_hidden_layers,
        "num_key_value_heads": num_attention_heads,
        "pad_token_id": 0,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.31.0",
        "use_cache": True,
        "vocab_size": 32000,
    }
    _dump(folder / "config.json", config)
    _dump(
        folder / "generation_config.json",
        {
            "bos_token_id": 1,
            "eos_token_id": 2,
            "max_length": max_position_embeddings,
            "pad_token_id": 0,
            "temperature": 0.9,
            "top_p": 0.6,
            "transformers_version": "4.31.0",
        },
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            **{k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"}
        )
        model = LlamaForCausalLM(cfg)
    state = {k: v.to(torch.float16) for k, v in model.state_dict().items()}
    if inv_freq:
        head_dim = hidden_size // num_attention_heads
        freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        ordered: dict[str, torch.Tensor] = {}
        for k, v in state.items():
            ordered[k] = v
            if k.endswith("self_attn.o_proj.weight"):
                ordered[k.replace("o_proj.weight", "rotary_emb.inv_freq")] = freq.clone()
        state = ordered
    _save_weights(folder, state, safetensors=safetensors, shards=shards)

    source = Path(tokenizer_model) if tokenizer_model else TOKENIZER_MODEL
    (folder / "tokenizer.model").write_bytes(source.read_bytes())
    _dump(
        folder / "tokenizer_config.json",
        {
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": _added_token("<s>", typed=True),
            "clean_up_tokenization_spaces": False,
            "eos_token": _added_token("</s>", typed=True),
            "legacy": legacy,
            "model_max_length": max_position_embeddings,
            "pad_token": None,
            "padding_side": "right",
            "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer",
            "unk_token": _added_token("<unk>", typed=True),
        },
    )
    _dump(
        folder / "special_tokens_map.json",
        {
            "bos_token": _added_token("<s>", typed=False),
            "eos_token": _added_token("</s>", typed=False),
            "pad_token": "<unk>",
            "unk_token": _added_token("<unk>", typed=False),
        },
    )
    return folder


def write_clip(
    folder: str | Path,
    *,
    image_size: int = 56,
    patch_size: int = 14,
    vision_hidden_size: int = 32,
    vision_layers: int = 3,
    vision_heads: int = 2,
    vision_intermediate_size: int = 64,
    text_hidden_size: int = 32,
    text_layers: int = 1,
    text_heads: int = 2,
    text_intermediate_size: int = 64,
    projection_dim: int = 16,
    safetensors: bool = False,
    seed: int = 1,
) -> Path:
    """A random full `CLIPModel` in the layout of `openai/clip-vit-large-patch14-336`.

    At the published size: image_size 336, vision 1024 wide / 24 layers / 16 heads / 4096, text 768
    / 12 / 12 / 3072, projection_dim 768.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_small = {
        "hidden_size": text_hidden_size,
        "intermediate_size": text_intermediate_size,
        "num_attention_heads": text_heads,
        "num_hidden_layers": text_layers,
        "projection_dim": projection_dim,
    }
    vision_small = {
        "hidden_size": vision_hidden_size,
        "image_size": image_size,
        "intermediate_size": vision_intermediate_size,
        "num_attention_heads": vision_heads,
        "num_hidden_layers": vision_layers,
        "patch_size": patch_size,
        "projection_dim": projection_dim,
    }
    common = {
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "hidden_act": "quick_gelu",
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05,
    }
    text_full = {
        **common,
        **text_small,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
        "max_position_embeddings": 77,
        "model_type": "clip_text_model",
        "vocab_size": 49408,
    }
    vision_full = {**common, **vision_small, "model_type": "clip_vision_model", "num_channels": 3}
    config = {
        "_name_or_path": "openai/clip-vit-large-patch14-336",
        "architectures": ["CLIPModel"],
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "model_type": "clip",
        "projection_dim": projection_dim,
        "text_config": dict(sorted(text_full.items())),
        "text_config_dict": text_small,
        "torch_dtype": "float32",
        "transformers_version": "4.21.3",
        "vision_config": dict(sorted(vision_full.items())),
        "vision_config_dict": vision_small,
    }
    _dump(folder / "config.json", config)
    _dump(
        folder / "preprocessor_config.json",
        {
            "crop_size": image_size,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": _CLIP_MEAN,
            "image_std": _CLIP_STD,
            "resample": 3,
            "size": image_size,
        },
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = CLIPConfig(
            text_config={k: v for k, v in text_full.items() if k != "model_type"},
            vision_config={k: v for k, v in vision_full.items() if k != "model_type"},
            projection_dim=projection_dim,
            logit_scale_init_value=2.6592,
        )
        model = CLIPModel(cfg)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_text = text_full["max_position_embeddings"]
    n_vision = (image_size // patch_size) ** 2 + 1
    state.setdefault("text_model.embeddings.position_ids", torch.arange(n_text).unsqueeze(0))
    state.setdefault("vision_model.embeddings.position_ids", torch.arange(n_vision).unsqueeze(0))
    _save_weights(folder, state, safetensors=safetensors, shards=1)
    return folder


def write_published(
    root: str | Path,
    *,
    safetensors: bool = False,
    legacy: bool = False,
    llm: dict | None = None,
    clip: dict | None = None,
) -> tuple[Path, Path]:
    """`root/lmsys/vicuna-7b-v1.5` and `root/openai/clip-vit-large-patch14-336` (hub ids as folders)."""
    root = Path(root)
    vicuna = write_vicuna(
        root / "lmsys" / "vicuna-7b-v1.5", safetensors=safetensors, legacy=legacy, **(llm or {})
    )
    tower = write_clip(
        root / "openai" / "clip-vit-large-patch14-336", safetensors=safetensors, **(clip or {})
    )
    return vicuna, tower


if (
    __name__ == "__main__"
):  # python tests/published_models.py OUT [--safetensors] [--width 4096 --layers 4 ...]
    import argparse

    p = argparse.ArgumentParser(
        description="write tiny (or 7B-wide) random models in the published folder layout"
    )
    p.add_argument("out", type=Path)
    p.add_argument("--safetensors", action="store_true")
    p.add_argument("--legacy", action="store_true")
    p.add_argument("--width", type=int, default=64, help="LLM hidden size (7B: 4096)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=128, help="LLM MLP width (7B: 11008)")
    p.add_argument("--image-size", type=int, default=56)
    p.add_argument("--vision-width", type=int, default=32, help="tower hidden size (CLIP-L: 1024)")
    p.add_argument("--vision-layers", type=int, default=3)
    p.add_argument("--vision-heads", type=int, default=2)
    p.add_argument("--vision-intermediate", type=int, default=64)
    a = p.parse_args()
    llm_dir, tower_dir = write_published(
        a.out,
        safetensors=a.safetensors,
        legacy=a.legacy,
        llm={
            "hidden_size": a.width,
            "num_hidden_layers": a.layers,
            "num_attention_heads": a.heads,
            "intermediate_size": a.intermediate,
        },
        clip={
            "image_size": a.image_size,
            "vision_hidden_size": a.vision_width,
            "vision_layers": a.vision_layers,
            "vision_heads": a.vision_heads,
            "vision_intermediate_size": a.vision_intermediate,
        },
    )
    print(json.dumps({"llm": str(llm_dir), "vision_tower": str(tower_dir)}))
