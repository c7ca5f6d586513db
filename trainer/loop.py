"""`python -m trainer train`: one LLaVA-1.5 stage with DeepSpeed, from a mix folder's shards.

Responsible for: distributed setup (launched by `deepspeed`, `torchrun`, or as a plain single
process), the DeepSpeed engine built from the train config (`trainer.config.deepspeed_config`:
ZeRO-2/3, AdamW, linear warmup + cosine), the step loop (micro batches -> `labelled_loss` ->
backward -> optimizer step every `gradient_accumulation_steps`), logging (console, `log.jsonl`,
optional TensorBoard: loss, learning rate, grad norm, tokens/s, MFU), periodic and final checkpoints
with model, optimizer, scheduler, step and every rank's data position, `--resume`, and the outputs a
later stage or `export` starts from (`final/`: a Hugging Face folder; stage 1 also `stage1.safetensors`),
with `partition.json` (the parameter elements each rank holds after loading: under ZeRO-3 the
pretrained model is built partitioned, `trainer.model.build_model(zero3_config=...)`).

Every rank runs the same number of optimizer steps: a rank whose shards run out starts its next epoch
(shard-level splitting can leave ranks with unequal sample counts), so no rank waits on another.
A non-finite loss on any rank stops the run on all ranks with a clear message; the last good
checkpoint stays as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch

from datamix.errors import DataError, UsageError
from trainer.config import (
    ConfigError,
    MissingInput,
    TrainConfig,
    deepspeed_config,
    dump_config,
    load_config,
    looks_local,
)
from trainer.data import ShardLoader, ShardStream, SkipSample, list_shards
from trainer.images import ImageProcessor
from trainer.model import (
    apply_freezing,
    build_model,
    held_numel,
    labelled_loss,
    llm_hidden_size,
    numel,
    parameter_groups,
    save_stage1_parts,
)
from trainer.packing import pack_batch, padding_stats
from trainer.templates import PAD_TOKEN_ID, EncodeError, EncodeStats, encode, get_template

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL = "final"
CONFIG_FILE = "train_config.json"

# dense bf16 peak FLOP/s per device, for the MFU estimate (override with DATAMIX_PEAK_FLOPS)
_PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


class NonFiniteLoss(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# distributed setup


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); a plain `python -m trainer train` is a world of one."""
    import deepspeed

    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return rank, world, local


def peak_flops() -> float | None:
    env = os.environ.get("DATAMIX_PEAK_FLOPS")
    if env:
        return float(env)
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in _PEAK_FLOPS.items() if k in name), None)


# --------------------------------------------------------------------------------------------
# data


class Transform:
    """record + image -> model inputs: template encoding (exact masks) and image-token expansion."""

    def __init__(self, tokenizer: Any, cfg: TrainConfig):
        self.tokenizer = tokenizer
        self.template = get_template(cfg.template)
        self.max_length = cfg.max_length
        self.n_image = cfg.image_seq_length
        self.stats = EncodeStats()

    def __call__(self, record: dict[str, Any], image: torch.Tensor | None) -> dict[str, Any]:
        try:
            enc = encode(
                record["conversations"],
                self.tokenizer,
                self.template,
                has_image=image is not None,
                max_length=self.max_length,
                image_seq_length=self.n_image,
            )
        except EncodeError as e:
            self.stats.fail(e)
            raise SkipSample(f"{e.reason.value}: {e}") from None
        self.stats.add(enc)
        ids, labels = enc.expanded()
        return {"input_ids": ids, "labels": labels}


def check_presize(mix: Path | str, image_size: int) -> None:
    """A mix built with `shards: presize` stores squares of one size: refuse a model of another size
    (the images would be resized a second time, silently)."""
    summary = Path(mix) / "summary.json"
    presize = json.loads(summary.read_text()).get("presize") if summary.is_file() else None
    if presize and int(presize.get("size", image_size)) != image_size:
        raise ConfigError(
            f"{mix}: images were presized to {presize['size']} px at build time but model.image_size is "
            f"{image_size}; rebuild the mix with shards.presize.size: {image_size} or without presize"
        )


