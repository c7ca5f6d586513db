"""`datamix compare A B`: which records two LLaVA-1.5 mixes share, and how the shared ones differ.

A and B are each a mix folder (`manifest.parquet` + `shards/`), a mix's `manifest.parquet`, or a
LLaVA-format JSON file (the official `llava_v1_5_mix665k.json`, a `datamix export`). The main use is a
user's build against the release, to see which conventions differ and how often.

Matching is by content, never by position (both files may be in any order):
- every record gets an *image key*: the image's domain (COCO, GQA, VG, OCR-VQA, TextVQA, LCS-558K,
  from its folder) and its id, taken from the basename (`000000033471.jpg`,
  `COCO_train2014_000000033471.jpg` and `coco/train2017/33471.png` are the same picture), so that
  different path prefixes still match; a text-only record (ShareGPT) is keyed by its first human turn;
- stage 1 pairs records whose *question key* is equal: the image key plus the sorted list of its human
  turns with the format prompts, `<image>` and box values removed and whitespace and case normalised.
  The key does not depend on turn order, prompts, answers, boxes, `<image>` placement or ids, so a
  record whose only change is one of those is found on the other side; several records with the same
  key (two LLaVA-Instruct conversations with the same question on one image) pair identical copies
  first, then in file order. A-OKVQA's four rotated copies of an image have four different keys (the
  choices are part of the questions);
- stage 2 pairs what is left per image key (per id for text-only records): one record each side is a
  pair (e.g. the same VG image with other regions drawn, or another number of turns); several each
  side pair greedily by shared questions.

The source of a record is the one its mix recorded, or for a LLaVA JSON file the one `import-llava`
infers (`datamix.llava_json.infer_source`); a pair is reported under the recorded source when one side
has it (inference cannot tell a VQAv2 record without its format prompt from LLaVA-Instruct), else
under A's. A pair is identical when `id` (its JSON type included), `image` and every turn are equal.
The differences of a pair are classified (`CLASSES`): prompt text, question text, answer text, answer
case/punctuation, turn order, number of turns, box values, `<image>` placement, image path, id form
(one pair may fall in several), with `examples` pairs shown per source and class.

Streaming: each record is reduced to a few 64-bit hashes of its normalised parts while it is read
(`datamix.llava_json.iter_json_array` over a memory map, `datamix.mixio.MixReader` for mixes); the example
records are read again in a last pass. Measured on two 1.1 GB LLaVA JSON files of 665,298 records each
(one in ten differing): 2 min 52 s on one core, 1.8 GB peak RSS, the mapped file's pages included. Hashes
are Python's `hash()` of strings and tuples (64-bit SipHash): salted per process, which is harmless
because they are only compared within one run, and nothing printed depends on their values.
"""

from __future__ import annotations

import logging
import re
import string
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import msgspec

from datamix.errors import UsageError
from datamix.formats import IMAGE_TOKEN, KNOWN_PROMPTS
from datamix.llava_json import LlavaJsonError, coerce_record, infer_source, iter_json_array, llava_family
from datamix.mixio import MixIOError, MixReader
from datamix.schema import JSON_EXT, member_name
from datamix.sources import SOURCE_NAMES

log = logging.getLogger(__name__)

#: difference classes, in report order: (identifier, label)
CLASSES: tuple[tuple[str, str], ...] = (
    ("prompt_text", "prompt text"),
    ("question_text", "question text"),
    ("answer_text", "answer text"),
    ("answer_case", "answer case/punctuation"),
    ("turn_order", "turn order"),
    ("n_turns", "number of turns"),
    ("boxes", "box values"),
    ("image_placement", "<image> placement"),
    ("image_path", "image path"),
    ("id_form", "id form"),
)
CLASS_LABELS = dict(CLASSES)

