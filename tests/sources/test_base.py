"""The read loop every source shares (datamix.sources.base), and docs/adding-a-source.md's worked
example run as written: a twelfth source is one module, and every derived table picks it up."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datamix import formats, llava_json, recipe
from datamix.mix import plan
from datamix.schema import Drop, DropReason, Kind, VQAItem
from datamix.sources import SOURCES
from datamix.sources.base import Context, Draft, ImageIndex, Part, RawFile, RecordError, Records, Source

from .helpers import reasons, run

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-source.md"


# --- the loop ------------------------------------------------------------------------------------


class _Toy(Source):
    """Records `{"img", "q"}` grouped per image; `"bad"` records fail, `"part"` ones drop a part."""

    name = "toy"
    order = 99
    kind = Kind.VQA
    raw_files = (RawFile("a.json", "toy records"),)
    image_dirs = ("toy/images",)
    group_label = "img"
    tally = ("qas", "qas")

    def __init__(self, records: list[Any]):
        self.rows = records

    def records(self, ctx: Context) -> Iterator[Records]:
        yield Records("a.json", enumerate(self.rows))
        ctx.reject("a.json", "end", DropReason.ORPHAN_ANNOTATION, "after the pass")

    def parse(self, ctx: Context, rec: Any) -> Part | None:
        if rec == "skip":
            return None
        if rec == "bad":
            raise RecordError(DropReason.BAD_TYPE, "bad record")
        if rec.get("part"):
            ctx.reject("a.json", f"{rec['img']}/p", DropReason.BAD_BOX, "one part")
        if rec.get("dup"):
            raise RecordError(DropReason.DUPLICATE, "twice", pointer=rec["q"])
        return Part(rec["img"], rec["q"])

    def group(self, ctx: Context, img: str, parts: list[Any]) -> Draft:
        from datamix.schema import QA

        qas = tuple(QA(question_id=q, question=q, answer="a") for q in parts)
        return Draft(id=img, image=self.image_path(img, suffix=".jpg"), qas=qas)


def _read(world, source: Source) -> list[Any]:
    ctx = Context(
        source=source.name, raw_dir=world.root / "raw" / source.name, images=ImageIndex(world.root / "images")
    )
    out = list(source.read(ctx))
    return [
        (o.pointer, o.reason.value)
        if isinstance(o, Drop)
        else (o.key, o.source, o.id, [q.question_id for q in o.qas])
        for o in out
    ] + [ctx.counts]


def test_loop_drops_groups_checks_images_and_stamps_keys(world):
    world.image("toy/images/b.jpg")
    world.image("toy/images/c.jpg")
    rows = [
        {"img": "c", "q": "2"},
        "bad",
        "skip",
        {"img": "b", "q": "1", "part": True},
        {"img": "c", "q": "1"},
        {"img": "b", "q": "9", "dup": True},
        {"img": "missing", "q": "3"},
        {"img": ".hidden", "q": "4"},
    ]
    assert _read(world, _Toy(rows)) == [
        ("1", "bad_type"),  # the record's pointer
        ("b/p", "bad_box"),  # a part, then its record
        ("9", "duplicate"),  # the error's own pointer
        ("end", "orphan_annotation"),  # after the pass, before the images
        ("img=.hidden", "bad_value"),  # image_path: not a file name
        ("toy-00000000", "toy", "b", ["1"]),  # images in order, keys in emission order
        ("toy-00000001", "toy", "c", ["2", "1"]),  # parts in reading order
        ("img=missing", "image_missing"),
        {"qas": 3},  # tally: emitted items only
    ]


@pytest.mark.parametrize(
    ("name", "nested", "ok"),
    [
        ("a.jpg", False, True),
        ("a/b.jpg", False, False),
        ("", False, False),
        (".a.jpg", False, False),
        ("..", False, False),
        ("00453/004.jpg", True, True),
        ("/abs.jpg", True, False),
        ("a/../b.jpg", True, False),
        ("a//b.jpg", True, False),
        ("./a.jpg", True, False),
    ],
)
def test_image_path_is_path_safe(name, nested, ok):
    toy = _Toy([])
    if ok:
        assert toy.image_path(name, nested=nested) == f"toy/images/{name}"
    else:
        with pytest.raises(RecordError) as err:
            toy.image_path(name, nested=nested, what="image_id")
        assert err.value.reason is DropReason.BAD_VALUE
        assert err.value.detail == f"image_id {name!r} is not a {'relative path' if nested else 'file name'}"


# --- docs/adding-a-source.md, run as written ------------------------------------------------------


def _doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _forget_derived_tables() -> None:
    for cached in (
        recipe._tables,
        formats._formatters,
        llava_json._llava_matches,
        llava_json._text_only_source,
    ):
        cached.cache_clear()


@pytest.fixture
def vizwiz(monkeypatch):
    """The doc's module as `datamix.sources.vizwiz`, registered as a twelfth source (undone after)."""
    [code] = [b for b in _doc_blocks() if "class VizWiz(Source)" in b]
    module = types.ModuleType("datamix.sources.vizwiz")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own documentation
    source = module.VizWiz()
    monkeypatch.setitem(SOURCES, "vizwiz", source)
    _forget_derived_tables()
    yield source
    _forget_derived_tables()


def test_worked_example_test_passes(world, vizwiz):
    [code] = [b for b in _doc_blocks() if "def test_vizwiz" in b]
    namespace: dict[str, Any] = {"run": run, "reasons": reasons}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102
    namespace["test_vizwiz_one_item_per_answerable_question"](world)


def test_worked_example_is_picked_up_by_every_table(world, vizwiz):
    assert recipe.SOURCE_NAMES[-1] == "vizwiz" and recipe.SPEC_TYPES["vizwiz"] is recipe.VQASpec
    assert recipe.SOURCE_KINDS["vizwiz"] is Kind.VQA
    assert [(f.source, f.path, f.kind) for f in vizwiz.remote_files] == [
        ("vizwiz", "downloads/vizwiz/Annotations.zip", "annotation"),
        ("vizwiz", "downloads/vizwiz/train.zip", "images"),
    ]
    assert llava_json.infer_source({"image": "vizwiz/train/x.jpg", "conversations": []}) == "vizwiz"
    assert vizwiz.synth_module == "datamix.synth.vizwiz"
    # normalize -> recipe -> plan and formatting, through the derived tables only
    world.image("vizwiz/train/VizWiz_train_00000000.jpg")
    rec = {
        "image": "VizWiz_train_00000000.jpg",
        "question": "What is this?",
        "answers": [{"answer": "basil"}] * 3 + [{"answer": "mint"}],
        "answerable": 1,
    }
    world.json("vizwiz", "train.json", [rec])
    [item], _, _ = run(world.root, "vizwiz")
    assert isinstance(item, VQAItem)
    r = recipe.parse_recipe({"name": "t", "seed": 0, "sources": {"vizwiz": {"choose": "all"}}})
    assert plan(r, world.root).sources["vizwiz"].selected == 1
    assert formats.format_item(item, r.sources["vizwiz"], seed=0) == [
        [
            {"from": "human", "value": "<image>\nWhat is this?\n" + formats.SHORT_ANSWER_SUFFIX},
            {"from": "gpt", "value": "Basil"},
        ]
    ]
