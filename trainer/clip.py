"""`python -m trainer clip`: contrastive (CLIP) pretraining of the tiny preset's vision tower.

LLaVA-1.5 starts from a CLIP tower that already sees: OpenAI pretrained it contrastively on
image-caption pairs. The tiny preset's tower is random, and measured on the demo's data the LLaVA
losses teach it shapes very slowly (a random tower trained through a random LLM was still below the
colour-presence level after 1,500 stage-2 steps). This command gives the tiny preset the same kind
of start: a tiny CLIP (the train config's vision tower + a small text tower) trained with the
symmetric InfoNCE loss on the (image, caption) pairs of a caption mix, e.g. the stage-1 mix. The
vision tower is saved as a `CLIPVisionModel` folder; `model.vision_tower: <folder>` beside
`preset: tiny` makes the train configs start from it.

Text tower input: BOS + caption tokens (the first answer turn of each record, truncated) + EOS; its
feature is the EOS position's hidden state (CLIP's pooling), projected. Image feature: the mean of the
patch tokens of the layer LLaVA reads (`model.vision_feature_layer`, CLS dropped), through the
tower's post-layernorm and projection. CLIP itself pools the last layer's CLS, but then nothing
trains the patch tokens LLaVA feeds the LLM: measured on fresh synth scenes (600 steps, batches of
64), a probe on the frozen patch tokens read colour-of-shape at 0.65 with CLS pooling and 0.86 with
patch pooling plus the negatives below (label-trained tower: 0.90).

Hard negatives (`swap_words`, as NegCLIP, Yuksekgonul et al. 2023): a batch of random captions is
told apart by which colours and which shapes it names, so the contrastive loss never needs to know
which colour belongs to which shape. For every caption naming two or more distinct swap words, the
same caption with those words rotated ("a red circle and a blue square" -> "a blue circle and a red
square") joins the batch's captions as one more wrong caption for every image, its own above all.
Samples without an image or without a caption are skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainer.config import TrainConfig, load_config
from trainer.data import ShardLoader, ShardStream, SkipSample
from trainer.images import ImageProcessor
from trainer.loop import batches_forever, check_presize
from trainer.model import tiny_configs
from trainer.templates import PAD_TOKEN_ID, load_tokenizer

log = logging.getLogger(__name__)

TEXT_HIDDEN = 64
TEXT_LAYERS = 2
TEXT_HEADS = 4
BOS_ID, EOS_ID = 1, 2


class CaptionTransform:
    """record -> {"input_ids": BOS + caption tokens + EOS} (caption = the record's first answer turn)."""

    def __init__(self, tokenizer: Any, max_tokens: int, swap_words: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.swap_words = frozenset(swap_words)

    def encode(self, caption: str) -> list[int]:
        ids = self.tokenizer(caption, add_special_tokens=False).input_ids[: self.max_tokens - 2]
        return [BOS_ID, *ids, EOS_ID]

    def __call__(self, record: dict[str, Any], image: torch.Tensor | None) -> dict[str, Any]:
        if image is None:
            raise SkipSample("no image")
        caption = next(
            (t.get("value") for t in record["conversations"] if t.get("from") in ("gpt", "assistant")), None
        )
        if not isinstance(caption, str) or not caption.strip():
            raise SkipSample("no caption")
        caption = caption.strip()
        swapped = swap_words(caption, self.swap_words) if self.swap_words else None
        return {"input_ids": self.encode(caption), "negative_ids": self.encode(swapped) if swapped else None}


def swap_words(caption: str, words: frozenset[str] | set[str]) -> str | None:
    """`caption` with its words from `words` rotated by one place (each takes the next one's word);
    None when fewer than two distinct such words occur (no different caption can be made)."""
    parts = re.split(r"(\w+)", caption)
    at = [i for i, w in enumerate(parts) if w in words]
    found = [parts[i] for i in at]
    if len(set(found)) < 2:
        return None
    for i, w in zip(at, found[1:] + found[:1], strict=True):
        parts[i] = w
    return "".join(parts)


def build_clip(cfg: TrainConfig, vocab_size: int, max_tokens: int) -> Any:
    """A random tiny CLIPModel: the train config's tiny vision tower + a small text tower."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    vision, _ = tiny_configs(cfg.model)
    text = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=TEXT_HEADS,
        max_position_embeddings=max_tokens,
        projection_dim=vision.hidden_size,
        pad_token_id=PAD_TOKEN_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        hidden_act="quick_gelu",
    )
    config = CLIPConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=vision.hidden_size
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.model.tiny.init_seed)
        return CLIPModel(config)


def image_features(model: Any, pixel_values: torch.Tensor, feature_layer: int) -> torch.Tensor:
    """Mean of the patch tokens (CLS dropped) of hidden layer `feature_layer`, post-layernorm, projected."""
    hidden = model.vision_model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[
        feature_layer
    ]
    return model.visual_projection(model.vision_model.post_layernorm(hidden[:, 1:].mean(1)))


def text_features(model: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    hidden = model.text_model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    last = mask.sum(1) - 1  # the EOS of each row (rows are right-padded)
    return model.text_projection(hidden[torch.arange(hidden.shape[0]), last])


def clip_loss(model: Any, batch: dict[str, Any], feature_layer: int = -1) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (each image's caption against every other caption); the
    hard negatives (`negative_ids`) join the captions every image is scored against."""
    image = F.normalize(image_features(model, batch["pixel_values"], feature_layer), dim=-1)
    text = F.normalize(text_features(model, batch["input_ids"], batch["attention_mask"]), dim=-1)
    scale = model.logit_scale.exp()
    logits = scale * image @ text.T
    target = torch.arange(logits.shape[0])
    per_image = logits
    negatives = [n for n in batch.get("negative_ids") or () if n is not None]
    if negatives:
        ids = torch.full((len(negatives), max(map(len, negatives))), PAD_TOKEN_ID, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, n in enumerate(negatives):
            ids[i, : len(n)] = torch.as_tensor(n)
            mask[i, : len(n)] = 1
        wrong = F.normalize(text_features(model, ids, mask), dim=-1)
        per_image = torch.cat([logits, scale * image @ wrong.T], dim=1)
    return (F.cross_entropy(per_image, target) + F.cross_entropy(logits.T, target)) / 2


def save_vision_tower(model: Any, out: Path, summary: dict[str, Any]) -> Path:
    """The CLIP's vision tower as a `CLIPVisionModel` folder with `clip_pretrain.json` (`summary`),
    written to a temp folder and renamed, so a folder at `out` is always complete."""
    from transformers import CLIPVisionModel

    tower = CLIPVisionModel(model.config.vision_config)
    tower.load_state_dict(model.vision_model.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tower.save_pretrained(tmp)
    (tmp / "clip_pretrain.json").write_text(json.dumps(summary, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def pretrain(
    cfg: TrainConfig,
    out: Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    max_tokens: int = 32,
    swap: Sequence[str] = (),
) -> dict[str, Any]:
    """Train a tiny CLIP on `cfg.data.mix` for `steps` batches; save its vision tower to `out`."""
    if cfg.model.preset != "tiny":
        raise ValueError("clip: pretraining is for the tiny preset (real runs start from a pretrained CLIP)")
    check_presize(cfg.data.mix, cfg.model.image_size)
    tokenizer = load_tokenizer(cfg.model.tokenizer, add_llava_tokens=True)
    torch.manual_seed(cfg.seed)
    model = build_clip(cfg, len(tokenizer), max_tokens)
    model.train()
    stream = ShardStream(
        cfg.data.mix,
        batch_size=batch_size,
        transform=CaptionTransform(tokenizer, max_tokens, swap),
        image_processor=ImageProcessor(size=cfg.model.image_size),
        pad_id=PAD_TOKEN_ID,
        rank=0,
        world_size=1,
        seed=cfg.seed,
        shuffle_buffer=max(1, cfg.data.shuffle_buffer),
        group_by_modality_length=False,
        drop_last=True,
    )
    loader = ShardLoader(stream, num_workers=0)
    batches = batches_forever(loader)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warm = max(1, math.ceil(0.03 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))
        ),
    )
    losses: list[float] = []
    t0 = time.perf_counter()
    every = max(1, steps // 10)
    for step in range(1, steps + 1):
        batch = next(batches)
        if batch["pixel_values"] is None or batch["pixel_values"].shape[0] < 2:
            raise RuntimeError(
                f"{cfg.data.mix}: a batch with fewer than 2 captioned images; clip needs pairs"
            )
        loss = clip_loss(model, batch, cfg.model.vision_feature_layer)
        if not torch.isfinite(loss):
            raise RuntimeError(f"clip: non-finite loss {loss.item()} at step {step}; nothing saved")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % every == 0 or step == steps:
            recent = losses[-every:]
            log.info(
                "clip step %d/%d loss %.4f (%.1fs)",
                step,
                steps,
                sum(recent) / len(recent),
                time.perf_counter() - t0,
            )
    summary = {
        "out": str(out),
        "steps": steps,
        "batch_size": batch_size,
        "swap_words": sorted(set(swap)),
        "feature_layer": cfg.model.vision_feature_layer,
        "first_loss": losses[0],
        "final_loss": sum(losses[-every:]) / len(losses[-every:]),
        "skipped": {k: v for k, v in loader.skipped.items() if v},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_vision_tower(model, out, summary)
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", required=True, type=Path, help="a tiny train config (its model and data.mix are used)"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--out", required=True, type=Path, help="folder for the pretrained CLIPVisionModel")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64, help="images per contrastive batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--swap-words",
        default="",
        metavar="W1,W2,...",
        help="comma-separated words (e.g. the colour names) rotated within a caption to make its hard negative",
    )


def run(args: argparse.Namespace) -> int:
    from datamix.errors import UsageError
    from trainer.data import list_shards

    cfg = load_config(args.config, args.set)
    if args.steps < 1 or args.batch_size < 2:
        raise UsageError("--steps must be >= 1 and --batch-size >= 2")
    list_shards(cfg.data.mix)  # a missing mix: one line, before the model is built
    swap = [w.strip() for w in args.swap_words.split(",") if w.strip()]
    summary = pretrain(cfg, args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, swap=swap)
    print(json.dumps(summary))
    return 0
