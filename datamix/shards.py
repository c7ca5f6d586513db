"""Deterministic WebDataset shards, the Parquet manifest and the build summary (docs/architecture.md 4.3).

    <out>/shards/<recipe>-NNNNNN.tar   per sample `<key>.json` (LLaVA form + source + key), `<key>.jpg`
    <out>/manifest.parquet             one row per sample
    <out>/summary.json                 counts vs expected, recipe hash, seed, raw input hashes, versions

This module is the build's policy; the files themselves are written by `datamix.mixio.MixWriter`
(member names, fixed tar metadata, manifest parts, atomic renames). Shards are planned up front (a
fixed number of samples per shard, closed early when a byte target is reached) and written in
parallel. Each shard goes to a temporary file, its manifest rows to `<out>/.parts/<shard>.parquet`,
then the tar is renamed into place: a killed build resumes by skipping the shards whose tar and part
both exist, and never leaves a truncated tar under a final name. The same samples give
byte-identical shards. `plan.json` pins the plan: a different plan is refused without `force`.

Each sample's `<key>.json` is the `Sample.json` made when the sample was (`datamix.schema.Sample.create`),
written as is: conversations are encoded once per sample. The `--tokenizer` (manifest `n_tokens`)
and the presizer are made once per worker process, not once per shard.

Presized images (opt-in, recipe `shards: presize`, `PresizeSpec`): each `<key>.jpg` holds the trainer's
own padded and resized square (`datamix.imaging.padded_square`, what `trainer.images.ImageProcessor`
feeds the model before normalising: the decompression-bomb guard, RGB, CLIP-mean padding, bicubic
resize) re-encoded as a baseline JPEG with fixed settings (quality, chroma subsampling, no
optimisation, no EXIF/ICC/comment), so the loader decodes a small square and skips padding and
resizing. This CHANGES PIXELS (one more JPEG generation; the loader's values stay within a few uint8
levels of the original's at quality 95) in exchange for a several-fold faster data path. The
manifest keeps the ORIGINAL image's `image_sha256`, `width` and `height` (region boxes are formatted
from them); `stored_sha256` hashes the member as stored and `presized` says whether it is the
re-encoded square. An image the trainer could not decode (truncated, over the pixel limit) is stored
as is, as without presize, so that the loader skips it the same way (skipped["bad_image"]); it is
counted in summary.json (`presize.kept_original`). Region boxes in the `original` frame are refused
with presize (at recipe validation).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from PIL import Image

from datamix import __version__
from datamix.errors import DataError, UsageError
from datamix.fileio import write_json_atomic
from datamix.imaging import CLIP_MEAN, PAD_COLOR, ImageError, image_size, padded_square
from datamix.mixio import MixIOError, MixWriter, ShardWriter
from datamix.proc import die_with_parent, kill_point
from datamix.recipe import PresizeSpec
from datamix.schema import SCHEMA_VERSION, Sample

log = logging.getLogger(__name__)


class BuildError(DataError):
    """A build that cannot proceed (missing image, conflicting earlier build, ...)."""


def sample_json(sample: Sample) -> bytes:
    """The `<key>.json` member: the release record plus `source` and `key` (`Sample.json`)."""
    return sample.json


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


TokenCounter = Callable[[Sample], int]

_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # Pillow's codes
MAX_KEPT_KEYS = 100  # keys of images stored as is, listed in summary.json (all are counted)


def presize_settings(presize: PresizeSpec) -> dict[str, Any]:
    """What a presized build stores, for summary.json."""
    return {
        **presize.model_dump(mode="json"),
        "format": "JPEG (baseline, optimize=False, no EXIF/ICC/comment)",
        "pad_color": list(PAD_COLOR),
        "pad_mean": list(CLIP_MEAN),
        "resample": "bicubic (datamix.imaging.resize_padded, as trainer.images)",
        "alpha": "composited onto white (datamix.imaging default, as trainer.images)",
    }


class Presizer:
    """Image bytes -> presized JPEG bytes (see the module docstring). Raises `datamix.imaging.ImageError`
    for an image the trainer's decoder refuses (the caller stores the original then)."""

    error = ImageError

    def __init__(self, presize: PresizeSpec):
        self.spec = presize
        self.subsampling = _SUBSAMPLING[presize.subsampling]

    def __call__(self, data: bytes) -> bytes:
        # the trainer's defaults (trainer.images.ImageProcessor): CLIP-mean padding, alpha onto white
        square = padded_square(data, self.spec.size)
        # a fresh image: no `info` (Pillow would copy a JPEG comment from it into the output)
        clean = Image.frombytes("RGB", square.size, square.tobytes())
        buf = io.BytesIO()
        clean.save(
            buf,
            "JPEG",
            quality=self.spec.quality,
            subsampling=self.subsampling,
            optimize=False,
            progressive=False,
            exif=b"",
        )
        return buf.getvalue()


