"""The trainer's data pipeline: a mix folder's WebDataset shards -> model-ready batches.

Responsible for: reading `<mix>/shards/*.tar` (docs/architecture.md#shards), splitting them across ranks and
DataLoader workers without duplicates, a seeded shuffle buffer, grouping samples into batches by
modality and length, image preprocessing (`trainer.images`), a caller-given `transform` (templates +
tokenizer), collation, skipping corrupt samples with counters, and an exact resumable position.

    shard order (seeded by seed, epoch; same on every rank)
      -> this slot's part (slot = rank * num_workers + worker)
      -> tar members grouped by key (`<key>.json`, `<key>.jpg`); damaged shards read past (bad_shard, lost)
      -> shuffle buffer (seeded by seed, epoch, slot)
      -> parse JSON (bad -> skipped["bad_json"] / ["bad_record"])
      -> group into batches (modality + length megabatches, below)      <- position counts these
      -> decode + pad + CLIP preprocess (bad -> skipped["bad_image"]), transform, collate

Reading: a small tar reader of its own rather than `tarfile` or the `webdataset` package. The shards
are WebDataset tars and any WebDataset reader reads them; here the headers are parsed directly
(ustar/v7, pax `path` and GNU long names) so that damage is read past rather than taken for the end
of the archive (`tarfile` stops at the first bad header: 4 KB scrambled in a 20-sample shard lost 19
samples without a word): a header failing its checksum starts a scan for the next checksum-valid
header, 512-byte block by block; a damaged shard counts once in skipped["bad_shard"], the samples it
could not give in skipped["lost"] (from the manifest's count for the shard), with one warning; it
never raises (docs/trainer.md#damaged-shards). The member-name rule (`<key>.<ext>`, split at the
first dot: `datamix.schema.split_member`) and the manifest's column types (`MANIFEST_SCHEMA`) are the
ones datamix's own reader (`datamix.mixio.MixReader`) uses; the trainer imports them from
`datamix.schema`, never the reader itself. The tar part is <1% of the per-sample time (image decode
and resize dominate).

Split: with at least as many shards as slots (ranks x workers), each slot reads whole shards
(`order[slot::slots]`), so nothing is read twice; otherwise every slot reads every shard and keeps
samples `i % slots == slot` (small mixes, tests). Either way every sample is seen exactly once per
epoch across all slots. Shard-level splitting can leave ranks with unequal sample counts; the loop
must end an epoch on all ranks together (e.g. all-reduce a "still has data" flag).

Grouping (`group_by_modality_length=True`): the streaming form of LLaVA's
`get_modality_length_grouped_indices` (llava/train/llava_trainer.py): there, indices are split by
modality, each modality shuffled and cut into megabatches of world_size x batch_size, each megabatch
sorted by length (descending) and split, then megabatches of both modalities shuffled together, and
the two incomplete last megabatches merged into one mixed batch at the end. Here, after the shuffle
buffer (the random permutation), each modality fills its own pool; a full pool of `megabatch` x
`batch_size` samples is sorted by length (descending, stable) and cut into `megabatch` batches,
emitted in a seeded random order. Batches are therefore always all-image or all-text and of similar
length; at the end of the stream the remainders are sorted and cut the same way (the last batch of
each modality may be short unless `drop_last`); unlike LLaVA, no mixed batch. LLaVA also draws its
per-modality permutations from the global torch generator (`generator=None`); here every random
choice is seeded from (seed, epoch, slot). Length = the manifest's `n_tokens` when it is filled for
every row, else `n_text_chars` (computed from the record when the manifest lacks the key).

Why streaming and not a map-style index: an index needs random access into tars (an offset table,
seeks) and a global view of lengths; streaming reads each shard once, sequentially, which is what
object stores and network file systems are good at. Exact resume costs a cheap replay instead:
every step up to grouping is deterministic and image-free, so resuming re-reads the slot's shards,
re-runs buffer and grouping, and discards the first `position` batches WITHOUT decoding images or
running the transform (JSON parse only).

Resume: `ShardLoader` wraps the torch DataLoader; every batch carries its (worker, index); the loader
merges the workers' batches in (index, worker) order (the DataLoader's round robin, made explicit
so that it survives a resume) and records, per worker of this rank, how many batches the training
loop has actually received.
`state_dict()` = {epoch, seed, rank, world_size, num_workers, positions, skipped}; a fresh loader
given it continues exactly after the last consumed batch (same worker count required).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datamix.schema import IMAGE_EXTS, JSON_EXT, MANIFEST_SCHEMA, split_member
from trainer.config import ConfigError, MissingInput
from trainer.images import ImageError, ImageProcessor

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
SKIP_REASONS = ("bad_shard", "lost", "bad_json", "bad_record", "missing_image", "bad_image", "transform")

Transform = Callable[[dict[str, Any], "torch.Tensor | None"], Mapping[str, Any]]


class SkipSample(Exception):
    """Raised by a transform to skip a sample; counted under skipped["transform"]."""


@dataclass(slots=True)
class _Raw:
    key: str
    json: bytes | None
    image: bytes | None
    damaged: bool = False  # next to a damaged stretch of its shard: incomplete -> skipped["lost"]


@dataclass(slots=True)
class _Item:
    key: str
    record: dict[str, Any]
    image: bytes | None
    has_image: bool
    length: int
    damaged: bool = False


# --------------------------------------------------------------------------------------------
# shards


def list_shards(mix_dir: Path | str) -> list[Path]:
    """The mix's shard files in name order (`<mix>/shards/*.tar`)."""
    mix_dir = Path(mix_dir)
    if not mix_dir.is_dir():
        raise MissingInput("no such mix folder (build one with `datamix build`)", path=mix_dir)
    shards = sorted((mix_dir / "shards").glob("*.tar"))
    if not shards:
        raise MissingInput("not a mix folder: no shards/*.tar in it", path=mix_dir)
    return shards


