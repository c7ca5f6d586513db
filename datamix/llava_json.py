"""The official LLaVA JSON format: reading it, exporting a mix to it, inferring sources from it.

This module owns the release's record shape (sources.md 0.2): a JSON array of
`{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": str}, ...]}`, where text-only
records omit `image` (LLaVA's `--group_by_modality_length` keys on the presence of the key). The
prompt strings themselves are `datamix.formats`'s; this module re-exports the ones it keys on.

- `read_llava_json(path)` streams the records of a LLaVA-format file (a JSON array, or JSON lines)
  with `id` coerced to `str` (the release mixes string and integer ids, sources.md P8); a malformed
  record raises `LlavaJsonError` naming the file and the record index.
- `export_llava_json(mix_dir, out_path, image_prefix=...)` writes a built mix (`manifest.parquet` +
  `shards/*.tar`) as the release's JSON, in manifest order, streaming, through a temp file renamed
  into place, with image paths as the official files write them (`export_image_path`): stage 2
  relative to the data root's `images/` folder (`coco/train2017/000000033471.jpg`, LLaVA's
  `--image_folder ./playground/data`), stage 1 relative to the LCS-558K images folder
  (`00453/004539375.jpg`, `--image_folder ./playground/data/LLaVA-Pretrain/images`), so that LLaVA's
  own `train.py` reads the file unchanged.
- `infer_source(record)` guesses the source of a release record from its image path and prompts;
  `import_records(path)` yields `(source, record)` pairs for `datamix import-llava`, whose writing
  into shards belongs to `datamix.shards`.
"""

from __future__ import annotations

import io
import json
import logging
import mmap
import os
import re
import tarfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import pyarrow.parquet as pq

from datamix.fileio import atomic_path, decode_each
from datamix.formats import (
    CAPTION_PROMPT,
    MCQ_SUFFIX,
    OCR_PREFIX,
    REC_PROMPT,
    REG_PROMPT,
    SHORT_ANSWER_SUFFIX,
)
from datamix.paths import LLAVA_PRETRAIN_DIR
from datamix.sources import SOURCE_NAMES

log = logging.getLogger(__name__)

# --- the release's format prompts (sources.md 0.4, 3.3-10.3); the strings live in datamix.formats ------

#: Short-answer suffix of VQAv2, GQA, OK-VQA, OCR-VQA; appended as "\n" + prompt to the first human turn.
SHORT_ANSWER = SHORT_ANSWER_SUFFIX
#: A-OKVQA suffix (ASCII apostrophe, as in the data; the paper's PDF renders a curly one).
MC_LETTER = MCQ_SUFFIX
#: TextCaps instruction, and the prefix of its optional OCR line.
CAPTION = CAPTION_PROMPT
OCR_TOKENS = OCR_PREFIX.strip()
#: Region prompts of VG and RefCOCO up to their colon: REG (box -> phrase) and REC (phrase -> box).
REGION_REG = REG_PROMPT.split("{", 1)[0].rstrip()
REGION_REC = REC_PROMPT.split("{", 1)[0].rstrip()

SOURCES = SOURCE_NAMES  # the registry's names (datamix.sources)
UNKNOWN = "unknown"

#: OK-VQA has 9,009 train questions on 8,998 images, so its merged conversations hold 1 (rarely 2) QA
#: pairs; VQAv2 train images carry at least 3 questions each (443,757 on 82,783 images). A COCO
#: record with the short-answer suffix and at most this many QA pairs is taken for OK-VQA.
OKVQA_MAX_PAIRS = 2

_PRETRAIN_IMAGE = re.compile(r"^(?:llava_pretrain/images/)?\d{5}/\d{9}\.[A-Za-z]+$")


class LlavaJsonError(Exception):
    """A LLaVA-format file (or a mix to export) that cannot be read; names the file and the record."""

    def __init__(self, path: Path | str, message: str, index: int | None = None):
        where = f"{path}" if index is None else f"{path}: record {index}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.index = index
        self.message = message


