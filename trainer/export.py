"""Hugging Face export: a folder that plain transformers (and vLLM/SGLang) load with no project code.

Responsible for writing `LlavaForConditionalGeneration` weights (safetensors), the tokenizer (with
`<image>`/`<pad>` and SentencePiece's whitespace rule), and a `LlavaProcessor` whose image processor
pads to a square with the CLIP mean colour before the CLIP steps (training.md "Images": LLaVA
`image_aspect_ratio = pad`; transformers' `LlavaImageProcessor(do_pad=True)` does exactly that) and
whose Jinja chat template renders the vicuna_v1 prompt used in training (`trainer.templates.render`).

Chat messages: `{"role": "system"|"user"|"assistant", "content": str | [{"type": "image"},
{"type": "text", "text": ...}]}`. Rendering (no BOS: the processor's tokenizer adds it, as for llava-hf models):

    SYSTEM USER: <image>\\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT:

A system message replaces the default vicuna_v1 system prompt.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from trainer.templates import VICUNA_V1_SYSTEM

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

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
    "{{- 'ASSISTANT: ' + " + _TEXT + " + '</s>' -}}"
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


def make_image_processor(image_size: int) -> Any:
    """LLaVA-1.5 image preprocessing: pad to square (CLIP mean colour, centred), resize shortest edge
    (bicubic), centre crop, rescale, normalise (CLIP mean/std), RGB first."""
    try:  # the torchvision backend when available, else the PIL one (same steps)
        import torchvision  # noqa: F401
        from transformers import LlavaImageProcessor as cls
    except ImportError:
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil as cls
    return cls(
        do_pad=True,
        do_resize=True,
        size={"shortest_edge": image_size},
        resample=3,  # PIL bicubic
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )


def save_hf_folder(model: Any, tokenizer: Any, out_dir: str | Path, *, extra: dict | None = None) -> Path:
    """Write model (safetensors), tokenizer, processor and chat template to `out_dir`."""
    from transformers import LlavaProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vcfg = model.config.vision_config
    model.config.image_seq_length = (vcfg.image_size // vcfg.patch_size) ** 2
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.chat_template = VICUNA_V1_CHAT_TEMPLATE
    processor = LlavaProcessor(
        image_processor=make_image_processor(vcfg.image_size),
        tokenizer=tokenizer,
        patch_size=vcfg.patch_size,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        num_additional_image_tokens=1,  # the CLS token of CLIP
        chat_template=VICUNA_V1_CHAT_TEMPLATE,
        image_token="<image>",
    )
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if extra:
        (out / "datamix_export.json").write_text(json.dumps(extra, indent=2, sort_keys=True, default=str))
    log.info("exported %s", out)
    return out


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, *, config: str | Path | None = None) -> Path:
    """Export a trained model to a Hugging Face folder.

    `checkpoint`: a Hugging Face LLaVA folder (`config.json` + safetensors, as `init` writes), a
    DeepSpeed checkpoint folder (ZeRO shards; consolidated with DeepSpeed's zero_to_fp32), or a
    `.safetensors`/`.pt` state dict. The last two need the run's TrainConfig: `config`, or a
    `train_config.json`/`config.yaml` in or above the checkpoint.
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    from trainer.templates import load_tokenizer

    ckpt = Path(checkpoint)
    if (ckpt / "config.json").exists() and json.loads((ckpt / "config.json").read_text()).get("model_type") == "llava":
        model = LlavaForConditionalGeneration.from_pretrained(ckpt)
        tokenizer = load_tokenizer(ckpt, add_llava_tokens=True)
        return save_hf_folder(model, tokenizer, out_dir, extra={"checkpoint": str(ckpt)})

    from trainer.config import TrainConfig, load_config
    from trainer.model import build_model

    cfg_path = Path(config) if config else _find_config(ckpt)
    cfg = (
        TrainConfig.model_validate_json(cfg_path.read_text()) if cfg_path.suffix == ".json" else load_config(cfg_path)
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
        raise ValueError(f"{ckpt}: state dict does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return save_hf_folder(model, tokenizer, out_dir, extra={"checkpoint": str(ckpt), "config": cfg.model_dump(mode="json")})


def _find_config(ckpt: Path) -> Path:
    for folder in (ckpt if ckpt.is_dir() else ckpt.parent, *ckpt.parents):
        for name in ("train_config.json", "config.yaml"):
            if (folder / name).exists():
                return folder / name
    raise FileNotFoundError(f"{ckpt}: no train_config.json/config.yaml found; pass --config")


__all__ = ["VICUNA_V1_CHAT_TEMPLATE", "export_checkpoint", "make_image_processor", "save_hf_folder", "to_chat_messages"]
