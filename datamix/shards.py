"""Deterministic WebDataset shards, the Parquet manifest and the build summary (architecture.md 4.3).

    <out>/shards/<recipe>-NNNNNN.tar   per sample `<key>.json` (LLaVA form + source + key), `<key>.jpg`
    <out>/manifest.parquet             one row per sample
    <out>/summary.json                 counts vs expected, recipe hash, seed, raw input hashes, versions

Shards are planned up front (a fixed number of samples per shard, closed early when a byte target is
reached) and written in parallel. Each shard goes to a temporary file, its manifest rows to
`<out>/.parts/<shard>.parquet`, then the tar is renamed into place: a killed build resumes by skipping
the shards whose tar and part both exist, and never leaves a truncated tar under a final name. Tar
members are written in a fixed order with fixed metadata (mtime, uid, gid, names, mode), so the same
samples give byte-identical shards. `plan.json` pins the plan: a different plan is refused without
`force`.

Presized images (opt-in, recipe `shards: presize`, `PresizeSpec`): each `<key>.jpg` holds the trainer's
own padded and resized square (`trainer.images.ImageProcessor.square`: the decompression-bomb guard,
RGB, CLIP-mean padding, bicubic resize) re-encoded as a baseline JPEG with fixed settings (quality,
chroma subsampling, no optimisation, no EXIF/ICC/comment), so the loader decodes a small square and
skips padding and resizing. This CHANGES PIXELS (one more JPEG generation; the loader's values stay
within a few uint8 levels of the original's at quality 95) in exchange for a several-fold faster
data path. The manifest keeps the ORIGINAL image's `image_sha256`, `width` and `height` (region boxes
are formatted from them); `stored_sha256` hashes the member as stored and `presized` says whether it
is the re-encoded square. An image the trainer could not decode (truncated, over the pixel limit) is
stored as is, as without presize, so that the loader skips it the same way (skipped["bad_image"]);
it is counted in summary.json (`presize.kept_original`). Region boxes in the `original` frame are
refused with presize (at recipe validation).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from datamix import __version__
from datamix.fileio import atomic_path, write_json_atomic
from datamix.mix import Sample
from datamix.recipe import PresizeSpec
from datamix.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

TAR_MTIME = 0  # fixed member metadata: identical inputs give identical bytes
MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("image", pa.string()),
        pa.field("image_sha256", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("stored_sha256", pa.string()),  # of the `<key>.jpg` member: the original's unless presized
        pa.field("presized", pa.bool_()),  # the member is the presized square (null: text-only)
        pa.field("n_turns", pa.int32(), nullable=False),
        pa.field("n_text_chars", pa.int64(), nullable=False),
        pa.field("n_tokens", pa.int32()),
        pa.field("shard", pa.string(), nullable=False),
    ]
)


class BuildError(Exception):
    """A build that cannot proceed (missing image, conflicting earlier build, ...)."""


def sample_json(sample: Sample) -> bytes:
    """The `<key>.json` member: the release record plus `source` and `key`."""
    return json.dumps(sample.record(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def plan_shards(
    samples: Sequence[Sample],
    images_root: Path,
    *,
    max_samples: int = 10_000,
    max_bytes: int | None = None,
) -> list[tuple[int, int]]:
    """Cut the ordered samples into shards: [start, end) ranges of at most `max_samples` samples and,
    when `max_bytes` is given, closed once the image bytes (by file size) reach it."""
    if max_samples < 1:
        raise ValueError("max_samples must be >= 1")
    ranges, start, size = [], 0, 0
    for i, s in enumerate(samples):
        if s.image is not None and max_bytes is not None:
            try:
                size += (images_root / s.image).stat().st_size
            except OSError:
                pass  # reported when the shard is written
        size += 512
        n = i + 1 - start
        if n >= max_samples or (max_bytes is not None and size >= max_bytes):
            ranges.append((start, i + 1))
            start, size = i + 1, 0
    if start < len(samples):
        ranges.append((start, len(samples)))
    return ranges


_BLOCK = 512
_RECORD = 20 * _BLOCK  # tar's record size: archives are padded to a multiple of it, as tarfile does


def _tar_header(name: str, size: int) -> bytes:
    """A POSIX ustar header with fixed metadata (mode 0644, uid/gid 0, empty user/group, mtime 0)."""
    raw = name.encode("utf-8")
    if len(raw) > 100:
        raise BuildError(f"tar member name too long for ustar ({len(raw)} bytes): {name}")
    fields = [
        raw.ljust(100, b"\0"),
        b"0000644\0",  # mode
        b"0000000\0",  # uid
        b"0000000\0",  # gid
        b"%011o\0" % size,
        b"%011o\0" % TAR_MTIME,
        b" " * 8,  # checksum placeholder
        b"0",  # regular file
        b"\0" * 100,  # linkname
        b"ustar\x0000",
        b"\0" * 32,  # uname
        b"\0" * 32,  # gname
        b"0000000\0",  # devmajor
        b"0000000\0",  # devminor
        b"\0" * 155,  # prefix
    ]
    header = b"".join(fields).ljust(_BLOCK, b"\0")
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


class _TarWriter:
    """Minimal deterministic tar writer: header + data + zero padding per member (no per-member
    copy through tarfile's 16 KB buffer loop; byte-compatible with tarfile/webdataset readers)."""

    def __init__(self, f: Any):
        self.f = f
        self.pos = 0

    def add(self, name: str, data: bytes) -> None:
        pad = -len(data) % _BLOCK
        self.f.write(_tar_header(name, len(data)))
        self.f.write(data)
        if pad:
            self.f.write(b"\0" * pad)
        self.pos += _BLOCK + len(data) + pad

    def close(self) -> None:
        end = self.pos + 2 * _BLOCK
        self.f.write(b"\0" * (2 * _BLOCK + (-end % _RECORD)))


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of image bytes: JPEG read from its SOF marker directly, other formats by Pillow."""
    if data[:2] == b"\xff\xd8":
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                break
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in _SOF:
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            if 0xD0 <= marker <= 0xD9 or marker == 0x01:
                i += 2
                continue
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    with Image.open(io.BytesIO(data)) as im:
        return im.size


TokenCounter = Callable[[Sample], int]

_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # Pillow's codes
MAX_KEPT_KEYS = 100  # keys of images stored as is, listed in summary.json (all are counted)


def presize_settings(presize: PresizeSpec) -> dict[str, Any]:
    """What a presized build stores, for summary.json."""
    from trainer.images import CLIP_MEAN, PAD_COLOR

    return {
        **presize.model_dump(mode="json"),
        "format": "JPEG (baseline, optimize=False, no EXIF/ICC/comment)",
        "pad_color": list(PAD_COLOR),
        "pad_mean": list(CLIP_MEAN),
        "resample": "bicubic (trainer.images.resize_padded)",
        "alpha": "composited onto white (trainer.images default)",
    }


class Presizer:
    """Image bytes -> presized JPEG bytes (see the module docstring). Raises `trainer.images.ImageError`
    for an image the trainer's decoder refuses (the caller stores the original then)."""

    def __init__(self, presize: PresizeSpec):
        try:
            from trainer.images import ImageError, ImageProcessor
        except ImportError as e:  # pragma: no cover - numpy missing from a bare install
            raise BuildError(f"shards.presize needs trainer.images and numpy: {e}") from None
        self.spec = presize
        self.error = ImageError
        self.processor = ImageProcessor(size=presize.size)  # the trainer's defaults: CLIP mean, alpha white
        self.subsampling = _SUBSAMPLING[presize.subsampling]

    def __call__(self, data: bytes) -> bytes:
        square = self.processor.square(data)
        # a fresh image: no `info` (Pillow would copy a JPEG comment from it into the output)
        clean = Image.frombytes("RGB", square.size, square.tobytes())
        buf = io.BytesIO()
        clean.save(
            buf, "JPEG", quality=self.spec.quality, subsampling=self.subsampling, optimize=False,
            progressive=False, exif=b"",
        )
        return buf.getvalue()


def write_shard(
    path: Path,
    part_path: Path,
    samples: Sequence[Sample],
    images_root: Path,
    count_tokens: TokenCounter | None = None,
    presize: PresizeSpec | None = None,
) -> int:
    """Write one shard (atomically) and its manifest rows; returns the number of samples. With
    `presize`, images are stored presized (module docstring)."""
    rows = []
    shard_name = path.name
    presizer = Presizer(presize) if presize is not None else None
    with atomic_path(path) as tmp:
        with open(tmp, "wb", buffering=1 << 20) as f:
            tar = _TarWriter(f)
            for s in samples:
                record = s.record()
                turns = record["conversations"]
                tar.add(f"{s.key}.json", json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())
                digest = width = height = stored_digest = presized = None
                if s.image is not None:
                    image_path = images_root / s.image
                    try:
                        data = image_path.read_bytes()
                    except OSError as e:
                        raise BuildError(f"sample {s.key} ({s.source} id {s.id}): cannot read image {image_path}: {e}") from None
                    try:
                        width, height = image_size(data)
                    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                        raise BuildError(f"sample {s.key}: image {image_path} is not readable: {e}") from None
                    digest = hashlib.sha256(data).hexdigest()
                    stored, presized = data, False
                    if presizer is not None:
                        try:
                            stored, presized = presizer(data), True
                        except presizer.error as e:
                            log.warning(
                                "sample %s: image %s does not decode (%s): stored as is, the trainer will skip it",
                                s.key, image_path, e,
                            )
                    stored_digest = digest if stored is data else hashlib.sha256(stored).hexdigest()
                    tar.add(f"{s.key}.jpg", stored)
                rows.append(
                    {
                        "key": s.key,
                        "id": s.id,
                        "source": s.source,
                        "image": s.image,
                        "image_sha256": digest,
                        "width": width,
                        "height": height,
                        "stored_sha256": stored_digest,
                        "presized": presized,
                        "n_turns": len(turns),
                        "n_text_chars": sum(len(t["value"]) for t in turns),
                        "n_tokens": count_tokens(s) if count_tokens else None,
                        "shard": shard_name,
                    }
                )
            tar.close()
        with atomic_path(part_path) as part_tmp:
            pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), part_tmp, compression="zstd")
    return len(rows)


