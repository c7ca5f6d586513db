"""Canonical records of datamix: what every normalizer writes and every later stage reads.

Each record is a frozen, slotted, keyword-only dataclass with exactly one Arrow schema. Items are
task-typed (`Kind`): a normalizer knows a raw format and emits items of one kind; prompts and
conversation shape are added later by the recipe's formatters (`datamix.formats`), never here.

Common item columns: `key` (unique within a source, `<source>-<index>`, no dots), `source`, `kind`,
`id` (the release-style id, always a string), `image` (LLaVA-layout path relative to the image root,
None for text-only items), `width`, `height` (pixels when the raw annotations or the image say so).

Mixes (docs/architecture.md 4.3): `Sample` (one sample of a build, holding its final `<key>.json`
bytes), `MANIFEST_SCHEMA` (one row per sample of `manifest.parquet`), the tar member-name rule
(`member_name`, `split_member`) and the constants the trainer shares (`IMAGE_TOKEN`,
`SHORT_ANSWER_PROMPT`). Reading and writing mixes is `datamix.mixio`'s.

This module must stay importable without torch: the trainer imports it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

SCHEMA_VERSION = 1


class Kind(str, enum.Enum):
    CONVERSATION = "conversation"  # ready-made turns (LLaVA-Instruct, ShareGPT, LCS-558K)
    VQA = "vqa"  # image + (question, answer, all annotator answers)
    MCQ = "mcq"  # image + (question, choices, correct index)
    CAPTION = "caption"  # image + captions (+ OCR tokens)
    REGION = "region"  # image + (phrase, box in pixels)


class DropReason(str, enum.Enum):
    """Why a raw record did not become (part of) an item. A drop is data: a row in the drops table."""

    IMAGE_MISSING = "image_missing"
    IMAGE_EMPTY = "image_empty"
    IMAGE_UNDECODABLE = "image_undecodable"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    BAD_VALUE = "bad_value"
    EMPTY_CONVERSATION = "empty_conversation"
    EMPTY_TURN = "empty_turn"
    NOT_ALTERNATING = "not_alternating"
    UNKNOWN_ROLE = "unknown_role"
    IMAGE_TOKEN_IN_TEXT = "image_token_in_text"
    MISSING_ANNOTATION = "missing_annotation"
    ORPHAN_ANNOTATION = "orphan_annotation"
    BAD_BOX = "bad_box"
    NO_REGIONS = "no_regions"
    DUPLICATE = "duplicate"
    BAD_JSON = "bad_json"  # a record of a JSON array that does not decode (invalid UTF-8, nested too deep)


# --------------------------------------------------------------------------------------------
# payload records


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    role: str  # "human" | "gpt"
    text: str

    ARROW: ClassVar[pa.DataType]


@dataclass(frozen=True, slots=True, kw_only=True)
class QA:
    question_id: str
    question: str
    answer: (
        str | None
    )  # the dataset's own main answer (VQAv2 multiple_choice_answer, GQA answer); None if it has none
    answers: tuple[str, ...] = ()  # every annotator answer in raw order (OK-VQA: raw_answer)

    ARROW: ClassVar[pa.DataType]


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    question_id: str
    question: str
    choices: tuple[str, ...]
    correct: int  # index into choices
    direct_answers: tuple[str, ...] = ()

    ARROW: ClassVar[pa.DataType]


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    region_id: str
    phrase: str
    x: float  # top-left, pixels of the original image
    y: float
    w: float
    h: float
    group: str = ""  # sub-dataset (RefCOCO: refcoco / refcoco+ / refcocog); "" when not applicable

    ARROW: ClassVar[pa.DataType]


# Arrow types follow the dataclass fields (`arrow_fields`): str -> string, int -> int32, float ->
# float64, an enum -> string, tuple[X, ...] -> list of X, a record -> its ARROW struct, X | None -> X.
_ARROW_SCALARS: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int32(), float: pa.float64()}


def _arrow_type(hint: Any) -> pa.DataType:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
        (inner,) = [a for a in args if a is not type(None)]
        return _arrow_type(inner)
    if typing.get_origin(hint) is tuple:  # tuple[X, ...]
        return pa.list_(_arrow_type(args[0]))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return pa.string()
    return _ARROW_SCALARS[hint] if hint in _ARROW_SCALARS else hint.ARROW


def arrow_fields(cls: type, required: Iterable[str] = ()) -> list[pa.Field]:
    """The Arrow fields of a record dataclass, in field order; the `required` ones are not nullable."""
    hints = typing.get_type_hints(cls)
    required = set(required)
    return [
        pa.field(f.name, _arrow_type(hints[f.name]), nullable=f.name not in required)
        for f in dataclasses.fields(cls)
    ]


for _payload in (Turn, QA, Choice, Region):
    _payload.ARROW = pa.struct(arrow_fields(_payload))

# --------------------------------------------------------------------------------------------
# items: one per row of a normalized table


@dataclass(frozen=True, slots=True, kw_only=True)
class _ItemBase:
    """The columns every item has; its table adds `kind` after `source` (`item_schema`)."""

    KIND: ClassVar[Kind]
    key: str
    source: str
    id: str
    image: str | None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationItem(_ItemBase):
    KIND: ClassVar[Kind] = Kind.CONVERSATION
    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class VQAItem(_ItemBase):
    KIND: ClassVar[Kind] = Kind.VQA
    image: str
    qas: tuple[QA, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MCQItem(_ItemBase):
    KIND: ClassVar[Kind] = Kind.MCQ
    image: str
    questions: tuple[Choice, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptionItem(_ItemBase):
    KIND: ClassVar[Kind] = Kind.CAPTION
    image: str
    captions: tuple[str, ...]  # ordered by the dataset's caption id
    ocr_tokens: tuple[str, ...] | None = None  # None: no OCR file was available


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionItem(_ItemBase):
    KIND: ClassVar[Kind] = Kind.REGION
    image: str
    width: int
    height: int
    regions: tuple[Region, ...]


Item = ConversationItem | VQAItem | MCQItem | CaptionItem | RegionItem

ITEM_TYPES: dict[Kind, type] = {
    Kind.CONVERSATION: ConversationItem,
    Kind.VQA: VQAItem,
    Kind.MCQ: MCQItem,
    Kind.CAPTION: CaptionItem,
    Kind.REGION: RegionItem,
}


def item_schema(cls: type) -> pa.Schema:
    """The table schema of an item type: its fields, `kind` after `source`; key, source, kind and id
    are never null."""
    fields = arrow_fields(cls, required=("key", "source", "id"))
    fields.insert(2, pa.field("kind", pa.string(), nullable=False))
    return pa.schema(fields)


ITEM_SCHEMAS: dict[Kind, pa.Schema] = {kind: item_schema(cls) for kind, cls in ITEM_TYPES.items()}

# the nested record type of each payload column, for decoding rows back into dataclasses
_NESTED: dict[str, type] = {"turns": Turn, "qas": QA, "questions": Choice, "regions": Region}


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """A raw record (or part of one) that did not become an item, and why."""

    source: str
    file: str  # raw file, relative to ROOT/raw/<source>/
    pointer: str  # record id or index inside that file
    reason: DropReason
    detail: str = ""


DROP_SCHEMA = pa.schema(arrow_fields(Drop, required=[f.name for f in dataclasses.fields(Drop)]))


# --------------------------------------------------------------------------------------------
# conversion between records and Arrow rows


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is not None:
        return {n: _plain(getattr(value, n)) for n in names}
    if type(value) is tuple:
        if all(type(v) is str for v in value):
            return list(value)
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value):  # a record type not registered below
        _FIELD_NAMES[type(value)] = _field_names(type(value))
        return _plain(value)
    return value


def to_row(record: Any) -> dict[str, Any]:
    """A record as a plain dict matching its Arrow schema (items gain their `kind` column)."""
    row = _plain(record)
    kind = getattr(type(record), "KIND", None)
    if kind is not None:
        row["kind"] = kind.value
    return row


for _cls in (Turn, QA, Choice, Region, Drop, *ITEM_TYPES.values()):
    _FIELD_NAMES[_cls] = _field_names(_cls)


def item_from_row(row: Mapping[str, Any]) -> Item:
    """Rebuild an item dataclass from a row of its normalized table."""
    kind = Kind(row["kind"])
    cls = ITEM_TYPES[kind]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = row.get(f.name)
        nested = _NESTED.get(f.name)
        if nested is not None:
            value = tuple(_nested_from_dict(nested, v) for v in (value or ()))
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _nested_from_dict(cls: type, d: Mapping[str, Any]) -> Any:
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def items_table(items: Iterable[Item], kind: Kind) -> pa.Table:
    return pa.Table.from_pylist([to_row(i) for i in items], schema=ITEM_SCHEMAS[kind])


def drops_table(drops: Iterable[Drop]) -> pa.Table:
    return pa.Table.from_pylist([to_row(d) for d in drops], schema=DROP_SCHEMA)


def read_items(path: Any, batch_size: int = 4096) -> Iterator[Item]:
    """Stream the items of a normalized Parquet table, in file order."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                yield item_from_row(row)


