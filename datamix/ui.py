"""Console output for the CLI: rich progress on a terminal, plain periodic lines otherwise.

Library modules report progress through callbacks and never print; only the CLI uses this module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class Counter:
    """Counts work per task name; renders as rich bars or as a line every `every` seconds."""

    def __init__(self, progress: Progress | None, every: float = 10.0):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, int] = {}
        self.every = every
        self.last = time.monotonic()

    def __call__(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
        if self.progress is not None:
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=None)
            if self.counts[name] % 512 == 0 or n > 1:
                self.progress.update(self.tasks[name], completed=self.counts[name])
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            console.print(f"  {name}: {self.counts[name]:,} records read", highlight=False)

    def finish(self, name: str) -> None:
        if self.progress is not None and name in self.tasks:
            self.progress.update(
                self.tasks[name], completed=self.counts.get(name, 0), total=self.counts.get(name, 0)
            )


@contextmanager
def counter() -> Iterator[Counter]:
    if sys.stderr.isatty():
        with Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            yield Counter(progress)
    else:
        yield Counter(None)