#: the release's prompts (datamix.formats), longest first so that none is removed inside another
PROMPTS: tuple[str, ...] = tuple(sorted(KNOWN_PROMPTS, key=len, reverse=True))

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?"
_BOX_RE = re.compile(r"\[\s*" + _NUMBER + r"(?:\s*,\s*" + _NUMBER + r"){3}\s*\]")
_PUNCT = str.maketrans("", "", string.punctuation)
_COCO_STEM = re.compile(r"^COCO_[a-z]+\d{4}_(\d+)(?:_\d+)?$")
_PRETRAIN_PATH = re.compile(r"^(?:.*/)?\d{5}/\d{9}\.[A-Za-z]+$")
_SKETCH = 8  # question hashes kept per record for stage-2 pairing
_FEATURES = struct.Struct("<15q")


class CompareError(UsageError):
    """An input that cannot be compared (missing, not a mix, not LLaVA JSON); exit code 2."""


# --- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Input:
    """One side: `kind` is `mix` (folder with manifest.parquet) or `json` (LLaVA-format file)."""

    path: Path
    kind: str

    @property
    def recorded_sources(self) -> bool:
        """True when the records carry the source their build gave them (not inferred)."""
        return self.kind == "mix"


def open_input(path: str | Path) -> Input:
    """Classify `path` as a mix folder (or its manifest) or a LLaVA JSON file; `CompareError` if neither."""
    path = Path(path)
    if path.is_dir():
        if not (path / "manifest.parquet").is_file():
            raise CompareError(f"{path}: a folder without manifest.parquet is not a mix")
        return Input(path=path, kind="mix")
    if not path.is_file():
        raise CompareError(f"{path}: no such file or folder")
    if path.suffix == ".parquet":
        return Input(path=path.parent, kind="mix")
    return Input(path=path, kind="json")


def iter_records(side: Input) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """`(index, source, record)` in the input's own order; `record` keeps the id's JSON type.

    Raises `CompareError` for an unreadable input or a malformed record."""
    try:
        if side.kind == "json":
            for index, raw in iter_json_array(side.path):
                rec = coerce_record(raw, path=side.path, index=index)
                rec["id"] = raw["id"]  # keep int vs str: the release has both (docs/sources.md#p8)
                yield index, infer_source(rec), rec
        else:
            yield from _iter_mix(side.path)
    except LlavaJsonError as e:
        raise CompareError(str(e)) from None


