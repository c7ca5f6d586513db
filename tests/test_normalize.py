"""normalize: completion marker, skip when up to date, atomic outputs, CLI summary and exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from datamix.cli import app
from datamix.normalize import is_up_to_date, normalize
from datamix.paths import Layout


def _llava(world, n=2):
    for i in range(n):
        world.image(f"coco/train2017/{i:012d}.jpg")
    world.json(
        "llava_instruct",
        "llava_instruct_150k.json",
        [
            {
                "id": f"{i:012d}",
                "image": f"{i:012d}.jpg",
                "conversations": [
                    {"from": "human", "value": "<image>\nHi"},
                    {"from": "gpt", "value": "Hello"},
                ],
            }
            for i in range(n)
        ],
    )


def test_rerun_skips_until_inputs_change(world):
    _llava(world)
    first = normalize(["llava_instruct"], world.root)[0]
    assert first["items"] == 2 and "skipped" not in first
    layout = Layout.at(world.root)
    stats = json.loads(layout.stats("llava_instruct").read_text())
    assert (
        stats["inputs"][0]["file"] == "llava_instruct_150k.json" and len(stats["inputs"][0]["sha256"]) == 64
    )
    assert is_up_to_date("llava_instruct", layout)
    assert normalize(["llava_instruct"], world.root)[0]["skipped"] is True
    _llava(world, 3)  # the raw file changes -> redone
    again = normalize(["llava_instruct"], world.root)[0]
    assert again["items"] == 3 and "skipped" not in again
    assert not list(layout.normalized.glob("*.tmp-*"))


def test_missing_raw_file_is_an_error_that_spares_other_sources(world):
    _llava(world)
    results = normalize(["vqav2", "llava_instruct"], world.root, jobs=2)
    assert [r["source"] for r in results] == ["vqav2", "llava_instruct"]
    assert "raw/vqav2/v2_mscoco_train2014_annotations.json not found" in results[0]["error"]
    assert results[1]["items"] == 2


def test_cli_summary_and_exit_codes(world):
    _llava(world)
    runner = CliRunner()
    res = runner.invoke(app, ["normalize", "llava_instruct", "--root", str(world.root)])
    assert res.exit_code == 0, res.output
    assert "1/1 sources, 2 items, 0 drops" in res.output
    bad = world.root / "raw" / "sharegpt" / "ShareGPT_V3_unfiltered_cleaned_split.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('[{"id": "a", "conversations": [')
    res = runner.invoke(app, ["normalize", "sharegpt", "--root", str(world.root)])
    assert res.exit_code == 1
    assert "ShareGPT_V3_unfiltered_cleaned_split.json: not valid JSON" in res.output
    res = runner.invoke(app, ["normalize", "nope", "--root", str(world.root)])
    assert res.exit_code == 2


def test_sources_command_lists_eleven(world):
    res = CliRunner().invoke(app, ["sources", "--root", str(world.root)])
    assert res.exit_code == 0
    assert "11 sources" in res.output
