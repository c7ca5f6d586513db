"""The `datamix` command line: one thin function per command (docs/architecture.md#commands); logic lives in the library."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import typer
from rich.table import Column, Table
from typer.models import CommandFunctionType

from datamix import __version__
from datamix.commands_download import download
from datamix.errors import UsageError, cli_errors
from datamix.ui import console, counter, out

_VERBOSE = False  # set by the app callback (-v): cli_errors prints the traceback then
_CLICK_EXITS = (
    typer.Exit,
    typer.Abort,
    typer.exceptions.TyperException,
    click.exceptions.Exit,
    click.exceptions.Abort,
    click.ClickException,
)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command inside the error contract (`datamix.errors.cli_errors`): any error escaping it
    becomes one line on stderr and exit 1 (data), 2 (cannot run) or 3 (a bug); typer's own exits and
    parameter errors pass through unchanged."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        passthrough: BaseException | None = None
        with cli_errors("datamix", verbose=_VERBOSE):
            try:
                return fn(*args, **kwargs)
            except _CLICK_EXITS as e:
                passthrough = e
        raise passthrough

    return run


class _App(typer.Typer):
    """A Typer app whose every command goes through `_guarded`."""

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        register = super().command(name, **kwargs)

        def decorator(fn: CommandFunctionType) -> CommandFunctionType:
            register(_guarded(fn))
            return fn

        return decorator


app = _App(
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
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def sources(
    root: Path | None = RootOpt,
    format: str = typer.Option(
        "text",
        "--format",
        help="text (a table on a terminal, one tab-separated line per source otherwise) or json.",
    ),
) -> None:
    """List the sources: stage, raw files, licence and what is on disk."""
    import json

    from datamix.commands_download import download_state
    from datamix.paths import Layout
    from datamix.sources import SOURCES

    if format not in ("text", "json"):
        raise typer.BadParameter(f"--format must be text or json, not {format!r}")
    layout = Layout.at(root)
    downloaded = download_state(layout)
    rows: list[dict[str, Any]] = []
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
        rows.append(
            {
                "source": name,
                "stage": src.stage,
                "kind": src.kind.value,
                "raw_files": [f.name + (" (optional)" if f.optional else "") for f in src.raw_files],
                "licence": src.license,
                "downloaded": downloaded.get(name, "-"),
                "state": state,
            }
        )
    if format == "json":
        sys.stdout.write(json.dumps({"root": str(layout.root), "sources": rows}, indent=2) + "\n")
        return
    if not out.is_terminal:  # piped: whole names, one greppable line per source
        for r in rows:
            cells = [
                r["source"],
                r["stage"],
                r["kind"],
                ", ".join(r["raw_files"]),
                r["licence"],
                r["downloaded"],
                r["state"],
            ]
            sys.stdout.write("\t".join(cells) + "\n")
        sys.stdout.write(f"{len(rows)} sources under {layout.root}\n")
        return
    width = max(len(r["source"]) for r in rows)
    table = Table(  # a narrow terminal folds cells; it never cuts a source name
        Column("source", no_wrap=True, min_width=width),
        *(
            Column(h, overflow="fold")
            for h in ("stage", "kind", "raw files", "licence", "downloaded", "state")
        ),
    )
    for r in rows:
        table.add_row(
            r["source"],
            r["stage"],
            r["kind"],
            "\n".join(r["raw_files"]),
            r["licence"],
            r["downloaded"],
            r["state"],
        )
    out.print(table)
    out.print(f"{len(SOURCES)} sources under {layout.root}")


@app.command()
def synth(
    root: Path | None = RootOpt,
    scale: str | None = typer.Option(
        None,
        "--scale",
        help="demo profile: tiny (seconds, the default) or small (the demo's few thousand samples).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed: same seed, byte-identical files."),
    force: bool = typer.Option(
        False, "--force", help="Write into a root that holds data synth did not write."
    ),
    profile: str = typer.Option(
        "demo",
        "--profile",
        help="demo (drawn scenes with learnable content) or volume (real sizes, filler text, hard-linked "
        "images: for benchmarks).",
    ),
    fraction: float | None = typer.Option(
        None, "--fraction", help="volume profile: fraction of the real sizes, in (0, 1] (default 1)."
    ),
) -> None:
    """Write synthetic raw files of every source in the real formats, with images, under ROOT."""
    from datamix.paths import resolve_root
    from datamix.synth import synth as run_synth

    if profile not in ("demo", "volume"):
        raise typer.BadParameter(f"--profile must be demo or volume, not {profile!r}")
    if profile == "demo":
        if fraction is not None:
            raise typer.BadParameter("--fraction applies to --profile volume (the demo profile has --scale)")
        scale = scale or "tiny"
        if scale not in ("tiny", "small"):
            raise typer.BadParameter(f"--scale must be tiny or small, not {scale!r}")
    else:
        if scale is not None:
            raise typer.BadParameter("--scale applies to --profile demo (the volume profile has --fraction)")
        fraction = 1.0 if fraction is None else fraction
        if not 0 < fraction <= 1:
            raise typer.BadParameter(f"--fraction must be in (0, 1], not {fraction}")
    target = resolve_root(root)
    counts = run_synth(
        target, scale=scale or "tiny", seed=seed, force=force, profile=profile, fraction=fraction
    )
    total = sum(counts.values())
    if profile == "demo":
        out.print(
            f"synth: {len(counts)} sources, {total:,} raw records under {target} (scale {scale}, seed {seed})"
        )
    else:
        out.print(
            f"synth: {len(counts)} sources, {total:,} items to normalize under {target} "
            f"(profile volume, fraction {fraction:g}, seed {seed})"
        )


app.command("download", help="Fetch, verify and extract the official files of SRC... (default: all).")(
    download
)


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
        results = run_normalize(
            names or None, root, jobs=jobs, force=force, on_progress=progress, on_done=done
        )
    failed = [r for r in results if "error" in r]
    items = sum(r.get("items", 0) for r in results)
    drops = sum(r.get("drops", 0) for r in results)
    out.print(
        f"normalize: {len(results) - len(failed)}/{len(results)} sources, {items:,} items, {drops:,} drops"
    )
    if failed:
        raise typer.Exit(1)


@app.command()
def build(
    recipe: str = typer.Option(
        ..., "--recipe", help="Recipe name (recipes/<name>.yaml) or path to a YAML file."
    ),
    root: Path | None = RootOpt,
    out: Path | None = typer.Option(None, "--out", help="Output folder (default ROOT/mixes/<recipe>)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Shards written in parallel."),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Tokenizer folder or .gguf file: n_tokens in the manifest, ShareGPT max_tokens.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved plan (counts per source); write nothing."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a different earlier build in the output folder."
    ),
    set_: list[str] = typer.Option(
        None,
        "--set",
        metavar="FIELD=VALUE",
        help="Override a recipe field (dotted path, YAML value; repeatable), e.g. sources.vqav2.choose=1000.",
    ),
) -> None:
    """Normalized tables + recipe -> deterministic WebDataset shards, manifest.parquet, summary.json."""
    from datamix.build import build as run_build

    with counter() as progress:
        result = run_build(
            recipe,
            root,
            out=out,
            jobs=jobs,
            tokenizer=tokenizer,
            dry_run=dry_run,
            force=force,
            on_shard=lambda done, total: progress("shards", done - progress.counts.get("shards", 0)),
            overrides=set_ or (),
        )
    if dry_run:
        for line in result.get("lines", []):
            out_console(line)
        if result.get("overrides"):
            out_console(
                f"overrides: {' '.join(result['overrides'])} (recipe hash {result['recipe_hash'][:12]})"
            )
        out_console(f"plan: {result['recipe']}: {result['total']:,} samples (dry run, nothing written)")
        return
    _print_counts(result)
    out_console(
        f"build: {result['samples']:,} samples in {result['shards']} shards ({result['shard_bytes'] / 2**20:.1f} MiB, "
        f"{result['shards_resumed']} resumed) -> {result['out']}"
    )


def _print_counts(result: dict[str, Any]) -> None:
    table = Table("source", "samples", "expected", "eval")
    for name, c in result.get("sources", {}).items():
        exp = c.get("expected")
        mark = "" if exp is None or exp == c["actual"] else " [yellow](differs)[/yellow]"
        table.add_row(
            name, f"{c['actual']:,}{mark}", "-" if exp is None else f"{exp:,}", f"{c.get('eval', 0):,}"
        )
    out.print(table)


def out_console(line: str) -> None:
    out.print(line, highlight=False, markup=False)


@app.command("export")
def export_cmd(
    mix_dir: Path = typer.Argument(..., help="A built mix folder."),
    format: str = typer.Option("llava-json", "--format", help="Only llava-json."),
    out_file: Path = typer.Option(..., "--out", help="Output JSON file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    image_prefix: str = typer.Option(
        "auto",
        "--image-prefix",
        metavar="PREFIX",
        help="auto: image paths as the official files (stage 2: coco/train2017/..., relative to the data "
        "root's images/; stage 1: 00453/004539375.jpg, relative to the LCS-558K images folder). "
        "Any other value is prepended to the path under the data root's images/ ('' keeps it as is).",
    ),
) -> None:
    """A mix as the release's JSON (array of {id, image?, conversations}) for the original LLaVA trainer."""
    from datamix.llava_json import AUTO_PREFIX, export_llava_json, mix_stage
    from datamix.paths import LLAVA_PRETRAIN_DIR

    if format != "llava-json":
        raise typer.BadParameter(f"--format must be llava-json, not {format!r}")
    try:
        n = export_llava_json(mix_dir, out_file, force=force, image_prefix=image_prefix)
    except FileExistsError as e:
        raise UsageError(f"{e}", path=None) from None
    out_console(f"export: {n:,} records -> {out_file}")
    root = mix_dir.parent.parent if mix_dir.parent.name == "mixes" else Path("<data root>")
    if image_prefix == AUTO_PREFIX:
        folder = root / "images" / (LLAVA_PRETRAIN_DIR if mix_stage(mix_dir) == 1 else "")
        out_console(f"LLaVA train.py: --data_path {out_file} --image_folder {str(folder).rstrip('/')}")
    else:
        out_console(f"image paths: {image_prefix!r} + the path under {root / 'images'}")