# --- reading --------------------------------------------------------------------------------------------


def iter_json_array(path: Path | str) -> Iterator[tuple[int, Any]]:
    """Yield `(index, decoded value)` for each element of a JSON array file, or each line of JSON lines.

    The array is parsed once into raw element slices over a read-only memory map (the whole document is
    validated, nothing but the slices is kept), then each element is decoded only when it is reached, so
    a 1 GB release file costs about one record of Python objects at a time. Raises `LlavaJsonError` if
    the file is missing, empty, not JSON, or neither an array nor JSON lines; never judges the elements.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise LlavaJsonError(path, f"cannot open: {e.strerror or e}") from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise LlavaJsonError(path, "empty file, expected a JSON array of records")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            first = _first_byte(buf)
            if first == b"[":
                try:
                    raws = msgspec.json.decode(buf, type=list[msgspec.Raw])
                except msgspec.DecodeError as e:
                    raise LlavaJsonError(path, f"not valid JSON: {e}") from None
                try:
                    yield from enumerate(decode_each(raws))
                finally:
                    del raws  # release the views before the map closes
            elif first == b"{":
                yield from _iter_json_lines(path, buf)
            else:
                raise LlavaJsonError(path, "expected a JSON array of records (or JSON lines)")


def _first_byte(buf: mmap.mmap) -> bytes:
    """The first non-whitespace byte of the file (within its first 64 KiB), or b"" if none."""
    head = buf[: 1 << 16].lstrip()
    return head[:1]


def _iter_json_lines(path: Path, buf: mmap.mmap) -> Iterator[tuple[int, Any]]:
    decoder = msgspec.json.Decoder()
    index = 0
    pos = 0
    lineno = 0
    size = len(buf)
    while pos < size:
        end = buf.find(b"\n", pos)
        if end < 0:
            end = size
        lineno += 1
        line = buf[pos:end]
        pos = end + 1
        if not line.strip():
            continue
        try:
            value = decoder.decode(line)
        except msgspec.DecodeError as e:
            raise LlavaJsonError(path, f"line {lineno}: not valid JSON: {e}") from None
        yield index, value
        index += 1


def coerce_record(record: Any, *, path: Path | str = "<records>", index: int = 0) -> dict[str, Any]:
    """Check one LLaVA record's shape and return it with `id` as `str` and a null `image` removed.

    Raises `LlavaJsonError` (file + record index) for a record that is not an object, lacks `id` or
    `conversations`, or has a turn that is not `{"from": str, "value": str}`. Other keys (e.g.
    ShareGPT's `model`) are kept. Content rules (alternation, prompts, boxes) are `datamix.lint`'s job.
    """
    if not isinstance(record, dict):
        raise LlavaJsonError(path, f"expected an object, got {type(record).__name__}", index)
    if "id" not in record or record["id"] is None:
        raise LlavaJsonError(path, "missing 'id'", index)
    rid = record["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise LlavaJsonError(path, f"'id' must be a string or an integer, got {rid!r}", index)
    convs = record.get("conversations")
    if not isinstance(convs, list):
        raise LlavaJsonError(path, "'conversations' must be a list of turns", index)
    for t, turn in enumerate(convs):
        if not (
            isinstance(turn, dict)
            and isinstance(turn.get("from"), str)
            and isinstance(turn.get("value"), str)
        ):
            raise LlavaJsonError(
                path, f"turn {t} must be {{'from': str, 'value': str}}, got {turn!r:.80}", index
            )
    out = dict(record)
    out["id"] = str(rid)
    if "image" in out:
        image = out["image"]
        if image is None:
            del out["image"]  # the release's text-only records omit the key (sources.md 0.4)
        elif not isinstance(image, str) or not image:
            raise LlavaJsonError(path, f"'image' must be a non-empty relative path, got {image!r}", index)
    return out


def read_llava_json(path: Path | str) -> Iterator[dict[str, Any]]:
    """Stream the records of a LLaVA-format file, each checked by `coerce_record` (ids as `str`)."""
    for index, record in iter_json_array(path):
        yield coerce_record(record, path=path, index=index)


# --- sources --------------------------------------------------------------------------------------------


def _human_values(record: dict[str, Any]) -> list[str]:
    return [
        t["value"]
        for t in record.get("conversations") or ()
        if isinstance(t, dict) and t.get("from") == "human" and isinstance(t.get("value"), str)
    ]


def infer_source(record: dict[str, Any]) -> str:
    """Guess which source of the 665K mix a LLaVA record comes from; `"unknown"` when unsure.

    Image folder first (the LLaVA layout gives most sources their own folder):
    no `image` -> `sharegpt`; `gqa/` -> `gqa`; `ocr_vqa/` -> `ocrvqa`; `textvqa/` -> `textcaps`;
    `vg/` -> `vg`; `llava_pretrain/images/` or a bare `NNNNN/NNNNNNNNN.jpg` -> `llava_pretrain`.
    COCO images (`coco/`) are shared by five sources, told apart by the prompts of the human turns:
    the option-letter suffix -> `aokvqa`; a region prompt -> `refcoco`; the short-answer suffix ->
    `okvqa` when the record has at most `OKVQA_MAX_PAIRS` (2) QA pairs, else `vqav2` (OK-VQA averages
    1.001 questions per image, VQAv2 5.4 with at least 3; exact on the release, a heuristic elsewhere);
    no known prompt -> `llava_instruct`; any other known prompt on COCO, or any other folder -> unknown.
    """
    image = record.get("image")
    if image is None:
        return "sharegpt"
    if not isinstance(image, str):
        return UNKNOWN
    image = image.removeprefix("./")
    if image.startswith("gqa/"):
        return "gqa"
    if image.startswith("ocr_vqa/"):
        return "ocrvqa"
    if image.startswith("textvqa/"):
        return "textcaps"
    if image.startswith("vg/"):
        return "vg"
    if _PRETRAIN_IMAGE.match(image):
        return "llava_pretrain"
    if not image.startswith("coco/"):
        return UNKNOWN
    humans = _human_values(record)
    text = "\n".join(humans)
    if MC_LETTER in text:
        return "aokvqa"
    if REGION_REG in text or REGION_REC in text:
        return "refcoco"
    if SHORT_ANSWER in text:
        return "okvqa" if len(humans) <= OKVQA_MAX_PAIRS else "vqav2"
    if CAPTION in text or OCR_TOKENS in text:
        return UNKNOWN
    return "llava_instruct"


def import_records(path: Path | str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(source, record)` for every record of a LLaVA-format file, in file order.

    Each record is `{"id": str, "image"?: str, "conversations": [...]}` (other keys dropped), ready for
    the shards writer to add `source` and `key`. Malformed records raise `LlavaJsonError`.
    """
    for record in read_llava_json(path):
        out: dict[str, Any] = {"id": record["id"]}
        if "image" in record:
            out["image"] = record["image"]
        out["conversations"] = [{"from": t["from"], "value": t["value"]} for t in record["conversations"]]
        yield infer_source(out), out


# --- export ---------------------------------------------------------------------------------------------

#: `image_prefix` value that writes image paths as the release files do (the default of export).
AUTO_PREFIX = "auto"


def mix_stage(mix_dir: Path | str) -> int:
    """The training stage a mix is for: 1 when its summary.json names a stage-1 recipe, or (imports,
    which have no recipe) when every source it counts is `llava_pretrain`; else 2 (also when the
    summary is missing or unreadable)."""
    try:
        summary = json.loads((Path(mix_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 2
    if not isinstance(summary, dict):
        return 2
    resolved = summary.get("recipe_resolved")
    if isinstance(resolved, dict) and resolved.get("stage") in (1, 2):
        return int(resolved["stage"])
    sources = summary.get("sources")
    if isinstance(sources, dict):
        used = {
            name
            for name, c in sources.items()
            if not isinstance(c, dict) or not isinstance(c.get("actual"), int) or c["actual"] > 0
        }
        if used and used <= {"llava_pretrain"}:
            return 1
    return 2


def export_image_path(image: str, *, stage: int, image_prefix: str | None = AUTO_PREFIX) -> str:
    """The `image` value an export writes for a path stored in a mix (relative to the data root's
    `images/` folder, or to `import-llava --images`).

    `auto` (or None): as the official files do. Stage 2: unchanged (`coco/train2017/...`, `gqa/images/...`,
    `ocr_vqa/images/...`, `textvqa/train_images/...`, `vg/VG_100K/...`: relative to the data root's
    `images/`, LLaVA's `--image_folder ./playground/data`). Stage 1: relative to the LCS-558K images
    folder (`llava_pretrain/images/00453/004539375.jpg` -> `00453/004539375.jpg`, as in
    `blip_laion_cc_sbu_558k.json`; `--image_folder ./playground/data/LLaVA-Pretrain/images`).
    Any other string: that prefix + the stored path (`""` keeps the stored paths of either stage,
    `/data/images/` makes them absolute)."""
    if image_prefix is None or image_prefix == AUTO_PREFIX:
        return image.removeprefix(LLAVA_PRETRAIN_DIR + "/") if stage == 1 else image
    return image_prefix + image


def resolve_shard(mix_dir: Path, shard: str) -> Path:
    """The file of a manifest's `shard` value: a path relative to the mix folder or to its `shards/`."""
    for candidate in (mix_dir / shard, mix_dir / "shards" / shard, mix_dir / "shards" / Path(shard).name):
        if candidate.is_file():
            return candidate
    return mix_dir / "shards" / Path(shard).name


_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)


def _scan_plain_tar(f: BinaryIO, size: int) -> list[tuple[str, int, int]] | None:
    """Fast path of `tar_members` for plain ustar/v7 archives; None when anything needs `tarfile`."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while pos + _BLOCK <= size:
        f.seek(pos)
        header = f.read(_BLOCK)
        if header == _ZERO_BLOCK:
            return out
        try:
            stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            length = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return None
        if stored != sum(header[:148]) + 256 + sum(header[156:]) or header[156:157] in (
            b"x",
            b"g",
            b"L",
            b"K",
        ):
            return None  # bad checksum, or pax / GNU long-name headers: let tarfile judge
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        data = pos + _BLOCK
        if header[156:157] in (b"0", b"\0", b"7"):
            out.append((name.decode("utf-8", "surrogateescape"), data, length))
        pos = data + -(-length // _BLOCK) * _BLOCK
    if pos == size:
        return out  # ends on a member boundary without end-of-archive blocks: tolerated, as tarfile does
    need = pos if pos > size else pos + _BLOCK
    raise tarfile.ReadError(f"truncated archive: {size} bytes, at least {need} expected")


def tar_members(f: BinaryIO) -> list[tuple[str, int, int]]:
    """`(name, data offset, size)` of every regular file of an uncompressed tar, in archive order.

    Plain ustar headers (what a shard writer with short keys produces) are parsed directly, which is
    several times faster than `tarfile`'s per-member objects; pax or GNU extensions and odd headers go
    through `tarfile`. A damaged or truncated archive raises `tarfile.TarError`.
    """
    size = os.fstat(f.fileno()).st_size
    fast = _scan_plain_tar(f, size)
    if fast is not None:
        return fast
    f.seek(0)
    with tarfile.open(fileobj=f, mode="r:") as tar:
        return [(info.name, info.offset_data, info.size) for info in tar if info.isfile()]


class ShardReader:
    """Random access to the `<key>.<ext>` members of a mix's tar shards, with a few shard indexes cached.

    Builds are written in manifest order, so reading in that order touches each shard once; any other
    order still works, at the cost of re-indexing an evicted shard.
    """

    def __init__(self, mix_dir: Path, *, cache: int = 4):
        self.mix_dir = Path(mix_dir)
        self._cache: OrderedDict[str, tuple[io.BufferedReader, dict[str, tuple[int, int]]]] = OrderedDict()
        self._size = cache

    def _index(self, shard: str) -> tuple[io.BufferedReader, dict[str, tuple[int, int]]]:
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        path = resolve_shard(self.mix_dir, shard)
        try:
            f = open(path, "rb")
        except OSError as e:
            raise LlavaJsonError(path, f"cannot read shard: {e.strerror or e}") from None
        try:
            members = {name: (offset, length) for name, offset, length in tar_members(f)}
        except (OSError, tarfile.TarError, EOFError) as e:
            f.close()
            raise LlavaJsonError(path, f"cannot read shard: {e}") from None
        self._cache[shard] = (f, members)
        while len(self._cache) > self._size:
            _, (old, _) = self._cache.popitem(last=False)
            old.close()
        return f, members

    def read(self, shard: str, member: str) -> bytes | None:
        """The bytes of `member` in `shard`, or None if the shard has no such member."""
        f, members = self._index(shard)
        where = members.get(member)
        if where is None:
            return None
        f.seek(where[0])
        return f.read(where[1])

    def close(self) -> None:
        for f, _ in self._cache.values():
            f.close()
        self._cache.clear()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_llava_json(
    mix_dir: Path | str,
    out_path: Path | str,
    *,
    force: bool = False,
    image_prefix: str | None = AUTO_PREFIX,
) -> int:
    """Write the mix at `mix_dir` as the release's JSON array; return the number of records written.

    Order is `manifest.parquet`'s; each record is `{id, image?, conversations}` taken from the shards'
    `<key>.json` (text-only records without `image`), its image path written by `export_image_path`
    (`image_prefix`; `auto`: as the official files, stage from `mix_stage`). The array is written one
    record per line to a temp file renamed onto `out_path` when complete. An existing `out_path` is
    refused unless `force`.
    """
    mix_dir = Path(mix_dir)
    out_path = Path(out_path)
    manifest = mix_dir / "manifest.parquet"
    if not manifest.is_file():
        raise LlavaJsonError(manifest, "no manifest.parquet in the mix folder")
    if out_path.exists() and not force:
        raise LlavaJsonError(out_path, "exists; pass force=True (--force) to overwrite")
    try:
        pf = pq.ParquetFile(manifest)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise LlavaJsonError(manifest, f"cannot read manifest: {e}") from None
    missing = {"key", "shard"} - set(pf.schema_arrow.names)
    if missing:
        raise LlavaJsonError(manifest, f"manifest lacks column(s) {sorted(missing)}")
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder()
    stage = mix_stage(mix_dir)
    count = 0
    with atomic_path(out_path) as tmp, open(tmp, "wb") as out, ShardReader(mix_dir) as shards:
        out.write(b"[")
        for batch in pf.iter_batches(columns=["key", "shard"], batch_size=8192):
            for key, shard in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                data = shards.read(shard, f"{key}.json")
                if data is None:
                    raise LlavaJsonError(resolve_shard(mix_dir, shard), f"no sample {key}.json", count)
                try:
                    sample = coerce_record(decoder.decode(data), path=f"{shard}:{key}.json", index=count)
                except msgspec.DecodeError as e:
                    raise LlavaJsonError(f"{shard}:{key}.json", f"not valid JSON: {e}", count) from None
                record: dict[str, Any] = {"id": sample["id"]}
                if "image" in sample:
                    record["image"] = export_image_path(
                        sample["image"], stage=stage, image_prefix=image_prefix
                    )
                record["conversations"] = sample["conversations"]
                out.write(b"\n" if count == 0 else b",\n")
                out.write(encoder.encode(record))
                count += 1
        out.write(b"\n]\n" if count else b"]\n")
    log.info("exported %d records from %s to %s", count, mix_dir, out_path)
    return count
