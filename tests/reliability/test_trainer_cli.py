"""Issue 18, weak spots of `python -m trainer`: every bad input is one clear line and an exit code
(datamix.errors: 1 the data has problems, 2 cannot run), never a traceback (unless `-v`), and the
train command checks the config, the mix and the checkpoint before it builds a model.

Most cases run `trainer.__main__.main(argv)` in this process (capsys); a few run the real CLI in a
subprocess. Before, each of these printed a Python traceback and exited 1 (a missing mix was found
only after the model was built: ~100 s for a 7B model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "recipes" / "train" / "tiny_stage2.yaml"
GOOD_RECORD = [
    {"id": "a", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
]


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """Inputs for the cases: a fake mix (one empty shard: enough for the checks before the model),
    bad configs and JSON files, a file where a folder belongs."""
    mix = tmp_path / "mix"
    (mix / "shards").mkdir(parents=True)
    (mix / "shards" / "m-000000.tar").write_bytes(b"\0" * 1024)
    (tmp_path / "empty_mix").mkdir()
    good = CONFIG.read_text()
    f = {
        "mix": mix,
        "empty_mix": tmp_path / "empty_mix",
        "typo": tmp_path / "typo.yaml",
        "not_utf8": tmp_path / "latin1.yaml",
        "list": tmp_path / "list.yaml",
        "bad_yaml": tmp_path / "bad.yaml",
        "a_file": tmp_path / "a_file",
        "bad_json": tmp_path / "bad.json",
        "object_json": tmp_path / "object.json",
        "odd_records": tmp_path / "odd.json",
        "latin1_json": tmp_path / "latin1.json",
        "model_dir": tmp_path / "model",
        "out": tmp_path / "out",
    }
    f["typo"].write_text(good.replace("\ntemplate:", "\ntemplat:"))
    f["not_utf8"].write_bytes(good.encode() + b"\n# caf\xe9\n")
    f["list"].write_text("- 1\n- 2\n")
    f["bad_yaml"].write_text("name: [unclosed\n")
    f["a_file"].write_text("x")
    f["bad_json"].write_text('[{"id": 1, "conversations": [')
    f["object_json"].write_text('{"id": 1}')
    f["odd_records"].write_text(json.dumps([7, {"id": "x"}, *GOOD_RECORD]))
    f["latin1_json"].write_bytes(b'[{"id": "caf\xe9"}]')
    f["model_dir"].mkdir()
    (f["model_dir"] / "config.json").write_text("{}")
    return f


def _train(f: dict[str, Path], *extra: str, config: str | Path = CONFIG) -> list[str]:
    return [
        "train",
        "--config",
        str(config),
        "--set",
        f"data.mix={f['mix']}",
        "--set",
        f"output_dir={f['out']}",
        "--set",
        "pretrained_projector=null",
        *extra,
    ]


def _tokens(f: dict[str, Path], source: Path, *extra: str) -> list[str]:
    """`tokens` argv with the plain template, reading `source`, writing out/t.jsonl."""
    return [
        "tokens",
        "--template",
        "plain",
        *extra,
        "--input",
        str(source),
        "--out",
        str(f["out"] / "t.jsonl"),
    ]


# (case, argv builder, exit code, message fragment); before: a traceback and exit 1 for every one
CASES = [
    (
        "unknown key in the config",
        lambda f: _train(f, config=f["typo"]),
        2,
        "templat: unknown key (did you mean template?)",
    ),
    (
        "mistyped key in --set",
        lambda f: _train(f, "--set", "data.mixx=/x"),
        2,
        "data.mixx: unknown key (did you mean data.mix?)",
    ),
    ("--set without =", lambda f: _train(f, "--set", "nonsense"), 2, "--set 'nonsense': expected KEY=VALUE"),
    (
        "--set with a wrong type",
        lambda f: _train(f, "--set", "max_steps=abc"),
        2,
        "max_steps: Input should be a valid integer",
    ),
    ("--set value not YAML", lambda f: _train(f, "--set", "max_steps=[1"), 2, "value is not valid YAML"),
    ("--set inside a scalar", lambda f: _train(f, "--set", "name.x=1"), 2, "name is not a mapping"),
    (
        "value out of range",
        lambda f: _train(f, "--set", "learning_rate=-1"),
        2,
        "learning_rate: Input should be greater than 0",
    ),
    (
        "config file missing",
        lambda f: _train(f, config=f["out"] / "nope.yaml"),
        2,
        "nope.yaml: no such train config",
    ),
    ("config is a folder", lambda f: _train(f, config=f["mix"]), 2, "no such train config (a folder)"),
    ("config not UTF-8", lambda f: _train(f, config=f["not_utf8"]), 2, "latin1.yaml: not UTF-8 text"),
    ("config not YAML", lambda f: _train(f, config=f["bad_yaml"]), 2, "bad.yaml: not a valid train config"),
    ("config not a mapping", lambda f: _train(f, config=f["list"]), 2, "expected a mapping at the top level"),
    (
        "mix folder missing",
        lambda f: _train(f, "--set", f"data.mix={f['out']}/nomix"),
        2,
        "data.mix: no such mix folder",
    ),
    (
        "mix folder without shards",
        lambda f: _train(f, "--set", f"data.mix={f['empty_mix']}"),
        2,
        "data.mix: not a mix folder: no shards/*.tar",
    ),
    (
        "mix without manifest, epochs",
        lambda f: _train(f, "--set", "max_steps=null", "--set", "epochs=1"),
        2,
        "data.mix: no manifest.parquet",
    ),
    (
        "pretrained projector missing",
        lambda f: _train(f, "--set", "max_steps=1", "--set", f"pretrained_projector={f['out']}/p"),
        2,
        "pretrained_projector: no such file or folder",
    ),
    (
        "local LLM folder missing",
        lambda f: _train(
            f,
            "--set",
            "max_steps=1",
            "--set",
            "model.preset=null",
            "--set",
            "model.llm=/nowhere/vicuna",
            "--set",
            "model.vision_tower=/nowhere/clip",
        ),
        2,
        "model.vision_tower: no such file or folder",
    ),
    (
        "output_dir is a file",
        lambda f: _train(f, "--set", "max_steps=1", "--set", f"output_dir={f['a_file']}"),
        2,
        "output_dir: exists and is not a folder",
    ),
    (
        "--resume without a checkpoint",
        lambda f: _train(f, "--set", "max_steps=1", "--resume"),
        2,
        "--resume: no checkpoint under",
    ),
    (
        "tokens: malformed JSON",
        lambda f: _tokens(f, f["bad_json"]),
        1,
        "bad.json: not valid JSON",
    ),
    (
        "tokens: JSON not a list",
        lambda f: _tokens(f, f["object_json"]),
        1,
        "expected a JSON list of LLaVA records, got a dict",
    ),
    (
        "tokens: JSON not UTF-8",
        lambda f: _tokens(f, f["latin1_json"]),
        1,
        "latin1.json: not UTF-8 text",
    ),
    (
        "tokens: input missing",
        lambda f: _tokens(f, f["out"] / "none.json"),
        2,
        "none.json: --input: no such file",
    ),
    (
        "tokens: --tokenizer missing",
        lambda f: _tokens(f, f["bad_json"], "--tokenizer", str(f["out"] / "tok")),
        2,
        "tok: --tokenizer: no such file or folder",
    ),
    (
        "export: checkpoint missing",
        lambda f: ["export", "--checkpoint", str(f["out"] / "ckpt"), "--out", str(f["out"] / "e")],
        2,
        "ckpt: --checkpoint: no such checkpoint",
    ),
    (
        "export: --config missing",
        lambda f: [
            "export",
            "--checkpoint",
            str(f["model_dir"]),
            "--config",
            str(f["out"] / "c.yaml"),
            "--out",
            str(f["out"] / "e"),
        ],
        2,
        "c.yaml: --config: no such train config",
    ),
    (
        "eval: model folder missing",
        lambda f: ["eval", "--model", str(f["out"] / "m"), "--mix", str(f["mix"])],
        2,
        "--model: no such model folder",
    ),
    (
        "eval: not a model folder",
        lambda f: ["eval", "--model", str(f["mix"]), "--mix", str(f["mix"])],
        2,
        "--model: not a model folder",
    ),
    (
        "eval: mix folder missing",
        lambda f: ["eval", "--model", str(f["model_dir"]), "--mix", str(f["out"] / "nomix")],
        2,
        "nomix: no such mix folder",
    ),
    (
        "init: config missing",
        lambda f: ["init", "--config", str(f["out"] / "nope.yaml"), "--out", str(f["out"] / "i")],
        2,
        "nope.yaml: no such train config",
    ),
    (
        "clip: mix folder missing",
        lambda f: [
            "clip",
            "--config",
            str(REPO / "recipes/train/tiny_stage1.yaml"),
            "--set",
            f"data.mix={f['out']}/nomix",
            "--out",
            str(f["out"] / "c"),
        ],
        2,
        "nomix: no such mix folder",
    ),
    (
        "clip: bad --steps",
        lambda f: [
            "clip",
            "--config",
            str(REPO / "recipes/train/tiny_stage1.yaml"),
            "--steps",
            "0",
            "--out",
            str(f["out"] / "c"),
        ],
        2,
        "--steps must be >= 1",
    ),
    ("unknown command", lambda f: ["trian"], 2, "invalid choice: 'trian'"),
    (
        "missing required argument",
        lambda f: ["export", "--out", "x"],
        2,
        "the following arguments are required: --checkpoint",
    ),
]


@pytest.mark.parametrize("case, argv, code, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(files, capsys, case, argv, code, fragment):
    from trainer.__main__ import main

    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(argv(files))
    err = capsys.readouterr().err
    assert exc.value.code == code, err
    assert fragment in err, err
    assert "Traceback" not in err
    lines = [
        line for line in err.splitlines() if not line.startswith(("INFO ", "WARNING ", "[", "usage:", "  "))
    ]
    assert len(lines) == 1, err  # one line (argparse adds its usage lines above its own)
    assert time.perf_counter() - start < 20  # refused before any model is built
    assert not (files["out"] / "partition.json").exists()


def test_tokens_counts_records_it_cannot_encode(files, capsys):
    from trainer.__main__ import main

    out = files["out"] / "t.jsonl"
    assert main(_tokens(files, files["odd_records"])) == 0
    printed = capsys.readouterr().out
    assert "skipped 0: bad_roles: not a record" in printed and "skipped x: bad_roles: not a record" in printed
    assert '"bad_roles": 2' in printed
    assert len(out.read_text().splitlines()) == 1


def _cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["plain", "-v"])
def test_real_cli_missing_mix_fails_fast_traceback_only_with_v(files, verbose):
    start = time.perf_counter()
    proc = _cli(*verbose, *_train(files, "--set", f"data.mix={files['out']}/nomix", "--set", "max_steps=1"))
    assert proc.returncode == 2
    assert proc.stderr.rstrip().splitlines()[-1] == (
        f"python -m trainer train: {files['out']}/nomix: data.mix: no such mix folder (build one with `datamix build`)"
    )
    assert ("Traceback" in proc.stderr) == bool(verbose)
    assert time.perf_counter() - start < 60  # no model built (the interpreter and torch import only)
