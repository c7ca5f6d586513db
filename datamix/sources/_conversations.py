"""Shared reading of LLaVA-format conversation files (LLaVA-Instruct-150K, LCS-558K, ShareGPT).

Record: `{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": str}, ...]}`.
Turns are kept as written (including where `<image>` sits); prompt handling is the recipe's job.
`ConversationSource` reads one such file (its first raw file), one item per record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec

from datamix.fileio import iter_json_list
from datamix.schema import DropReason, Kind, Turn
from datamix.sources._fields import RecordError, get, require, require_id
from datamix.sources.base import Context, Draft, Records, Source

ROLES = ("human", "gpt")


class ConversationRecord(msgspec.Struct, gc=False):
    id: Any = msgspec.UNSET
    image: Any = msgspec.UNSET
    conversations: Any = msgspec.UNSET


def parse_turns(rec: Any) -> list[Turn]:
    """The turns of a record, checked for shape and types (not for alternation)."""
    raw = require(rec, "conversations", list)
    turns = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict):
            raise RecordError(
                DropReason.BAD_TYPE, f"conversations[{i}] is {type(t).__name__}, expected an object"
            )
        role = get(t, "from")
        value = get(t, "value")
        if role is msgspec.UNSET or value is msgspec.UNSET or role is None or value is None:
            raise RecordError(DropReason.MISSING_FIELD, f"conversations[{i}] lacks 'from' or 'value'")
        if not isinstance(role, str) or not isinstance(value, str):
            raise RecordError(DropReason.BAD_TYPE, f"conversations[{i}] 'from'/'value' are not strings")
        turns.append(Turn(role=role, text=value))
    if not turns:
        raise RecordError(DropReason.EMPTY_CONVERSATION, "no turns")
    return turns


def check_alternating(turns: list[Turn]) -> None:
    """human, gpt, human, gpt, ... with known roles and no empty turn."""
    for i, t in enumerate(turns):
        if t.role not in ROLES:
            raise RecordError(DropReason.UNKNOWN_ROLE, f"turn {i} has role {t.role!r}")
        if t.role != ROLES[i % 2]:
            raise RecordError(
                DropReason.NOT_ALTERNATING, f"turn {i} is {t.role!r}, expected {ROLES[i % 2]!r}"
            )
        if not t.text.strip():
            raise RecordError(DropReason.EMPTY_TURN, f"turn {i} ({t.role}) is empty")


class ConversationSource(Source):
    """A LLaVA-format conversation file: `id`, the image (under the source's image folder; a bare file
    name, or with `nested_images` a relative path), strictly alternating turns."""

    kind = Kind.CONVERSATION
    nested_images: ClassVar[bool] = False
    image_shape: ClassVar[str] = ""  # how a drop names a bad `image` (default: file name / relative path)

    def records(self, ctx: Context) -> Iterator[Records]:
        file = self.raw_files[0].name
        yield Records(file, enumerate(iter_json_list(ctx.require_file(file), ConversationRecord)))

    def parse(self, ctx: Context, rec: Any) -> Draft:
        rid = require_id(rec, "id")
        image = self.image_path(require(rec, "image", str), nested=self.nested_images, shape=self.image_shape)
        turns = parse_turns(rec)
        check_alternating(turns)
        return Draft(id=rid, image=image, turns=tuple(turns))