def write_shard(
    path: Path,
    part_path: Path,
    samples: Sequence[Sample],
    images_root: Path,
    count_tokens: TokenCounter | None = None,
    presize: PresizeSpec | Presizer | None = None,
) -> int:
    """Write one shard (atomically) and its manifest rows; returns the number of samples. With
    `presize` (a spec, or a `Presizer` made once per worker), images are stored presized (module
    docstring)."""
    presizer = presize if isinstance(presize, Presizer) or presize is None else Presizer(presize)
    with ShardWriter(path, part_path) as shard:
        for s in samples:
            if s.image is None:
                shard.add(s, n_tokens=count_tokens(s) if count_tokens else None)
                continue
            image_path = images_root / s.image
            try:
                data = image_path.read_bytes()
            except OSError as e:
                raise BuildError(
                    f"sample {s.key} ({s.source} id {s.id}): cannot read image {image_path}: {e}"
                ) from None
            try:
                width, height = image_size(data)
            except (
                OSError,
                SyntaxError,
                ValueError,
                Image.DecompressionBombError,
                Image.DecompressionBombWarning,
            ) as e:
                raise BuildError(f"sample {s.key}: image {image_path} is not readable: {e}") from None
            digest = hashlib.sha256(data).hexdigest()
            stored, presized = data, False
            if presizer is not None:
                try:
                    stored, presized = presizer(data), True
                except presizer.error as e:
                    log.warning(
                        "sample %s: image %s does not decode (%s): stored as is, the trainer will skip it",
                        s.key,
                        image_path,
                        e,
                    )
            shard.add(
                s,
                stored,
                image_sha256=digest,
                width=width,
                height=height,
                stored_sha256=digest if stored is data else hashlib.sha256(stored).hexdigest(),
                presized=presized,
                n_tokens=count_tokens(s) if count_tokens else None,
            )
            kill_point("mid-shard")  # test hook (datamix.proc): a temporary tar is half written
        return len(shard.rows)


class _Worker:
    """What a shard-writing process makes once and reuses for every shard it writes: the token
    counter (loading a tokenizer takes seconds) and the presizer."""

    def __init__(self, tokenizer: str | None, presize: PresizeSpec | None):
        self.tokenizer, self.presize = tokenizer, presize
        self._counter: TokenCounter | None = None
        self._presizer = Presizer(presize) if presize is not None else None

    @property
    def counter(self) -> TokenCounter | None:
        if self.tokenizer and self._counter is None:
            self._counter = make_token_counter(self.tokenizer)
        return self._counter

    def write(self, job: tuple[Path, Path, list[Sample], Path]) -> int:
        path, part, samples, images_root = job
        return write_shard(path, part, samples, images_root, self.counter, presize=self._presizer)


_WORKER: _Worker | None = None  # the pool process's own, set by `_init_worker`


def _init_worker(tokenizer: str | None, presize: PresizeSpec | None, parent: int | None = None) -> None:
    global _WORKER
    die_with_parent(parent)  # a killed build leaves no shard writer running
    _WORKER = _Worker(tokenizer, presize)


def _write_shard_job(job: tuple[Path, Path, list[Sample], Path]) -> int:
    if _WORKER is None:  # pragma: no cover - the pool's initializer sets it
        raise AssertionError("shard worker not initialised")
    return _WORKER.write(job)


