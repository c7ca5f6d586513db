"""The `datamix` command line: one thin function per command (architecture.md 4.2); logic lives in the library."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from datamix import __version__
from datamix.commands_download import download
from datamix.ui import console, counter, out

app = typer.Typer(
    help="Rebuild the LLaVA-1.5 training mixture from its public raw datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RootOpt = typer.Option(None, "--root", help="Data root (default: $DATAMIX_ROOT or ./data).")


def _version(value: bool) -> None:
    if value:
        out.print(f"datamix {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def sources(root: Path | None = RootOpt) -> None:
    """List the sources: stage, raw files, licence and what is on disk."""
    from datamix.paths import Layout
    from datamix.sources import SOURCES

    from datamix.commands_download import download_state

    layout = Layout.at(root)
    downloaded = download_state(layout)
    table = Table("source", "stage", "kind", "raw files", "licence", "downloaded", "state")
    for name, src in SOURCES.items():
        present = [f for f in src.raw_files if (layout.raw(name) / f.name).is_file()]
        required = src.required_files()
        missing = [f for f in required if f not in present]
        if layout.stats(name).is_file():
            state = "normalized"
        elif not missing:
            state = "raw present"
        else:
            state = f"{len(required) - len(missing)}/{len(required)} raw files"
        files = "\n".join(f.name + (" (optional)" if f.optional else "") for f in src.raw_files)
        table.add_row(name, src.stage, src.kind.value, files, src.license, downloaded.get(name, "-"), state)
    out.print(table)
    out.print(f"{len(SOURCES)} sources under {layout.root}")


@app.command()
def synth(
    root: Path | None = RootOpt,
    scale: str = typer.Option("tiny", "--scale", help="tiny (seconds) or small (the demo's few thousand samples)."),
    seed: int = typer.Option(0, "--seed", help="Seed: same seed, byte-identical files."),
) -> None:
    """Write synthetic raw files of every source in the real formats, with images, under ROOT."""
    from datamix.paths import resolve_root
    from datamix.synth import synth as run_synth

    if scale not in ("tiny", "small"):
        raise typer.BadParameter(f"--scale must be tiny or small, not {scale!r}")
    target = resolve_root(root)
    counts = run_synth(target, scale=scale, seed=seed)
    total = sum(counts.values())
    out.print(f"synth: {len(counts)} sources, {total:,} raw records under {target} (scale {scale}, seed {seed})")


app.command("download", help="Fetch, verify and extract the official files of SRC... (default: all).")(download)


@app.command()
def normalize(
    names: list[str] = typer.Argument(None, metavar="[SRC]...", help="Sources to normalize (default: all)."),
    root: Path | None = RootOpt,
    jobs: int = typer.Option(1, "--jobs", "-j", help="Sources normalized in parallel."),
    force: bool = typer.Option(False, "--force", help="Redo sources that are up to date."),
) -> None:
    """Raw files -> ROOT/normalized/<source>.parquet, .drops.parquet and .stats.json."""
    from datamix.normalize import normalize as run_normalize
    from datamix.sources import SOURCE_NAMES

    unknown = [n for n in names or [] if n not in SOURCE_NAMES]
    if unknown:
        raise typer.BadParameter(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(SOURCE_NAMES)}")

    def done(stats: dict[str, Any]) -> None:
        progress.finish(stats["source"])
        console.print(_summary_line(stats), highlight=False)

    with counter() as progress:
        results = run_normalize(names or None, root, jobs=jobs, force=force, on_progress=progress, on_done=done)
    failed = [r for r in results if "error" in r]
    items = sum(r.get("items", 0) for r in results)
    drops = sum(r.get("drops", 0) for r in results)
    out.print(f"normalize: {len(results) - len(failed)}/{len(results)} sources, {items:,} items, {drops:,} drops")
    if failed:
        raise typer.Exit(1)


def _summary_line(stats: dict[str, Any]) -> str:
    name = stats["source"]
    if "error" in stats:
        return f"[red]x[/red] {name:<15} failed: {stats['error']}"
    reasons = ", ".join(f"{k} {v:,}" for k, v in stats["drops_by_reason"].items()) or "none"
    state = "up to date" if stats.get("skipped") else f"{stats['seconds']:.1f}s"
    return f"[green]ok[/green] {name:<15} {stats['items']:>9,} items, drops: {reasons} ({state})"


if __name__ == "__main__":  # pragma: no cover
    app()
