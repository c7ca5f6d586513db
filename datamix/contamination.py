"""`datamix contamination`: how much of each evaluation benchmark a built mix has already seen, and
the matching that the recipe option `exclude:` uses to build a mix without it.

Per benchmark item (`datamix.evalsets`), three kinds of overlap with the training samples:

- `image`: the same picture, by pool identity (COCO ids across train2014/val2014/train2017/test2015
  (one id, one picture), Visual Genome ids (GQA's digit ids are VG ids), OpenImages ids (TextVQA /
  TextCaps)) or by content (sha256 of the file: the manifest's `image_sha256` against the benchmark's
  own image file, when present on disk).
- `near_image`: a near-duplicate picture: the 64-bit DCT perceptual hash of `imagehash.phash` within
  `NEAR_THRESHOLD` bits (Hamming), confirmed by an 8x8 RGB box-filtered thumbnail whose largest
  channel difference is at most `THUMB_MAX` (of 255): a grayscale hash cannot tell apart pictures
  that differ mainly in colour, the thumbnail can. Measured on the synthetic data
  (tests/test_contamination.py, README): a JPEG re-encode at quality 75 moves the hash by <= 4 bits,
  a 0.5x resize by <= 6, and the thumbnail by <= 20. Fingerprints of the training images are
  computed once per stored image and cached next to the manifest (`<mix>/phash.parquet`, keyed by
  `stored_sha256`).
- `question`: the same question text, normalised as the benchmark's evaluation normalises
  (`evalsets.textnorm`), asked on the same (or near-duplicate) picture in a training sample: the first
  line of each human turn, without `<image>`.

The image checks read only manifest columns; the question check reads the JSON of the samples whose
image matched (random access into the shards), so (a) and (c) cost one manifest pass plus the matched
samples. Near-duplicates stream every image of the mix once (then the cache).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from datamix import evalsets
from datamix.evalsets import BenchItem
from datamix.paths import COCO_DIR, GQA_DIR, TEXTVQA_DIR, VG_DIRS

log = logging.getLogger(__name__)

NEAR_THRESHOLD = 8  # bits of 64; measured: q75 re-encode <= 4, 0.5x resize <= 6 (README)
THUMB_MAX = 32  # largest channel difference of the 8x8 RGB thumbnails; measured: copies <= 20
THUMB = 8
HASH_NAME = f"imagehash.phash 64-bit <= {NEAR_THRESHOLD} bits + 8x8 RGB thumbnail max diff <= {THUMB_MAX}"
Fingerprint = tuple[int, bytes]  # (phash, 8x8x3 thumbnail bytes)
MATCHES = ("image", "near_image", "question")
PHASH_CACHE = "phash.parquet"
EXAMPLES = 5


# ---------------------------------------------------------------------------------------------
# identities and hashes


def image_ident(path: str | None) -> str | None:
    """The pool identity of a LLaVA-layout image path (`coco:<id>`, `vg:<id>`, `openimages:<id>`)."""
    if not path:
        return None
    p = PurePosixPath(path)
    folder, stem = str(p.parent), p.stem
    if folder == COCO_DIR:
        digits = stem.rsplit("_", 1)[-1]
        return f"coco:{int(digits)}" if digits.isdigit() else None
    if folder == GQA_DIR or folder in VG_DIRS:
        return f"vg:{int(stem)}" if stem.isdigit() else (f"gqa:{stem}" if folder == GQA_DIR else None)
    if folder == TEXTVQA_DIR:
        return f"openimages:{stem}"
    return None


def fingerprint(data: bytes) -> Fingerprint | None:
    """(64-bit perceptual hash, 8x8 RGB thumbnail) of image bytes; None when they cannot be decoded.
    JPEGs are decoded at a reduced scale (long side >= 128 px: `imaging.decode(draft_size=128)`)."""
    import imagehash
    from PIL import Image

    from datamix.imaging import ImageError, decode

    try:
        im = decode(data, draft_size=128)
    except ImageError:
        return None
    bits = imagehash.phash(im, hash_size=8).hash.flatten()
    thumb = im.resize((THUMB, THUMB), Image.Resampling.BOX).tobytes()
    return int("".join("1" if b else "0" for b in bits), 2), thumb


def phash(data: bytes) -> int | None:
    """The 64-bit perceptual hash of image bytes (None when they cannot be decoded)."""
    fp = fingerprint(data)
    return None if fp is None else fp[0]


def _read_cache(path: Path) -> dict[str, Fingerprint | None]:
    import pyarrow.parquet as pq

    if not path.is_file():
        return {}
    t = pq.read_table(path)
    if "thumb" not in t.column_names:
        return {}
    return {
        sha: (None if thumb is None else (int(ph), thumb))
        for sha, ph, thumb in zip(
            t.column("sha256").to_pylist(),
            t.column("phash").to_pylist(),
            t.column("thumb").to_pylist(),
            strict=True,
        )
    }


def _write_cache(path: Path, cache: dict[str, Fingerprint | None]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datamix.fileio import atomic_path

    shas = sorted(cache)
    table = pa.table(
        {
            "sha256": shas,
            "phash": pa.array([0 if cache[x] is None else cache[x][0] for x in shas], pa.uint64()),  # type: ignore[index]
            "thumb": pa.array([None if cache[x] is None else cache[x][1] for x in shas], pa.binary()),  # type: ignore[index]
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _popcount_min(queries: np.ndarray, pool: np.ndarray, threshold: int) -> list[np.ndarray]:
    """For each query hash, the indices of pool hashes within `threshold` bits."""
    out = []
    for start in range(0, len(queries), 32):
        q = queries[start : start + 32]
        d = np.bitwise_count(q[:, None] ^ pool[None, :])
        for row in d:
            out.append(np.nonzero(row <= threshold)[0])
    return out


def training_fingerprints(
    mix: Path, *, progress: Callable[[int, int], None] | None = None
) -> dict[str, Fingerprint | None]:
    """{stored_sha256: fingerprint} of every stored image of the mix, from the cache next to the
    manifest (computed for the images it lacks, then written back)."""
    from datamix.mixio import MixReader

    reader = MixReader(mix)
    cache_path = reader.manifest_path.parent / PHASH_CACHE
    cache = _read_cache(cache_path)
    m = reader.read_manifest(["stored_sha256"])
    todo = {s for s in m.column("stored_sha256").to_pylist() if s is not None and s not in cache}
    if todo:
        done = 0
        for sample in reader.iter_samples(images=True):
            if sample.image is None:
                continue
            sha = hashlib.sha256(sample.image).hexdigest()
            if sha in todo and sha not in cache:
                cache[sha] = fingerprint(sample.image)
                done += 1
                if progress:
                    progress(done, len(todo))
        _write_cache(cache_path, cache)
    reader.close()
    return cache


# ---------------------------------------------------------------------------------------------
# the training side


@dataclass
class TrainIndex:
    """Per training sample (row): source, key; lookups by pool identity, content hash and phash."""

    sources: list[str]
    keys: list[str]
    by_ident: dict[str, list[int]]
    by_sha: dict[str, list[int]]
    phash_rows: list[list[int]] = field(default_factory=list)  # per distinct fingerprint: its rows
    phash_values: np.ndarray | None = None
    thumbs: np.ndarray | None = None  # per distinct fingerprint: the 8x8x3 thumbnail
    questions: Callable[[Sequence[int]], dict[int, set[str]]] | None = None  # rows -> raw first lines

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str, str | None, str | None, Fingerprint | None]]) -> TrainIndex:
        """rows: (source, key, image path, image sha256, fingerprint or None)."""
        sources, keys = [], []
        by_ident: dict[str, list[int]] = defaultdict(list)
        by_sha: dict[str, list[int]] = defaultdict(list)
        by_phash: dict[Fingerprint, list[int]] = defaultdict(list)
        for i, (source, key, image, sha, ph) in enumerate(rows):
            sources.append(source)
            keys.append(key)
            ident = image_ident(image)
            if ident:
                by_ident[ident].append(i)
            if sha:
                by_sha[sha].append(i)
            if ph is not None:
                by_phash[ph].append(i)
        values = np.array([f[0] for f in by_phash], dtype=np.uint64) if by_phash else None
        thumbs = (
            np.frombuffer(b"".join(f[1] for f in by_phash), np.uint8).reshape(len(by_phash), -1)
            if by_phash
            else None
        )
        return cls(sources, keys, dict(by_ident), dict(by_sha), list(by_phash.values()), values, thumbs)


def question_lines(conversations: Sequence[dict[str, Any]]) -> set[str]:
    """The question of each human turn: its first non-empty line without `<image>`."""
    out = set()
    for turn in conversations:
        if turn.get("from") != "human":
            continue
        text = str(turn.get("value", "")).replace("<image>", "")
        for line in text.split("\n"):
            if line.strip():
                out.add(line.strip())
                break
    return out


def mix_index(mix: Path, *, near: bool) -> TrainIndex:
    from datamix.mixio import MixReader

    reader = MixReader(mix)
    cols = ["key", "source", "image", "image_sha256", "stored_sha256", "shard"]
    m = reader.read_manifest(cols)
    hashes = training_fingerprints(mix) if near else {}
    shards = m.column("shard").to_pylist()
    rows = zip(
        m.column("source").to_pylist(),
        m.column("key").to_pylist(),
        m.column("image").to_pylist(),
        m.column("image_sha256").to_pylist(),
        (hashes.get(s) if s else None for s in m.column("stored_sha256").to_pylist()),
        strict=True,
    )
    index = TrainIndex.build(rows)

    def questions(wanted: Sequence[int]) -> dict[int, set[str]]:
        import msgspec

        out = {}
        for r in sorted(set(wanted), key=lambda r: (shards[r], r)):
            data = reader.read(shards[r], f"{index.keys[r]}.json", row=r)
            rec = msgspec.json.decode(data) if data else {}
            out[r] = question_lines(rec.get("conversations", []))
        return out

    index.questions = questions
    return index


# ---------------------------------------------------------------------------------------------
# matching


@dataclass
class BenchImages:
    sha: dict[str, str]  # image key -> sha256
    phash: dict[str, Fingerprint]
    present: int


def bench_images(
    root: Path, bench: evalsets.Benchmark, items: Sequence[BenchItem], *, near: bool
) -> BenchImages:
    sha, ph = {}, {}
    for key, data in bench.images(root, items):
        sha[key] = hashlib.sha256(data).hexdigest()
        if near:
            fp = fingerprint(data)
            if fp is not None:
                ph[key] = fp
    return BenchImages(sha, ph, len(sha))


def match_benchmark(
    root: Path,
    name: str,
    index: TrainIndex,
    *,
    near: bool,
    questions: bool,
    threshold: int = NEAR_THRESHOLD,
    examples: int = EXAMPLES,
) -> dict[str, Any]:
    """One benchmark against the index: counts, matched item ids and training rows per kind."""
    bench = evalsets.get(name)
    items = bench.read(root)
    norm = bench.normalizer()
    imgs = bench_images(root, bench, items, near=near)
    # near-duplicates per distinct benchmark image
    near_rows: dict[str, list[int]] = {}
    if near and index.phash_values is not None and imgs.phash:
        keys = sorted(imgs.phash)
        q = np.array([imgs.phash[k][0] for k in keys], dtype=np.uint64)
        for k, hits in zip(keys, _popcount_min(q, index.phash_values, threshold), strict=True):
            if len(hits) and index.thumbs is not None:  # confirm by the colour thumbnail
                mine = np.frombuffer(imgs.phash[k][1], np.uint8).astype(np.int16)
                diff = np.abs(index.thumbs[hits].astype(np.int16) - mine).max(axis=1)
                hits = hits[diff <= THUMB_MAX]
            if len(hits):
                near_rows[k] = [r for h in hits for r in index.phash_rows[h]]
    per_item: list[tuple[BenchItem, list[int], list[int], list[str]]] = []
    wanted_rows: set[int] = set()
    for it in items:
        same = [r for ident in it.idents for r in index.by_ident.get(ident, ())]
        how = ["id"] if same else []
        sha = imgs.sha.get(it.image or "")
        if sha and sha in index.by_sha:
            same += index.by_sha[sha]
            how.append("content")
        nr = near_rows.get(it.image or "", [])
        per_item.append((it, sorted(set(same)), sorted(set(nr)), how))
        if questions:
            wanted_rows.update(same)
            wanted_rows.update(nr)
    qtext = index.questions(sorted(wanted_rows)) if questions and wanted_rows and index.questions else {}
    qnorm = {r: {norm(t) for t in ts} for r, ts in qtext.items()}

    res: dict[str, Any] = {
        "title": bench.title,
        "items": len(items),
        "images": len({it.image for it in items if it.image}),
        "images_present": imgs.present,
        "normalization": bench.normalize,
        "counts": dict.fromkeys(
            ("image", "image_by_id", "image_by_content", "near_image", "near_only", "question", "any"), 0
        ),
        "matched": {k: [] for k in MATCHES},
        "rows": {k: set() for k in MATCHES},
        "by_source": defaultdict(Counter),
        "examples": [],
    }
    c = res["counts"]
    for it, same, nr, how in per_item:
        q_rows = []
        if questions and (same or nr):
            n = norm(it.question)
            q_rows = [r for r in sorted(set(same) | set(nr)) if n in qnorm.get(r, ())]
        kinds = {"image": same, "near_image": nr, "question": q_rows}
        if same:
            c["image"] += 1
            c["image_by_id"] += "id" in how
            c["image_by_content"] += "content" in how
        if nr:
            c["near_image"] += 1
            c["near_only"] += not same
        if q_rows:
            c["question"] += 1
        if same or nr or q_rows:
            c["any"] += 1
        for k, rows in kinds.items():
            if rows:
                res["matched"][k].append(it.qid)
                res["rows"][k].update(rows)
                for s in {index.sources[r] for r in rows}:
                    res["by_source"][s][k] += 1
        if (same or nr) and len(res["examples"]) < examples:
            res["examples"].append(
                {
                    "qid": it.qid,
                    "image": it.image,
                    "question": it.question,
                    "how": how + (["near"] if nr else []) + (["question"] if q_rows else []),
                    "training": [f"{index.sources[r]}:{index.keys[r]}" for r in (same or nr)[:3]],
                }
            )
    res["by_source"] = {s: dict(v) for s, v in sorted(res["by_source"].items())}
    return res


def run(
    mix: Path | str,
    root: Path | str,
    benchmarks: Sequence[str],
    *,
    near: bool = True,
    questions: bool = True,
    threshold: int = NEAR_THRESHOLD,
    examples: int = EXAMPLES,
) -> dict[str, Any]:
    """The contamination report of a mix (see the module docstring); `root` holds ROOT/benchmarks/."""
    t0 = time.perf_counter()
    mix, root = Path(mix), Path(root)
    index = mix_index(mix, near=near)
    t1 = time.perf_counter()
    out: dict[str, Any] = {
        "mix": str(mix),
        "samples": len(index.keys),
        "near_threshold": threshold,
        "hash": HASH_NAME,
        "checks": ["image"] + (["near_image"] if near else []) + (["question"] if questions else []),
        "benchmarks": {},
    }
    for name in benchmarks:
        r = match_benchmark(
            root, name, index, near=near, questions=questions, threshold=threshold, examples=examples
        )
        r["training_samples"] = {k: len(v) for k, v in r.pop("rows").items()}
        out["benchmarks"][name] = r
    out["seconds"] = {"index": round(t1 - t0, 2), "match": round(time.perf_counter() - t1, 2)}
    return out


def rows_to_exclude(
    index: TrainIndex,
    root: Path,
    benchmarks: Sequence[str],
    match: Sequence[str],
    threshold: int = NEAR_THRESHOLD,
) -> dict[int, set[str]]:
    """Training rows to drop for a decontaminated mix: {row: {"<benchmark>:<match>", ...}}."""
    out: dict[int, set[str]] = defaultdict(set)
    for name in benchmarks:
        r = match_benchmark(
            root,
            name,
            index,
            near="near_image" in match,
            questions="question" in match,
            threshold=threshold,
            examples=0,
        )
        for k in match:
            for row in r["rows"][k]:
                out[row].add(f"{name}:{k}")
    return dict(out)


# ---------------------------------------------------------------------------------------------
# output


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pct(n: int, d: int) -> str:
    return f"{n} ({100 * n / d:.1f}%)" if d else str(n)


def format_text(report: dict[str, Any]) -> str:
    b = report["benchmarks"]
    head = [
        "benchmark",
        "items",
        "imgs on disk",
        "same image",
        "by id",
        "by content",
        "near-dup",
        "near only",
        "same question",
        "any",
    ]
    rows = []
    for name, r in b.items():
        c = r["counts"]
        rows.append(
            [
                name,
                r["items"],
                f"{r['images_present']}/{r['images']}",
                _pct(c["image"], r["items"]),
                c["image_by_id"],
                c["image_by_content"],
                _pct(c["near_image"], r["items"]) if "near_image" in report["checks"] else "-",
                c["near_only"] if "near_image" in report["checks"] else "-",
                _pct(c["question"], r["items"]) if "question" in report["checks"] else "-",
                _pct(c["any"], r["items"]),
            ]
        )
    out = [
        f"contamination of {report['mix']} ({report['samples']:,} samples); near-duplicate: {report['hash']}",
        "",
        _table(head, rows),
        "",
    ]
    sources = sorted({s for r in b.values() for s in r["by_source"]})
    if sources:
        out.append("benchmark items matched, per training source (image / near-dup / question):")
        out.append(
            _table(
                ["source", *b],
                [
                    [
                        s,
                        *(
                            (
                                "{image}/{near_image}/{question}".format(
                                    **{
                                        "image": 0,
                                        "near_image": 0,
                                        "question": 0,
                                        **r["by_source"].get(s, {}),
                                    }
                                )
                            )
                            for r in b.values()
                        ),
                    ]
                    for s in sources
                ],
            )
        )
        out.append("")
    for name, r in b.items():
        for ex in r["examples"]:
            out.append(
                f"  {name} {ex['qid']}: {ex['question']!r} [{', '.join(ex['how'])}] <- {', '.join(ex['training'])}"
            )
    total = sum(r["counts"]["any"] for r in b.values())
    out.append(
        f"contamination: {total:,} of {sum(r['items'] for r in b.values()):,} benchmark items overlap the mix "
        f"({len(b)} benchmarks, {report['seconds']['index'] + report['seconds']['match']:.1f} s)"
    )
    return "\n".join(out) + "\n"


def format_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def format_html(report: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(n)}</td><td>{r['items']}</td><td>{r['counts']['image']}</td><td>{r['counts']['near_image']}</td>"
        f"<td>{r['counts']['question']}</td><td>{r['counts']['any']}</td><td>{e(json.dumps(r['by_source']))}</td></tr>"
        for n, r in report["benchmarks"].items()
    )
    ex = "".join(
        f"<li>{e(n)} {e(x['qid'])}: {e(x['question'])} [{e(', '.join(x['how']))}] &larr; {e(', '.join(x['training']))}</li>"
        for n, r in report["benchmarks"].items()
        for x in r["examples"]
    )
    buf = io.StringIO()
    buf.write(
        f"<!doctype html><meta charset='utf-8'><title>contamination</title><h1>Contamination of {e(report['mix'])}</h1>"
        f"<p>{report['samples']} samples; near-duplicate: {e(report['hash'])}</p>"
        "<table border=1><tr><th>benchmark</th><th>items</th><th>same image</th><th>near-dup</th>"
        f"<th>same question</th><th>any</th><th>per source</th></tr>{rows}</table><ul>{ex}</ul>"
    )
    return buf.getvalue()


FORMATS = {"text": format_text, "json": format_json, "html": format_html}


# ---------------------------------------------------------------------------------------------
# the recipe option `exclude:` (datamix.build)


def decontaminate(samples: list[Any], spec: Any, layout: Any) -> tuple[list[Any], dict[str, Any]]:
    """Drop the samples (`datamix.mix.Sample`) that overlap `spec.benchmarks` by `spec.match`; return
    the kept samples (order kept) and what summary.json records under `excluded`: per source the
    samples removed and why (`<benchmark>:<match>` counts), and examples."""
    import msgspec

    t0 = time.perf_counter()
    near = "near_image" in spec.match
    cache_path = layout.normalized / PHASH_CACHE
    cache = _read_cache(cache_path) if near else {}
    n_cached = len(cache)
    by_path: dict[str, tuple[str | None, Fingerprint | None]] = {}
    for s in samples:
        if s.image and s.image not in by_path:
            p = layout.images / s.image
            data = p.read_bytes() if p.is_file() else None
            sha = hashlib.sha256(data).hexdigest() if data is not None else None
            ph = None
            if near and sha is not None:
                if sha not in cache:
                    cache[sha] = fingerprint(data)  # type: ignore[arg-type]
                ph = cache[sha]
            by_path[s.image] = (sha, ph)
    if near and len(cache) > n_cached:
        _write_cache(cache_path, cache)
    index = TrainIndex.build(
        (s.source, s.key, s.image, *(by_path.get(s.image, (None, None)) if s.image else (None, None)))
        for s in samples
    )

    def questions(rows: Sequence[int]) -> dict[int, set[str]]:
        return {
            r: question_lines(msgspec.json.decode(samples[r].json).get("conversations", [])) for r in rows
        }

    index.questions = questions
    drop = rows_to_exclude(index, layout.root, spec.benchmarks, spec.match)
    removed: dict[str, dict[str, Any]] = {}
    for r in sorted(drop):
        s = samples[r]
        entry = removed.setdefault(s.source, {"samples": 0, "why": Counter(), "examples": []})
        entry["samples"] += 1
        entry["why"].update(drop[r])
        if len(entry["examples"]) < EXAMPLES:
            entry["examples"].append({"id": s.id, "image": s.image, "why": sorted(drop[r])})
    kept = [s for i, s in enumerate(samples) if i not in drop]
    report = {
        "benchmarks": list(spec.benchmarks),
        "match": list(spec.match),
        "near_threshold": NEAR_THRESHOLD,
        "hash": HASH_NAME if near else None,
        "removed": len(drop),
        "sources": {k: {**v, "why": dict(sorted(v["why"].items()))} for k, v in removed.items()},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log.info("exclude: %d of %d samples removed (%s)", len(drop), len(samples), ", ".join(spec.benchmarks))
    return kept, report