def make_loader(cfg: TrainConfig, tokenizer: Any, rank: int, world: int) -> tuple[ShardLoader, Transform]:
    check_presize(cfg.data.mix, cfg.model.image_size)
    transform = Transform(tokenizer, cfg)
    stream = ShardStream(
        cfg.data.mix,
        batch_size=cfg.per_device_batch_size,
        transform=transform,
        image_processor=ImageProcessor(size=cfg.model.image_size),
        pad_id=PAD_TOKEN_ID,
        rank=rank,
        world_size=world,
        seed=cfg.seed,
        shuffle_buffer=max(1, cfg.data.shuffle_buffer),
        group_by_modality_length=cfg.data.group_by_modality_length,
    )
    return ShardLoader(stream, num_workers=cfg.data.num_workers), transform


def preflight(cfg: TrainConfig, *, resume: bool = False, world: int | None = None) -> list[str] | None:
    """What can be checked without building a model, checked before it is built (a 7B model takes
    minutes): the mix folder and its manifest, the presize, the local model, tokenizer and projector
    paths, the output folder and, with `resume`, that a complete checkpoint exists (returned: the
    complete checkpoints, newest first). Raises `UsageError`s naming the file and the key."""
    mix = Path(cfg.data.mix)
    try:
        list_shards(mix)
    except MissingInput as e:
        raise MissingInput(f"data.mix: {e.message}", path=mix) from None
    if cfg.max_steps is None and not (mix / "manifest.parquet").is_file():
        raise MissingInput(
            "data.mix: no manifest.parquet (it counts the epoch's steps; or set max_steps)", path=mix
        )
    check_presize(mix, cfg.model.image_size)
    for key, value in (
        ("model.vision_tower", cfg.model.vision_tower),
        ("model.llm", cfg.model.llm),
        ("model.tokenizer", cfg.model.tokenizer),
        ("pretrained_projector", cfg.pretrained_projector),
    ):
        if (
            value is not None
            and not Path(str(value)).expanduser().exists()
            and (key == "pretrained_projector" or looks_local(value))
        ):
            raise MissingInput(f"{key}: no such file or folder", path=value)
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise UsageError("output_dir: exists and is not a folder", path=out)
    if resume:
        return resume_candidates(cfg, world if world is not None else int(os.environ.get("WORLD_SIZE", "1")))
    return None


def count_samples(mix: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(Path(mix) / "manifest.parquet").metadata.num_rows


def total_steps(cfg: TrainConfig) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil((cfg.epochs or 1.0) * count_samples(cfg.data.mix) / cfg.global_batch_size))


def batches_forever(loader: ShardLoader):
    """Micro batches across epoch boundaries; an epoch that yields nothing at all is an error."""
    while True:
        got = False
        for batch in loader:
            got = True
            yield batch
        if not got:
            raise DataError(
                f"no usable sample for this rank (skipped: {loader.skipped})", path=loader.dataset.mix_dir
            )


# --------------------------------------------------------------------------------------------
# checkpoints


def _ckpt_root(cfg: TrainConfig) -> Path:
    return Path(cfg.output_dir) / CHECKPOINTS


COMPLETE = "complete.json"  # written last into a checkpoint, before it is published
STAGING = ".partial"  # DeepSpeed and the data states write here; a complete step is renamed out
KILL_ENV = "DATAMIX_TEST_KILL_AT"  # test-only: "<point>:<step>" kills the process there (os._exit(137))


