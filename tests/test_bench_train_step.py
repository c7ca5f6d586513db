"""benchmarks/bench_train_step.py keeps working: its CPU smoke run writes every figure, and packing
removes padding there; without a GPU and --smoke it writes the figure as skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_train_step.py"


def _run(tmp_path: Path, *args: str) -> list[dict]:
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--out", str(out)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.read_text())


def test_smoke_run_writes_every_mode(tmp_path):
    rows = {
        r["name"]: r
        for r in _run(tmp_path, "--smoke", "--samples", "8", "--batch", "4", "--max-length", "2048")
    }
    assert set(rows) == {"train_step_mfu"} | {
        f"train_step_tokens_per_s_{m}" for m in ("hf_padded", "padded", "grouped", "packed")
    }
    assert rows["train_step_mfu"]["value"] is None  # no peak FLOP/s on a CPU
    assert rows["train_step_mfu"]["ratio"] > 0
    pad = {
        m: float(rows[f"train_step_tokens_per_s_{m}"]["notes"].split("%")[0].split()[-1])
        for m in ("padded", "packed")
    }
    assert pad["packed"] < pad["padded"]


def test_without_a_gpu_the_figure_is_skipped(tmp_path):
    (row,) = _run(tmp_path)
    assert row["name"] == "train_step_mfu" and row["value"] is None and "skipped" in row["notes"]
