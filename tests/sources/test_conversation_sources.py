"""LLaVA-Instruct, LCS-558K and ShareGPT: hand-written raw records in the real format -> exact items."""

from __future__ import annotations

import pytest

from datamix.normalize import NormalizeError, normalize_source
from datamix.schema import ConversationItem, Turn

from .helpers import reasons, run


def conv(*turns):
    """A raw `conversations` list from (role, text) pairs."""
    return [{"from": r, "value": v} for r, v in turns]


def _instruct_item(n: int, id: str, image: str, *turns: tuple[str, str]) -> ConversationItem:
    """The n-th llava_instruct item: its image under coco/train2017, its (role, text) turns."""
    return ConversationItem(
        key=f"llava_instruct-{n:08d}",
        source="llava_instruct",
        id=id,
        image=f"coco/train2017/{image}",
        turns=tuple(Turn(role=r, text=t) for r, t in turns),
    )


def test_llava_instruct_keeps_raw_turns_and_maps_images(world):
    world.image("coco/train2017/000000000113.jpg")
    world.image("coco/train2017/000000123456.jpg")
    world.json(
        "llava_instruct",
        "llava_instruct_150k.json",
        [
            {
                "id": "000000000113",
                "image": "000000000113.jpg",
                "conversations": conv(
                    ("human", "What is this photo about'?\n<image>"), ("gpt", "A kitchen.")
                ),
            },
            {
                "id": 123456,
                "image": "000000123456.jpg",  # int id in the wild -> string
                "conversations": conv(
                    ("human", "<image>\nWhat is the dog holding?"),
                    ("gpt", "A red frisbee."),
                    ("human", "Where is it?"),
                    ("gpt", "On a lawn."),
                ),
            },
            {
                "id": "000000999999",
                "image": "000000999999.jpg",
                "conversations": conv(("human", "<image>\nHi"), ("gpt", "Hello")),
            },
            {"id": "000000000113", "image": "000000000113.jpg", "conversations": "oops"},
            {"image": "000000000113.jpg", "conversations": []},
        ],
    )
    items, drops, stats = run(world.root, "llava_instruct")
    assert items == [
        _instruct_item(
            0,
            "000000000113",
            "000000000113.jpg",
            ("human", "What is this photo about'?\n<image>"),
            ("gpt", "A kitchen."),
        ),
        _instruct_item(
            1,
            "123456",
            "000000123456.jpg",
            ("human", "<image>\nWhat is the dog holding?"),
            ("gpt", "A red frisbee."),
            ("human", "Where is it?"),
            ("gpt", "On a lawn."),
        ),
    ]
    assert reasons(drops) == [("2", "image_missing"), ("3", "bad_type"), ("4", "missing_field")]
    assert drops[0]["file"] == "llava_instruct_150k.json"
    assert stats["items"] == 2 and stats["drops_by_reason"] == {
        "bad_type": 1,
        "image_missing": 1,
        "missing_field": 1,
    }


def test_sharegpt_filters_with_reasons(world):
    world.json(
        "sharegpt",
        "ShareGPT_V3_unfiltered_cleaned_split.json",
        [
            {
                "id": "AbCdEfG_0",
                "model": "",
                "conversations": conv(("human", "Write a haiku."), ("gpt", "Soft rain...")),
            },
            {"id": "lead_0", "conversations": conv(("gpt", "Hi!"), ("human", "2+2?"), ("gpt", "4"))},
            {"id": "skip_0", "conversations": conv(("human", "a"), ("human", "b"), ("gpt", "c"))},
            {"id": "empty_0", "conversations": conv(("human", "a"), ("gpt", "  "))},
            {"id": "img_0", "conversations": conv(("human", "see <image>"), ("gpt", "no"))},
            {"id": "trail_0", "conversations": conv(("human", "q"), ("gpt", "a"), ("human", "unanswered"))},
            {"id": "onlygpt_0", "conversations": conv(("gpt", "hello"))},
            {"id": "sys_0", "conversations": conv(("system", "be nice"), ("gpt", "ok"))},
        ],
    )
    items, drops, stats = run(world.root, "sharegpt")
    assert [(i.id, i.image, [(t.role, t.text) for t in i.turns]) for i in items] == [
        ("AbCdEfG_0", None, [("human", "Write a haiku."), ("gpt", "Soft rain...")]),
        ("lead_0", None, [("human", "2+2?"), ("gpt", "4")]),
        ("trail_0", None, [("human", "q"), ("gpt", "a")]),
    ]
    assert reasons(drops) == [
        ("2", "not_alternating"),
        ("3", "empty_turn"),
        ("4", "image_token_in_text"),
        ("6", "empty_conversation"),
        ("7", "unknown_role"),
    ]
    assert stats["counts"] == {"leading_gpt_dropped": 2, "trailing_human_cut": 1}


def test_llava_pretrain_paths(world):
    world.image("llava_pretrain/images/00453/004539375.jpg")
    world.json(
        "llava_pretrain",
        "blip_laion_cc_sbu_558k.json",
        [
            {
                "id": "004539375",
                "image": "00453/004539375.jpg",
                "conversations": conv(
                    ("human", "Render a clear and concise summary of the photo.\n<image>"),
                    ("gpt", "select luxury furniture 3 - inch gel memory foam mattress topper"),
                ),
            },
            {"id": "004539376", "image": "../../etc/passwd", "conversations": []},
        ],
    )
    items, drops, _ = run(world.root, "llava_pretrain")
    assert [(i.key, i.id, i.image, len(i.turns)) for i in items] == [
        ("llava_pretrain-00000000", "004539375", "llava_pretrain/images/00453/004539375.jpg", 2)
    ]
    assert reasons(drops) == [("1", "bad_value")]


def test_sharegpt_odd_elements_become_drops_and_the_rest_is_kept(world):
    """The release file is decoded one element at a time: an element that is not a record (or whose
    fields have other types) is dropped with a reason, the records around it are kept."""
    turns = conv(("human", "q"), ("gpt", "a"))
    world.json(
        "sharegpt",
        "ShareGPT_V3_unfiltered_cleaned_split.json",
        [
            {"id": "first_0", "conversations": turns},
            3,
            {"id": "text_0", "conversations": "not a list"},
            ["a", "list"],
            {"id": "last_0", "conversations": turns, "extra": {"ignored": True}},
        ],
    )
    items, drops, _ = run(world.root, "sharegpt")
    assert [i.id for i in items] == ["first_0", "last_0"]
    assert reasons(drops) == [("1", "bad_type"), ("2", "bad_type"), ("3", "bad_type")]


@pytest.mark.parametrize(
    "top, message",
    [
        ('{"id": "x"}', "top level is dict, expected a JSON array"),
        ('"text"', "top level is str, expected a JSON array"),
        ("12", "top level is number, expected a JSON array"),
        ('[{"id": "a_0", "conversations": [}]', "not valid JSON near byte 33: JSON is malformed"),
    ],
)
def test_sharegpt_file_that_is_not_an_array_is_refused(world, top, message):
    path = world.root / "raw" / "sharegpt" / "ShareGPT_V3_unfiltered_cleaned_split.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(top)
    with pytest.raises(NormalizeError, match=rf"ShareGPT_V3_unfiltered_cleaned_split.json: {message}"):
        normalize_source("sharegpt", world.root)
    assert not (world.root / "normalized" / "sharegpt.parquet").exists()
