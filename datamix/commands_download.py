"""The `datamix download` command (a thin shell over datamix.fetch) and the per-source download state
that `datamix sources` shows.

Progress: a rich progress display (bytes, rate, ETA) on a terminal; plain lines otherwise (one when a
file starts, one when it ends, and an overall line at most every 10 seconds). At the end: the manual
steps for files that must be placed by hand, a table per source, the failures with their reasons,
and a one-line summary. Exit status 1 when any file failed or a manual file is still missing, 2 for
unusable arguments (unknown source, bad catalog), else 0.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from datamix.paths import Layout, resolve_root

if TYPE_CHECKING:
    # datamix.catalog and datamix.fetch pull in datamix.sources (pyarrow, numpy, polars): imported where
    # used, so that `import datamix.cli` (every command, --help, --version) stays light.
    from datamix.catalog import RemoteFile
    from datamix.fetch import CoverReport, FileResult, ProgressEvent

PLAIN_INTERVAL_S = 10.0


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class _RichProgress:
    """Thread-safe adapter from fetch.ProgressEvent to a rich Progress (one task per file)."""

    def __init__(self, console: Console):
        self.bytes = Progress(
            TextColumn("[bold]{task.fields[source]}[/] {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.count = Progress(
            TextColumn("[bold]{task.fields[source]}[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[str, tuple[Progress, TaskID]] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> _RichProgress:
        from rich.console import Group
        from rich.live import Live

        self.live = Live(Group(self.bytes, self.count), console=self.bytes.console, refresh_per_second=8)
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __call__(self, ev: ProgressEvent) -> None:
        with self.lock:
            prog = self.count if ev.unit != "B" else self.bytes
            if ev.kind == "start":
                if ev.name in self.tasks:
                    p, tid = self.tasks[ev.name]
                    p.update(tid, total=ev.total, completed=ev.completed)
                else:
                    desc = Path(ev.name).name if ev.unit == "B" else ev.name
                    tid = prog.add_task(
                        escape(desc), total=ev.total, completed=ev.completed, source=ev.source
                    )
                    self.tasks[ev.name] = (prog, tid)
            elif ev.kind == "advance" and ev.name in self.tasks:
                p, tid = self.tasks[ev.name]
                p.advance(tid, ev.advance)
            elif ev.kind == "extract" and ev.name in self.tasks:
                p, tid = self.tasks[ev.name]
                p.update(tid, description=escape(f"{Path(ev.name).name} (extracting)"))
            elif ev.kind == "done" and ev.name in self.tasks:
                p, tid = self.tasks[ev.name]
                r = ev.result
                label = Path(ev.name).name if ev.unit == "B" else ev.name
                status = f" [{'red' if r and r.status == 'failed' else 'green'}]{r.status}[/]" if r else ""
                p.update(tid, description=escape(label) + status)
                if r and r.status == "skipped":
                    p.update(tid, total=1, completed=1)


class _PlainProgress:
    """Plain lines for logs and pipes."""

    def __init__(self, console: Console):
        self.console = console
        self.lock = threading.Lock()
        self.done_bytes = 0
        self.started = time.monotonic()
        self.last = self.started
        self.seen: set[str] = set()

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __call__(self, ev: ProgressEvent) -> None:
        with self.lock:
            if ev.kind == "advance" and ev.unit == "B":
                self.done_bytes += ev.advance
            now = time.monotonic()
            if ev.kind == "start" and ev.name not in self.seen:
                self.seen.add(ev.name)
                if ev.completed:
                    self._line(f"{ev.source}: resuming {ev.name} at {_human(ev.completed)}")
                elif ev.unit == "B":
                    size = f" ({_human(ev.total)})" if ev.total else ""
                    self._line(f"{ev.source}: fetching {ev.name}{size}")
                else:
                    self._line(f"{ev.source}: fetching {ev.total} {ev.name}")
            elif ev.kind == "extract":
                self._line(f"{ev.source}: extracting {ev.name}")
            elif ev.kind == "done" and ev.result is not None:
                r = ev.result
                self._line(f"{ev.source}: {ev.name}: {r.status}{' - ' + r.reason if r.reason else ''}")
            if now - self.last >= PLAIN_INTERVAL_S:
                self.last = now
                rate = self.done_bytes / max(now - self.started, 1e-9)
                self._line(f"... {_human(self.done_bytes)} transferred, {_human(rate)}/s")


def _table(results: Sequence[FileResult], covers: CoverReport | None, order: Sequence[str]) -> Table:
    t = Table(title="datamix download")
    for col in ("source", "files", "ok", "skipped", "failed", "manual", "transferred", "state"):
        t.add_column(col, justify="right" if col not in ("source", "state") else "left")
    per: dict[str, list[FileResult]] = defaultdict(list)
    for r in results:
        per[r.entry.source].append(r)
    for source in order:
        rs = per.get(source, [])
        c = Counter(r.status for r in rs)
        state = "complete" if c["failed"] == 0 and c["manual"] == 0 else "incomplete"
        t.add_row(
            source,
            str(len(rs)),
            str(c["ok"]),
            str(c["skipped"]),
            str(c["failed"]),
            str(c["manual"]),
            _human(sum(r.transferred for r in rs)),
            state,
        )
        if source == "ocrvqa" and covers is not None:
            t.add_row(
                "  covers",
                str(covers.total),
                str(covers.fetched),
                str(covers.present),
                str(covers.failed),
                "0",
                "",
                f"failures: {covers.report}" if covers.failed else "complete",
            )
    return t


def download_state(layout: Layout, catalog: Sequence[RemoteFile] | None = None) -> dict[str, str]:
    """Per source, what is downloaded and verified, e.g. "3/3 verified", "2/3 verified, 1 missing".
    `catalog` defaults to `datamix.catalog.CATALOG`.

    Reads only the verification markers and file sizes (no hashing, no network).
    """
    from datamix import fetch
    from datamix.catalog import CATALOG, sources_in

    if catalog is None:
        catalog = CATALOG
    out: dict[str, str] = {}
    for source in sources_in(catalog):
        states = Counter(fetch.file_state(e, layout) for e in catalog if e.source == source)
        n = sum(states.values())
        v = states["verified"]
        if v == n:
            out[source] = f"{n}/{n} verified"
            continue
        parts = [f"{v}/{n} verified"] if v else []
        for label in ("missing", "unverified", "not extracted"):
            if states[label]:
                parts.append(f"{states[label]}/{n} {label}" if not parts else f"{states[label]} {label}")
        out[source] = ", ".join(parts)
    return out


def download(
    sources: list[str] = typer.Argument(None, help="Sources to fetch (default: all)."),
    root: Path | None = typer.Option(None, "--root", help="Data root (default: $DATAMIX_ROOT or ./data)."),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="JSON/YAML list of {source, url, path, sha256?, md5?, size?, extract_to?}."
    ),
    mirror: str | None = typer.Option(
        None, "--mirror", help="Fetch https://HOST/PATH from MIRROR/HOST/PATH."
    ),
    jobs: int = typer.Option(4, "--jobs", help="Parallel transfers."),
    annotations_only: bool = typer.Option(
        False, "--annotations-only", help="Skip image archives and covers."
    ),
    benchmarks: bool = typer.Option(
        False,
        "--benchmarks",
        help="Fetch evaluation benchmarks instead: the names are benchmarks "
        "(default: all; datamix.evalsets), files land under ROOT/benchmarks/<name>/.",
    ),
) -> None:
    """Fetch, verify and extract the official files of every (or the named) source into the root."""
    from datamix import fetch
    from datamix.catalog import CATALOG, CatalogError, load_catalog, select, sources_in
    from datamix.fetch import FetchOptions

    console = Console()
    layout = Layout(resolve_root(root))
    bench_manual: list[str] = []
    try:
        if benchmarks:  # evaluation benchmarks (datamix.evalsets), same machinery
            from datamix import evalsets

            names = evalsets.parse_names(sources)
            cat, entries = evalsets.CATALOG, evalsets.select(names, annotations_only)
            sources = names
            bench_manual = [
                f"{n}: {how.replace('{target}', str(evalsets.folder(layout.root, n)))}"
                for n in names
                if (how := evalsets.get(n).manual)
            ]
        else:
            cat = load_catalog(catalog) if catalog is not None else CATALOG
            entries = select(cat, sources or None, annotations_only)
    except (CatalogError, ValueError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if jobs < 1:
        console.print(f"[red]error:[/] --jobs must be at least 1, got {jobs}")
        raise typer.Exit(2)
    order = list(sources) if benchmarks else [s for s in sources_in(cat) if not sources or s in sources]
    options = FetchOptions(jobs=jobs, mirror=mirror)
    started = time.monotonic()
    renderer = _RichProgress(console) if console.is_terminal else _PlainProgress(console)
    covers: CoverReport | None = None
    with renderer:
        results = fetch.download(entries, layout, options=options, progress=renderer)
        if "ocrvqa" in order and not annotations_only and fetch.ocrvqa_dataset_path(layout).is_file():
            try:
                covers = fetch.fetch_ocrvqa_covers(
                    layout, options=options, jobs=max(8, 4 * jobs), progress=renderer
                )
            except (OSError, ValueError) as e:
                console.print(f"[red]error:[/] OCR-VQA covers: {escape(str(e))}")

    manual = [r for r in results if r.status == "manual"]
    for r in {r.entry.path: r for r in manual}.values():
        target = layout.root / r.entry.path
        steps = (r.entry.manual or "").replace("{target}", str(target))
        console.print(f"[yellow]manual step[/] ({r.entry.source}): {escape(steps)}", soft_wrap=True)
        console.print(f"  put the file at: {escape(str(target))}", soft_wrap=True)
    if "ocrvqa" in order and covers is None and not annotations_only:
        console.print(
            f"OCR-VQA covers are fetched once {fetch.ocrvqa_dataset_path(layout)} is present.", soft_wrap=True
        )

    for line in bench_manual:
        console.print(f"[yellow]manual step[/] (benchmark {escape(line)})", soft_wrap=True)
    console.print(_table(results, covers, order))
    failed = {r.entry.path: r for r in results if r.status == "failed"}
    for r in failed.values():
        console.print(
            f"[red]failed[/] ({r.entry.source}): {escape(r.reason)}", soft_wrap=True, highlight=False
        )

    unique = {r.entry.path: r for r in results}
    c = Counter(r.status for r in unique.values())
    moved = sum(r.transferred for r in results)
    cover_part = f", covers {covers.fetched} fetched / {covers.failed} failed" if covers else ""
    console.print(
        f"download: {len(unique)} files: {c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed, "
        f"{c['manual']} manual{cover_part}; {_human(moved)} in {time.monotonic() - started:.1f} s "
        f"(root {layout.root})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if failed or manual:
        raise typer.Exit(1)
