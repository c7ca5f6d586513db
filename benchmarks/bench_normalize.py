"""Normalize at real scale: GQA (72,140 images, 943,000 questions) and VQAv2 (82,783 images,
443,757 questions) in their real JSON layouts with planted bad records, written by the volume profile
of the raw-data generator (`datamix.synth.synth_volume`, `datamix/synth/{gqa,vqav2}.py`).

Each source is normalized in a fresh child process so that its peak RSS is its own. Baseline (same
run): the time to `json.load` the same file with the standard library (what the original tooling
does), and its peak RSS.

    python benchmarks/bench_normalize.py [--work DIR] [--scale 1.0] [--out bench-results.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from results import report

from datamix.sources import gqa, vqav2
from datamix.synth import synth_volume

_CHILD_NORMALIZE = """
import json, resource, sys, time
from datamix.normalize import normalize_source
t = time.perf_counter()
s = normalize_source(sys.argv[1], sys.argv[2], force=True)
print(json.dumps({"seconds": time.perf_counter() - t, "items": s["items"], "drops": s["drops"],
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_CHILD_JSON = """
import json, resource, sys, time
t = time.perf_counter()
n = 0
for p in sys.argv[1:]:
    with open(p, encoding="utf-8") as f:
        n += len(json.load(f))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(work: Path, scale: float) -> list[dict]:
    files = {"gqa": [gqa.FILE], "vqav2": [vqav2.ANNOTATIONS, vqav2.QUESTIONS]}
    gen = synth_volume(work, scale, sources=files)
    results = []
    for name, names in files.items():
        size = gen.raw_bytes[name]
        ours = _child(_CHILD_NORMALIZE, name, str(work))
        base = _child(_CHILD_JSON, *[str(work / "raw" / name / f) for f in names])
        note = (
            f"{ours['items']:,} items, {ours['drops']:,} drops from {size / 2**20:.0f} MiB of JSON "
            f"(generated in {gen.seconds[name]:.0f}s, scale {scale}); baseline = stdlib json.load of the same files"
        )
        if ours["items"] != gen.expected_items[name] or ours["drops"] != sum(gen.planted[name].values()):
            note += (
                f" (EXPECTED {gen.expected_items[name]:,} items, {sum(gen.planted[name].values()):,} drops)"
            )
        results += [
            {
                "name": f"normalize_{name}_seconds",
                "value": round(ours["seconds"], 2),
                "unit": "s",
                "baseline": round(base["seconds"], 2),
                "ratio": round(base["seconds"] / ours["seconds"], 2),
                "notes": note,
            },
            {
                "name": f"normalize_{name}_peak_rss_mib",
                "value": round(ours["rss_mib"]),
                "unit": "MiB",
                "baseline": round(base["rss_mib"]),
                "ratio": round(base["rss_mib"] / ours["rss_mib"], 2),
                "notes": note,
            },
        ]
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes")
    ap.add_argument("--out", type=Path, default=None, help="append results to this JSON list file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = run(work, args.scale)
    report(results, args.out, name_width=32, unit_width=4)


if __name__ == "__main__":
    main()