def text_token_counter(tokenizer: str) -> Callable[[str], int]:
    """Number of tokens of a text (no BOS/EOS; `</s>`, `<s>`, `<image>` in the text count as text, as
    the trainer encodes them) with the project's tokenizer loader (`datamix.tokenizer.load_tokenizer`,
    the one the trainer uses): a `.gguf` file, a `tokenizer.model` folder as Vicuna v1.5 publishes it,
    or any Hugging Face tokenizer folder / hub id. Needs the [train] extra (transformers, sentencepiece)."""
    import re

    from datamix.tokenizer import load_tokenizer

    local = Path(tokenizer).expanduser()
    hub_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", tokenizer) is not None and not tokenizer.startswith(".")
    if not local.exists() and not hub_id:
        raise UsageError("--tokenizer: no such file or folder", path=tokenizer)
    try:
        tok = load_tokenizer(tokenizer)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BuildError(
            f"--tokenizer needs the [train] extra (transformers, sentencepiece, protobuf): {e}"
        ) from e
    except Exception as e:  # noqa: BLE001 - transformers raises many types for a folder it cannot use
        first = (str(e) or type(e).__name__).splitlines()[0]
        raise UsageError(
            f"--tokenizer: cannot load a tokenizer ({type(e).__name__}: {first})", path=tokenizer
        ) from None
    return lambda text: len(tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def make_token_counter(tokenizer: str) -> TokenCounter:
    """Text tokens of a sample (all turns; the image's tokens are not counted) for the manifest."""
    count_text = text_token_counter(tokenizer)
    return lambda s: sum(count_text(t["value"]) for t in s.conversations)


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
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
        h.update(s.json)
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
    with out_lock(out):
        return _write_mix_locked(
            out,
            recipe_name,
            samples,
            images_root,
            summary=summary,
            max_samples=max_samples,
            max_bytes=max_bytes,
            jobs=jobs,
            tokenizer=tokenizer,
            presize=presize,
            force=force,
            on_shard=on_shard,
        )


LOCK = ".lock"


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder (`<out>/.lock`, `flock`) while a build writes
    into it: a second build into the same folder fails at once with a `UsageError` instead of
    racing the first. The lock dies with the process (a killed build does not leave it held); the
    file is removed when the build ends."""
    import fcntl

    if out.exists() and not out.is_dir():
        raise UsageError("--out is a file, not a folder", path=out)
    key = os.path.abspath(out)
    if key in _HELD:  # this process holds it already (build() locks before its long reads)
        yield
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                "another build is writing into this folder (it holds the lock); wait for it or use another --out",
                path=out,
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file as we opened it: lock the new one
    _HELD.add(key)
    try:
        yield
    finally:
        _HELD.discard(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # a build that failed before writing anything leaves no empty folder


_HELD: set[str] = set()  # output folders this process has locked


def _write_mix_locked(
    out: Path,
    recipe_name: str,
    samples: Sequence[Sample],
    images_root: Path,
    *,
    summary: dict[str, Any],
    max_samples: int,
    max_bytes: int | None,
    jobs: int,
    tokenizer: str | None,
    presize: PresizeSpec | None,
    force: bool,
    on_shard: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    writer = MixWriter(out)
    ranges = plan_shards(samples, images_root, max_samples=max_samples, max_bytes=max_bytes)
    digest = plan_digest(recipe_name, samples, ranges, presize)
    plan_path = out / "plan.json"
    if plan_path.exists():
        try:
            old = json.loads(plan_path.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if not force:
                raise BuildError(f"{plan_path}: unreadable ({e}); use --force to replace the build") from None
            old = {}
        if old.get("digest") != digest:
            if not force:
                raise BuildError(
                    f"{out} holds a different build (plan {str(old.get('digest', '?'))[:12]}); use --force to replace it"
                )
            writer.clear("summary.json", names=(recipe_name, str(old.get("recipe") or "")))
    elif writer.has_output():
        if not force:
            raise BuildError(f"{out} already holds shards from another build; use --force to replace it")
        writer.clear(names=(recipe_name,))
    writer.prepare()
    write_json_atomic(
        plan_path, {"digest": digest, "recipe": recipe_name, "shards": len(ranges), "samples": len(samples)}
    )

    names = [f"{recipe_name}-{i:06d}.tar" for i in range(len(ranges))]
    todo = [
        (writer.shard_path(name), writer.part_path(name), list(samples[a:b]), images_root)
        for name, (a, b) in zip(names, ranges, strict=True)
        if not writer.done(name)
    ]
    skipped = len(names) - len(todo)
    done = skipped
    if on_shard:
        on_shard(done, len(names))
    try:
        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(
                max_workers=jobs, initializer=_init_worker, initargs=(tokenizer, presize, os.getpid())
            ) as pool:
                for _ in pool.map(_write_shard_job, todo):
                    done += 1
                    kill_point(f"shards:{done - skipped}")  # test hook (datamix.proc)
                    if on_shard:
                        on_shard(done, len(names))
        else:
            worker = _Worker(tokenizer, presize)
            for job in todo:
                worker.write(job)
                done += 1
                kill_point(f"shards:{done - skipped}")  # test hook (datamix.proc)
                if on_shard:
                    on_shard(done, len(names))
    except MixIOError as e:
        raise BuildError(str(e)) from None
    except BrokenProcessPool as e:
        raise BuildError(f"{out}: a shard-writing process died ({e}); rerun to resume") from None

    kill_point("before-manifest")  # test hook (datamix.proc)
    manifest = writer.write_manifest(names)
    shard_bytes = sum(writer.shard_path(n).stat().st_size for n in names)
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
    kill_point("before-summary")  # test hook (datamix.proc)
    write_json_atomic(out / "summary.json", final)
    writer.finish()
    log.info("%s: %d samples in %d shards (%d resumed)", out, manifest.num_rows, len(names), skipped)
    return final