def _test_kill(point: str, step: int) -> None:
    """Test-only fault injection (tests/reliability/test_trainer_resume.py): `DATAMIX_TEST_KILL_AT=
    <point>:<step>` ends the process abruptly at that point of saving that step, as a kill would.
    Points: `after-deepspeed` (model/optimizer files written, data states not), `before-publish`
    (everything written and marked complete, not renamed), `before-latest` (published, `latest` not
    updated)."""
    if os.environ.get(KILL_ENV) == f"{point}:{step}":
        log.warning("%s=%s: killing the process (test-only fault injection)", KILL_ENV, os.environ[KILL_ENV])
        logging.shutdown()
        os._exit(137)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def save_checkpoint(engine: Any, cfg: TrainConfig, step: int, loader: ShardLoader, rank: int) -> Path:
    """Write the checkpoint of `step` so that a kill at any moment leaves either the complete checkpoint
    or none (docs/trainer.md#checkpoints): every rank writes into `checkpoints/.partial/step-N/`
    (DeepSpeed's model, optimizer and scheduler state, then `data-rank<r>.json`); once all have,
    rank 0 writes `complete.json` (every file's size), renames the folder to `checkpoints/step-N/`
    and only then points `latest` at it."""
    import torch.distributed as dist

    root = _ckpt_root(cfg)
    tag = f"step-{step:07d}"
    staging = root / STAGING
    if rank == 0 and (staging / tag).exists():
        shutil.rmtree(staging / tag)  # left by a save that was killed
    dist.barrier()
    engine.save_checkpoint(str(staging), tag=tag, client_state={"step": step}, save_latest=False)
    _test_kill("after-deepspeed", step)
    data_state = {"step": step, "loader": loader.state_dict()}
    _write_atomic(staging / tag / f"data-rank{rank}.json", json.dumps(data_state))
    dist.barrier()
    if rank == 0:
        files = {p.name: p.stat().st_size for p in sorted((staging / tag).iterdir()) if p.is_file()}
        _write_atomic(
            staging / tag / COMPLETE,
            json.dumps({"step": step, "world_size": dist.get_world_size(), "files": files}),
        )
        _test_kill("before-publish", step)
        target = root / tag
        if target.exists():  # an older save of this step (e.g. damaged, resumed from before it)
            old = root / f"{STAGING}-old-{tag}"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        (staging / tag).rename(target)
        for script in staging.glob("*.py"):  # DeepSpeed's zero_to_fp32.py etc. belong beside `latest`
            script.replace(root / script.name)
        with contextlib.suppress(OSError):
            staging.rmdir()  # when empty
        _test_kill("before-latest", step)
        _write_atomic(root / "latest", tag)
        _write_atomic(root / CONFIG_FILE, dump_config(cfg))
        if cfg.save_total_limit:
            tags = sorted(p for p in root.glob("step-*") if p.is_dir())
            for old in tags[: -cfg.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    log.info("checkpoint %s", root / tag)
    return root / tag


def checkpoint_problem(path: Path, world: int) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from (None: complete). Complete: its
    `complete.json` lists files that are all there with their sizes (a truncated file differs); a
    folder written before `complete.json` existed needs every rank's `data-rank<r>.json`."""
    marker = path / COMPLETE
    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
            files = dict(info["files"])
        except (ValueError, KeyError, TypeError, OSError) as e:
            return f"{COMPLETE} unreadable ({e})"
        for name, size in files.items():
            f = path / name
            if not f.is_file():
                return f"{name} missing"
            if f.stat().st_size != size:
                return f"{name} has {f.stat().st_size} bytes, {size} were written (truncated or changed)"
    elif not any(path.glob("*model_states.pt")):
        return "no model states (an interrupted save)"
    for r in range(world):
        data = path / f"data-rank{r}.json"
        if not data.is_file():
            return f"{data.name} missing (an interrupted save)"
        try:
            int(json.loads(data.read_text())["step"])
        except (ValueError, KeyError, TypeError) as e:
            return f"{data.name} unreadable ({type(e).__name__}: {e})"
    return None


def resume_candidates(cfg: TrainConfig, world: int) -> list[str]:
    """The complete checkpoints of the run, newest first; a newer incomplete one is passed over with
    a warning. Raises `UsageError` (before any model is built) when there is none."""
    root = _ckpt_root(cfg)
    tags = sorted((p.name for p in root.glob("step-*") if p.is_dir()), reverse=True) if root.is_dir() else []
    if not tags:
        raise UsageError(f"--resume: no checkpoint under {root} (start without --resume)")
    good, bad = [], []
    for tag in tags:
        problem = checkpoint_problem(root / tag, world)
        if problem is None:
            good.append(tag)
        else:
            bad.append((tag, problem))
            if not good:
                log.warning("--resume: checkpoint %s is incomplete (%s); passed over", root / tag, problem)
    if not good:
        why = "; ".join(f"{t}: {p}" for t, p in bad[:3])
        raise UsageError(f"--resume: no complete checkpoint under {root} ({why})")
    latest = (root / "latest").read_text().strip() if (root / "latest").is_file() else None
    if bad and bad[0][0] > good[0]:
        log.warning(
            "--resume: falling back to %s, the newest complete checkpoint (latest: %s)", good[0], latest
        )
    interrupted = sorted(p.name for p in (root / STAGING).glob("step-*") if p.name > good[0])
    if interrupted:
        log.warning(
            "--resume: the save of %s was interrupted (left in %s, ignored); resuming from %s, the newest "
            "complete checkpoint",
            interrupted[-1],
            root / STAGING,
            good[0],
        )
    return good


def load_checkpoint(
    engine: Any, cfg: TrainConfig, loader: ShardLoader, rank: int, candidates: list[str] | None = None
) -> int:
    """Load the newest complete checkpoint (`resume_candidates`); one that fails to load on any rank
    is passed over for the one before, with a warning."""
    import torch.distributed as dist

    root = _ckpt_root(cfg)
    world = dist.get_world_size()
    for tag in candidates if candidates is not None else resume_candidates(cfg, world):
        error = None
        try:
            path, client = engine.load_checkpoint(str(root), tag=tag)
            if path is None:
                raise RuntimeError("DeepSpeed found nothing to load")
            step = int(client["step"])
            state = json.loads((root / tag / f"data-rank{rank}.json").read_text())
        except Exception as e:  # noqa: BLE001 - a damaged checkpoint: try the one before
            error = f"{type(e).__name__}: {e}"
        ok = torch.tensor([0.0 if error else 1.0])
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if ok.item() == 0.0:
            log.warning(
                "--resume: checkpoint %s does not load (%s); trying the one before",
                root / tag,
                error or "on another rank",
            )
            continue
        loader.load_state_dict(state["loader"])
        log.info("resumed from %s at step %d", root / tag, step)
        return step
    raise UsageError(f"--resume: no checkpoint under {root} loads (see the warnings above)")


def save_final(engine: Any, model: Any, tokenizer: Any, cfg: TrainConfig, rank: int, step: int) -> Path:
    """`final/` (a Hugging Face folder) and, after stage 1, `stage1.safetensors`, written by rank 0.
    Under ZeRO-3 every rank takes part in gathering the weights one module at a time onto rank 0
    (DeepSpeed's consolidated state dict, as the HF Trainer saves ZeRO-3 runs), which writes them
    from an unpartitioned copy; no rank materialises the whole model on its device."""
    import torch.distributed as dist

    from trainer.export import save_hf_folder

    out = Path(cfg.output_dir)
    if cfg.zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()
        model = _unpartitioned(model, state) if rank == 0 else None
    if rank == 0:
        final = out / FINAL
        save_hf_folder(
            model,
            tokenizer,
            final,
            extra={"train_config": json.loads(dump_config(cfg)), "step": step},
            tokenizer_source=cfg.model.tokenizer or cfg.model.llm,
        )
        (final / CONFIG_FILE).write_text(dump_config(cfg))
        (out / CONFIG_FILE).write_text(dump_config(cfg))
        if cfg.stage == 1:
            save_stage1_parts(model, out)
    dist.barrier()
    return out / FINAL


def _unpartitioned(model: Any, state: dict[str, torch.Tensor]) -> Any:
    """A plain copy of a ZeRO-3 model from its consolidated state dict (buffers, which ZeRO-3 does not
    partition, and requires_grad flags taken from the model itself)."""
    with torch.device("meta"):
        copy = type(model)(model.config)
    _, unexpected = copy.load_state_dict(state, strict=False, assign=True)
    if unexpected:
        raise RuntimeError(f"consolidated ZeRO-3 state has unknown tensors: {unexpected[:5]}")
    own = dict(model.named_parameters())
    for name, p in copy.named_parameters():
        if p.is_meta:
            raise RuntimeError(f"consolidated ZeRO-3 state lacks {name}")
        p.requires_grad_(own[name].requires_grad)
    for name, buf in model.named_buffers():
        owner, _, leaf = name.rpartition(".")
        copy.get_submodule(owner)._buffers[leaf] = buf.detach().to("cpu").clone()
    return copy


def record_partition(model: Any, cfg: TrainConfig, rank: int, world: int) -> dict[str, Any]:
    """What each rank holds of the model's parameters right after loading (ZeRO-3 built with zero.Init:
    its partition; otherwise everything), with each rank's peak host memory; logged and written to
    `output_dir/partition.json` by rank 0."""
    import resource

    import torch.distributed as dist

    full = sum(numel(p) for p in model.parameters())
    held = sum(held_numel(p) for p in model.parameters())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    mine = torch.tensor([float(held), rss_mib], dtype=torch.float64)
    every = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(every, mine)
    record = {
        "zero_stage": cfg.zero_stage,
        "world_size": world,
        "full_elements": full,
        "held_elements_per_rank": [int(t[0].item()) for t in every],
        "peak_host_mib_per_rank": [round(t[1].item(), 1) for t in every],
    }
    if rank == 0:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "partition.json").write_text(json.dumps(record, indent=2))
        log.info(
            "parameters after loading: %d in the model; held per rank %s",
            full,
            record["held_elements_per_rank"],
        )
    return record


