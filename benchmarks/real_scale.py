"""End to end at real scale: `datamix synth --profile volume` (raw files of all 11 sources in their
real formats and official names, at the real sizes: 82,783 VQAv2 images with 443,757 questions,
72,140 GQA images with 943,000 questions, 5.4 M VG regions, 558,128 LCS records, ...), then
`datamix normalize` and `datamix build --recipe llava15_665k` / `llava15_pretrain_558k`, each in a
child process measured for wall time and peak RSS; checks that the mixes land exactly on the official
per-source counts (665,298 and 558,128) and that every planted bad record shows up in the drops tables
with the `DropReason` the generator planted it with.

    python benchmarks/real_scale.py --work DIR [--scale 1.0] [--out bench-results.json] [--keep]

This script only measures. What is generated (deterministic, ~4 GB of annotations at scale 1,
~1.1 M image paths hard-linked to a few tiny files, planted bad records tallied per reason) is the
volume profile of the raw-data generator: `datamix/synth/bulk.py` and each source's `write_volume`
in `datamix/synth/<source>.py`.

Measurements: each step is one child process reaped with os.wait4, whose rusage covers the child and
the workers it reaped (ru_maxrss = the largest of them). Normalize runs twice: once one source per
process, two at a time (per-source seconds and peak RSS, the same parallelism as --jobs 2), then
`datamix normalize --root DIR --jobs 2 --force` as the headline figure.

At --scale below 1 the recipes are copied under DIR/recipes/ with their `choose: N` and `expect:`
counts scaled the same way, so the count check stays exact at any scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from results import merge_results

from datamix.synth import SOURCES, synth_volume

REPO = Path(__file__).resolve().parent.parent
MARKER = ".real_scale_bench"

# ------------------------------------------------------------------------------------------------
# running and measuring children


def datamix_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "datamix"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("datamix")
    if found:
        return [found]
    return [sys.executable, "-c", "from datamix.cli import app; app()"]


def _wrap(cmd: list[str], profile: Path | None, tag: str) -> list[str]:
    if profile is None:
        return cmd
    profile.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "cProfile", "-o", str(profile / f"{tag}.pstats"), *cmd]


TIME = "/usr/bin/time"


def _timed(cmd: list[str], log: Path) -> list[str]:
    """Launch through GNU time when present. Why: on Linux a child's maxrss starts at the RSS high-water
    mark of the process that forked it (exec records the old mm's hiwater), so measuring straight from
    this script (hundreds of MiB after generating) would floor every child at our own RSS. GNU time is
    a tiny forker; its %M is the child's peak (including the workers the child reaped)."""
    if os.access(TIME, os.X_OK):
        return [TIME, "-f", "%M", "-o", f"{log}.maxrss", *cmd]
    return cmd


def _measure(res: Any, status: int, t0: float, log: Path) -> dict[str, Any]:
    peak_kib = res.ru_maxrss
    side = Path(f"{log}.maxrss")
    if side.exists():
        lines = [x for x in side.read_text().split() if x.isdigit()]
        if lines:
            peak_kib = int(lines[-1])
    return {
        "seconds": time.perf_counter() - t0,
        "rc": os.waitstatus_to_exitcode(status),
        "peak_rss_mib": peak_kib / 1024,
        "cpu_seconds": res.ru_utime + res.ru_stime,
        "log": str(log),
    }


def run_child(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run one command; wall time and the rusage of it and the workers it reaped (os.wait4)."""
    print(f"$ {' '.join(cmd)}", flush=True)
    with open(log, "w") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen(_timed(cmd, log), stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, res = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    out = _measure(res, status, t0, log)
    print(f"  rc={out['rc']} {out['seconds']:.1f}s peak RSS {out['peak_rss_mib']:.0f} MiB", flush=True)
    if out["rc"] != 0:
        print(Path(log).read_text()[-3000:], file=sys.stderr)
    return out


def run_parallel(jobs: list[tuple[str, list[str], Path]], slots: int) -> dict[str, dict[str, Any]]:
    """Run (name, cmd, log) jobs `slots` at a time, each measured on its own."""
    pending = list(jobs)
    running: dict[int, tuple[str, float, Path, Any, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    while pending or running:
        while pending and len(running) < slots:
            name, cmd, log = pending.pop(0)
            f = open(log, "w")  # noqa: SIM115
            t0 = time.perf_counter()
            p = subprocess.Popen(_timed(cmd, log), stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
            running[p.pid] = (name, t0, log, f, p)
        pid, status, res = os.wait4(-1, 0)
        if pid not in running:
            continue
        name, t0, log, f, p = running.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        f.close()
        results[name] = _measure(res, status, t0, log)
        r = results[name]
        print(
            f"  {name:<15} rc={r['rc']} {r['seconds']:6.1f}s peak RSS {r['peak_rss_mib']:6.0f} MiB",
            flush=True,
        )
        if r["rc"] != 0:
            print(Path(log).read_text()[-3000:], file=sys.stderr)
    return results


def scaled_recipe(work: Path, name: str, counts: dict[str, int]) -> str:
    """The recipe by name at scale 1; else a copy with choose: N and expect scaled to `counts`."""
    src = REPO / "recipes" / f"{name}.yaml"
    data = yaml.safe_load(src.read_text())
    for s, spec in data["sources"].items():
        if isinstance(spec.get("choose"), int):
            spec["choose"] = counts[s]
    data["expect"] = {s: counts[s] for s in data["sources"]} | {
        "total": sum(counts[s] for s in data["sources"])
    }
    path = work / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def disk_used(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else -1


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--work", type=Path, required=True, help="scratch folder (created; must be new or a previous run's)"
    )
    ap.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of the real sizes (counts checked exactly at any scale)",
    )
    ap.add_argument("--out", type=Path, default=None, help="append results to this JSON list file")
    ap.add_argument("--keep", action="store_true", help="keep --work afterwards (default: delete it)")
    ap.add_argument(
        "--skip-per-source",
        action="store_true",
        help="only the `normalize --jobs 2` run (no per-source seconds / peak RSS)",
    )
    ap.add_argument("--lint", action="store_true", help="also run `datamix lint` on the 665K mix")
    ap.add_argument(
        "--profile", type=Path, default=None, help="run every child under cProfile, .pstats into this folder"
    )
    args = ap.parse_args()

    work = args.work.resolve()
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        print(
            f"{work} exists and is not a {Path(__file__).name} folder; refusing to touch it", file=sys.stderr
        )
        return 2
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("scratch folder of benchmarks/real_scale.py; safe to delete\n")
    logs = work / "logs"
    logs.mkdir()
    dm = datamix_cmd()
    started = time.perf_counter()
    ok = True
    try:
        # 1. raw files
        print(f"generating raw files at scale {args.scale} under {work} ...", flush=True)
        gen = synth_volume(work, args.scale)
        raw_total = sum(gen.raw_bytes.values())
        print(
            f"  {gen.seconds['total']:.1f}s, {raw_total / 2**30:.2f} GiB of annotations, "
            f"{gen.image_links:,} image paths ({gen.base_files} base files)",
            flush=True,
        )
        for s in SOURCES:
            print(
                f"  {s:<15} {gen.seconds[s]:6.1f}s {gen.raw_bytes[s] / 2**20:8.1f} MiB  {gen.notes.get(s, '')}"
            )

        # 2. normalize
        per_source: dict[str, dict[str, Any]] = {}
        per_source_start = per_source_wall = time.perf_counter()
        if not args.skip_per_source:
            print("normalize, one source per process, 2 at a time:", flush=True)
            # largest first so that the two slots finish together
            order = sorted(SOURCES, key=lambda s: -gen.raw_bytes[s])
            per_source = run_parallel(
                [
                    (
                        s,
                        _wrap(
                            [*dm, "normalize", s, "--root", str(work), "--force"],
                            args.profile,
                            f"normalize-{s}",
                        ),
                        logs / f"normalize-{s}.log",
                    )
                    for s in order
                ],
                slots=2,
            )
            per_source_wall = time.perf_counter()
        norm = run_child(
            _wrap(
                [*dm, "normalize", "--root", str(work), "--jobs", "2", "--force"], args.profile, "normalize"
            ),
            logs / "normalize.log",
        )
        ok &= norm["rc"] == 0
        stats = {}
        for s in SOURCES:
            p = work / "normalized" / f"{s}.stats.json"
            stats[s] = json.loads(p.read_text()) if p.exists() else {}

        # 3. builds
        if args.scale == 1.0:
            r665, r558 = "llava15_665k", "llava15_pretrain_558k"
        else:
            r665 = scaled_recipe(work, "llava15_665k", gen.mix_counts)
            r558 = scaled_recipe(work, "llava15_pretrain_558k", gen.mix_counts)
        builds = {}
        for name, ref in (("llava15_665k", r665), ("llava15_pretrain_558k", r558)):
            b = run_child(
                _wrap(
                    [*dm, "build", "--recipe", ref, "--root", str(work), "--jobs", "2"],
                    args.profile,
                    f"build-{name}",
                ),
                logs / f"build-{name}.log",
            )
            summary_path = work / "mixes" / name / "summary.json"
            b["summary"] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
            b["shard_bytes"] = b["summary"].get("shard_bytes")
            b["shards"] = b["summary"].get("shards")
            builds[name] = b
            ok &= b["rc"] == 0
        lint = None
        if args.lint:
            lint = run_child(
                [*dm, "lint", str(work / "mixes" / "llava15_665k"), "--format", "json"], logs / "lint.log"
            )
        disk = disk_used(work)
    except Exception:
        if not args.keep:
            print(f"(keeping {work} for inspection after the error)", file=sys.stderr)
        raise

    # 4. checks and report
    official = {}
    for name in ("llava15_665k", "llava15_pretrain_558k"):
        rec = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())
        official.update(
            rec["expect"] if name == "llava15_665k" else {"llava_pretrain": rec["expect"]["llava_pretrain"]}
        )
    problems: list[str] = []
    print()
    print(f"scale {args.scale}: per source (normalize seconds/RSS: own process, 2 at a time)")
    head = (
        f"{'source':<15} {'raw MiB':>8} {'items':>9} {'exp.items':>9} {'drops':>6} {'planted':>7} "
        f"{'norm s':>7} {'RSS MiB':>8} {'(jobs2 s)':>9} {'mix':>8} {'target':>8} {'official':>8}"
    )
    print(head)
    print("-" * len(head))
    for s in SOURCES:
        st = stats[s]
        ps = per_source.get(s, {})
        mix_name = "llava15_pretrain_558k" if s == "llava_pretrain" else "llava15_665k"
        actual = builds[mix_name]["summary"].get("sources", {}).get(s, {}).get("actual")
        target = gen.mix_counts[s]
        planted = sum(gen.planted[s].values())
        drops = st.get("drops")
        print(
            f"{s:<15} {gen.raw_bytes[s] / 2**20:8.1f} {st.get('items', -1):>9,} {gen.expected_items[s]:>9,} "
            f"{drops if drops is not None else -1:>6} {planted:>7} {ps.get('seconds', float('nan')):7.1f} "
            f"{ps.get('peak_rss_mib', float('nan')):8.0f} {st.get('seconds', float('nan')):9.1f} "
            f"{actual if actual is not None else -1:>8,} {target:>8,} {official.get(s, 0):>8,}"
        )
        if st.get("items") != gen.expected_items[s]:
            problems.append(f"{s}: {st.get('items')} normalized items, expected {gen.expected_items[s]}")
        got = Counter(st.get("drops_by_reason", {}))
        want = Counter({reason.value: n for reason, n in gen.planted[s].items()})
        if got != want:
            problems.append(f"{s}: drops {dict(sorted(got.items()))} != planted {dict(sorted(want.items()))}")
        if actual != target:
            problems.append(f"{s}: {actual} samples in the mix, expected {target}")
        if args.scale == 1.0 and target != official.get(s):
            problems.append(f"{s}: target {target} differs from the official {official.get(s)}")
    tot665 = builds["llava15_665k"]["summary"].get("total", {}).get("actual")
    tot558 = builds["llava15_pretrain_558k"]["summary"].get("total", {}).get("actual")
    exp665 = sum(gen.mix_counts[s] for s in SOURCES if s != "llava_pretrain")
    exp558 = gen.mix_counts["llava_pretrain"]
    if tot665 != exp665:
        problems.append(f"llava15_665k: total {tot665}, expected {exp665}")
    if tot558 != exp558:
        problems.append(f"llava15_pretrain_558k: total {tot558}, expected {exp558}")
    print("-" * len(head))
    ps_total = per_source_wall - per_source_start
    print(
        f"generate: {gen.seconds['total']:.1f}s  ({raw_total / 2**30:.2f} GiB annotations, {gen.image_links:,} image links)"
    )
    if per_source:
        print(
            f"normalize one-per-process x2: {ps_total:.1f}s wall, max peak RSS "
            f"{max(r['peak_rss_mib'] for r in per_source.values()):.0f} MiB"
        )
    print(
        f"normalize --jobs 2: {norm['seconds']:.1f}s wall, {norm['cpu_seconds']:.1f}s CPU, peak RSS {norm['peak_rss_mib']:.0f} MiB"
    )
    for name, b in builds.items():
        print(
            f"build {name}: {b['seconds']:.1f}s wall, {b['cpu_seconds']:.1f}s CPU, peak RSS {b['peak_rss_mib']:.0f} MiB, "
            f"{b.get('shards')} shards, {(b.get('shard_bytes') or 0) / 2**30:.2f} GiB, "
            f"{b['summary'].get('total', {}).get('actual')} samples"
        )
    if lint:
        print(
            f"lint llava15_665k: rc={lint['rc']} {lint['seconds']:.1f}s peak RSS {lint['peak_rss_mib']:.0f} MiB"
        )
    print(
        f"mix totals: llava15_665k {tot665} (expected {exp665}), llava15_pretrain_558k {tot558} (expected {exp558})"
    )
    print(f"disk used under --work: {disk / 2**30:.2f} GiB; total wall {time.perf_counter() - started:.1f}s")
    if problems:
        ok = False
        print("PROBLEMS:")
        for p in problems:
            print("  - " + p)
    else:
        print("all counts exact; every planted bad record is in the drops tables with its reason")

    # 5. results file
    note = f"scale {args.scale}, 2 cores; raw {raw_total / 2**30:.2f} GiB, {gen.image_links:,} image links"
    results: list[dict[str, Any]] = []

    def add(name: str, value: Any, unit: str, notes: str = note) -> None:
        results.append(
            {"name": name, "value": value, "unit": unit, "baseline": None, "ratio": None, "notes": notes}
        )

    add("real_scale_generate_seconds", round(gen.seconds["total"], 1), "s")
    for s in SOURCES:
        st = stats[s]
        n = f"{note}; {st.get('items')} items, {st.get('drops')} drops ({sum(gen.planted[s].values())} planted)"
        if s in per_source:
            add(f"real_scale_normalize_{s}_seconds", round(per_source[s]["seconds"], 1), "s", n)
            add(f"real_scale_normalize_{s}_peak_rss_mib", round(per_source[s]["peak_rss_mib"]), "MiB", n)
    add("real_scale_normalize_jobs2_seconds", round(norm["seconds"], 1), "s")
    add("real_scale_normalize_jobs2_peak_rss_mib", round(norm["peak_rss_mib"]), "MiB")
    for name, b in builds.items():
        n = f"{note}; {b['summary'].get('total', {}).get('actual')} samples, {b.get('shards')} shards"
        add(f"real_scale_build_{name}_seconds", round(b["seconds"], 1), "s", n)
        add(f"real_scale_build_{name}_peak_rss_mib", round(b["peak_rss_mib"]), "MiB", n)
        add(f"real_scale_build_{name}_shard_bytes", b.get("shard_bytes"), "bytes", n)
        add(f"real_scale_build_{name}_samples", b["summary"].get("total", {}).get("actual"), "samples", n)
    add("real_scale_counts_exact", int(not problems), "bool", "; ".join(problems) or note)
    if args.out:
        merge_results(args.out, results)
        print(f"results appended to {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        print(f"removed {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
