"""Training configuration: the pydantic `TrainConfig` (recipes/train/*.yaml) and the DeepSpeed JSON built from it.

Responsible for validating a run's settings at the boundary (extra="forbid": a misspelt key is an
error naming the key and the file) and for deriving what follows from them: gradient accumulation
from the global batch (docs/trainer.md#batch-size;
values that do not divide are refused), precision (bf16 on GPU, fp32 on CPU), the ZeRO stage
(LLaVA `scripts/zero2.json` for stage 1, `scripts/zero3.json` for stage 2) and which parts train.

This module imports neither torch nor transformers.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datamix import yamlio
from datamix.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A train config, override or derived value the trainer cannot run with (exit 2; docs/trainer.md#errors).
    Also a `ValueError`, as these were before the error contract."""


class MissingInput(UsageError, FileNotFoundError):
    """A file or folder the command needs is not there (exit 2), named by its path."""


def looks_local(name: str | Path) -> bool:
    """A model or tokenizer reference meant as a local path rather than a hub id (`org/name`): an
    absolute, relative (`./`, `../`) or home path, more than one `/`, or a file name."""
    text = str(name)
    return (
        text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.endswith((".model", ".gguf", ".json"))
    )


CLIP_L14_336 = "openai/clip-vit-large-patch14-336"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TinySizes(_Strict):
    """Sizes of the random `tiny` preset (CLIPVisionConfig + LlamaConfig built from scratch)."""

    vision_hidden_size: int = Field(96, gt=0)
    vision_layers: int = Field(3, gt=0)
    vision_heads: int = Field(4, gt=0)
    vision_intermediate_size: int = Field(384, gt=0)
    llm_hidden_size: int = Field(128, gt=0)
    llm_layers: int = Field(3, gt=0)
    llm_heads: int = Field(4, gt=0)
    llm_kv_heads: int = Field(4, gt=0)
    llm_intermediate_size: int = Field(352, gt=0)
    max_position_embeddings: int = Field(2048, gt=0)
    init_seed: int = 0

    @model_validator(mode="after")
    def _heads_divide(self) -> TinySizes:
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError(
                f"vision_hidden_size {self.vision_hidden_size} not divisible by vision_heads {self.vision_heads}"
            )
        if self.llm_hidden_size % self.llm_heads or self.llm_heads % self.llm_kv_heads:
            raise ValueError(
                f"llm_hidden_size {self.llm_hidden_size} / llm_heads {self.llm_heads} / llm_kv_heads {self.llm_kv_heads} do not divide"
            )
        return self


