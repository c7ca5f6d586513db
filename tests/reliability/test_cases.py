"""Issue 18 (hostile input and faults), the datamix side: every case run through the real CLI with
its expected exit code (0 ok, 1 the data has problems, 2 the command cannot run; never 3, a bug)
and a fragment of the one line it prints. Drops are checked in the drops table."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from datamix.cli import app

from .helpers import (
    TEXT_TURNS,
    TURNS,
    conversation_raw,
    copy_root,
    deep_json,
    jpeg,
    png_bomb,
    recipe,
)


@dataclass
class Env:
    tmp: Path
    tiny_root: Path
    monkeypatch: pytest.MonkeyPatch

    def write(self, rel: str, data: bytes | str) -> Path:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return path

    def records(self, rel: str, records: Any) -> Path:
        return self.write(rel, json.dumps(records))

    def built(self, name: str = "mix") -> Path:
        out = self.tmp / name
        res = CliRunner().invoke(
            app,
            ["build", "--recipe", str(recipe(self.tmp)), "--root", str(self.tiny_root), "--out", str(out)],
        )
        assert res.exit_code == 0, res.output
        return out


def _drops(root: Path, source: str) -> list[tuple[str, str]]:
    table = pl.read_parquet(root / "normalized" / f"{source}.drops.parquet")
    return list(zip(table["reason"].to_list(), table["detail"].to_list(), strict=True))


# --- the cases: (id, setup -> argv, exit code, fragment, check after) -------------------------------


def bad_byte(source: str) -> Callable[[Env], list[str]]:
    def setup(env: Env) -> list[str]:
        conversation_raw(env.tmp / "root", source)
        return ["normalize", source, "--root", str(env.tmp / "root")]

    return setup


def bad_byte_check(source: str) -> Callable[[Env, Any], None]:
    def check(env: Env, res: Any) -> None:
        assert _drops(env.tmp / "root", source) == [
            ("bad_json", "not valid JSON: Invalid UTF-8 encoded string")
        ]
        assert pl.read_parquet(env.tmp / "root" / "normalized" / f"{source}.parquet").height == 2

    return check


def one_bad_source_spares_others(env: Env) -> list[str]:
    root = env.tmp / "root"
    conversation_raw(root, "llava_instruct", bad_index=None)
    env.write("root/raw/sharegpt/ShareGPT_V3_unfiltered_cleaned_split.json", deep_json())
    return ["normalize", "sharegpt", "llava_instruct", "--root", str(root), "--jobs", "1"]


def spared(env: Env, res: Any) -> None:
    assert "1/2 sources" in res.output
    assert pl.read_parquet(env.tmp / "root" / "normalized" / "llava_instruct.parquet").height == 3


def deep_lint(env: Env) -> list[str]:
    return ["lint", str(env.write("deep.json", deep_json()))]


def deep_import(env: Env) -> list[str]:
    (env.tmp / "images").mkdir()
    return [
        "import-llava",
        str(env.write("deep.json", deep_json())),
        "--images",
        str(env.tmp / "images"),
        "--out",
        str(env.tmp / "out"),
    ]


def _import(env: Env, image: str, *, make_outside: bool = True) -> list[str]:
    images = env.tmp / "data" / "images"
    images.mkdir(parents=True)
    if make_outside:
        env.write("outside/secret.jpg", jpeg())
    rec = {"id": "1", "image": image, "conversations": TURNS}
    return [
        "import-llava",
        str(env.records("in.json", [rec])),
        "--images",
        str(images),
        "--out",
        str(env.tmp / "out"),
    ]


def outside_dotdot(env: Env) -> list[str]:
    return _import(env, "../../outside/secret.jpg")


def outside_absolute(env: Env) -> list[str]:
    return _import(env, str(env.tmp / "outside" / "secret.jpg"))


def symlinked_folder_allowed(env: Env) -> list[str]:
    argv = _import(env, "coco/secret.jpg")
    os.symlink(env.tmp / "outside", env.tmp / "data" / "images" / "coco")  # a dataset folder on another disk
    return argv


def nothing_outside_read(env: Env, res: Any) -> None:
    assert not (env.tmp / "out" / "shards").exists() or not list((env.tmp / "out" / "shards").glob("*.tar"))


def lint_outside(env: Env) -> list[str]:
    rec = {"id": "1", "image": "../../outside/secret.jpg", "conversations": TURNS}
    return ["lint", str(env.records("in.json", [rec]))]


def lint_bad_byte(env: Env) -> list[str]:
    good = json.dumps({"id": "1", "conversations": TEXT_TURNS}).encode()
    return [
        "lint",
        str(
            env.write(
                "in.json", b"[" + good + b"," + good.replace(b"Hello", b"He\xffllo") + b"," + good + b"]"
            )
        ),
    ]


def lint_checked_all(env: Env, res: Any) -> None:
    assert "3 records" in res.output or "3 record" in res.output


def import_top_object(env: Env) -> list[str]:
    (env.tmp / "images").mkdir()
    path = env.write("in.json", json.dumps({"data": [{"id": "1", "conversations": TEXT_TURNS}]}, indent=2))
    return ["import-llava", str(path), "--images", str(env.tmp / "images"), "--out", str(env.tmp / "out")]


def import_fragment(env: Env) -> list[str]:
    (env.tmp / "images").mkdir()
    path = env.records("in.json", [{"id": "1", "conversations": TEXT_TURNS[:1]}])
    return ["import-llava", str(path), "--images", str(env.tmp / "images"), "--out", str(env.tmp / "out")]


def import_bomb(env: Env) -> list[str]:
    argv = _import(env, "coco/bomb.png", make_outside=False)
    env.write("data/images/coco/bomb.png", png_bomb(10_000, 10_000))  # the warning range: 1x-2x the limit
    return argv


def no_raw_warning(env: Env, res: Any) -> None:
    assert "DecompressionBombWarning" not in res.output and "Traceback" not in res.output


def _image_root(env: Env, name: str, data: bytes) -> list[str]:
    root = env.tmp / "root"
    conversation_raw(root, "llava_instruct", bad_index=None)
    (root / "images" / "coco" / "train2017" / "000000000001.jpg").write_bytes(data)
    return ["normalize", "llava_instruct", "--root", str(root)]


def text_as_jpg(env: Env) -> list[str]:
    return _image_root(env, "text", b"this is not an image\n")


def bomb_at_normalize(env: Env) -> list[str]:
    return _image_root(env, "bomb", png_bomb())


def image_dropped(fragment: str) -> Callable[[Env, Any], None]:
    def check(env: Env, res: Any) -> None:
        ((reason, detail),) = _drops(env.tmp / "root", "llava_instruct")
        assert reason == "image_undecodable" and fragment in detail, detail
        assert "DecompressionBombWarning" not in res.output

    return check


def build_argv(env: Env, *extra: str, root: Path | None = None) -> list[str]:
    return ["build", "--recipe", str(recipe(env.tmp)), "--root", str(root or env.tiny_root), *extra]


def out_is_file(env: Env) -> list[str]:
    return build_argv(env, "--out", str(env.write("out", "x")))


def root_is_file(env: Env) -> list[str]:
    return build_argv(env, "--out", str(env.tmp / "m"), root=env.write("rootfile", "x"))


def missing_tokenizer(env: Env) -> list[str]:
    return build_argv(env, "--out", str(env.tmp / "m"), "--tokenizer", str(env.tmp / "no" / "tokenizer"))


def corrupt_parquet(env: Env) -> list[str]:
    root = copy_root(env.tiny_root, env.tmp / "root")
    (root / "normalized" / "vqav2.parquet").write_bytes(b"PAR1 garbage")
    return build_argv(env, "--out", str(env.tmp / "m"), root=root)


def corrupt_stats(env: Env) -> list[str]:
    root = copy_root(env.tiny_root, env.tmp / "root")
    (root / "normalized" / "gqa.stats.json").write_text("{not json")
    return build_argv(env, "--out", str(env.tmp / "m"), root=root)


def recipe_not_utf8(env: Env) -> list[str]:
    return [
        "build",
        "--recipe",
        str(env.write("bad.yaml", b"name: x\xff\xfe\n")),
        "--root",
        str(env.tiny_root),
    ]


def catalog_not_utf8(env: Env) -> list[str]:
    return [
        "download",
        "vqav2",
        "--root",
        str(env.tmp / "r"),
        "--catalog",
        str(env.write("cat.yaml", b"\xff\xfe[")),
        "--annotations-only",
    ]


def disk_full(env: Env) -> list[str]:
    from datamix import mixio

    def full(self: Any, name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(env.tmp / "m" / "shards" / "x.tar.tmp-1"))

    env.monkeypatch.setattr(mixio.TarWriter, "add", full)
    return build_argv(env, "--out", str(env.tmp / "m"))


def read_only_fs(env: Env) -> list[str]:
    real = Path.mkdir

    def ro(self: Path, *a: Any, **k: Any) -> None:
        if str(self).startswith(str(env.tmp / "m")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real(self, *a, **k)

    env.monkeypatch.setattr(Path, "mkdir", ro)
    return build_argv(env, "--out", str(env.tmp / "m"))


def no_leftover(env: Env, res: Any) -> None:
    assert not list((env.tmp / "m").rglob("*.tar")) if (env.tmp / "m").exists() else True


def locked_out(env: Env) -> list[str]:
    import fcntl

    out = env.tmp / "m"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another build holds it (released when the test's fd closes)
    env.monkeypatch.setattr(Env, "_fd", fd, raising=False)
    return build_argv(env, "--out", str(out))


def force_keeps_foreign(env: Env) -> list[str]:
    out = env.built("m")
    (out / "shards" / "notes.txt").write_text("mine")
    (out / "shards" / "other-mix-000000.tar").write_bytes(b"not ours")
    return [
        "build",
        "--recipe",
        str(recipe(env.tmp, 8, "other")),
        "--root",
        str(env.tiny_root),
        "--out",
        str(out),
        "--force",
    ]


def foreign_kept(env: Env, res: Any) -> None:
    shards = env.tmp / "m" / "shards"
    assert (shards / "notes.txt").read_text() == "mine" and (shards / "other-mix-000000.tar").exists()


def verify_missing_shard(env: Env) -> list[str]:
    out = env.built()
    sorted((out / "shards").glob("*.tar"))[1].unlink()
    return ["inspect", str(out), "--verify"]


def verify_damaged_image(env: Env) -> list[str]:
    import pyarrow.parquet as pq

    from datamix.mixio import tar_members

    out = env.built()
    row = next(r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["image"])
    shard = out / "shards" / row["shard"]
    with open(shard, "r+b") as f:
        offset = next(o for name, o, _ in tar_members(f) if name == f"{row['key']}.jpg")
        f.seek(offset + 20)
        f.write(b"\x00\x01\x02\x03")
    return ["inspect", str(out), "--verify"]


def verify_clean(env: Env) -> list[str]:
    return ["inspect", str(env.built()), "--verify"]


def report_exists(env: Env) -> list[str]:
    return ["report", str(env.built()), "--out", str(env.write("r.html", "<html>mine</html>"))]


def report_kept(env: Env, res: Any) -> None:
    assert (env.tmp / "r.html").read_text() == "<html>mine</html>"


def sources_piped(env: Env) -> list[str]:
    return ["sources", "--root", str(env.tmp / "r")]


def whole_names(env: Env, res: Any) -> None:
    lines = [line for line in res.stdout.splitlines() if line.startswith("llava_instruct\t")]
    assert len(lines) == 1


def sources_json(env: Env) -> list[str]:
    return ["sources", "--root", str(env.tmp / "r"), "--format", "json"]


def json_names(env: Env, res: Any) -> None:
    from datamix.sources import SOURCE_NAMES

    assert [s["source"] for s in json.loads(res.stdout)["sources"]] == list(SOURCE_NAMES)


CASES = [
    # defect 2: one bad byte in a record -> a drop; deep nesting -> one line
    ("bad-utf8-llava_instruct", bad_byte("llava_instruct"), 0, "1 drops", bad_byte_check("llava_instruct")),
    ("bad-utf8-sharegpt", bad_byte("sharegpt"), 0, "1 drops", bad_byte_check("sharegpt")),
    ("bad-utf8-llava_pretrain", bad_byte("llava_pretrain"), 0, "1 drops", bad_byte_check("llava_pretrain")),
    ("deep-json-spares-other-sources-jobs1", one_bad_source_spares_others, 1, "JSON nested too deep", spared),
    ("deep-json-lint", deep_lint, 2, "JSON nested too deep", None),
    ("deep-json-import-llava", deep_import, 1, "JSON nested too deep", None),
    ("lint-bad-utf8-record", lint_bad_byte, 1, "not valid JSON: Invalid UTF-8", None),
    # defect 3: import-llava confined to --images; lint reports it
    ("import-outside-dotdot", outside_dotdot, 1, "has a '..' part", nothing_outside_read),
    ("import-outside-absolute", outside_absolute, 1, "is an absolute path", nothing_outside_read),
    ("import-symlinked-folder-allowed", symlinked_folder_allowed, 0, "1 samples", None),
    ("lint-outside-root", lint_outside, 1, "image/outside-root", None),
    # weak spots
    ("import-top-level-object", import_top_object, 1, "top level is a JSON object", None),
    ("import-one-turn-fragment", import_fragment, 1, "has 1 turn", None),
    ("import-png-bomb", import_bomb, 1, "exceeds limit", no_raw_warning),
    (
        "normalize-text-named-jpg",
        text_as_jpg,
        0,
        "image_undecodable 1",
        image_dropped("not a readable image"),
    ),
    ("normalize-png-bomb", bomb_at_normalize, 0, "image_undecodable 1", image_dropped("decompression bomb")),
    ("build-out-is-a-file", out_is_file, 2, "--out is a file", None),
    ("root-is-a-file", root_is_file, 2, "the data root is not a folder", None),
    ("build-missing-tokenizer", missing_tokenizer, 2, "--tokenizer: no such file or folder", None),
    ("build-corrupt-parquet", corrupt_parquet, 1, "vqav2.parquet: damaged table", None),
    ("build-corrupt-stats", corrupt_stats, 1, "gqa.stats.json: damaged stats", None),
    ("recipe-not-utf8", recipe_not_utf8, 2, "bad.yaml", None),
    ("catalog-not-utf8", catalog_not_utf8, 2, "cat.yaml", None),
    ("build-disk-full", disk_full, 2, "no space left on the device", no_leftover),
    ("build-read-only", read_only_fs, 2, "read-only file system", None),
    ("build-out-locked", locked_out, 2, "another build is writing into this folder", None),
    ("build-force-keeps-foreign-files", force_keeps_foreign, 0, "samples in", foreign_kept),
    ("inspect-verify-missing-shard", verify_missing_shard, 1, "shard file missing", None),
    ("inspect-verify-damaged-image", verify_damaged_image, 1, "sha256 differs", None),
    ("inspect-verify-clean", verify_clean, 0, "0 problems", None),
    ("report-out-exists", report_exists, 2, "exists; pass --force", report_kept),
    ("sources-piped", sources_piped, 0, "11 sources under", whole_names),
    ("sources-json", sources_json, 0, '"sources"', json_names),
]


@pytest.mark.parametrize(
    ("setup", "code", "fragment", "check"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_case(setup, code, fragment, check, tmp_path, tiny_root, monkeypatch):
    env = Env(tmp_path, tiny_root, monkeypatch)
    argv = setup(env)
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == code, (res.exit_code, res.output)
    assert fragment in res.output, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    if check is not None:
        check(env, res)


def test_read_only_folder_for_real(tmp_path, tiny_root):
    """Without root's privileges a read-only --out parent gives one line, exit 2."""
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        res = CliRunner().invoke(
            app,
            [
                "build",
                "--recipe",
                str(recipe(tmp_path)),
                "--root",
                str(tiny_root),
                "--out",
                str(parent / "m"),
            ],
        )
    finally:
        parent.chmod(0o700)
    assert res.exit_code == 2 and "Permission denied" in res.output, res.output


