"""The official LLaVA JSON format: reading it, exporting a mix to it, inferring sources from it.

This module owns the release's record shape (docs/sources.md#release-schema): a JSON array of
`{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": str}, ...]}`, where text-only
records omit `image` (LLaVA's `--group_by_modality_length` keys on the presence of the key). The
prompt strings themselves are `datamix.formats`'s; this module re-exports the ones it keys on.

- `read_llava_json(path)` streams the records of a LLaVA-format file (a JSON array, or JSON lines)
  with `id` coerced to `str` (the release mixes string and integer ids, docs/sources.md#p8); a malformed
  record raises `LlavaJsonError` naming the file and the record index.
- `export_llava_json(mix_dir, out_path, image_prefix=...)` writes a built mix (`manifest.parquet` +
  `shards/*.tar`, read through `datamix.mixio.MixReader`) as the release's JSON, in manifest order, streaming, through a temp file renamed
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

import functools
import json
import logging
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from datamix.errors import LocatedDataError
from datamix.fileio import BadRecord, atomic_path, decode_each
from datamix.formats import (
    CAPTION_PROMPT,
    KNOWN_PROMPTS,
    MCQ_SUFFIX,
    OCR_PREFIX,
    REC_PROMPT,
    REG_PROMPT,
    SHORT_ANSWER_SUFFIX,
)
from datamix.mixio import MixIOError, MixReader, MixSample
from datamix.mixio import tar_members as tar_members  # re-exported: the reader's tar index (tests)
from datamix.paths import LLAVA_PRETRAIN_DIR
from datamix.sources import SOURCE_NAMES
from datamix.sources import SOURCES as SOURCE_REGISTRY
from datamix.sources.base import LlavaMatch

log = logging.getLogger(__name__)

# --- the release's format prompts (docs/sources.md#format-prompts); the strings live in datamix.formats ------

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


class LlavaJsonError(LocatedDataError):
    """A LLaVA-format file (or a mix to export) that cannot be read; names the file and the record."""

    def __init__(self, path: Path | str, message: str, index: int | None = None):
        super().__init__(path, message, index)
        self.index = index


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
                except RecursionError:
                    raise LlavaJsonError(path, "JSON nested too deep (thousands of levels)") from None
                try:
                    yield from enumerate(decode_each(raws))  # a record that does not decode: BadRecord
                finally:
                    raws.clear()  # release the views before the map closes
                    del raws
            elif first == b"{":
                _refuse_top_level_object(path, buf)
                yield from _iter_json_lines(path, buf)
            else:
                raise LlavaJsonError(path, "expected a JSON array of records (or JSON lines)")


def _refuse_top_level_object(path: Path, buf: mmap.mmap) -> None:
    """A file that is one JSON object over several lines (or one that is not a record) is not JSON
    lines: refuse it rather than read its first line as a record."""
    try:
        whole = msgspec.json.decode(buf)
    except (msgspec.DecodeError, RecursionError):
        return  # several values (JSON lines) or invalid: the line reader says which line
    if not isinstance(whole, dict):
        return
    one_line = b"\n" not in bytes(buf).strip()
    if not (one_line and "conversations" in whole):
        keys = ", ".join(list(map(str, whole))[:5])
        raise LlavaJsonError(
            path,
            f"top level is a JSON object (keys: {keys}), expected a JSON array of records (or JSON lines, "
            "one record per line)",
        )


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
        except RecursionError:
            raise LlavaJsonError(path, f"line {lineno}: JSON nested too deep") from None
        yield index, value
        index += 1


def coerce_record(record: Any, *, path: Path | str = "<records>", index: int = 0) -> dict[str, Any]:
    """Check one LLaVA record's shape and return it with `id` as `str` and a null `image` removed.

    Raises `LlavaJsonError` (file + record index) for a record that is not an object, lacks `id` or
    `conversations`, or has a turn that is not `{"from": str, "value": str}`. Other keys (e.g.
    ShareGPT's `model`) are kept. Content rules (alternation, prompts, boxes) are `datamix.lint`'s job.
    """
    if isinstance(record, BadRecord):
        raise LlavaJsonError(path, record.message, index)
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
            del out["image"]  # the release's text-only records omit the key (docs/sources.md#training-time)
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

    Read off the descriptors' `llava` matches (`datamix.sources.base.LlavaMatch`). Image folder first
    (the LLaVA layout gives most sources their own folder): no `image` -> the text-only source
    (`sharegpt`); a folder (or pattern) of one source -> that source (`gqa/`, `ocr_vqa/`, `textvqa/`,
    `vg/`, LCS-558K's `llava_pretrain/images/` or bare `NNNNN/NNNNNNNNN.jpg`). COCO images (`coco/`)
    are shared by five sources, told apart by the prompts of the human turns, tried in `rank` order:
    the option-letter suffix -> `aokvqa`; a region prompt -> `refcoco`; the short-answer suffix ->
    `okvqa` with at most 2 QA pairs, else `vqav2` (OK-VQA averages 1.001 questions per image, VQAv2
    5.4 with at least 3; exact on the release, a heuristic elsewhere); no known prompt -> the
    folder's plain source (`llava_instruct`); any other known prompt on COCO, or any other folder ->
    unknown.
    """
    image = record.get("image")
    if image is None:
        return _text_only_source()
    if not isinstance(image, str):
        return UNKNOWN
    image = image.removeprefix("./")
    candidates = [(src, m) for src, m in _llava_matches() if _on_image(m, image)]
    if len(candidates) == 1:
        return candidates[0][0]
    if not candidates:
        return UNKNOWN
    humans = _human_values(record)
    text = "\n".join(humans)
    for src, m in candidates:
        if any(p in text for p in m.prompts) and (m.max_pairs is None or len(humans) <= m.max_pairs):
            return src
    if any(p in text for p in KNOWN_PROMPTS):
        return UNKNOWN
    plain = [src for src, m in candidates if not m.prompts]
    return plain[0] if plain else UNKNOWN


def _on_image(match: LlavaMatch, image: str) -> bool:
    if match.pattern is not None:
        return match.pattern.match(image) is not None
    return match.folder is not None and image.startswith(match.folder)


@functools.cache
def _llava_matches() -> tuple[tuple[str, LlavaMatch], ...]:
    """(source, match) of every descriptor with an image, in `rank` order (then registry order)."""
    found = [(name, src.llava) for name, src in SOURCE_REGISTRY.items() if _has_image(src.llava)]
    return tuple(sorted(found, key=lambda x: x[1].rank))


@functools.cache
def _text_only_source() -> str:
    names = [name for name, src in SOURCE_REGISTRY.items() if not _has_image(src.llava)]
    return names[0] if names else UNKNOWN


def _has_image(match: LlavaMatch) -> bool:
    return match.folder is not None or match.pattern is not None


def llava_family(source: str) -> str:
    """The first registered source whose records `infer_source` cannot tell from `source`'s but by
    their number of QA pairs (same folder and prompts: OK-VQA -> VQAv2); the source itself otherwise."""
    src = SOURCE_REGISTRY.get(source)
    if src is None:
        return source

    def shape(m: LlavaMatch) -> tuple[Any, ...]:
        return (m.folder, m.pattern, m.prompts)

    return next(name for name, other in SOURCE_REGISTRY.items() if shape(other.llava) == shape(src.llava))


def import_records(path: Path | str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(source, record)` for every record of a LLaVA-format file, in file order.

    Each record is `{"id": str, "image"?: str, "conversations": [...]}` (other keys dropped), ready for
    the shards writer to add `source` and `key`. Malformed records raise `LlavaJsonError`.
    """
    for index, record in enumerate(read_llava_json(path)):
        if len(record["conversations"]) < 2:
            n = len(record["conversations"])
            raise LlavaJsonError(
                path,
                f"'conversations' has {n} turn{'s' if n != 1 else ''}; a record needs a human turn "
                "and its answer (a fragment?)",
                index,
            )
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
        if used and used <= {n for n, src in SOURCE_REGISTRY.items() if src.stage == "stage1"}:
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
    reader = MixReader(mix_dir)
    try:
        reader.parquet()
    except MixIOError as e:
        raise LlavaJsonError(e.path, e.message) from None
    if out_path.exists() and not force:
        reader.close()
        raise LlavaJsonError(out_path, "exists; pass force=True (--force) to overwrite")
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder()
    stage = mix_stage(mix_dir)
    count = 0
    with atomic_path(out_path) as tmp, open(tmp, "wb") as out, reader:
        out.write(b"[")
        for sample in _mix_samples(reader):
            where = f"{sample.shard}:{sample.key}.json"
            if sample.json is None:
                raise LlavaJsonError(reader.shard_path(sample.shard), f"no sample {sample.key}.json", count)
            try:
                record = coerce_record(decoder.decode(sample.json), path=where, index=count)
            except msgspec.DecodeError as e:
                raise LlavaJsonError(where, f"not valid JSON: {e}", count) from None
            release: dict[str, Any] = {"id": record["id"]}
            if "image" in record:
                release["image"] = export_image_path(record["image"], stage=stage, image_prefix=image_prefix)
            release["conversations"] = record["conversations"]
            out.write(b"\n" if count == 0 else b",\n")
            out.write(encoder.encode(release))
            count += 1
        out.write(b"\n]\n" if count else b"]\n")
    log.info("exported %d records from %s to %s", count, mix_dir, out_path)
    return count


def _mix_samples(reader: MixReader) -> Iterator[MixSample]:
    """The reader's samples in manifest order, its errors as `LlavaJsonError` (file + record)."""
    samples = reader.iter_samples()
    while True:
        try:
            sample = next(samples)
        except StopIteration:
            return
        except MixIOError as e:
            raise LlavaJsonError(e.path, e.message, e.row) from None
        yield sample
