"""Hand-made mix folders for the readers' tests (lint, export): shards of given samples + a manifest."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

Samples = list[tuple[str, str, dict]]  # (key, source, LLaVA record)


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def write_mix(
    root: Path,
    shards: list[Samples],
    *,
    order: list[str] | None = None,
    image: Callable[[str, dict], bytes] = lambda key, record: key.encode(),
    size: tuple[int, int] = (8, 8),
    shard_dir: str = "shards/",
    schema: pa.Schema | None = None,
    tar_format: int = tarfile.DEFAULT_FORMAT,
) -> Path:
    """`root/shards/test-<n>.tar` holding each shard's samples (`<key>.json`, and `<key>.jpg` made by
    `image` when the record has an image), and manifest rows in `order` (by key; default: as written),
    their `shard` column `shard_dir` + the tar's name."""
    (root / "shards").mkdir(parents=True)
    rows = {}
    for n, samples in enumerate(shards):
        shard = f"test-{n:06d}.tar"
        with tarfile.open(root / "shards" / shard, "w", format=tar_format) as tar:
            for key, source, record in samples:
                sample = {**copy.deepcopy(record), "id": str(record["id"]), "source": source, "key": key}
                add_member(tar, f"{key}.json", json.dumps(sample).encode())
                jpg = image(key, record) if "image" in record else None
                if jpg is not None:
                    add_member(tar, f"{key}.jpg", jpg)
                rows[key] = {
                    "key": key,
                    "id": str(record["id"]),
                    "source": source,
                    "image": record.get("image"),
                    "image_sha256": hashlib.sha256(jpg).hexdigest() if jpg is not None else None,
                    "width": size[0] if jpg is not None else None,
                    "height": size[1] if jpg is not None else None,
                    "n_turns": len(record["conversations"]),
                    "n_text_chars": sum(len(t["value"]) for t in record["conversations"]),
                    "shard": shard_dir + shard,
                }
    table = [rows[k] for k in order] if order is not None else list(rows.values())
    pq.write_table(pa.Table.from_pylist(table, schema=schema), root / "manifest.parquet")
    return root