_BLOCK = 512
_FILE_TYPES = (b"0", b"\0", b"7")


def _header_ok(block: bytes) -> bool:
    """A checksum-valid tar header (POSIX ustar or v7; the sum of its bytes with the checksum field as spaces)."""
    if len(block) < _BLOCK or block == _ZERO_BLOCK:
        return False
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


def _octal(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256
        n = int.from_bytes(field[1:], "big")
        return -n if field[:1] == b"\xff" else n
    return int(field.replace(b"\0", b" ").strip() or b"0", 8)


def _pax_path(data: bytes) -> str | None:
    """The `path` record of a pax extended header (`<len> path=<value>\\n` records)."""
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            return None
        try:
            length = int(data[pos:space])
        except ValueError:
            return None
        if length <= 0:
            return None
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            return value.decode("utf-8", "surrogateescape")
        pos += length
    return None


_ZERO_BLOCK = b"\0" * _BLOCK


@dataclass(slots=True)
class ShardDamage:
    """What `iter_tar` met in one damaged shard: byte ranges it could not read (start, end), and
    whether it ended early (truncated)."""

    path: Path
    gaps: list[tuple[int, int]]
    truncated: bool = False
    error: str | None = None


def _resync(f: Any, start: int, size: int) -> int | None:
    """Offset of the next checksum-valid tar header at or after `start` (512-byte aligned), or None."""
    pos = start
    chunk = 1 << 20
    while pos + _BLOCK <= size:
        f.seek(pos)
        buf = f.read(min(chunk, size - pos))
        for i in range(0, len(buf) - _BLOCK + 1, _BLOCK):
            block = buf[i : i + _BLOCK]
            if block != _ZERO_BLOCK and _header_ok(block):
                return pos + i
        pos += len(buf) - len(buf) % _BLOCK or _BLOCK
    return None


def _tar_members(path: Path, damage: ShardDamage) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of every regular file of an uncompressed tar, in archive order, read past
    damage: a header that fails its checksum starts a scan, 512-byte block by block, for the next
    checksum-valid header (the bytes in between are recorded in `damage.gaps`); a member cut short by
    the end of the file ends the archive (`damage.truncated`)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        long_name: str | None = None
        while pos + _BLOCK <= size:
            f.seek(pos)
            header = f.read(_BLOCK)
            if header == _ZERO_BLOCK:
                nxt = _resync(f, pos + _BLOCK, size)
                if nxt is None:
                    return  # end of archive (zero blocks, record padding)
                damage.gaps.append((pos, nxt))  # zeroed header(s) inside the archive
                pos, long_name = nxt, None
                continue
            if not _header_ok(header):
                nxt = _resync(f, pos + _BLOCK, size)
                damage.gaps.append((pos, size if nxt is None else nxt))
                if nxt is None:
                    return
                pos, long_name = nxt, None
                continue
            try:
                length = _octal(header[124:136])
            except ValueError:
                length = -1
            if length < 0:
                damage.gaps.append((pos, pos + _BLOCK))
                pos += _BLOCK
                continue
            kind = header[156:157]
            data_at = pos + _BLOCK
            end = data_at + length
            if end > size:
                damage.gaps.append((pos, size))
                damage.truncated = True
                return
            name_b = header[:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar":
                prefix = header[345:500].split(b"\0", 1)[0]
                if prefix:
                    name_b = prefix + b"/" + name_b
            name = name_b.decode("utf-8", "surrogateescape")
            if kind in (b"x", b"L") or kind in _FILE_TYPES:
                data = f.read(length)
                if kind == b"x":
                    long_name = _pax_path(data) or long_name
                elif kind == b"L":
                    long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                else:
                    yield (long_name or name), data
                    long_name = None
            pos = data_at + -(-length // _BLOCK) * _BLOCK
        f.seek(pos)
        if pos > size or f.read().strip(b"\0"):
            damage.gaps.append((min(pos, size), size))  # cut inside a member's padding or a header
            damage.truncated = True


def iter_tar(
    path: Path, skipped: Counter | None = None, *, expected: int | None = None, report: bool = True
) -> Iterator[_Raw]:
    """(key, json bytes, image bytes) per sample of one shard, in tar order. Consecutive members of
    one key form a sample (`datamix.schema.split_member`: the base name before its first dot, like
    WebDataset).

    Damage never raises and never ends the shard silently (docs/trainer.md#damaged-shards): a header
    that fails its checksum is skipped by scanning forward, 512-byte block by block, for the next
    checksum-valid header, and reading goes on from there; a member cut short by the end of the file
    ends the shard. The samples on either side of a damaged stretch come out with `damaged=True` (the
    parse stage counts them under skipped["lost"] when they turn out incomplete). With `report`, a
    damaged shard counts once under skipped["bad_shard"], the samples that never came out of it
    (`expected`, the manifest's count for the shard, minus those read) under skipped["lost"], and one
    warning names the shard, the unreadable bytes and the count. (`report=False`: another slot reads
    the same shard and reports it.)"""
    path = Path(path)
    damage = ShardDamage(path, [])
    cur: _Raw | None = None
    n_read = 0
    gaps_seen = 0
    members = _tar_members(path, damage)
    while True:
        try:
            name, data = next(members)
        except StopIteration:
            break
        except OSError as e:  # unreadable file (permissions, I/O error): the rest of the shard is lost
            damage.gaps.append((-1, -1))
            damage.error = f"{type(e).__name__}: {e}"
            break
        key, ext = split_member(name)
        after_gap = len(damage.gaps) > gaps_seen
        gaps_seen = len(damage.gaps)
        if cur is None or key != cur.key:
            if cur is not None:
                cur.damaged = cur.damaged or after_gap
                n_read += 1
                yield cur
            cur = _Raw(key, None, None, after_gap)
        if ext == JSON_EXT:
            cur.json = data
        elif ext in IMAGE_EXTS:
            cur.image = data
    if cur is not None:
        cur.damaged = cur.damaged or len(damage.gaps) > gaps_seen
        n_read += 1
        yield cur
    if not damage.gaps and expected is not None and n_read < expected:
        damage.truncated = True  # ends cleanly on a member boundary, but short of the manifest's count
    if (damage.gaps or damage.truncated) and report:
        lost = max(0, expected - n_read) if expected is not None else None
        if skipped is not None:
            skipped["bad_shard"] += 1
            skipped["lost"] += lost or 0
        unread = sum(b - a for a, b in damage.gaps if a >= 0)
        if damage.error:
            what = damage.error
        elif damage.gaps:
            what = f"{unread} bytes unreadable at {_where(damage.gaps)}" + (
                ", truncated" if damage.truncated else ""
            )
        else:
            what = f"truncated: ends after {n_read} of the manifest's {expected} samples"
        log.warning(
            "shard %s is damaged (%s): read past it, %d samples read; %s",
            path,
            what,
            n_read,
            f"{lost} samples lost (none of their members readable)"
            if lost is not None
            else "samples wholly inside the damage are not counted (no manifest)",
        )


def _where(gaps: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"{a}-{b}" for a, b in gaps[:3])
    return shown + (f" and {len(gaps) - 3} more" if len(gaps) > 3 else "")


def shard_sample_counts(mix_dir: Path | str) -> dict[str, int]:
    """shard name -> samples in it, from `<mix>/manifest.parquet` ({} without one or when it cannot be
    read): what a damaged shard should have held."""
    path = Path(mix_dir) / "manifest.parquet"
    if not path.exists():
        return {}
    try:
        import pyarrow.parquet as pq

        shards = pq.read_table(path, columns=["shard"])["shard"].to_pylist()
    except Exception as e:  # noqa: BLE001 - a damaged manifest only costs the lost-sample count
        log.warning(
            "%s: cannot read the shard column (%s); lost samples of damaged shards are not counted", path, e
        )
        return {}
    return dict(Counter(Path(str(s)).name for s in shards))


def load_lengths(mix_dir: Path | str, shards: Sequence[str] | None = None) -> dict[str, int]:
    """key -> length from `<mix>/manifest.parquet` (n_tokens if filled for every row, else
    n_text_chars), for the given shard names only; {} without a manifest."""
    path = Path(mix_dir) / "manifest.parquet"
    if not path.exists():
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = ["key", "shard", "n_tokens", "n_text_chars"]
    table = pq.read_table(path, columns=columns)
    # the manifest's own column types (datamix.schema.MANIFEST_SCHEMA), not re-typed here
    table = table.cast(pa.schema([MANIFEST_SCHEMA.field(c) for c in columns]))
    if shards is not None:
        shard_type = MANIFEST_SCHEMA.field("shard").type
        table = table.filter(pc.is_in(table["shard"], value_set=pa.array(list(shards), shard_type)))
    column = "n_tokens" if table["n_tokens"].null_count == 0 and table.num_rows else "n_text_chars"
    return dict(zip(table["key"].to_pylist(), table[column].to_pylist(), strict=True))


def _text_chars(record: Mapping[str, Any]) -> int:
    return sum(len(t.get("value", "")) for t in record.get("conversations", ()) if isinstance(t, dict))


# --------------------------------------------------------------------------------------------
# collate


def collate(samples: Sequence[Mapping[str, Any]], pad_id: int = 0) -> dict[str, Any]:
    """Pad and stack a batch of transformed samples.

    input_ids (B, T) padded with `pad_id`, labels (B, T) with -100, attention_mask (B, T) long,
    pixel_values (n_images, 3, S, S) of the rows with an image (None when the batch has none),
    image_mask (B,) bool, n_images (B,) long, keys (list), lengths (B,) long; any other key the
    transform returned is kept as a list."""
    out: dict[str, Any] = {}
    b = len(samples)
    if b and "input_ids" in samples[0]:
        ids = [torch.as_tensor(s["input_ids"], dtype=torch.long) for s in samples]
        longest = max(len(x) for x in ids)
        input_ids = torch.full((b, longest), pad_id, dtype=torch.long)
        labels = torch.full((b, longest), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((b, longest), dtype=torch.long)
        for i, (x, s) in enumerate(zip(ids, samples, strict=True)):
            n = len(x)
            input_ids[i, :n] = x
            if s.get("labels") is not None:
                labels[i, :n] = torch.as_tensor(s["labels"], dtype=torch.long)
            attention[i, :n] = 1
        out.update(input_ids=input_ids, labels=labels, attention_mask=attention)
    images = [s["pixel_values"] for s in samples if s.get("pixel_values") is not None]
    out["pixel_values"] = torch.stack(images) if images else None
    mask = torch.tensor([s.get("pixel_values") is not None for s in samples], dtype=torch.bool)
    out["image_mask"] = mask
    out["n_images"] = mask.long()
    out["keys"] = [s["key"] for s in samples]
    out["lengths"] = torch.tensor([s.get("length", 0) for s in samples], dtype=torch.long)
    reserved = {"input_ids", "labels", "pixel_values", "key", "length"}
    for name in samples[0].keys() if b else ():
        if name not in reserved and name not in out:
            out[name] = [s.get(name) for s in samples]
    return out


# --------------------------------------------------------------------------------------------
# the stream


class ShardStream(IterableDataset):
    """Batches from a mix folder's shards, for one rank; use with `ShardLoader` (or a DataLoader
    with batch_size=None). See the module docstring for split, grouping and resume."""

    def __init__(
        self,
        mix_dir: Path | str,
        *,
        batch_size: int,
        transform: Transform | None = None,
        image_processor: ImageProcessor | None = None,
        pad_id: int = 0,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        group_by_modality_length: bool = True,
        megabatch: int = 8,
        drop_last: bool = False,
        use_manifest: bool = True,
    ):
        if batch_size < 1 or megabatch < 1 or shuffle_buffer < 1:
            raise ValueError("batch_size, megabatch and shuffle_buffer must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, world_size={world_size})")
        self.mix_dir = Path(mix_dir)
        self.shards = list_shards(self.mix_dir)
        self.batch_size = batch_size
        self.transform = transform
        self.image_processor = image_processor or ImageProcessor()
        self.pad_id = pad_id
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle, self.shuffle_buffer = shuffle, shuffle_buffer
        self.group, self.megabatch, self.drop_last = group_by_modality_length, megabatch, drop_last
        self.use_manifest = use_manifest
        self.epoch = 0
        self.start_positions: list[int] | None = None  # batches already consumed, per worker

    # -- planning -------------------------------------------------------------------------------

    def shard_order(self, epoch: int) -> list[Path]:
        order = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}:{epoch}:shards").shuffle(order)
        return order

    def _slot_plan(self, epoch: int, worker: int, num_workers: int) -> tuple[list[Path], int, int]:
        """(shards to read, sample stride, sample offset) for this rank and worker."""
        slots = self.world_size * num_workers
        slot = self.rank * num_workers + worker
        order = self.shard_order(epoch)
        if len(order) >= slots:
            return order[slot::slots], 1, 0
        return order, slots, slot

    # -- stages ----------------------------------------------------------------------------------

    def _raw(self, shards: list[Path], stride: int, offset: int, skipped: Counter) -> Iterator[_Raw]:
        i = 0
        counts: dict[str, int] | None = None
        for shard in shards:
            if counts is None:
                counts = shard_sample_counts(self.mix_dir) if self.use_manifest else {}
            # with a sample stride every slot reads every shard: slot 0 (offset 0) reports its damage
            for raw in iter_tar(shard, skipped, expected=counts.get(shard.name), report=offset == 0):
                if i % stride == offset:
                    yield raw
                i += 1

    def _buffer(self, items: Iterable[_Raw], rng: random.Random) -> Iterator[_Raw]:
        if not self.shuffle:
            yield from items
            return
        buf: list[_Raw] = []
        for item in items:
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            j = rng.randrange(len(buf))
            yield buf[j]
            buf[j] = item
        rng.shuffle(buf)
        yield from buf

    def _parse(self, raws: Iterable[_Raw], lengths: Mapping[str, int], skipped: Counter) -> Iterator[_Item]:
        for raw in raws:
            # a sample next to a damaged stretch of its shard that came out incomplete: "lost"
            if raw.json is None:
                skipped["lost" if raw.damaged else "bad_record"] += 1
                continue
            try:
                record = json.loads(raw.json)
            except (ValueError, UnicodeDecodeError):
                skipped["lost" if raw.damaged else "bad_json"] += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
                skipped["lost" if raw.damaged else "bad_record"] += 1
                continue
            has_image = record.get("image") is not None
            if has_image and raw.image is None:
                skipped["lost" if raw.damaged else "missing_image"] += 1
                continue
            length = lengths.get(raw.key)
            if length is None:
                length = _text_chars(record)
            yield _Item(
                raw.key, record, raw.image if has_image else None, has_image, int(length), raw.damaged
            )

    def _batches(self, items: Iterable[_Item], rng: random.Random) -> Iterator[list[_Item]]:
        bs = self.batch_size
        if not self.group:
            batch: list[_Item] = []
            for item in items:
                batch.append(item)
                if len(batch) == bs:
                    yield batch
                    batch = []
            if batch and not self.drop_last:
                yield batch
            return

        def cut(pool: list[_Item], final: bool) -> list[list[_Item]]:
            pool = sorted(pool, key=lambda it: -it.length)  # stable: ties keep stream order
            batches = [pool[i : i + bs] for i in range(0, len(pool), bs)]
            if final and self.drop_last and batches and len(batches[-1]) < bs:
                batches.pop()
            rng.shuffle(batches)
            return batches

        pools: dict[bool, list[_Item]] = {True: [], False: []}
        full = bs * self.megabatch
        for item in items:
            pool = pools[item.has_image]
            pool.append(item)
            if len(pool) == full:
                yield from cut(pool, False)
                pool.clear()
        for modality in (True, False):
            if pools[modality]:
                yield from cut(pools[modality], True)

    def _materialise(self, batch: list[_Item], skipped: Counter) -> list[dict[str, Any]]:
        out = []
        for it in batch:
            pixels = None
            if it.has_image and it.image is not None:
                try:
                    pixels = torch.from_numpy(self.image_processor(it.image))
                except ImageError as e:
                    log.debug("sample %s: bad image: %s", it.key, e)
                    skipped["lost" if it.damaged else "bad_image"] += 1
                    continue
            if self.transform is not None:
                try:
                    sample = dict(self.transform(it.record, pixels))
                except SkipSample as e:
                    log.debug("sample %s skipped by the transform: %s", it.key, e)
                    skipped["transform"] += 1
                    continue
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    log.warning("sample %s: malformed record (%s: %s): skipped", it.key, type(e).__name__, e)
                    skipped["bad_record"] += 1
                    continue
            else:
                sample = {"id": it.record.get("id")}
            sample["pixel_values"] = pixels
            sample["key"] = it.key
            sample["length"] = it.length
            out.append(sample)
        return out

    # -- iteration -------------------------------------------------------------------------------

    def iter_worker(
        self, worker: int, num_workers: int, start: int = 0, *, markers: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The batches of one (rank, worker) slot for `self.epoch`, skipping the first `start`.

        With `markers`, a batch whose samples were all corrupt still yields `{"_empty": True}` and
        the stream ends with `{"_done": True}`, so that `ShardLoader` can merge workers in a fixed
        order; every item carries `_worker` and `_index`."""
        epoch = self.epoch
        slot = self.rank * num_workers + worker
        shards, stride, offset = self._slot_plan(epoch, worker, num_workers)
        skipped: Counter = Counter({r: 0 for r in SKIP_REASONS})
        lengths = (
            load_lengths(self.mix_dir, [p.name for p in shards]) if self.use_manifest and self.group else {}
        )
        buffer_rng = random.Random(f"{self.seed}:{epoch}:{slot}:buffer")
        batch_rng = random.Random(f"{self.seed}:{epoch}:{slot}:batches")
        stream = self._parse(
            self._buffer(self._raw(shards, stride, offset, skipped), buffer_rng), lengths, skipped
        )
        index = 0
        replayed: Counter = Counter()  # skips met while replaying were counted before the resume
        for index, batch in enumerate(self._batches(stream, batch_rng), start=1):
            if index <= start:
                if index == start:
                    replayed = Counter(skipped)
                continue  # replay: no decode, no transform
            samples = self._materialise(batch, skipped)
            if samples:
                out = collate(samples, self.pad_id)
            elif markers:
                out = {"_empty": True}  # every sample was corrupt; the position still moves past it
            else:
                continue
            out.update(_worker=worker, _index=index, _skipped=_minus(skipped, replayed))
            yield out
        if markers:
            yield {
                "_done": True,
                "_worker": worker,
                "_index": index + 1,
                "_skipped": _minus(skipped, replayed),
            }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        starts = self.start_positions
        if starts is not None and len(starts) != num_workers:
            raise ValueError(
                f"resume state was saved with {len(starts)} DataLoader workers, this loader has {num_workers}"
            )
        yield from self.iter_worker(worker, num_workers, starts[worker] if starts else 0, markers=True)


def _minus(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: v - b.get(k, 0) for k, v in a.items()}


# --------------------------------------------------------------------------------------------
# the loader with a position


class ShardLoader:
    """A torch DataLoader over a ShardStream that knows how far the training loop got.

    Iterating yields collated batches (dicts, see `collate`) for `epoch`; when an epoch's iteration
    ends, `epoch` advances and positions reset. `state_dict()` / `load_state_dict()` give exact
    resume (module docstring). Workers are not persistent: each epoch's workers start from the
    dataset's epoch and positions."""

    def __init__(
        self,
        dataset: ShardStream,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        multiprocessing_context: str | None = None,
    ):
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor if num_workers > 0 else None
        self.multiprocessing_context = multiprocessing_context if num_workers > 0 else None
        self.positions = [0] * max(1, num_workers)
        self._skipped = [dict.fromkeys(SKIP_REASONS, 0) for _ in range(max(1, num_workers))]
        self._skipped_before = dict.fromkeys(SKIP_REASONS, 0)  # earlier epochs (and before a resume)

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.dataset.epoch:
            self._skipped_before = self.skipped  # the finished epoch's counts stay in the run's total
            self._skipped = [dict.fromkeys(SKIP_REASONS, 0) for _ in range(max(1, self.num_workers))]
        self.dataset.epoch = epoch
        self.positions = [0] * max(1, self.num_workers)

    @property
    def skipped(self) -> dict[str, int]:
        """Corrupt, damaged or rejected samples (and damaged shards) met by this rank over the whole run
        (every epoch, and before a resume: kept in `state_dict`), by reason; a shard read in several
        epochs counts in each."""
        total = dict(self._skipped_before)
        for counts in self._skipped:
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        return total

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.dataset.start_positions = list(self.positions)
        loader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor,
            multiprocessing_context=self.multiprocessing_context,
        )
        # Merge the workers' streams in (index, worker) order: the DataLoader's own round robin
        # for an uninterrupted run, and the same order after a resume whose workers stopped at
        # different positions (the DataLoader would restart its round robin at worker 0).
        n = max(1, self.num_workers)
        queues: list[deque[dict[str, Any]]] = [deque() for _ in range(n)]
        done = [False] * n
        source = iter(loader)
        while True:
            for w in range(n):
                while not queues[w] and not done[w]:
                    try:
                        item = next(source)
                    except StopIteration:
                        done = [True] * n
                        break
                    if item.get("_done"):
                        done[item["_worker"]] = True
                        self._skipped[item["_worker"]] = item["_skipped"]
                    else:
                        queues[item["_worker"]].append(item)
            live = [w for w in range(n) if queues[w]]
            if not live:
                break
            w = min(live, key=lambda v: (queues[v][0]["_index"], v))
            batch = queues[w].popleft()
            self.positions[w] = batch.pop("_index")
            self._skipped[w] = batch.pop("_skipped")
            batch.pop("_worker")
            if batch.pop("_empty", False):
                continue
            yield batch
        self.dataset.start_positions = None
        self.set_epoch(self.dataset.epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.dataset.epoch,
            "seed": self.dataset.seed,
            "rank": self.dataset.rank,
            "world_size": self.dataset.world_size,
            "num_workers": self.num_workers,
            "positions": list(self.positions),
            "skipped": self.skipped,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        ds = self.dataset
        for name, have in (
            ("seed", ds.seed),
            ("rank", ds.rank),
            ("world_size", ds.world_size),
            ("num_workers", self.num_workers),
        ):
            if state[name] != have:
                raise ConfigError(
                    f"data state was saved with {name}={state[name]}, this loader has {name}={have}"
                )
        ds.epoch = int(state["epoch"])
        self.positions = [int(p) for p in state["positions"]]
        self._skipped_before = {
            **dict.fromkeys(SKIP_REASONS, 0),
            **{k: int(v) for k, v in state.get("skipped", {}).items()},
        }
        self._skipped = [dict.fromkeys(SKIP_REASONS, 0) for _ in range(max(1, self.num_workers))]


__all__ = [
    "IGNORE_INDEX",
    "SKIP_REASONS",
    "ShardLoader",
    "ShardStream",
    "SkipSample",
    "collate",
    "ShardDamage",
    "iter_tar",
    "list_shards",
    "load_lengths",
    "shard_sample_counts",
]
