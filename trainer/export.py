"""Hugging Face export: a folder in the layout of `llava-hf/llava-1.5-7b-hf`, which plain transformers
(4.x and 5.x), vLLM and SGLang load with no project code.

Responsible for writing what transformers' own conversion of the original LLaVA-1.5 checkpoint wrote
(`src/transformers/models/llava/convert_llava_weights_to_hf.py`, pushed as `llava-hf/llava-1.5-7b-hf`;
the expected names, config keys and file set are in tests/compat/llava_hf_layout.json with their
public sources):

- weights as safetensors (`metadata={"format": "pt"}`, which transformers 4.x requires), one
  `model.safetensors` or `model-0000N-of-0000M.safetensors` shards of at most 5 GB with
  `model.safetensors.index.json`, under the transformers-4.x module names: `language_model.model.*`,
  `language_model.lm_head.weight`, `vision_tower.vision_model.*`, `multi_modal_projector.linear_1/2.*`.
  transformers 5 flattened the modules (`model.language_model.*`, `model.vision_tower.embeddings.*`,
  `lm_head.weight`) and maps these legacy names on load (its `conversion_mapping.py`: "llava" and
  `CLIPVisionModel` prefix rules), so the same files load with 0 missing/unexpected keys under
  both; an export under transformers 5's own names loads under 4.x with a random vision tower.
- `config.json`: transformers 5's config plus the keys 4.x reads (`torch_dtype`, `text_config.rope_theta`
  / `rope_scaling`, `ignore_index`); `generation_config.json` (bos 1, eos 2, pad 32001).
- the tokenizer: `tokenizer.model` (SentencePiece; the training tokenizer's own, or the bundled LLaMA
  model when training used the bundled GGUF vocabulary: same pieces, same ids, checked),
  `tokenizer.json` (the training tokenizer's backend, SentencePiece's whitespace rule included;
  BPE merges as "a b" strings, which tokenizers 0.15 (transformers 4.37) also reads),
  `tokenizer_config.json` with `tokenizer_class: LlamaTokenizer`, `legacy: true` (what `tokenizer.json`
  does; `write_tokenizer` says what that means for a `legacy: false` run) and `added_tokens_decoder`
  (`<image>` 32000, `<pad>` 32001), `special_tokens_map.json`, `added_tokens.json`. transformers 4.x
  builds `LlamaTokenizerFast` from `tokenizer.json` as is; transformers 5 loads `tokenizer.json` as is
  for model type "llava" (`TokenizersBackend`, its MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS).
- the processor: `preprocessor_config.json` (the image processor's settings, `do_pad: true`),
  `processor_config.json` (`LlavaProcessor`: `image_token`, `patch_size`,
  `vision_feature_select_strategy`, `num_additional_image_tokens` 1 for CLIP's CLS token) and
  `chat_template.json`.

Images: training pads every image to a square with the CLIP mean colour, centred, before the CLIP
steps (docs/trainer.md#images: LLaVA `image_aspect_ratio = pad`, `expand2square`). The export keeps
that: `LlavaImageProcessor(do_pad=True)` pads the same way (background = the CLIP mean as 0-255 ints,
(122, 116, 104)), then resizes the shortest edge (bicubic), centre-crops, rescales and normalises.
`preprocessor_config.json` names no `image_processor_type`, so `AutoProcessor` takes the class of
model type "llava": `LlavaImageProcessor` from transformers 4.49 on (5.x: its PIL backend when
torchvision is missing), `CLIPImageProcessor` up to 4.48, which ignores `do_pad`: there the caller
pads first (`trainer.images.expand2square`); naming `LlavaImageProcessor` would make AutoProcessor
fail outright before 4.49. `llava-hf/llava-1.5-7b-hf` itself ships a `CLIPImageProcessor` that does
not pad (it centre-crops non-square images).

Chat messages: `{"role": "system"|"user"|"assistant", "content": str | [{"type": "image"},
{"type": "text", "text": ...}]}`. Rendering (no BOS: the processor's tokenizer adds it, as for llava-hf
models) equals `trainer.templates.render` with the vicuna_v1 template:

    SYSTEM USER: <image>\\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT:

A system message replaces the default vicuna_v1 system prompt. `{% generation %}` ...
`{% endgeneration %}` encloses each " answer</s>", the tokens training computes the loss on
(`return_assistant_tokens_mask=True` returns them).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainer.templates import (
    BUNDLED_TOKENIZER_MODEL,
    EOS_TOKEN_ID,
    IMAGE_TOKEN,
    IMAGE_TOKEN_ID,
    PAD_TOKEN,
    PAD_TOKEN_ID,
    VICUNA_V1_SYSTEM,
    is_legacy,
)

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The SentencePiece model of the LLaMA vocabulary (same pieces and ids as the bundled GGUF vocabulary).
BUNDLED_SPM_MODEL = BUNDLED_TOKENIZER_MODEL
# transformers' save_pretrained default `max_shard_size="5GB"` (decimal), which cut llava-hf's 3 shards.
MAX_SHARD_BYTES = 5 * 10**9
EXPORT_RECORD = "datamix_export.json"  # the resolved config that made the export (not a transformers file)

_TEXT = "(m['content'] if m['content'] is string else (m['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('')))"
_N_IMAGES = "(0 if m['content'] is string else (m['content'] | selectattr('type', 'equalto', 'image') | list | length))"

VICUNA_V1_CHAT_TEMPLATE = (
    "{%- set ns = namespace(system=" + json.dumps(VICUNA_V1_SYSTEM) + ") -%}"
    "{%- for m in messages if m['role'] == 'system' -%}{%- set ns.system = " + _TEXT + " -%}{%- endfor -%}"
    "{%- if ns.system -%}{{- ns.system + ' ' -}}{%- endif -%}"
    "{%- for m in messages if m['role'] != 'system' -%}"
    "{%- if m['role'] == 'user' -%}"
    "{{- 'USER: ' + ('<image>\\n' * " + _N_IMAGES + ") + " + _TEXT + " + ' ' -}}"
    "{%- else -%}"
    "{{- 'ASSISTANT:' -}}{%- generation -%}{{- ' ' + " + _TEXT + " + '</s>' -}}{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)


def to_chat_messages(conversations: list[dict], *, has_image: bool) -> list[dict]:
    """LLaVA conversations -> chat messages for the exported template (image as a content part;
    `<image>` removed from the text as `trainer.templates` does)."""
    out = []
    for i, turn in enumerate(conversations):
        role = "user" if turn["from"] in ("human", "user") else "assistant"
        text = turn["value"]
        if i == 0 and has_image:
            content = [{"type": "image"}, {"type": "text", "text": text.replace("<image>", "").strip()}]
        else:
            content = [{"type": "text", "text": text}]
        out.append({"role": role, "content": content})
    return out


# --------------------------------------------------------------------------------------------
# weights


def hub_weight_name(name: str) -> str:
    """A transformers-5 `LlavaForConditionalGeneration` parameter name -> its name in llava-hf's files
    (the transformers-4.x module tree that `convert_llava_weights_to_hf.py` saved)."""
    for prefix, hub in (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.vision_model.", "vision_tower.vision_model."),  # a tower that kept the wrapper
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
        ("lm_head.", "language_model.lm_head."),
    ):
        if name.startswith(prefix):
            return hub + name[len(prefix) :]
    raise ValueError(
        f"parameter {name!r} has no llava-hf name (expected model.language_model., model.vision_tower., model.multi_modal_projector. or lm_head.)"
    )


def hub_state_dict(model: Any) -> dict[str, Any]:
    """The model's weights under llava-hf names, in module order (tower, projector, LLM, head)."""
    state = {}
    for name, tensor in model.state_dict().items():
        hub = hub_weight_name(name)
        if hub in state:
            raise ValueError(f"two parameters map to {hub!r}")
        state[hub] = tensor.detach().to("cpu").contiguous()
    return state


