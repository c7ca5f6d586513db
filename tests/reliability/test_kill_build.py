"""Kill a build at four points (SIGKILL, as `kill -9` or a power cut would), rerun it, and get the
same bytes as an uninterrupted build, with nothing left over (no temporary tar, no parts, no lock).

The kill points are the build's test hook `DATAMIX_TEST_KILL_AT` (`datamix.proc.kill_point`):
`mid-shard` (a temporary tar half written), `shards:N` (N shards renamed into place, the rest not
started), `before-manifest` (every shard done, no manifest), `before-summary` (manifest written, no
summary.json: the build is not finished)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from .helpers import recipe, run_module


def _build(
    recipe_path: Path, root: Path, out: Path, *, jobs: int = 1, kill: str | None = None
) -> subprocess.CompletedProcess:
    return run_module(
        "datamix.cli",
        "build",
        "--recipe",
        str(recipe_path),
        "--root",
        str(root),
        "--out",
        str(out),
        "--jobs",
        str(jobs),
        timeout=300,
        kill=kill,
    )


def _files(folder: Path) -> dict[str, str]:
    """sha256 of every file; summary.json without `shards_resumed` (the one field that says a build
    was resumed)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if p.name == "summary.json":
            summary = json.loads(data)
            summary.pop("shards_resumed")
            data = json.dumps(summary, sort_keys=True).encode()
        out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def reference(tiny_root, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("kill_ref")
    path = recipe(tmp, 8)
    res = _build(path, tiny_root, tmp / "ref")
    assert res.returncode == 0, res.stderr
    return path, _files(tmp / "ref")


@pytest.mark.parametrize(
    ("point", "jobs"),
    [("mid-shard", 1), ("shards:1", 1), ("shards:3", 2), ("before-manifest", 1), ("before-summary", 1)],
)
def test_killed_build_reruns_to_identical_bytes(point, jobs, reference, tiny_root, tmp_path):
    recipe_path, expected = reference
    out = tmp_path / "out"
    killed = _build(recipe_path, tiny_root, out, jobs=jobs, kill=point)
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    assert not (out / "summary.json").exists()  # not taken for finished
    tars = list((out / "shards").glob("*.tar"))
    if point == "mid-shard":
        assert list((out / "shards").glob("*.tar.tmp-*")) and not tars  # the half-written temporary tar
    elif point.startswith("shards:"):
        assert len(tars) >= int(point.split(":")[1]) and not (out / "manifest.parquet").exists()
    else:
        assert (out / "manifest.parquet").exists() == (point == "before-summary")
    rerun = _build(recipe_path, tiny_root, out, jobs=jobs)
    assert rerun.returncode == 0, rerun.stderr
    assert _files(out) == expected
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name or p.name in (".parts", ".lock")]
    assert leftovers == []