# --------------------------------------------------------------------------------------------
# the loop


class MetricsLog:
    """Console + JSONL (+ TensorBoard) on rank 0."""

    def __init__(self, cfg: TrainConfig, rank: int, resume: bool):
        self.rank = rank
        self.file = None
        self.tb = None
        if rank == 0:
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
            self.file = open(Path(cfg.output_dir) / "log.jsonl", "a" if resume else "w", encoding="utf-8")
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(cfg.output_dir) / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        if self.rank != 0 or self.file is None:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "step":
                    self.tb.add_scalar(k, v, row["step"])
        parts = [f"step {row['step']}/{row['total_steps']}", f"loss {row['loss']:.4f}", f"lr {row['lr']:.3g}"]
        if row.get("grad_norm") is not None:
            parts.append(f"grad {row['grad_norm']:.3g}")
        parts.append(f"{row['tokens_per_s']:.0f} tok/s")
        if row.get("mfu") is not None:
            parts.append(f"MFU {row['mfu']:.1%}")
        log.info("  ".join(parts))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
    }


def _micro_batch_loss(model: Any, batch: dict[str, Any], labelled_only: bool) -> torch.Tensor:
    """Mean next-token loss of a (padded or packed) micro batch."""
    inputs = {
        "input_ids": batch["input_ids"],
        "pixel_values": batch["pixel_values"],
        "attention_mask": batch["attention_mask"],
        "position_ids": batch.get("position_ids"),
    }
    if labelled_only:
        return labelled_loss(model, labels=batch["labels"], **inputs)[0]
    return model(labels=batch["labels"], use_cache=False, **inputs).loss