# --------------------------------------------------------------------------------------------
# mixes: one sample of a built mix, its tar member names, its manifest row (docs/architecture.md 4.3)

#: The image placeholder of LLaVA conversations (`llava/constants.py` DEFAULT_IMAGE_TOKEN): the one
#: definition that datamix's formatters and lint and the trainer's templates share.
IMAGE_TOKEN = "<image>"
#: The short-answer format prompt of VQAv2, GQA, OK-VQA and OCR-VQA (appended as "\n" + prompt). Its
#: home among the prompts is `datamix.formats` (`SHORT_ANSWER_SUFFIX`, the same object); it is defined
#: here because the trainer's evaluation asks questions in this format and the trainer imports only
#: this module, `datamix.imaging`, `datamix.tokenizer` and `datamix.yamlio` from datamix.
SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."

#: Extension of a sample's conversation member and of its image member, as the build writes them.
JSON_EXT = "json"
IMAGE_EXT = "jpg"
#: Member extensions that readers take for a sample's image (WebDataset's image decoders' names).
IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "webp", "gif"})


def member_name(key: str, ext: str) -> str:
    """The tar member of a sample's `ext` part: `<key>.<ext>`. Keys have no dots (`<source>-<n>`)."""
    if "." in key or "/" in key or not key:
        raise ValueError(f"a sample key must be non-empty without '.' or '/': {key!r}")
    return f"{key}.{ext}"


