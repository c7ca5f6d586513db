"""Issue 18, defect 5: `--resume` after a half-written checkpoint.

Before: DeepSpeed wrote `latest` before the trainer wrote `data-rank*.json`; a kill between the two
left `latest` pointing at an incomplete step and `--resume` died with FileNotFoundError (a truncated
model-states file the same), never falling back. Now a checkpoint is written into
`checkpoints/.partial/`, marked complete (`complete.json`, every file's size) and renamed into place,
`latest` last; `--resume` takes the newest complete step, with a warning when it passes one over.

Kill tests: the test-only hook `DATAMIX_TEST_KILL_AT=<point>:<step>` (trainer/loop.py `_test_kill`)
ends the process with os._exit at a point of saving a step, deterministically; damage to a published
step is simulated by deleting or truncating its files. The resumed run must end where an uninterrupted
run ends: the same losses for the replayed steps and the same final weights.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from train_helpers import train_args

from .helpers import run_module

REPO = Path(__file__).resolve().parents[2]
STEP2, STEP4 = "step-0000002", "step-0000004"


# --------------------------------------------------------------------------------------------
# which checkpoint --resume takes (fast: files only, no model)


def _fake_step(root: Path, tag: str, *, marker: bool = True) -> Path:
    d = root / tag
    d.mkdir(parents=True)
    (d / "mp_rank_00_model_states.pt").write_bytes(b"m" * 1000)
    (d / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"o" * 2000)
    (d / "data-rank0.json").write_text(json.dumps({"step": int(tag[5:]), "loader": {}}))
    if marker:
        files = {p.name: p.stat().st_size for p in d.iterdir()}
        (d / "complete.json").write_text(json.dumps({"step": int(tag[5:]), "world_size": 1, "files": files}))
    (root / "latest").write_text(tag)
    return d


def _damage_none(d: Path) -> None:
    pass


def _truncate_states(d: Path) -> None:
    f = d / "mp_rank_00_model_states.pt"
    f.write_bytes(f.read_bytes()[:100])


def _delete_data(d: Path) -> None:
    (d / "data-rank0.json").unlink()


def _delete_optim(d: Path) -> None:
    (d / "zero_pp_rank_0_mp_rank_00_optim_states.pt").unlink()


def _bad_marker(d: Path) -> None:
    (d / "complete.json").write_text("{half")


def _bad_data_json(d: Path) -> None:
    (d / "data-rank0.json").write_text('{"step": ')


@pytest.mark.parametrize(
    "case, damage, marker, expected",
    [
        ("newest complete", _damage_none, True, STEP4),
        ("model states truncated", _truncate_states, True, STEP2),
        ("data-rank0.json missing (kill before the trainer wrote it)", _delete_data, True, STEP2),
        ("optimizer states missing", _delete_optim, True, STEP2),
        ("completion marker unreadable", _bad_marker, True, STEP2),
        ("data-rank0.json half written", _bad_data_json, True, STEP2),
        ("older layout without marker, complete", _damage_none, False, STEP4),
        ("older layout without marker, data missing", _delete_data, False, STEP2),
    ],
)
def test_resume_takes_the_newest_complete_checkpoint(tmp_path, caplog, case, damage, marker, expected):
    from trainer.loop import resume_candidates

    root = tmp_path / "checkpoints"
    _fake_step(root, STEP2, marker=marker)
    damage(_fake_step(root, STEP4, marker=marker))
    cfg = type("Cfg", (), {"output_dir": tmp_path})()
    assert resume_candidates(cfg, 1)[0] == expected
    if expected == STEP2:
        assert "falling back to step-0000002" in caplog.text and "step-0000004" in caplog.text


def test_an_interrupted_save_in_staging_is_ignored_with_a_warning(tmp_path, caplog):
    from trainer.loop import resume_candidates

    root = tmp_path / "checkpoints"
    _fake_step(root, STEP2)
    (root / ".partial" / STEP4).mkdir(parents=True)
    (root / ".partial" / STEP4 / "mp_rank_00_model_states.pt").write_bytes(b"x")
    cfg = type("Cfg", (), {"output_dir": tmp_path})()
    assert resume_candidates(cfg, 1) == [STEP2]
    assert "save of step-0000004 was interrupted" in caplog.text


# --------------------------------------------------------------------------------------------
# the CLI: one line, exit 2, before any model is built


@pytest.mark.parametrize(
    "case, setup, fragment",
    [
        ("no checkpoint folder", lambda root: None, "--resume: no checkpoint under"),
        (
            "only an interrupted save",
            lambda root: (root / ".partial" / STEP2).mkdir(parents=True),
            "--resume: no checkpoint under",
        ),
        (
            "every step damaged",
            lambda root: _truncate_states(_fake_step(root, STEP2)),
            "--resume: no complete checkpoint under",
        ),
    ],
)
def test_resume_without_a_usable_checkpoint_is_one_line(tmp_path, capsys, case, setup, fragment):
    from trainer.__main__ import main

    mix = _mini_mix(tmp_path)
    out = tmp_path / "run"
    setup(out / "checkpoints")
    with pytest.raises(SystemExit) as exc:
        main(["train", *train_args(mix, out), "--resume"])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert fragment in err and "Traceback" not in err
    assert not (out / "partition.json").exists()  # refused before the model was built


def _mini_mix(tmp_path: Path) -> Path:
    mix = tmp_path / "mix"
    (mix / "shards").mkdir(parents=True)
    (mix / "shards" / "m-000000.tar").write_bytes(b"\0" * 1024)
    return mix


# --------------------------------------------------------------------------------------------
# kill tests: real runs (tiny model, 4 steps, a checkpoint every 2)


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    from datamix.build import build
    from datamix.normalize import normalize
    from datamix.synth import synth

    root = tmp_path_factory.mktemp("resume_mix")
    synth(root, scale="tiny", seed=0)
    normalize(root=root)
    recipe = (REPO / "tests" / "fixtures" / "recipes" / "every_source.yaml").read_text()
    (root / "demo.yaml").write_text(recipe.replace("max_samples: 256", "max_samples: 24"))
    build(root / "demo.yaml", root, out=root / "mix")
    return root / "mix"


def _train(mix: Path, out: Path, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess:
    args = [*train_args(mix, out, "max_steps=4", "save_steps=2"), *extra]
    return run_module(
        "trainer", "train", *args, timeout=600, kill=kill, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore"
    )


def _losses(out: Path) -> dict[int, float]:
    """step -> loss of the last time the step was logged (a resumed run appends)."""
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())}


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def straight(mix, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = _train(mix, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoints" / STEP2 / "complete.json").is_file()
    assert not (out / "checkpoints" / ".partial").exists()
    return out


def _assert_same_end(straight: Path, resumed: Path, from_step: int) -> None:
    import torch

    a, b = _losses(straight), _losses(resumed)
    for step in range(from_step + 1, 5):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step
    wa, wb = _weights(straight), _weights(resumed)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-5, atol=1e-6, msg=name)


KILLS = [
    pytest.param("after-deepspeed:4", 2, "interrupted", id="after-deepspeed"),  # the case
    pytest.param("before-publish:4", 2, "interrupted", id="before-publish", marks=pytest.mark.slow),
    pytest.param("before-latest:4", 4, None, id="before-latest", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("kill, from_step, warning", KILLS)
def test_kill_while_saving_then_resume_ends_as_the_straight_run(
    mix, straight, tmp_path, kill, from_step, warning
):
    out = tmp_path / "run"
    killed = _train(mix, out, kill=kill)
    assert killed.returncode == 137, killed.stderr[-3000:]
    assert (out / "checkpoints" / "latest").read_text().strip() == STEP2
    resumed = _train(mix, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {out / 'checkpoints' / f'step-000000{from_step}'}" in resumed.stderr
    if warning:
        assert warning in resumed.stderr
    _assert_same_end(straight, out, from_step)
    assert (out / "checkpoints" / "latest").read_text().strip() == STEP4
    assert not (out / "checkpoints" / ".partial").exists()


DAMAGE = [
    pytest.param(_truncate_states, "truncated or changed", id="model-states-truncated"),
    pytest.param(_delete_data, "data-rank0.json missing", id="data-json-missing", marks=pytest.mark.slow),
    pytest.param(
        lambda d: (d / "mp_rank_00_model_states.pt").write_bytes(
            b"\0" * (d / "mp_rank_00_model_states.pt").stat().st_size
        ),
        "does not load",
        id="model-states-zeroed-same-size",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("damage, fragment", DAMAGE)
def test_damaged_newest_checkpoint_falls_back_with_a_warning(mix, straight, tmp_path, damage, fragment):
    out = tmp_path / "run"
    shutil.copytree(straight, out, ignore=shutil.ignore_patterns("final", "stage1.safetensors"))
    damage(out / "checkpoints" / STEP4)
    resumed = _train(mix, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert fragment in resumed.stderr
    assert f"resumed from {out / 'checkpoints' / STEP2}" in resumed.stderr
    _assert_same_end(straight, out, 2)