def write_weights(state: dict[str, Any], out: Path, *, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[str]:
    """Write `state` as safetensors the way transformers' `save_pretrained` shards: tensors in order,
    a new shard when the next one would pass `max_shard_bytes`; one shard is `model.safetensors`,
    more are `model-0000N-of-0000M.safetensors` + `model.safetensors.index.json`. Returns the file names."""
    from safetensors.torch import save_file

    shards: list[dict[str, Any]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    for shard, fname in zip(shards, names, strict=True):
        save_file({k: _own_storage(v) for k, v in shard.items()}, str(out / fname), metadata={"format": "pt"})
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
            "weight_map": {
                k: fname for shard, fname in zip(shards, names, strict=True) for k in sorted(shard)
            },
        }
        index["weight_map"] = dict(sorted(index["weight_map"].items()))
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        names.append("model.safetensors.index.json")
    return names


def _own_storage(tensor: Any) -> Any:
    """`tensor`, or a copy when it is a view into a larger storage (safetensors refuses shared memory)."""
    if tensor.storage_offset() or tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
        return tensor.clone()
    return tensor


# --------------------------------------------------------------------------------------------
# config


def hub_config(model: Any) -> dict[str, Any]:
    """`config.json`: transformers 5's own serialisation plus the keys transformers 4.x reads."""
    config = model.config
    cfg = json.loads(config.to_json_string())
    cfg["architectures"] = ["LlavaForConditionalGeneration"]
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    cfg["dtype"] = dtype  # transformers >= 4.56
    cfg["torch_dtype"] = dtype  # transformers < 4.56
    cfg.setdefault("ignore_index", -100)  # LlavaConfig field up to 4.4x (llava-hf has it)
    cfg["image_seq_length"] = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    text = cfg["text_config"]
    text.setdefault("architectures", ["LlamaForCausalLM"])
    rope = dict(text.get("rope_parameters") or {})
    if rope:  # transformers 4.x: rope_theta + rope_scaling (5.x: rope_parameters; reads both)
        text["rope_theta"] = rope.get("rope_theta", 10000.0)
        kind = rope.get("rope_type", "default")
        text["rope_scaling"] = (
            None
            if kind == "default"
            else {
                "rope_type": kind,
                **{k: v for k, v in rope.items() if k not in ("rope_theta", "rope_type")},
            }
        )
    text.setdefault("rope_theta", 10000.0)
    return dict(sorted(cfg.items()))


def hub_generation_config(model: Any) -> dict[str, Any]:
    import transformers

    text = model.config.text_config
    return {
        "_from_model_config": True,
        "bos_token_id": getattr(text, "bos_token_id", None) or 1,
        "eos_token_id": getattr(text, "eos_token_id", None) or EOS_TOKEN_ID,
        "pad_token_id": PAD_TOKEN_ID,
        "transformers_version": transformers.__version__,
    }


# --------------------------------------------------------------------------------------------
# tokenizer


def sentencepiece_model(tokenizer: Any, source: str | Path | None = None) -> Path:
    """The SentencePiece `tokenizer.model` of `tokenizer`: `source`'s (the tokenizer file or folder
    training read) or the one the tokenizer records when there is one, else the bundled LLaMA model
    (the tokenizer of the bundled GGUF vocabulary: same pieces, same ids). Checked: every piece of
    the SentencePiece model has the tokenizer's id."""
    candidates = []
    if source is not None and Path(str(source)).exists():
        src_path = Path(str(source))
        candidates.append(src_path / "tokenizer.model" if src_path.is_dir() else src_path)
    vocab_file = getattr(tokenizer, "vocab_file", None)
    if vocab_file and str(vocab_file).endswith(".model"):
        candidates.append(Path(vocab_file))
    src = getattr(tokenizer, "name_or_path", "") or ""
    if src and Path(src).is_dir():
        candidates.append(Path(src) / "tokenizer.model")
    candidates.append(BUNDLED_SPM_MODEL)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"no SentencePiece tokenizer.model for the tokenizer (looked at {[str(p) for p in candidates]})"
        )
    check_same_vocabulary(path, tokenizer)
    return path


