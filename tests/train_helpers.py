"""The small `python -m trainer train` run that the loop and resume tests share."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "recipes" / "train" / "tiny_stage2.yaml"

#: a 1-layer tiny model on batches of 4 short conversations
SMALL_RUN = (
    "pretrained_projector=null",
    "global_batch_size=4",
    "per_device_batch_size=4",
    "max_length=320",
    "logging_steps=1",
    "learning_rate=0.002",
    "data.shuffle_buffer=16",
    "model.tiny.llm_layers=1",
)


def train_args(mix: Path, out: Path, *sets: str) -> list[str]:
    """`train` arguments for SMALL_RUN on `mix` into `out`, then `sets` (later --set win)."""
    every = (f"data.mix={mix}", f"output_dir={out}", *SMALL_RUN, *sets)
    return ["--config", str(CONFIG), *[x for s in every for x in ("--set", s)]]
