"""Polars summaries of a built mix (a mix folder or its manifest.parquet): per-source counts against
the recipe's expected counts, text-only share, turns and length distributions.

The manifest is read through `datamix.mixio.MixReader`. The same numbers are one-liners on it, e.g.
`pl.read_parquet("mixes/demo/manifest.parquet").group_by("source").len()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import polars as pl

from datamix.errors import DataError, UsageError
from datamix.mixio import MixIOError, MixReader, locate_manifest, resolve_shard, tar_members


class InspectError(UsageError):
    """The mix cannot be inspected (not a mix folder, unreadable manifest): exit 2."""


def manifest_frame(path: Path, error: type[UsageError]) -> pl.DataFrame:
    """The manifest of a mix (its folder or its manifest file) as a frame; one that cannot be read
    raises `error` with `MixIOError`'s message."""
    try:
        with MixReader(path) as reader:
            df = pl.from_arrow(reader.read_manifest())
    except MixIOError as e:
        raise error(str(e)) from None
    assert isinstance(df, pl.DataFrame)  # a table gives a frame
    return df


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
    df = manifest_frame(manifest, InspectError)
    expected: dict[str, Any] = {}
    if summary_path is not None:
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            expected = {k: v.get("expected") for k, v in summary.get("sources", {}).items()}
        except (ValueError, AttributeError, TypeError) as e:
            raise DataError(f"damaged summary ({type(e).__name__}: {e})", path=summary_path) from None
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
        "text_only_share": round(float(cast(float, df["image"].is_null().mean())), 4) if df.height else 0.0,
        "sources": rows,
    }


def verify_mix(path: str | Path, *, limit: int = 1000) -> dict[str, Any]:
    """Check the shards against the manifest: every shard a row names exists and is a readable tar;
    every row's `<key>.json` is in it, and for image rows `<key>.jpg`, whose sha256 equals the row's
    `stored_sha256` (else `image_sha256`) when the manifest has one. Returns `checked` (rows),
    `shards`, `problems` (the first `limit` lines, each naming the shard and the row) and
    `n_problems` (all of them)."""
    import hashlib
    import tarfile

    manifest, _ = _locate(Path(path))
    problems: list[str] = []
    n_problems = 0

    def problem(line: str) -> None:
        nonlocal n_problems
        n_problems += 1
        if len(problems) < limit:
            problems.append(line)

    indexes: dict[str, dict[str, tuple[int, int]] | None] = {}
    checked = 0
    try:
        with MixReader(manifest) as reader:
            mix_dir = reader.mix_dir
            columns = ["key", "shard", "image", "stored_sha256", "image_sha256"]
            for batch in reader.iter_manifest(columns):
                for key, shard, image, stored, original in zip(*(batch[c] for c in columns), strict=True):
                    row = checked
                    checked += 1
                    shard = str(shard)
                    if shard not in indexes:
                        shard_path = resolve_shard(mix_dir, shard, manifest=manifest, row=row)
                        try:
                            with open(shard_path, "rb") as f:
                                members = {name.rsplit("/", 1)[-1]: (o, n) for name, o, n in tar_members(f)}
                            indexes[shard] = members
                        except FileNotFoundError:
                            indexes[shard] = None
                            problem(f"{shard}: shard file missing (row {row}, key {key})")
                        except (OSError, tarfile.TarError, EOFError) as e:
                            indexes[shard] = None
                            problem(f"{shard}: damaged shard ({e}) (row {row}, key {key})")
                    index = indexes[shard]
                    if index is None:
                        continue
                    if f"{key}.json" not in index:
                        problem(f"{shard}: row {row}: {key}.json missing")
                    if image is None:
                        continue
                    where = index.get(f"{key}.jpg")
                    if where is None:
                        problem(f"{shard}: row {row}: {key}.jpg missing")
                        continue
                    want = stored or original
                    if want is None:
                        continue
                    shard_path = resolve_shard(mix_dir, shard)
                    with open(shard_path, "rb") as f:
                        f.seek(where[0])
                        data = f.read(where[1])
                    if len(data) != where[1]:
                        problem(f"{shard}: row {row}: {key}.jpg truncated ({len(data)} of {where[1]} bytes)")
                    elif hashlib.sha256(data).hexdigest() != want:
                        problem(f"{shard}: row {row}: {key}.jpg sha256 differs from the manifest's")
    except MixIOError as e:
        raise InspectError(str(e)) from None
    return {
        "manifest": str(manifest),
        "checked": checked,
        "shards": len(indexes),
        "problems": problems,
        "n_problems": n_problems,
    }