@app.command("import-llava")
def import_llava_cmd(
    file: Path = typer.Argument(..., help="A LLaVA-format JSON file (e.g. llava_v1_5_mix665k.json)."),
    images: Path = typer.Option(
        ..., "--images", help="Image root the records' `image` paths are relative to."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Output mix folder."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Shards written in parallel."),
    presize: int | None = typer.Option(
        None,
        "--presize",
        min=1,
        max=4096,
        help="Store each image as the trainer's padded SIZE x SIZE square (the model's image size, e.g. 336).",
    ),
    presize_quality: int = typer.Option(
        95, "--presize-quality", min=1, max=100, help="JPEG quality of presized images."
    ),
    presize_subsampling: str = typer.Option(
        "4:4:4",
        "--presize-subsampling",
        help="JPEG chroma subsampling of presized images: 4:4:4, 4:2:2 or 4:2:0.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a different earlier build in the output folder."
    ),
) -> None:
    """A LLaVA-format JSON file -> shards + manifest, each record's source inferred (`unknown` if unsure)."""
    from pydantic import ValidationError

    from datamix.build import import_llava
    from datamix.recipe import PresizeSpec

    spec = None
    if presize is not None:
        try:
            # validated like the keyword form (same errors); a str is what the option gives
            spec = PresizeSpec.model_validate(
                {"size": presize, "quality": presize_quality, "subsampling": presize_subsampling}
            )
        except ValidationError as e:
            problem = "; ".join(f"--presize-{err['loc'][0]}: {err['msg']}" for err in e.errors())
            console.print(f"[red]import failed:[/red] {problem}", highlight=False)
            raise typer.Exit(2) from None
    result = import_llava(file, images, out_dir, jobs=jobs, presize=spec, force=force)
    _print_counts(result)
    out_console(f"import-llava: {result['samples']:,} samples in {result['shards']} shards -> {out_dir}")