class ModelConfig(_Strict):
    """What to assemble: the `tiny` preset, or a CLIP vision tower + a Llama LLM (local folders or hub ids)."""

    preset: Literal["tiny"] | None = None
    vision_tower: str | None = None  # e.g. openai/clip-vit-large-patch14-336 or a local folder; tiny:
    # optional, a folder from `python -m trainer clip` (a CLIP-pretrained tiny tower)
    llm: str | None = None  # e.g. lmsys/vicuna-7b-v1.5 or a local folder
    tokenizer: str | None = None  # default: the LLM's folder; tiny: trainer/assets LLaMA vocabulary
    image_size: int = Field(336, gt=0)  # must equal the vision tower's; tiny: 112
    patch_size: int = Field(14, gt=0)
    vision_feature_layer: int = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"  # default: CLS dropped
    # mlp2x_gelu: Linear -> GELU -> Linear (LLaVA-1.5); linear: one Linear (LLaVA, the paper's Table 2
    # baseline), held in the same two-layer module with an identity activation and a frozen identity
    # second layer, so the export stays a standard LlavaForConditionalGeneration
    projector: Literal["mlp2x_gelu", "linear"] = "mlp2x_gelu"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] = "sdpa"
    tiny: TinySizes = Field(default_factory=TinySizes)

    @model_validator(mode="after")
    def _source(self) -> ModelConfig:
        if self.preset is None and not (self.vision_tower and self.llm):
            raise ValueError("model: give `preset: tiny`, or both `vision_tower` and `llm`")
        if self.preset is not None and self.llm:
            raise ValueError(
                "model: `preset` excludes `llm` (`vision_tower` may name a pretrained tiny tower)"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"model: image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        return self

    @property
    def image_seq_length(self) -> int:
        """Image tokens in the LLM sequence: (image_size / patch_size)^2, +1 with the CLS kept."""
        n = (self.image_size // self.patch_size) ** 2
        return n + (1 if self.vision_feature_select_strategy == "full" else 0)


class DataConfig(_Strict):
    mix: Path  # a mix folder: shards/*.tar + manifest.parquet (datamix build)
    eval: Path | None = None  # a held-out mix folder for `python -m trainer eval`
    num_workers: int = Field(2, ge=0)
    shuffle_buffer: int = Field(1000, ge=0)
    group_by_modality_length: bool = False  # LLaVA stage 2: --group_by_modality_length True


class TrainConfig(_Strict):
    """One training run (one stage). Official values: docs/trainer.md#hyperparameters."""

    name: str
    model: ModelConfig
    stage: Literal[1, 2]
    template: Literal["plain", "vicuna_v1"]
    data: DataConfig
    pretrained_projector: Path | None = None  # stage 2: stage 1's output (folder or projector file)

    global_batch_size: int = Field(gt=0)
    per_device_batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    vision_tower_learning_rate: float | None = Field(None, gt=0)  # default: learning_rate
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: Literal["cosine"] = "cosine"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: float | None = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)  # wins over epochs when set
    max_length: int = Field(2048, gt=0)  # model_max_length, checked after image expansion

    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    tf32: bool = True
    zero_stage: Literal[0, 1, 2, 3] = 2
    gradient_checkpointing: bool = True
    train_vision_tower: bool = False  # released LLaVA-1.5 code: frozen in both stages
    train_llm: bool = (
        False  # default: stage 2 only (docs/trainer.md#freezing); a tiny random LLM may learn in stage 1 too
    )
    loss_on_labelled_only: bool = True  # lm_head only where labels are set (exact; ~5x faster on tiny)
    packing: bool = False  # a micro batch's samples end to end in rows of <= max_length (trainer/packing.py)

    logging_steps: int = Field(1, gt=0)
    save_steps: int = Field(1000, gt=0)
    save_total_limit: int | None = Field(None, gt=0)
    checkpoint_at_end: bool = (
        True  # false: no DeepSpeed checkpoint after the last step, `final/` only (benchmarks)
    )
    eval_steps: int | None = Field(None, gt=0)
    tensorboard: bool = False
    seed: int = 42
    output_dir: Path

    @model_validator(mode="before")
    @classmethod
    def _default_train_llm(cls, data: Any) -> Any:
        """Stage 1 trains the projector only; stage 2 the projector and the LLM (docs/trainer.md#freezing)."""
        if isinstance(data, dict) and data.get("train_llm") is None:
            data = {**data, "train_llm": data.get("stage") == 2}
        return data

    @model_validator(mode="after")
    def _checks(self) -> TrainConfig:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("give `epochs` or `max_steps`")
        if self.global_batch_size % self.per_device_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size}"
            )
        if self.stage == 1 and self.pretrained_projector is not None:
            raise ValueError(
                "pretrained_projector is for stage 2 (stage 1 trains the projector from scratch)"
            )
        return self

    @property
    def image_seq_length(self) -> int:
        return self.model.image_seq_length

    def gradient_accumulation_steps(self, world_size: int) -> int:
        return gradient_accumulation(self.global_batch_size, self.per_device_batch_size, world_size)

    def resolved_precision(self, on_gpu: bool) -> Literal["bf16", "fp32"]:
        if self.precision == "auto":
            return "bf16" if on_gpu else "fp32"
        return self.precision


def gradient_accumulation(global_batch: int, per_device_batch: int, world_size: int) -> int:
    """global = per-device x accumulation x world size; refuse what does not divide."""
    if world_size <= 0:
        raise ConfigError(f"world_size must be positive, got {world_size}")
    per_step = per_device_batch * world_size
    if global_batch % per_step:
        raise ConfigError(
            f"global_batch_size {global_batch} is not divisible by per_device_batch_size {per_device_batch} "
            f"x world_size {world_size} = {per_step}; choose per_device_batch_size so that it divides "
            f"(e.g. {_divisor_hint(global_batch, world_size)})"
        )
    return global_batch // per_step


def _divisor_hint(global_batch: int, world_size: int) -> str:
    if global_batch % world_size:
        return f"world_size {world_size} does not divide {global_batch} at all"
    per_gpu = global_batch // world_size
    options = [d for d in range(1, per_gpu + 1) if per_gpu % d == 0]
    return "per_device_batch_size in " + ", ".join(map(str, options[-6:]))


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML recipe; `overrides` are `dotted.key=yaml_value` strings (e.g. `max_steps=10`).

    Every problem is a `ConfigError` (or `MissingInput`) with one line naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput("no such train config" + (" (a folder)" if path.is_dir() else ""), path=path)
    try:
        raw = yamlio.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start})", path=path) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"not a valid train config: {_one_line(err)}", path=path) from None
    except ValueError as err:  # datamix.yamlio's own refusals (e.g. too many aliases)
        raise ConfigError(_one_line(err), path=path) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level", path=path)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. --set max_steps=10)")
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a mapping")
        try:
            node[leaf] = yamlio.loads(value)
        except (yaml.YAMLError, ValueError) as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {_one_line(err)}") from None
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"invalid train config: {_validation_line(err)}", path=path) from None