def check_same_vocabulary(spm_path: Path, tokenizer: Any) -> None:
    import sentencepiece as spm

    proc = spm.SentencePieceProcessor(model_file=str(spm_path))
    vocab = tokenizer.get_vocab()
    bad = [
        (i, proc.id_to_piece(i)) for i in range(proc.get_piece_size()) if vocab.get(proc.id_to_piece(i)) != i
    ]
    if bad:
        raise ValueError(
            f"{spm_path}: {len(bad)} SentencePiece pieces have other ids in the tokenizer, e.g. {bad[:3]}"
        )


def tokenizer_json(tokenizer: Any) -> str:
    """The backend as `tokenizer.json`, BPE merges as "a b" strings: the form every `tokenizers`
    release reads (0.15, under transformers 4.37, rejects the pair lists that >= 0.20 writes)."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    model = data.get("model") or {}
    merges = model.get("merges") or []
    if merges and all(isinstance(m, list) and len(m) == 2 and " " not in m[0] + m[1] for m in merges):
        model["merges"] = [f"{a} {b}" for a, b in merges]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _added_token(tok: Any) -> dict[str, Any]:
    return {
        "content": str(tok),
        "lstrip": bool(getattr(tok, "lstrip", False)),
        "normalized": bool(getattr(tok, "normalized", False)),
        "rstrip": bool(getattr(tok, "rstrip", False)),
        "single_word": bool(getattr(tok, "single_word", False)),
        "special": bool(getattr(tok, "special", True)),
    }


def write_tokenizer(
    tokenizer: Any, out: Path, *, chat_template: str, source: str | Path | None = None
) -> None:
    """tokenizer.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json, added_tokens.json.

    `legacy` is written True whatever the training tokenizer's flag (recorded in datamix_export.json):
    it is what `tokenizer.json` does (SentencePiece's "▁" in front of every span between special
    tokens), so a slow `LlamaTokenizer` (`use_fast=False`, from `tokenizer.model`) tokenizes as the fast
    one. A whole prompt string can only be tokenized one way: single-turn prompts (`...USER: <image>\\n
    q ASSISTANT:`) get exactly training's ids for either flag; after a `</s>` (multi-turn prompts) a
    `legacy: false` run (Vicuna v1.5 as published) trained on "US" (3308) where this gives "▁US" (3148).
    With `legacy: false` a slow tokenizer would also drop the "▁" after `<image>`, which LLaVA never did
    (it tokenizes the text around the image separately)."""
    shutil.copyfile(sentencepiece_model(tokenizer, source), out / "tokenizer.model")
    (out / "tokenizer.json").write_text(tokenizer_json(tokenizer), encoding="utf-8")
    decoder = {int(i): _added_token(t) for i, t in sorted(tokenizer.added_tokens_decoder.items())}
    got = {d["content"]: i for i, d in decoder.items()}
    want = {"<unk>": 0, "<s>": 1, "</s>": 2, IMAGE_TOKEN: IMAGE_TOKEN_ID, PAD_TOKEN: PAD_TOKEN_ID}
    if {k: got.get(k) for k in want} != want:
        raise ValueError(f"tokenizer's added tokens {got} lack {want}")
    max_len = tokenizer.model_max_length if tokenizer.model_max_length < 10**9 else None
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(i): d for i, d in decoder.items()},
        "bos_token": "<s>",
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": True,
        "model_max_length": max_len or 10**30,
        "pad_token": PAD_TOKEN,
        "padding_side": "left",
        "processor_class": "LlavaProcessor",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special = {
        k: {**decoder[i], "normalized": False}
        for k, i in (("bos_token", 1), ("eos_token", 2), ("pad_token", PAD_TOKEN_ID), ("unk_token", 0))
    }
    special = {k: {f: v for f, v in d.items() if f != "special"} for k, d in special.items()}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    added = {d["content"]: i for i, d in decoder.items() if i >= 32000}
    (out / "added_tokens.json").write_text(json.dumps(added, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# processor


def image_processor_config(image_size: int) -> dict[str, Any]:
    """LLaVA-1.5 image preprocessing as `LlavaImageProcessor` settings: pad to square (CLIP mean colour,
    centred), resize the shortest edge (bicubic), centre crop, rescale, normalise (CLIP mean/std), RGB."""
    return {
        "crop_size": {"height": image_size, "width": image_size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_pad": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "processor_class": "LlavaProcessor",
        "resample": 3,  # PIL bicubic
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": image_size},
    }


def make_image_processor(image_size: int) -> Any:
    """The image processor of the export as a transformers object (the torchvision backend when
    available, else the PIL one; same steps)."""
    kwargs = {k: v for k, v in image_processor_config(image_size).items() if k != "processor_class"}
    try:
        import torchvision  # noqa: F401
        from transformers import LlavaImageProcessor

        cls: Any = LlavaImageProcessor
    except ImportError:
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        cls = LlavaImageProcessorPil
    return cls(**kwargs)


def write_processor(model: Any, out: Path, *, chat_template: str) -> None:
    vcfg = model.config.vision_config
    (out / "preprocessor_config.json").write_text(
        json.dumps(image_processor_config(vcfg.image_size), indent=2) + "\n"
    )
    processor = {
        "image_token": IMAGE_TOKEN,
        "num_additional_image_tokens": 1,  # CLIP's CLS token, dropped by the "default" strategy
        "patch_size": vcfg.patch_size,
        "processor_class": "LlavaProcessor",
        "vision_feature_select_strategy": model.config.vision_feature_select_strategy,
    }
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    (out / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# the folder


def save_hf_folder(
    model: Any,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    extra: dict | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    tokenizer_source: str | Path | None = None,
) -> Path:
    """Write the llava-hf layout (module docstring) to `out_dir`, atomically: everything goes to a
    sibling temp folder renamed into place. An existing `out_dir` is replaced only when it is an earlier
    export (holds `datamix_export.json`) or empty; anything else is refused. `tokenizer_source`: the
    tokenizer file / folder training read (its `tokenizer.model` is copied; default: the bundled one)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_RECORD).exists():
        raise FileExistsError(
            f"{out}: exists and is not an export of this trainer ({EXPORT_RECORD} missing); refusing to replace it"
        )
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.config.image_seq_length = (
            model.config.vision_config.image_size // model.config.vision_config.patch_size
        ) ** 2
        write_weights(hub_state_dict(model), tmp, max_shard_bytes=max_shard_bytes)
        (tmp / "config.json").write_text(json.dumps(hub_config(model), indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(hub_generation_config(model), indent=2) + "\n")
        write_tokenizer(tokenizer, tmp, chat_template=VICUNA_V1_CHAT_TEMPLATE, source=tokenizer_source)
        write_processor(model, tmp, chat_template=VICUNA_V1_CHAT_TEMPLATE)
        record = {
            "layout": "llava-hf/llava-1.5-7b-hf",
            "image_padding": "square, CLIP mean colour",
            "training_tokenizer_legacy": is_legacy(tokenizer),
            **(extra or {}),
        }
        (tmp / EXPORT_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s", out)
    return out


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, config: str | Path | None = None
) -> Path:
    """Export a trained model to a Hugging Face folder.

    `checkpoint`: a Hugging Face LLaVA folder (`config.json` + safetensors, as `init` and earlier exports
    write), a DeepSpeed checkpoint folder (ZeRO shards; consolidated with DeepSpeed's zero_to_fp32), or a
    `.safetensors`/`.pt` state dict. The last two need the run's TrainConfig: `config`, or a
    `train_config.json`/`config.yaml` in or above the checkpoint.
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    from trainer.templates import load_tokenizer

    ckpt = Path(checkpoint)
    if (ckpt / "config.json").exists() and json.loads((ckpt / "config.json").read_text()).get(
        "model_type"
    ) == "llava":
        model = LlavaForConditionalGeneration.from_pretrained(ckpt)
        tokenizer = load_tokenizer(ckpt, add_llava_tokens=True)
        return save_hf_folder(
            model, tokenizer, out_dir, extra={"checkpoint": str(ckpt)}, tokenizer_source=ckpt
        )

    from trainer.config import TrainConfig, load_config
    from trainer.model import build_model

    cfg_path = Path(config) if config else _find_config(ckpt)
    cfg = (
        TrainConfig.model_validate_json(cfg_path.read_text())
        if cfg_path.suffix == ".json"
        else load_config(cfg_path)
    )
    model, tokenizer = build_model(cfg.model)
    if ckpt.is_file():
        if ckpt.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(ckpt))
        else:
            state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    else:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=True)
    if missing or unexpected:
        raise ValueError(
            f"{ckpt}: state dict does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return save_hf_folder(
        model,
        tokenizer,
        out_dir,
        extra={"checkpoint": str(ckpt), "config": cfg.model_dump(mode="json")},
        tokenizer_source=cfg.model.tokenizer or cfg.model.llm,
    )


def _find_config(ckpt: Path) -> Path:
    for folder in (ckpt if ckpt.is_dir() else ckpt.parent, *ckpt.parents):
        for name in ("train_config.json", "config.yaml"):
            if (folder / name).exists():
                return folder / name
    raise FileNotFoundError(f"{ckpt}: no train_config.json/config.yaml found; pass --config")


def exported_files(folder: str | Path) -> Iterable[str]:
    """The file names of an export, weight shards folded to `model-*.safetensors` (for layout checks)."""
    for p in sorted(Path(folder).iterdir()):
        name = p.name
        if name.startswith("model-") and name.endswith(".safetensors"):
            name = "model-*.safetensors"
        yield name


__all__ = [
    "BUNDLED_SPM_MODEL",
    "VICUNA_V1_CHAT_TEMPLATE",
    "export_checkpoint",
    "exported_files",
    "hub_config",
    "hub_state_dict",
    "hub_weight_name",
    "image_processor_config",
    "make_image_processor",
    "save_hf_folder",
    "to_chat_messages",
    "write_weights",
]