@app.command("compare")
def compare_cmd(
    a: Path = typer.Argument(
        ..., metavar="A", help="A mix folder, its manifest.parquet, or a LLaVA-format JSON file."
    ),
    b: Path = typer.Argument(
        ..., metavar="B", help="The same kinds (e.g. the official llava_v1_5_mix665k.json)."
    ),
    format: str = typer.Option("text", "--format", help="Output: text or json."),
    examples: int = typer.Option(
        3, "--examples", min=0, help="Examples shown per source and difference class."
    ),
) -> None:
    """Match the records of A and B by image and question per source; classify how matched ones differ.
    Exit 0 identical, 1 different, 2 cannot run."""
    import json

    from datamix.compare import CompareError, exit_code, format_text
    from datamix.compare import compare as run_compare

    if format not in ("text", "json"):
        print(f"datamix compare: error: unknown --format {format!r}; use text or json", file=sys.stderr)
        raise typer.Exit(2)
    try:
        result = run_compare(a, b, examples=examples)
    except CompareError as e:
        print(f"datamix compare: error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    if format == "json":
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_text(result))
    raise typer.Exit(exit_code(result))


@app.command("contamination")
def contamination_cmd(
    mix_dir: Path = typer.Argument(..., metavar="MIX", help="A built mix folder (or its manifest.parquet)."),
    benchmarks: list[str] = typer.Option(
        None,
        "--benchmarks",
        help="Benchmarks, comma-separated or repeated (default: all; see datamix.evalsets).",
    ),
    root: Path | None = RootOpt,
    format: str = typer.Option("text", "--format", help="Output: text, json or html."),
    near: bool = typer.Option(
        True, "--near/--no-near", help="Near-duplicate images (perceptual hash; cached)."
    ),
    examples: int = typer.Option(5, "--examples", min=0, help="Examples shown per benchmark."),
) -> None:
    """How many items of each benchmark have the same image, a near-duplicate image or the same
    question on the same image as a training sample of MIX; per training source. Benchmark files are
    read from ROOT/benchmarks/ (`datamix download --benchmarks`)."""
    from datamix import contamination, evalsets
    from datamix.errors import UsageError, cli_errors
    from datamix.paths import resolve_root

    with cli_errors("datamix contamination"):
        if format not in contamination.FORMATS:
            raise UsageError(f"unknown --format {format!r}; use text, json or html")
        try:
            names = evalsets.parse_names(benchmarks)
        except ValueError as e:
            raise UsageError(str(e)) from None
        report = contamination.run(mix_dir, resolve_root(root), names, near=near, examples=examples)
        sys.stdout.write(contamination.FORMATS[format](report))


