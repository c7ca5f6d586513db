"""The DeepSpeed loop on CPU (gloo): ZeRO-2 and ZeRO-3 learn, two ranks see disjoint samples, a resumed
run repeats the uninterrupted one exactly, so do a packed run and a run with the full-logits loss, a
non-finite loss stops the run and keeps the checkpoint.

Each run is a subprocess (`python -m trainer train`, or torchrun for two ranks): a process holds one
distributed world.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import train_args

pytest.importorskip("deepspeed")


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mix(every_source_mix) -> Path:
    return every_source_mix


def _train(
    mix: Path, out: Path, *extra: str, sets: tuple[str, ...] = (), check: bool = True, torchrun: int = 0
):
    args = [*train_args(mix, out, *sets), *extra]
    if torchrun:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={torchrun}",
            "-m",
            "trainer",
            "train",
            *args,
        ]
    else:
        cmd = [sys.executable, "-m", "trainer", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("zero", [2, 3])
def test_zero_stages_learn_on_cpu(mix, tmp_path, zero):
    out = tmp_path / f"z{zero}"
    _train(mix, out, sets=(f"zero_stage={zero}", "max_steps=12"))
    rows = _log(out)
    assert [r["step"] for r in rows] == list(range(1, 13))
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.5, (first, last)
    assert all(r["lr"] >= 0 and r["tokens_per_s"] > 0 for r in rows)
    final = out / "final"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()
    assert json.loads((out / "deepspeed_config.json").read_text())["zero_optimization"]["stage"] == zero


def test_two_ranks_train_on_disjoint_samples(mix, tmp_path):
    out = tmp_path / "ddp"
    trace = tmp_path / "keys"
    _train(
        mix,
        out,
        "--trace-keys",
        str(trace),
        sets=("zero_stage=2", "max_steps=3", "global_batch_size=8"),
        torchrun=2,
    )
    seen = {
        r: [line.split()[1] for line in Path(f"{trace}.rank{r}").read_text().splitlines()] for r in (0, 1)
    }
    assert len(seen[0]) == len(seen[1]) == 12  # 3 steps x 4 samples on each rank
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0])) == 12 and len(set(seen[1])) == 12


@pytest.fixture(scope="module")
def straight(mix, tmp_path_factory) -> Path:
    """A 6-step run, padded batches, loss on the labelled positions only."""
    out = tmp_path_factory.mktemp("straight")
    _train(mix, out, sets=("max_steps=6", "save_steps=3"))
    return out


def test_resume_repeats_the_uninterrupted_run(mix, straight, tmp_path):
    resumed = tmp_path / "resumed"
    first = _train(mix, resumed, "--stop-after", "3", sets=("max_steps=6", "save_steps=3"))
    assert json.loads(first.stdout.strip().splitlines()[-1])["final"] is None
    assert (resumed / "checkpoints" / "step-0000003").is_dir()
    _train(mix, resumed, "--resume", sets=("max_steps=6", "save_steps=3"))
    a = [r["loss"] for r in _log(straight)]
    b = [r["loss"] for r in _log(resumed)]
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    assert (resumed / "final" / "model.safetensors").is_file()


def test_packed_and_full_logit_runs_repeat_the_padded_run(mix, straight, tmp_path):
    # same samples per step, packed into fewer rows: the same losses step after step, less padding
    packed = tmp_path / "packed"
    _train(mix, packed, sets=("max_steps=6", "save_steps=3", "packing=true"))
    full = tmp_path / "full"
    _train(mix, full, sets=("max_steps=6", "save_steps=3", "loss_on_labelled_only=false"))
    a, b, c = _log(straight), _log(packed), _log(full)
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-4, abs=1e-5)
    assert [r["loss"] for r in c] == pytest.approx([r["loss"] for r in a], rel=1e-4, abs=1e-5)
    assert sum(r["padding"] for r in b) < sum(r["padding"] for r in a)
    assert all(0 <= r["padding"] < 1 for r in a + b)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(mix, tmp_path):
    out = tmp_path / "nan"
    script = (
        "import sys, torch, trainer.loop as L\n"
        "real = L.labelled_loss\n"
        "calls = {'n': 0}\n"
        "def poisoned(*a, **k):\n"
        "    loss, n = real(*a, **k)\n"
        "    calls['n'] += 1\n"
        "    return (loss * float('nan') if calls['n'] == 3 else loss), n\n"
        "L.labelled_loss = poisoned\n"
        "from trainer.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    args = ["train", *train_args(mix, out, "max_steps=6", "save_steps=2")]
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "non-finite loss at step 3" in proc.stderr
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-0000002"
    assert not (out / "final").exists()