def _iter_mix(mix_dir: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(manifest row, source, record) of every sample of a mix, in manifest order (`MixReader`)."""
    decoder = msgspec.json.Decoder()
    try:
        with MixReader(mix_dir) as reader:
            index = 0
            for batch in reader.iter_manifest(["key", "shard", "source"]):
                for key, shard, src in zip(batch["key"], batch["shard"], batch["source"], strict=True):
                    data = reader.read(shard, member_name(key, JSON_EXT), row=index)
                    if data is None:
                        raise CompareError(f"{mix_dir}: shard {shard} has no sample {key}.json")
                    try:
                        raw = decoder.decode(data)
                    except msgspec.DecodeError as e:
                        raise CompareError(f"{mix_dir}: {shard}:{key}.json: not valid JSON: {e}") from None
                    rec = coerce_record(raw, path=f"{shard}:{key}.json", index=index)
                    rec["id"] = raw["id"]
                    source = src or rec.get("source") or infer_source(rec)
                    yield index, source, rec
                    index += 1
    except MixIOError as e:
        raise CompareError(str(e)) from None


# --- normalising one record ---------------------------------------------------------------------------


def image_key(image: str) -> tuple[str, str]:
    """(domain, picture id) of an image path: the LLaVA folder it belongs to and its basename's id."""
    path = image.replace("\\", "/").removeprefix("./")
    parts = path.split("/")
    name = parts[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    m = _COCO_STEM.match(stem)
    if m:
        stem = m.group(1)
    if stem.isdigit():
        stem = str(int(stem))
    folders = {p.lower() for p in parts[:-1]}
    if m or folders & {"coco", "train2017", "train2014", "val2014", "val2017"}:
        domain = "coco"
    elif "gqa" in folders:
        domain = "gqa"
    elif folders & {"vg", "vg_100k", "vg_100k_2"}:
        domain = "vg"
    elif "ocr_vqa" in folders:
        domain = "ocr_vqa"
    elif folders & {"textvqa", "train_images"}:
        domain = "textvqa"
    elif "llava_pretrain" in folders or _PRETRAIN_PATH.match(path):
        domain = "llava_pretrain"
    else:
        domain = parts[0] if len(parts) > 1 else ""
    return domain, stem


def _question(text: str) -> str:
    """A human turn's content: prompts, `<image>` and box values removed, whitespace normalised."""
    text = text.replace(IMAGE_TOKEN, " ")
    for p in PROMPTS:
        text = text.replace(p, " ")
    return " ".join(_BOX_RE.sub("[box]", text).split())


def _loose(text: str) -> str:
    """Lower case, no punctuation, whitespace normalised (boxes already masked)."""
    return " ".join(text.lower().translate(_PUNCT).split())


def _placement(index: int, text: str) -> tuple[int, str, int] | tuple[()]:
    if IMAGE_TOKEN not in text:
        return ()
    if text == IMAGE_TOKEN:
        form = "only"
    elif text.startswith(IMAGE_TOKEN + "\n"):
        form = "front"
    elif text.endswith("\n" + IMAGE_TOKEN):
        form = "end"
    elif text.startswith(IMAGE_TOKEN):
        form = "front-no-newline"
    else:
        form = "middle"
    return (index, form, text.count(IMAGE_TOKEN))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The compact per-record state: hashes of the normalised parts (never the texts)."""

    key: int  # stage-1 question key
    group: int  # stage-2 image key (id for text-only records)
    exact: int  # id (typed) + image + turns
    features: bytes  # `_FEATURES`-packed hashes, see `fingerprint`
    sketch: bytes  # the `_SKETCH` smallest question hashes, for stage-2 pairing


# feature slots
(
    F_ID,
    F_IMAGE,
    F_PLACE,
    F_PROMPT,
    F_Q,
    F_A,
    F_A_LOOSE,
    F_PAIRS,
    F_PAIRS_EXACT,
    F_BOXES,
    F_BOXES_SORTED,
    F_NTURNS,
    F_ROLES,
    F_Q_LOOSE_SORTED,
    F_PROMPT_FIRST,
) = range(15)

#: sources that `infer_source` can mistake for each other share a stage-2 family (OK-VQA vs VQAv2 by
#: their number of questions: `llava_json.llava_family`, read off the descriptors); stage 2 pairs only
#: records of one family on one image


def fingerprint(record: dict[str, Any], source: str = "") -> Fingerprint:
    """Reduce a record to the hashes that matching and classification need (`source`: its label,
    which keeps stage 2 from pairing, say, a RefCOCO chunk with a LLaVA-Instruct record of one image)."""
    turns = [(t["from"], t["value"]) for t in record["conversations"]]
    image = record.get("image")
    rid = record["id"]
    questions: list[str] = []
    answers: list[str] = []
    prompts: list[tuple[int, int]] = []
    places: list[tuple[Any, ...]] = []
    boxes: list[str] = []
    for i, (role, value) in enumerate(turns):
        place = _placement(i, value)
        if place:
            places.append(place)
        boxes.extend(_BOX_RE.findall(value))
        if role == "human":
            prompts.extend((len(questions), pid) for pid, p in enumerate(PROMPTS) if p in value)
            questions.append(_question(value))
        else:
            answers.append(" ".join(_BOX_RE.sub("[box]", value.replace(IMAGE_TOKEN, " ")).split()))
    q_loose = [_loose(q) for q in questions]
    a_loose = [_loose(a) for a in answers]
    pairs_loose = sorted(zip(q_loose, a_loose, strict=False))
    pairs_exact = sorted(zip(questions, answers, strict=False))
    if image is None:
        first = q_loose[0] if q_loose else ""
        key = hash(("text", first))
        group = hash(("text-id", str(rid)))
    else:
        ik = image_key(image)
        key = hash(("image", ik, tuple(sorted(q_loose))))
        group = hash(("image", ik, llava_family(source)))
    features = _FEATURES.pack(
        hash((type(rid).__name__, str(rid))),
        hash(image),
        hash(tuple(places)),
        hash(tuple(prompts)),
        hash(tuple(questions)),
        hash(tuple(answers)),
        hash(tuple(a_loose)),
        hash(tuple(pairs_loose)),
        hash(tuple(pairs_exact)),
        hash(tuple(boxes)),
        hash(tuple(sorted(boxes))),
        len(turns),
        hash(tuple(r for r, _ in turns)),
        hash(tuple(sorted(q_loose))),
        hash(tuple(pid for turn, pid in prompts if turn == 0)),
    )
    sketch = sorted({hash(q) & 0x7FFF_FFFF_FFFF_FFFF for q in q_loose})[:_SKETCH]
    exact = hash((type(rid).__name__, str(rid), image, tuple(turns)))
    return Fingerprint(key, group, exact, features, struct.pack(f"<{len(sketch)}q", *sketch))


def classify(a: bytes, b: bytes) -> list[str]:
    """The difference classes between two records' packed features (empty: no class explains it)."""
    fa, fb = _FEATURES.unpack(a), _FEATURES.unpack(b)

    def differs(slot: int) -> bool:
        return fa[slot] != fb[slot]

    out: list[str] = []
    if differs(F_NTURNS) or differs(F_ROLES):
        # turns came or went: only what does not depend on them is compared (the first turn's prompt)
        out.append("n_turns")
        if differs(F_PROMPT_FIRST):
            out.append("prompt_text")
    elif differs(F_PROMPT):
        out.append("prompt_text")
    if "n_turns" in out:
        pass  # answers, order and boxes of a different set of turns are not compared
    elif not differs(F_Q):  # same questions in the same order
        if differs(F_A):
            out.append("answer_case" if not differs(F_A_LOOSE) else "answer_text")
        if differs(F_BOXES):
            out.append("boxes")
    elif not differs(F_PAIRS):  # the same (question, answer) pairs in another order
        out.append("turn_order")
        if differs(F_PAIRS_EXACT):
            out.append("answer_case")
        if differs(F_BOXES_SORTED):
            out.append("boxes")
    else:
        out.append("question_text")
        if differs(F_A):
            out.append("answer_case" if not differs(F_A_LOOSE) else "answer_text")
        if differs(F_BOXES):
            out.append("boxes")
    if differs(F_PLACE):
        out.append("image_placement")
    if differs(F_IMAGE):
        out.append("image_path")
    if differs(F_ID):
        out.append("id_form")
    order = [c for c, _ in CLASSES]
    return sorted(set(out), key=order.index)


# --- indexing and pairing ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Side:
    """Per-record state of one input, in parallel lists indexed by record index."""

    sources: list[str] = field(default_factory=list)
    prints: list[Fingerprint] = field(default_factory=list)


def _index(side: Input) -> _Side:
    out = _Side()
    for index, source, rec in iter_records(side):
        assert index == len(out.prints)
        out.sources.append(source)
        out.prints.append(fingerprint(rec, source))
    log.info("compare: %s: %d records", side.path, len(out.prints))
    return out


def _pair(a: _Side, b: _Side) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Stage 1 (question key) then stage 2 (image key): `(pairs, only_a, only_b)`, indexes ascending."""
    by_key: dict[int, list[int]] = defaultdict(list)
    for j, fp in enumerate(b.prints):
        by_key[fp.key].append(j)
    pairs: list[tuple[int, int]] = []
    used_b: set[int] = set()
    left_a: list[int] = []
    a_by_key: dict[int, list[int]] = defaultdict(list)
    for i, fp in enumerate(a.prints):
        if fp.key in by_key:
            a_by_key[fp.key].append(i)
        else:
            left_a.append(i)
    for key, a_list in a_by_key.items():
        b_list = by_key[key]
        if len(a_list) == 1 and len(b_list) == 1:
            pairs.append((a_list[0], b_list[0]))
            used_b.add(b_list[0])
            continue
        b_free = list(b_list)
        rest: list[int] = []
        for i in a_list:  # identical copies first
            hit = next((j for j in b_free if b.prints[j].exact == a.prints[i].exact), None)
            if hit is None:
                rest.append(i)
            else:
                b_free.remove(hit)
                pairs.append((i, hit))
                used_b.add(hit)
        for i, j in zip(rest, b_free, strict=False):  # then in file order
            pairs.append((i, j))
            used_b.add(j)
        left_a.extend(rest[len(b_free) :])
    del by_key, a_by_key
    # stage 2: what is left, per image (per id for text-only records)
    groups_a: dict[int, list[int]] = defaultdict(list)
    groups_b: dict[int, list[int]] = defaultdict(list)
    for i in left_a:
        groups_a[a.prints[i].group].append(i)
    for j in range(len(b.prints)):
        if j not in used_b:
            groups_b[b.prints[j].group].append(j)
    only_a: list[int] = []
    for group, a_list in groups_a.items():
        b_list = groups_b.get(group, [])
        if len(a_list) == 1 and len(b_list) == 1:
            pairs.append((a_list[0], b_list[0]))
            b_list.clear()
            continue
        for i in sorted(a_list):
            sa = set(_unpack(a.prints[i].sketch))
            best, best_n = None, 0
            for j in b_list:
                n = len(sa & set(_unpack(b.prints[j].sketch)))
                if n > best_n:
                    best, best_n = j, n
            if best is None:
                only_a.append(i)
            else:
                b_list.remove(best)
                pairs.append((i, best))
    only_b = sorted(j for b_list in groups_b.values() for j in b_list)
    pairs.sort()
    only_a.sort()
    return pairs, only_a, only_b


def _unpack(sketch: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(sketch) // 8}q", sketch)


# --- the comparison ---------------------------------------------------------------------------------


@dataclass(slots=True)
class SourceResult:
    a: int = 0
    b: int = 0
    matched: int = 0
    identical: int = 0
    differing: int = 0
    only_a: int = 0
    only_b: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    unclassified: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["classes"] = dict(self.classes)
        return out

    def add(self, other: SourceResult) -> None:
        """Add `other`'s counts (not its examples) to these."""
        for f in fields(self):
            if f.type == "int":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        for c, n in other.classes.items():
            self.classes[c] = self.classes.get(c, 0) + n


def _source_order(name: str) -> tuple[int, str]:
    return (SOURCE_NAMES.index(name), name) if name in SOURCE_NAMES else (len(SOURCE_NAMES), name)


def compare(a_path: str | Path, b_path: str | Path, *, examples: int = 3) -> dict[str, Any]:
    """Compare two mixes (see the module docstring). Returns a JSON-ready dict:

    `{"a", "b", "identical", "sources": {source: {a, b, matched, identical, differing, only_a, only_b,
    classes: {class: n}, unclassified, examples: {class | "only_a" | "only_b": [...]}}}, "total": {...}}`.
    Raises `CompareError` when an input cannot be read.
    """
    side_a, side_b = open_input(a_path), open_input(b_path)
    a, b = _index(side_a), _index(side_b)
    pairs, only_a, only_b = _pair(a, b)
    results: dict[str, SourceResult] = defaultdict(SourceResult)
    for s in a.sources:
        results[s].a += 1
    for s in b.sources:
        results[s].b += 1
    wanted: dict[str, list[tuple[str, int | None, int | None, list[str]]]] = defaultdict(
        list
    )  # source -> examples

    def pick(source: str, label: str, i: int | None, j: int | None, classes: list[str]) -> None:
        bucket = [e for e in wanted[source] if e[0] == label]
        if len(bucket) < examples:
            wanted[source].append((label, i, j, classes))

    for i, j in pairs:
        if side_a.recorded_sources or not side_b.recorded_sources:
            source = a.sources[i]
        else:
            source = b.sources[j]
        r = results[source]
        r.matched += 1
        pa, pb = a.prints[i], b.prints[j]
        if pa.exact == pb.exact:
            r.identical += 1
            continue
        r.differing += 1
        classes = classify(pa.features, pb.features)
        if not classes:
            r.unclassified += 1
            pick(source, "unclassified", i, j, [])
        for c in classes:
            r.classes[c] = r.classes.get(c, 0) + 1
            pick(source, c, i, j, classes)
    for i in only_a:
        results[a.sources[i]].only_a += 1
        pick(a.sources[i], "only_a", i, None, [])
    for j in only_b:
        results[b.sources[j]].only_b += 1
        pick(b.sources[j], "only_b", None, j, [])
    del a, b
    if examples > 0 and wanted:
        _fill_examples(side_a, side_b, wanted, results)
    ordered = {name: results[name] for name in sorted(results, key=_source_order)}
    total = SourceResult()
    for r in ordered.values():
        total.add(r)
    identical = total.differing == 0 and total.only_a == 0 and total.only_b == 0
    total_dict = total.as_dict()
    del total_dict["examples"]
    return {
        "a": str(a_path),
        "b": str(b_path),
        "identical": identical,
        "sources": {name: r.as_dict() for name, r in ordered.items()},
        "total": total_dict,
    }


def _fill_examples(
    side_a: Input,
    side_b: Input,
    wanted: dict[str, list[tuple[str, int | None, int | None, list[str]]]],
    results: dict[str, SourceResult],
) -> None:
    """Read the example records again (one more pass over each input) and describe them."""
    need_a = {i for picks in wanted.values() for _, i, _, _ in picks if i is not None}
    need_b = {j for picks in wanted.values() for _, _, j, _ in picks if j is not None}
    recs_a, recs_b = _collect(side_a, need_a), _collect(side_b, need_b)
    for source, picks in wanted.items():
        out: dict[str, list[dict[str, Any]]] = {}
        for label, i, j, classes in picks:
            ra = recs_a.get(i) if i is not None else None
            rb = recs_b.get(j) if j is not None else None
            out.setdefault(label, []).append(_example(label, i, ra, j, rb, classes))
        results[source].examples = out


def _collect(side: Input, need: set[int]) -> dict[int, dict[str, Any]]:
    """The records of `side` at the indexes `need`, reading no further than the last of them."""
    out: dict[int, dict[str, Any]] = {}
    if not need:
        return out
    last = max(need)
    for index, _, rec in iter_records(side):
        if index in need:
            out[index] = rec
        if index >= last:
            break
    return out


def _short(text: Any, n: int = 160) -> str:
    text = str(text).replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 3] + "..."


def _brief(index: int | None, rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {"index": index, "id": rec["id"], "image": rec.get("image"), "turns": len(rec["conversations"])}


def _example(
    label: str,
    i: int | None,
    ra: dict[str, Any] | None,
    j: int | None,
    rb: dict[str, Any] | None,
    classes: list[str],
) -> dict[str, Any]:
    """A pair (or a lone record) with the first place where they differ, texts shortened."""
    ex: dict[str, Any] = {"a": _brief(i, ra), "b": _brief(j, rb), "classes": classes}
    if ra is None or rb is None:
        rec = ra or rb
        if rec is not None and rec["conversations"]:
            ex["first_turn"] = _short(rec["conversations"][0]["value"])
        return ex
    if label == "id_form":
        ex["where"], ex["a_value"], ex["b_value"] = "id", repr(ra["id"]), repr(rb["id"])
        return ex
    if label == "image_path":
        ex["where"], ex["a_value"], ex["b_value"] = "image", ra.get("image"), rb.get("image")
        return ex
    ta, tb = ra["conversations"], rb["conversations"]
    for k in range(max(len(ta), len(tb))):
        va = ta[k]["value"] if k < len(ta) else None
        vb = tb[k]["value"] if k < len(tb) else None
        if va != vb:
            role = (ta[k] if k < len(ta) else tb[k])["from"]
            ex["where"] = f"turn {k} ({role})"
            ex["a_value"] = None if va is None else _short(va)
            ex["b_value"] = None if vb is None else _short(vb)
            break
    return ex


def exit_code(result: dict[str, Any]) -> int:
    """0 identical, 1 different (2, cannot run, is the caller's)."""
    return 0 if result["identical"] else 1


# --- text output --------------------------------------------------------------------------------------


def format_text(result: dict[str, Any]) -> str:
    """The per-source table, the classes per source and the examples, as plain text."""
    cols = ("source", "in A", "in B", "matched", "identical", "differing", "only A", "only B")
    rows = [cols]
    for name, r in [*result["sources"].items(), ("total", result["total"])]:
        rows.append(
            (
                name,
                *(f"{r[k]:,}" for k in ("a", "b", "matched", "identical", "differing", "only_a", "only_b")),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(cols))]
    lines = [f"A: {result['a']}", f"B: {result['b']}", ""]
    for n, row in enumerate(rows):
        if n == len(rows) - 1:
            lines.append("  ".join("-" * w for w in widths))
        lines.append(
            "  ".join(
                v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for name, r in result["sources"].items():
        if not (r["differing"] or r["only_a"] or r["only_b"]):
            continue
        lines.append("")
        parts = [
            f"{CLASS_LABELS[c]} {n:,}"
            for c, n in sorted(r["classes"].items(), key=lambda kv: _CLASS_ORDER[kv[0]])
        ]
        for k in ("unclassified", "only_a", "only_b"):
            if r[k]:
                parts.append(f"{_EXTRA_LABELS[k]} {r[k]:,}")
        lines.append(f"{name}: " + "; ".join(parts))
        for label, exs in r.get("examples", {}).items():
            title = CLASS_LABELS.get(label) or _EXTRA_LABELS.get(label, label)
            for ex in exs:
                lines.append(f"  [{title}] " + _example_line(ex))
                if "where" in ex:
                    lines.append(f"      A {ex['where']}: {ex['a_value']}")
                    lines.append(f"      B {ex['where']}: {ex['b_value']}")
                elif "first_turn" in ex:
                    lines.append(f"      first turn: {ex['first_turn']}")
    verdict = "identical" if result["identical"] else "different"
    t = result["total"]
    lines.append("")
    lines.append(
        f"compare: {verdict}: {t['matched']:,} matched ({t['identical']:,} identical, {t['differing']:,} differing), "
        f"{t['only_a']:,} only in A, {t['only_b']:,} only in B"
    )
    return "\n".join(lines) + "\n"


_CLASS_ORDER = {c: n for n, (c, _) in enumerate(CLASSES)}
_EXTRA_LABELS = {"unclassified": "unclassified", "only_a": "only in A", "only_b": "only in B"}


def _example_line(ex: dict[str, Any]) -> str:
    def one(side: dict[str, Any] | None) -> str:
        if side is None:
            return "-"
        image = f" image {side['image']}" if side["image"] else ""
        return f"#{side['index']} id {side['id']!r}{image} ({side['turns']} turns)"

    return f"A {one(ex['a'])} | B {one(ex['b'])}"
