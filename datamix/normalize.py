"""Runs sources over their raw files: ROOT/normalized/<source>.parquet + .drops.parquet + .stats.json.

Each source's three outputs are written to temporary files and renamed into place, the stats file
last: it is the completion marker. A rerun skips a source whose stats record the same input files
(size and mtime) and the same image folders, unless forced; a killed run leaves no output taken for
finished. Sources are independent and run in parallel processes with `jobs > 1`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datamix import __version__
from datamix.errors import DataError, describe
from datamix.fileio import RawFormatError, atomic_path, sha256_file, write_json_atomic
from datamix.paths import Layout
from datamix.proc import die_with_parent
from datamix.schema import DROP_SCHEMA, ITEM_SCHEMAS, SCHEMA_VERSION, Drop, to_row
from datamix.sources import SOURCE_NAMES, Context, Source, get_source
from datamix.sources.base import ImageIndex

log = logging.getLogger(__name__)

BATCH = 2048

ProgressFn = Callable[[str, int], None]


class NormalizeError(DataError):
    """A source could not be normalized at all (missing or unparseable raw file)."""


def _input_files(source: Source, layout: Layout) -> list[dict[str, Any]]:
    raw = layout.raw(source.name)
    out = []
    for f in source.raw_files:
        path = raw / f.name
        if path.is_file():
            st = path.stat()
            out.append({"file": f.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _image_dirs(source: Source, layout: Layout) -> dict[str, int | None]:
    """A cheap signature of the image folders: their mtime (changes when files come or go)."""
    sig: dict[str, int | None] = {}
    for d in source.image_dirs:
        path = layout.images / d
        sig[d] = path.stat().st_mtime_ns if path.is_dir() else None
    return sig


def is_up_to_date(name: str, layout: Layout) -> bool:
    import json

    source = get_source(name)
    stats_path = layout.stats(name)
    if not (stats_path.is_file() and layout.items(name).is_file() and layout.drops(name).is_file()):
        return False
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    current = _input_files(source, layout)
    recorded = [{k: i[k] for k in ("file", "size", "mtime_ns")} for i in stats.get("inputs", [])]
    return (
        stats.get("schema_version") == SCHEMA_VERSION
        and recorded == current
        and stats.get("image_dirs") == _image_dirs(source, layout)
    )


class _TableWriter:
    """Buffered Parquet writer onto a temporary path."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        self.rows: list[dict[str, Any]] = []
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def normalize_source(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Normalize one source; returns its stats (with `skipped: True` when it was up to date)."""
    import json

    source = get_source(name)
    layout = Layout.at(root)
    if not force and is_up_to_date(name, layout):
        stats = json.loads(layout.stats(name).read_text(encoding="utf-8"))
        stats["skipped"] = True
        return stats

    start = time.perf_counter()
    inputs = _input_files(source, layout)
    image_sig = _image_dirs(source, layout)
    ctx = Context(
        source=name,
        raw_dir=layout.raw(name),
        images=ImageIndex(layout.images),
        on_progress=(lambda n: on_progress(name, n)) if on_progress else None,
    )
    reasons: Counter[str] = Counter()
    layout.normalized.mkdir(parents=True, exist_ok=True)
    with atomic_path(layout.items(name)) as items_tmp, atomic_path(layout.drops(name)) as drops_tmp:
        items = _TableWriter(items_tmp, ITEM_SCHEMAS[source.kind])
        drops = _TableWriter(drops_tmp, DROP_SCHEMA)
        try:
            for record in source.read(ctx):  # items come with their key and source (Source.read)
                row = to_row(record)
                if isinstance(record, Drop):
                    reasons[row["reason"]] += 1
                    drops.add(row)
                else:
                    items.add(row)
        except (RawFormatError, OSError, RecursionError) as e:
            items.writer.close()
            drops.writer.close()
            if isinstance(e, RecursionError):
                raise NormalizeError(f"{name}: JSON nested too deep to read") from e
            if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
                raise NormalizeError(describe(e)[1]) from e
            raise NormalizeError(str(e)) from e
        items.close()
        drops.close()
        n_items = items.count
    # hashes of the annotation files, for the build's provenance (after reading: the page cache is warm)
    for entry in inputs:
        entry["sha256"] = sha256_file(layout.raw(name) / entry["file"])
    stats = {
        "source": name,
        "kind": source.kind.value,
        "items": n_items,
        "drops": sum(reasons.values()),
        "drops_by_reason": dict(sorted(reasons.items())),
        "counts": dict(sorted(ctx.counts.items())),
        "warnings": ctx.warnings,
        "seconds": round(time.perf_counter() - start, 3),
        "inputs": inputs,
        "image_dirs": image_sig,
        "schema_version": SCHEMA_VERSION,
        "datamix_version": __version__,
    }
    write_json_atomic(layout.stats(name), stats)
    log.info("%s: %d items, %d drops in %.1fs", name, n_items, stats["drops"], stats["seconds"])
    return stats


def _run_one(name: str, root: str, force: bool, on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """One source; whatever fails in it comes back as its error entry, never stopping the others."""
    try:
        return normalize_source(name, root, force=force, on_progress=on_progress)
    except NormalizeError as e:
        return {"source": name, "error": str(e)}
    except Exception as e:  # noqa: BLE001 - one source's failure must not stop the other sources
        log.debug("%s failed", name, exc_info=True)
        return {"source": name, "error": describe(e)[1]}


def normalize(
    sources: Iterable[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    *,
    jobs: int = 1,
    force: bool = False,
    on_progress: ProgressFn | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Normalize the given sources (default: all). A source that cannot be read at all comes back as
    `{"source", "error"}` and the others still run; the others come back as their stats. Results are
    in the order asked."""
    names = list(sources) if sources else list(SOURCE_NAMES)
    for n in names:
        get_source(n)  # unknown names fail before any work
    root_s = str(Layout.at(root).root)
    results: dict[str, dict[str, Any]] = {}
    if jobs <= 1 or len(names) == 1:
        for n in names:
            results[n] = _run_one(n, root_s, force, on_progress)
            if on_done:
                on_done(results[n])
    else:
        with ProcessPoolExecutor(
            max_workers=jobs, initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            futures = {pool.submit(_run_one, n, root_s, force): n for n in names}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except Exception as e:  # noqa: BLE001 - a worker that died (killed, out of memory)
                    res = {"source": futures[fut], "error": describe(e)[1]}
                results[futures[fut]] = res
                if on_done:
                    on_done(res)
    return [results[n] for n in names]