def split_member(name: str) -> tuple[str, str]:
    """`(key, ext)` of a tar member name: THE member-name rule of every mix reader and the trainer.

    A leading folder is dropped (a mix's members have none) and the base name splits at its FIRST
    dot, as WebDataset groups members (`base_plus_ext`): keys have no dots, so `vqav2-12.json` ->
    `("vqav2-12", "json")` and a multi-part extension stays whole (`k.seg.png` -> `("k", "seg.png")`).
    A name without a dot gives `(name, "")`."""
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext


def _conversation_stats(conversations: list[dict[str, Any]]) -> tuple[int, int]:
    return len(conversations), sum(len(t["value"]) for t in conversations)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One sample of a mix, holding its final `<key>.json` member (`json`): the release record
    `{"id", "image"?, "conversations"}` plus `source` and `key` (docs/architecture.md 4.3), as compact
    UTF-8 JSON, encoded once when the sample is made (`Sample.create`) and written to the shard as is.

    `key` is unique (`<source>-<n>`, no dots); `id` is release-style (not unique); `image` is a
    LLaVA-layout path or None (text-only samples omit `image` in the JSON, as LLaVA's
    `group_by_modality_length` needs); `width`/`height` are the item's when known; `item_key` names the
    normalized item it came from. `n_turns` and `n_text_chars` are the manifest's, counted when the
    conversation was encoded. Build samples with `create`; the plain constructor takes the bytes as
    they are (a reader's, or a copy) and does not check them against the other fields.
    """

    key: str
    id: str
    source: str
    image: str | None
    json: bytes
    n_turns: int
    n_text_chars: int
    width: int | None = None
    height: int | None = None
    item_key: str | None = None

    @classmethod
    def create(
        cls,
        *,
        key: str,
        id: str,
        source: str,
        image: str | None,
        conversations: list[dict[str, Any]],
        width: int | None = None,
        height: int | None = None,
        item_key: str | None = None,
    ) -> Sample:
        """Encode the record once. Bytes equal `json.dumps(record, ensure_ascii=False,
        separators=(",", ":")).encode()` (msgspec escapes strings exactly as the standard library does
        with `ensure_ascii=False`; tests/test_mixio.py checks every code point)."""
        record: dict[str, Any] = {"id": id}
        if image is not None:
            record["image"] = image
        record["conversations"] = conversations
        record["source"] = source
        record["key"] = key
        n_turns, n_chars = _conversation_stats(conversations)
        return cls(
            key=key,
            id=id,
            source=source,
            image=image,
            json=_json_encoder().encode(record),
            n_turns=n_turns,
            n_text_chars=n_chars,
            width=width,
            height=height,
            item_key=item_key,
        )

    def record(self) -> dict[str, Any]:
        """The decoded `<key>.json` record (a fresh dict each call)."""
        return _json_decoder().decode(self.json)

    @property
    def conversations(self) -> list[dict[str, Any]]:
        """The LLaVA turns, decoded from `json` (a fresh list each call)."""
        return self.record()["conversations"]

    def __repr__(self) -> str:
        return f"Sample(key={self.key!r}, id={self.id!r}, source={self.source!r}, image={self.image!r})"


@functools.lru_cache(maxsize=1)
def _json_encoder() -> Any:
    import msgspec

    return msgspec.json.Encoder()


@functools.lru_cache(maxsize=1)
def _json_decoder() -> Any:
    import msgspec

    return msgspec.json.Decoder()


#: One row per sample of `<mix>/manifest.parquet` (docs/architecture.md 4.3), in shard order.
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
#: Columns every reader needs (a manifest without them is refused, naming the file).
MANIFEST_REQUIRED = ("key", "shard")