@app.command("inspect")
def inspect_cmd(
    path: Path = typer.Argument(..., help="A mix folder or its manifest.parquet."),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Also check the shards against the manifest (members present, sizes, sha256); "
        "exit 1 on any problem.",
    ),
) -> None:
    """Polars summaries: per-source counts vs expected, text-only share, turns and lengths."""
    from datamix.inspect import InspectError, inspect_mix, verify_mix

    try:
        info = inspect_mix(path)
    except InspectError as e:
        console.print(f"[red]inspect failed:[/red] {e}", highlight=False)
        raise typer.Exit(2) from None
    cols = [
        "source",
        "samples",
        "expected",
        "text_only",
        "turns_mean",
        "turns_max",
        "chars_median",
        "chars_p99",
        "tokens_median",
        "tokens_max",
    ]
    table = Table(*cols)
    for r in info["sources"]:
        table.add_row(
            *("-" if r[c] is None else f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols)
        )
    out.print(table)
    out_console(
        f"inspect: {info['total']:,} samples in {info['shards']} shards, text-only share {info['text_only_share']:.2%}"
    )
    if verify:
        checked = verify_mix(path)
        for line in checked["problems"]:
            print(f"datamix inspect: {line}", file=sys.stderr)
        more = checked["n_problems"] - len(checked["problems"])
        if more:
            print(f"datamix inspect: ... and {more:,} more", file=sys.stderr)
        out_console(
            f"verify: {checked['checked']:,} rows in {checked['shards']} shards, {checked['n_problems']:,} problems"
        )
        if checked["n_problems"]:
            raise typer.Exit(1)


@app.command("report")
def report_cmd(
    mix_dir: Path = typer.Argument(..., help="A built mix folder (or an imported LLaVA JSON's folder)."),
    out_file: Path = typer.Option(..., "--out", help="Output HTML file."),
    per_source: int = typer.Option(12, "--per-source", help="Samples shown per source."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample choice."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Write a self-contained offline HTML report and sample browser of a mix."""
    from datamix.report import report_command

    report_command(mix_dir, out_file, per_source, seed, force)


@app.command("lint")
def lint_command(
    path: Path = typer.Argument(
        ..., help="A LLaVA-format JSON file, a mix folder, or a mix's manifest.parquet."
    ),
    format: str = typer.Option(
        "text", "--format", help="Output: text, json or github (workflow annotations)."
    ),
    select: list[str] = typer.Option(
        None, "--select", help="Only these rules or categories (repeat or comma-separate)."
    ),
    ignore: list[str] = typer.Option(
        None, "--ignore", help="Skip these rules or categories (repeat or comma-separate)."
    ),
    images: Path | None = typer.Option(
        None, "--images", help="Image root: also check every image file exists."
    ),
) -> None:
    """Check prompt formats and structure; exit 0 clean, 1 violations, 2 cannot run."""
    code = run_lint(path, format=format, select=select, ignore=ignore, images=images)
    raise typer.Exit(code)


def run_lint(
    path: Path,
    *,
    format: str = "text",
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    images: Path | None = None,
) -> int:
    """The command's body: lint, print in `format` to stdout, return the exit code (errors to stderr)."""
    from datamix.lint import FORMATS, LintInputError, exit_code, lint_path, summary_line

    formatter = FORMATS.get(format)
    if formatter is None:
        print(
            f"datamix lint: error: unknown --format {format!r}; use one of {', '.join(FORMATS)}",
            file=sys.stderr,
        )
        return 2
    try:
        report = lint_path(path, select=select, ignore=ignore, images_root=images)
    except LintInputError as e:
        print(f"datamix lint: error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(formatter(report))
    if format != "text":
        print(summary_line(report), file=sys.stderr)
    return exit_code(report)


def _summary_line(stats: dict[str, Any]) -> str:
    name = stats["source"]
    if "error" in stats:
        return f"[red]x[/red] {name:<15} failed: {stats['error']}"
    reasons = ", ".join(f"{k} {v:,}" for k, v in stats["drops_by_reason"].items()) or "none"
    state = "up to date" if stats.get("skipped") else f"{stats['seconds']:.1f}s"
    return f"[green]ok[/green] {name:<15} {stats['items']:>9,} items, drops: {reasons} ({state})"


if __name__ == "__main__":  # pragma: no cover
    app()