def test_every_error_class_has_an_exit_code():
    """The module errors are in the contract: data problems exit 1, cannot-run exit 2."""
    from datamix.catalog import CatalogError
    from datamix.compare import CompareError
    from datamix.errors import DataError, UsageError
    from datamix.fetch import FetchError
    from datamix.fileio import RawFormatError
    from datamix.inspect import InspectError
    from datamix.lint import LintInputError
    from datamix.llava_json import LlavaJsonError
    from datamix.mix import MixError
    from datamix.mixio import MixIOError
    from datamix.normalize import NormalizeError
    from datamix.recipe import RecipeError
    from datamix.report import ReportError
    from datamix.shards import BuildError
    from datamix.synth import SynthError

    data = [BuildError, LlavaJsonError, NormalizeError, FetchError, MixError, RawFormatError, MixIOError]
    usage = [RecipeError, CatalogError, InspectError, LintInputError, ReportError, SynthError, CompareError]
    assert all(issubclass(c, DataError) for c in data) and all(issubclass(c, UsageError) for c in usage)


def test_workers_die_with_their_parent(tmp_path):
    """A pool worker set up like the build's and normalize's (`datamix.proc.die_with_parent`) dies
    when its parent is killed."""
    import subprocess
    import sys
    import time

    script = (
        "import os, signal, sys\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from datamix.proc import die_with_parent\n"
        "pool = ProcessPoolExecutor(1, initializer=die_with_parent, initargs=(os.getpid(),))\n"
        "print(pool.submit(os.getpid).result(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    worker = int(proc.stdout.split()[0])
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(worker, 9)
    pytest.fail(f"worker {worker} outlived its parent")
