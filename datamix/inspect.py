"""Polars summaries of a built mix (a mix folder or its manifest.parquet): per-source counts against
the recipe's expected counts, text-only share, turns and length distributions.

The manifest is read through `datamix.mixio.MixReader`. The same numbers are one-liners on it, e.g.
`pl.read_parquet("mixes/demo/manifest.parquet").group_by("source").len()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from datamix.mixio import MixIOError, MixReader, locate_manifest


class InspectError(Exception):
    pass


def _locate(path: Path) -> tuple[Path, Path | None]:
    mix_dir, manifest = locate_manifest(path)
    if not manifest.is_file():
        raise InspectError(f"{manifest}: no manifest.parquet (is {path} a built mix?)")
    summary = mix_dir / "summary.json"
    return manifest, summary if summary.is_file() else None


def inspect_mix(path: str | Path) -> dict[str, Any]:
    """Summaries as plain data: `sources` (one row per source), `total`, `text_only_share`,
    `turns` and `lengths` (quantiles of n_turns / n_text_chars / n_tokens per source)."""
    manifest, summary_path = _locate(Path(path))
    try:
        with MixReader(manifest) as reader:
            df = pl.from_arrow(reader.read_manifest())
    except MixIOError as e:
        raise InspectError(str(e)) from None
    assert isinstance(df, pl.DataFrame)  # a table gives a frame
    expected: dict[str, Any] = {}
    if summary_path is not None:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        expected = {k: v.get("expected") for k, v in summary.get("sources", {}).items()}
    per_source = (
        df.group_by("source", maintain_order=True)
        .agg(
            pl.len().alias("samples"),
            pl.col("image").is_null().sum().alias("text_only"),
            pl.col("n_turns").mean().round(2).alias("turns_mean"),
            pl.col("n_turns").max().alias("turns_max"),
            pl.col("n_text_chars").median().alias("chars_median"),
            pl.col("n_text_chars").quantile(0.99).alias("chars_p99"),
            pl.col("n_tokens").median().alias("tokens_median"),
            pl.col("n_tokens").max().alias("tokens_max"),
        )
        .sort("source")
    )
    rows = per_source.to_dicts()
    for r in rows:
        r["expected"] = expected.get(r["source"])
    return {
        "manifest": str(manifest),
        "total": df.height,
        "shards": df["shard"].n_unique() if df.height else 0,
        "text_only_share": round(float(df["image"].is_null().mean()), 4) if df.height else 0.0,
        "sources": rows,
    }
