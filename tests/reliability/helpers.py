"""Hostile inputs for tests/reliability: raw files with a bad byte, deep nesting, image bombs, and a
copy of the session's tiny root that a test may damage."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

from datamix.proc import KILL_ENV

REPO = Path(__file__).resolve().parents[2]

TURNS = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A thing."}]
TEXT_TURNS = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]

CONVERSATION_FILES = {
    "llava_instruct": ("llava_instruct_150k.json", "coco/train2017/{i:012d}.jpg", "{i:012d}.jpg"),
    "sharegpt": ("ShareGPT_V3_unfiltered_cleaned_split.json", None, None),
    "llava_pretrain": (
        "blip_laion_cc_sbu_558k.json",
        "llava_pretrain/images/00000/{i:09d}.jpg",
        "00000/{i:09d}.jpg",
    ),
}


def jpeg(size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid-looking PNG header of `width` x `height` 1-bit pixels (a few hundred bytes on disk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def conversation_raw(root: Path, source: str, n: int = 3, *, bad_index: int | None = 1) -> Path:
    """`n` records of a conversation source; record `bad_index` carries an invalid UTF-8 byte."""
    file, image_path, image_value = CONVERSATION_FILES[source]
    parts = []
    for i in range(n):
        rec: dict[str, Any] = {"id": f"{i:012d}", "conversations": TURNS if image_path else TEXT_TURNS}
        if image_path:
            path = root / "images" / image_path.format(i=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg())
            rec["image"] = image_value.format(i=i)
        data = json.dumps(rec).encode()
        if i == bad_index:
            data = data.replace(b"Hello" if not image_path else b"A thing.", b"A th\xffing.")
        parts.append(data)
    path = root / "raw" / source / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"[" + b",\n".join(parts) + b"]")
    return path


def deep_json(depth: int = 150_000) -> bytes:
    """A JSON array whose second record is nested `depth` levels deep."""
    rec = json.dumps({"id": "1", "conversations": TEXT_TURNS}).encode()
    return b"[" + rec + b"," + b"[" * depth + b"]" * depth + b"]"


def copy_root(src: Path, dst: Path) -> Path:
    """A copy of a data root whose raw files and images are links (cheap), its normalized tables real."""
    dst.mkdir(parents=True)
    for name in os.listdir(src):
        if name in ("raw", "images", "downloads"):
            os.symlink(src / name, dst / name)
        elif (src / name).is_dir() and name != "mixes":
            shutil.copytree(src / name, dst / name)
    return dst


def recipe(tmp_path: Path, max_samples: int = 16, name: str = "demo") -> Path:
    text = (Path(__file__).parent.parent / "fixtures" / "recipes" / "every_source.yaml").read_text()
    text = text.replace("max_samples: 256", f"max_samples: {max_samples}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def run_module(
    *argv: str, timeout: float, kill: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    """`python -m <argv>` from the repository root, output captured; with `kill`, the test hook
    `DATAMIX_TEST_KILL_AT` kills it at that point (never inherited); `env` adds variables."""
    environ = {**{k: v for k, v in os.environ.items() if k != KILL_ENV}, **env}
    if kill:
        environ[KILL_ENV] = kill
    return subprocess.run(
        [sys.executable, "-m", *argv],
        capture_output=True,
        text=True,
        env=environ,
        cwd=REPO,
        timeout=timeout,
    )
