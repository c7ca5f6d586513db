"""The results file the benchmarks share (`make bench` -> bench-results.json): one JSON list of
`{"name", "value", "unit", "baseline", "ratio", "notes"}` rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def merge_results(path: Path, results: list[dict[str, Any]]) -> None:
    """Write `results` into the JSON list at `path`, replacing earlier rows of the same names."""
    old = json.loads(path.read_text()) if path.exists() else []
    names = {r["name"] for r in results}
    path.write_text(json.dumps([o for o in old if o["name"] not in names] + results, indent=2) + "\n")


def report(results: list[dict[str, Any]], out: Path | None, name_width: int, unit_width: int) -> None:
    """Print one line per row (columns `name_width` and `unit_width` wide), then merge into `out` if given."""
    for r in results:
        print(
            f"{r['name']:<{name_width}} {r['value']:>10} {r['unit']:<{unit_width}} "
            f"baseline {r['baseline']} (x{r['ratio']})  {r['notes']}"
        )
    if out:
        merge_results(out, results)