def train(
    cfg: TrainConfig, *, resume: bool = False, stop_after: int | None = None, trace_keys: Path | None = None
) -> dict[str, Any]:
    """Run one stage; returns {"step", "loss", "losses", "final", "skipped", "encode"}.

    `stop_after`: end after that many optimizer steps of this invocation with a checkpoint (the run
    continues with `resume`), e.g. for time-limited or preemptible jobs. `trace_keys`: each rank
    appends the keys of the samples it trains on to `<trace_keys>.rank<N>` (to audit data splits).
    """
    candidates = preflight(cfg, resume=resume)  # before any model is built
    import deepspeed
    import torch.distributed as dist

    rank, world, local = init_distributed()
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", local) if on_gpu else torch.device("cpu")
    torch.manual_seed(cfg.seed)
    if on_gpu and cfg.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    steps = total_steps(cfg)
    ds_config = deepspeed_config(
        cfg, world, on_gpu=on_gpu, total_steps=steps, hidden_size=llm_hidden_size(cfg.model)
    )
    # ZeRO-3 with pretrained weights: built partitioned (zero.Init), rank 0 reads the files
    zero3_init = cfg.zero_stage == 3 and cfg.model.preset is None
    # pretrained weights load in the run's precision (the published Vicuna is float16 on disk)
    dtype = (
        (torch.bfloat16 if cfg.resolved_precision(on_gpu) == "bf16" else torch.float32)
        if cfg.model.preset is None
        else None
    )
    model, tokenizer = build_model(cfg, dtype=dtype, zero3_config=ds_config if zero3_init else None)
    partition = record_partition(model, cfg, rank, world)
    counts = apply_freezing(model, cfg)
    trainable = sum(counts.values())
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        if not cfg.train_llm:
            model.enable_input_require_grads()
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=parameter_groups(model, cfg), config=ds_config
    )
    accumulation = engine.gradient_accumulation_steps()
    loader, transform = make_loader(cfg, tokenizer, rank, world)

    step = load_checkpoint(engine, cfg, loader, rank, candidates) if resume else 0
    if rank == 0:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(cfg.output_dir) / CONFIG_FILE).write_text(dump_config(cfg))
        (Path(cfg.output_dir) / "deepspeed_config.json").write_text(json.dumps(ds_config, indent=2))
        log.info(
            "%s: stage %d, %d steps x %d global batch (%d per device x %d accumulation x %d ranks), trainable %s",
            cfg.name,
            cfg.stage,
            steps,
            cfg.global_batch_size,
            cfg.per_device_batch_size,
            accumulation,
            world,
            counts,
        )
    metrics = MetricsLog(cfg, rank, resume)
    peak = peak_flops()
    batches = batches_forever(loader)
    losses: list[float] = []
    last_loss = float("nan")
    window_tokens, window_start, window_steps, window_loss = 0, time.perf_counter(), 0, 0.0
    window_slots = 0
    engine.train()
    trace = open(f"{trace_keys}.rank{rank}", "a", encoding="utf-8") if trace_keys else None
    stop_at = steps if stop_after is None else min(steps, step + stop_after)
    final = None
    try:
        while step < stop_at:
            step_loss = 0.0
            for _ in range(accumulation):
                batch = next(batches)
                if cfg.packing:
                    batch = pack_batch(batch, cfg.max_length, PAD_TOKEN_ID)
                real, slots = padding_stats(batch)
                batch = _to_device(batch, device)
                if trace is not None:
                    trace.write("".join(f"{step + 1} {k}\n" for k in batch["keys"]))
                loss = _micro_batch_loss(engine.module, batch, cfg.loss_on_labelled_only)
                finite = torch.tensor([1.0 if torch.isfinite(loss).item() else 0.0])
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                if finite.item() == 0.0:
                    raise NonFiniteLoss(
                        f"non-finite loss at step {step + 1} (rank {rank} saw {loss.item()}); stopping. The last good "
                        f"checkpoint under {_ckpt_root(cfg)} is kept; lower the learning rate or check the data."
                    )
                engine.backward(loss)
                engine.step()
                step_loss += loss.item() / accumulation
                window_tokens += real
                window_slots += slots
            step += 1
            window_steps += 1
            reduced = torch.tensor([step_loss])
            dist.all_reduce(reduced)
            last_loss = reduced.item() / world
            losses.append(last_loss)
            window_loss += last_loss
            if step % cfg.logging_steps == 0 or step == steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                tok = torch.tensor([float(window_tokens)])
                dist.all_reduce(tok)
                tokens_per_s = tok.item() / elapsed
                grad_norm = engine.get_global_grad_norm()
                metrics.write(
                    {
                        "step": step,
                        "total_steps": steps,
                        "loss": window_loss / window_steps,  # mean over the steps since the last line
                        "last_loss": last_loss,
                        "lr": float(engine.get_lr()[0]),
                        "grad_norm": None if grad_norm is None else float(grad_norm),
                        "tokens_per_s": tokens_per_s,
                        "mfu": None if peak is None else 6 * trainable * tokens_per_s / (peak * world),
                        "seconds_per_step": elapsed / window_steps,
                        "padding": 1.0 - window_tokens / max(window_slots, 1),  # share of wasted token slots
                        "epoch": loader.epoch,
                    }
                )
                window_tokens, window_start, window_steps, window_loss = 0, time.perf_counter(), 0, 0.0
                window_slots = 0
            if step % cfg.save_steps == 0 and step < stop_at:
                save_checkpoint(engine, cfg, step, loader, rank)
        if cfg.checkpoint_at_end or step < steps:
            save_checkpoint(engine, cfg, step, loader, rank)  # the run's last step (or where it stopped)
        if step >= steps:
            final = save_final(engine, engine.module, tokenizer, cfg, rank, step)
    finally:
        metrics.close()
        if trace is not None:
            trace.close()
    result = {
        "step": step,
        "loss": last_loss,
        "losses": losses,
        "partition": partition,
        "final": None if final is None else str(final),
        "skipped": loader.skipped,
        "encode": transform.stats.as_dict(),
    }
    if rank == 0:
        log.info(
            "%s done: step %d, loss %.4f, skipped %s, encode %s",
            cfg.name,
            step,
            last_loss,
            loader.skipped,
            transform.stats.as_dict(),
        )
    skipped = loader.skipped
    if skipped.get("bad_shard") or skipped.get("lost"):
        log.warning(
            "rank %d read %d damaged shard(s) and lost %d sample(s) in them over the run (see the warnings "
            "above; docs/trainer.md#damaged-shards)",
            rank,
            skipped["bad_shard"],
            skipped["lost"],
        )
    return result


# --------------------------------------------------------------------------------------------
# command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="train config YAML (recipes/train/*.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set max_steps=10 --set data.mix=DIR (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="N",
        help="stop after N optimizer steps with a checkpoint (continue later with --resume)",
    )
    p.add_argument(
        "--trace-keys",
        type=Path,
        default=None,
        metavar="FILE",
        help="each rank appends the keys it trains on to FILE.rank<N> (audit data splits)",
    )
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    try:
        result = train(cfg, resume=args.resume, stop_after=args.stop_after, trace_keys=args.trace_keys)
    except NonFiniteLoss as e:
        log.error("%s", e)
        return 3
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in result.items() if k != "losses"}))
    return 0


__all__ = ["NonFiniteLoss", "Transform", "add_arguments", "run", "total_steps", "train"]
