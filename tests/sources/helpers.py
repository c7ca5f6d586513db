"""Run one source through normalize and read back its tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from datamix.normalize import normalize_source
from datamix.schema import read_items


def run(root: Path, source: str) -> tuple[list[Any], list[dict[str, Any]], dict[str, Any]]:
    stats = normalize_source(source, root, force=True)
    items = list(read_items(root / "normalized" / f"{source}.parquet"))
    drops = pq.read_table(root / "normalized" / f"{source}.drops.parquet").to_pylist()
    return items, drops, stats


def reasons(drops: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["pointer"], d["reason"]) for d in drops]