def _write_shard_job(args: tuple[Path, Path, list[Sample], Path, str | None, PresizeSpec | None]) -> int:
    path, part, samples, images_root, tokenizer, presize = args
    counter = make_token_counter(tokenizer) if tokenizer else None
    return write_shard(path, part, samples, images_root, counter, presize=presize)


def text_token_counter(tokenizer: str) -> Callable[[str], int]:
    """Number of tokens of a text (no BOS/EOS; `</s>`, `<s>`, `<image>` in the text count as text, as
    the trainer encodes them) with the project's tokenizer loader (`datamix.tokenizer.load_tokenizer`,
    the one the trainer uses): a `.gguf` file, a `tokenizer.model` folder as Vicuna v1.5 publishes it,
    or any Hugging Face tokenizer folder / hub id. Needs the [train] extra (transformers, sentencepiece)."""
    from datamix.tokenizer import load_tokenizer

    try:
        tok = load_tokenizer(tokenizer)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BuildError(f"--tokenizer needs the [train] extra (transformers, sentencepiece, protobuf): {e}") from e
    return lambda text: len(tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def make_token_counter(tokenizer: str) -> TokenCounter:
    """Text tokens of a sample (all turns; the image's tokens are not counted) for the manifest."""
    count_text = text_token_counter(tokenizer)
    return lambda s: sum(count_text(t["value"]) for t in s.conversations)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def plan_digest(
    recipe_name: str,
    samples: Sequence[Sample],
    ranges: Sequence[tuple[int, int]],
    presize: PresizeSpec | None = None,
) -> str:
    """sha256 of what the shards will hold; presize settings count (unchanged digest when off)."""
    h = hashlib.sha256()
    h.update(recipe_name.encode())
    if presize is not None:
        h.update(b"|presize:" + json.dumps(presize.model_dump(mode="json"), sort_keys=True).encode())
    for a, b in ranges:
        h.update(f"|{a}:{b}".encode())
    for s in samples:
        h.update(sample_json(s))
        h.update(b"\n")
    return h.hexdigest()


def write_mix(
    out: Path,
    recipe_name: str,
    samples: Sequence[Sample],
    images_root: Path,
    *,
    summary: dict[str, Any],
    max_samples: int = 10_000,
    max_bytes: int | None = None,
    jobs: int = 1,
    tokenizer: str | None = None,
    presize: PresizeSpec | None = None,
    force: bool = False,
    on_shard: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write shards + manifest.parquet + summary.json for the ordered samples; resumable.

    `summary` holds the caller's part (counts, expected, recipe hash, seed, raw inputs); shard
    statistics, versions, the git commit and `presize` (null, or its settings and counts) are added
    here. `presize` stores presized images (module docstring). Returns the final summary.
    """
    out = Path(out)
    shards_dir, parts_dir = out / "shards", out / ".parts"
    ranges = plan_shards(samples, images_root, max_samples=max_samples, max_bytes=max_bytes)
    digest = plan_digest(recipe_name, samples, ranges, presize)
    plan_path = out / "plan.json"
    if plan_path.exists():
        old = json.loads(plan_path.read_text(encoding="utf-8"))
        if old.get("digest") != digest:
            if not force:
                raise BuildError(
                    f"{out} holds a different build (plan {old.get('digest', '?')[:12]}); use --force to replace it"
                )
            shutil.rmtree(shards_dir, ignore_errors=True)
            shutil.rmtree(parts_dir, ignore_errors=True)
            for name in ("manifest.parquet", "summary.json"):
                (out / name).unlink(missing_ok=True)
    elif (out / "manifest.parquet").exists() or shards_dir.exists():
        if not force:
            raise BuildError(f"{out} already holds shards from another build; use --force to replace it")
        shutil.rmtree(shards_dir, ignore_errors=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
    shards_dir.mkdir(parents=True, exist_ok=True)
    parts_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_path, {"digest": digest, "recipe": recipe_name, "shards": len(ranges), "samples": len(samples)})

    names = [f"{recipe_name}-{i:06d}.tar" for i in range(len(ranges))]
    todo = []
    for name, (a, b) in zip(names, ranges, strict=True):
        if (shards_dir / name).exists() and (parts_dir / f"{name}.parquet").exists():
            continue
        todo.append(
            (shards_dir / name, parts_dir / f"{name}.parquet", list(samples[a:b]), images_root, tokenizer, presize)
        )
    skipped = len(names) - len(todo)
    done = skipped
    if on_shard:
        on_shard(done, len(names))
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for _ in pool.map(_write_shard_job, todo):
                done += 1
                if on_shard:
                    on_shard(done, len(names))
    else:
        for job in todo:
            _write_shard_job(job)
            done += 1
            if on_shard:
                on_shard(done, len(names))

    manifest = pa.concat_tables([_read_part(parts_dir / f"{n}.parquet") for n in names]) if names else (
        MANIFEST_SCHEMA.empty_table()
    )
    with atomic_path(out / "manifest.parquet") as tmp:
        pq.write_table(manifest.cast(MANIFEST_SCHEMA), tmp, compression="zstd")
    shard_bytes = sum((shards_dir / n).stat().st_size for n in names)
    presize_summary = None
    if presize is not None:
        with_image = manifest.filter(pc.is_valid(manifest["presized"]))
        kept = with_image.filter(pc.invert(with_image["presized"]))["key"].to_pylist()
        presize_summary = {
            **presize_settings(presize),
            "presized": with_image.num_rows - len(kept),
            "kept_original": len(kept),
            "kept_original_keys": kept[:MAX_KEPT_KEYS],
        }
    final = {
        **summary,
        "recipe": recipe_name,
        "samples": manifest.num_rows,
        "shards": len(names),
        "shards_resumed": skipped,
        "shard_bytes": shard_bytes,
        "datamix_version": __version__,
        "git_commit": _git_commit(),
        "schema_version": SCHEMA_VERSION,
        "presize": presize_summary,
    }
    write_json_atomic(out / "summary.json", final)
    shutil.rmtree(parts_dir, ignore_errors=True)
    log.info("%s: %d samples in %d shards (%d resumed)", out, manifest.num_rows, len(names), skipped)
    return final


def _read_part(path: Path) -> pa.Table:
    """A shard's manifest rows; a part written before `stored_sha256`/`presized` existed (a build
    resumed across the upgrade, never presized) gets them: the original bytes were stored."""
    table = pq.read_table(path)
    if "stored_sha256" not in table.column_names:
        table = table.append_column("stored_sha256", table["image_sha256"])
    if "presized" not in table.column_names:
        has_image = pc.is_valid(table["image_sha256"])
        table = table.append_column("presized", pc.if_else(has_image, False, pa.scalar(None, pa.bool_())))
    return table.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)


def read_shard(path: Path) -> Iterable[tuple[str, dict[str, Any], bytes | None]]:
    """Iterate (key, record, image bytes or None) over a shard written by `write_shard`."""
    with tarfile.open(path, "r") as tar:
        pending: dict[str, Any] | None = None
        pending_key = None
        for member in tar:
            key, _, ext = member.name.rpartition(".")
            f = tar.extractfile(member)
            data = f.read() if f is not None else b""
            if ext == "json":
                if pending is not None:
                    yield pending_key, pending, None
                pending, pending_key = json.loads(data), key
            elif ext == "jpg" and key == pending_key:
                yield key, pending, data
                pending = pending_key = None
        if pending is not None:
            yield pending_key, pending, None