def _one_line(err: BaseException | str, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The known keys of the config section at `loc` (for "did you mean")."""
    model: Any = TrainConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        model = getattr(field, "annotation", None) if field is not None else None
        if model is None:
            return []
        if not isinstance(model, type):  # X | None
            model = next(
                (
                    a
                    for a in getattr(model, "__args__", ())
                    if isinstance(a, type) and issubclass(a, BaseModel)
                ),
                None,
            )
            if model is None:
                return []
    return list(getattr(model, "model_fields", {}))


def _validation_line(err: ValidationError, shown: int = 3) -> str:
    """pydantic's errors as one line: `key: problem` for the first few, no input values (a value can be
    huge: an alias bomb took 21 s and 848 MB to print)."""
    parts = []
    errors = err.errors(include_url=False, include_context=False, include_input=False)
    for e in errors[:shown]:
        loc = tuple(e.get("loc", ()))
        where = ".".join(str(x) for x in loc) or "(top level)"
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            near = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1)
            msg = "unknown key" + (
                f" (did you mean {'.'.join([*map(str, loc[:-1]), near[0]])}?)" if near else ""
            )
        elif e.get("type") == "missing":
            msg = "missing (required)"
        parts.append(f"{where}: {_one_line(msg, 160)}")
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more


_MIN_BUCKET = 4096 * 4096  # elements: hidden^2 of the 7B model


def deepspeed_config(
    cfg: TrainConfig,
    world_size: int,
    *,
    on_gpu: bool = True,
    total_steps: int | None = None,
    hidden_size: int | None = None,
) -> dict[str, Any]:
    """The DeepSpeed JSON for `cfg` on `world_size` ranks.

    Values follow LLaVA `scripts/zero2.json` / `zero3.json`, with their "auto" entries (filled in by
    the HF Trainer there) resolved here: reduce bucket hidden^2, ZeRO-3 prefetch 0.9 hidden^2,
    persistence threshold 10 hidden (transformers' integration rule), with buckets never below 4096^2
    elements (the 7B value): hidden^2 of a tiny model is a 9K-element bucket, ~1000 collective calls
    per step, which made tiny CPU steps 2x slower. `total_steps` adds DeepSpeed's
    WarmupCosineLR (linear warmup from 0 over warmup_ratio, cosine to 0, as HF's cosine schedule);
    without it the loop brings its own scheduler. The optimizer is AdamW with `torch_adam` (no CUDA
    JIT build; docs/trainer.md#deepspeed). On CPU precision is fp32 whatever `precision` says ("auto").
    """
    accumulation = cfg.gradient_accumulation_steps(world_size)
    precision = cfg.resolved_precision(on_gpu)
    if precision == "bf16" and not on_gpu:
        raise ConfigError("precision bf16 asked for a CPU run; use precision: auto or fp32")
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage >= 2:
        zero.update(overlap_comm=on_gpu, contiguous_gradients=True, sub_group_size=int(1e9))
    bucket = max(hidden_size * hidden_size, _MIN_BUCKET) if hidden_size else None
    if bucket and cfg.zero_stage >= 2:
        zero["reduce_bucket_size"] = bucket
    if cfg.zero_stage == 3:
        zero.update(
            stage3_max_live_parameters=int(1e9),
            stage3_max_reuse_distance=int(1e9),
            stage3_gather_16bit_weights_on_model_save=True,
        )
        if hidden_size and bucket:
            zero["stage3_prefetch_bucket_size"] = int(0.9 * bucket)
            zero["stage3_param_persistence_threshold"] = 10 * hidden_size
    ds: dict[str, Any] = {
        "train_batch_size": cfg.global_batch_size,
        "train_micro_batch_size_per_gpu": cfg.per_device_batch_size,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": cfg.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": False},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": cfg.learning_rate,
                "betas": [cfg.adam_beta1, cfg.adam_beta2],
                "eps": cfg.adam_epsilon,
                "weight_decay": cfg.weight_decay,
                "torch_adam": True,
            },
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if total_steps is not None:
        warmup = max(int(round(cfg.warmup_ratio * total_steps)), 1)  # DeepSpeed requires >= 1
        ds["scheduler"] = {
            "type": "WarmupCosineLR",
            "params": {
                "total_num_steps": total_steps,
                "warmup_num_steps": warmup,
                "warmup_min_ratio": 0.0,
                "cos_min_ratio": 0.0,
                "warmup_type": "linear",
            },
        }
    return ds


def dump_config(cfg: TrainConfig) -> str:
    """The resolved config as JSON (recorded beside every output; house style 12)."""
    return json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True)
