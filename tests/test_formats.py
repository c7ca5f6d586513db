"""Formatters: exact outputs, byte for byte, for every item kind (docs/sources.md#conventions and docs/sources.md#decisions)."""

from __future__ import annotations

import pytest
from llava_records import coco_item

from datamix import formats
from datamix.formats import (
    FormatError,
    box_text,
    count_conversations,
    derive_seed,
    format_caption,
    format_conversation,
    format_item,
    format_mcq,
    format_refcoco,
    format_sharegpt,
    format_vg,
    format_vqa,
    item_rng,
    most_common,
    rec_prompt,
    reg_answer,
    strip_image_token,
)
from datamix.recipe import SPEC_TYPES, VQASpec
from datamix.schema import (
    QA,
    CaptionItem,
    Choice,
    ConversationItem,
    MCQItem,
    Region,
    RegionItem,
    Turn,
    VQAItem,
)

SUFFIX = "\nAnswer the question using a single word or phrase."
MCQ_SUFFIX = "\nAnswer with the option's letter from the given choices directly."


def h(value: str) -> dict[str, str]:
    return {"from": "human", "value": value}


def g(value: str) -> dict[str, str]:
    return {"from": "gpt", "value": value}


def conversation_item(source: str, id: str, image: str | None, *texts: str) -> ConversationItem:
    """The item `<source>-0`: turns of `texts`, human and gpt in turn."""
    turns = tuple(Turn(role=("human", "gpt")[i % 2], text=t) for i, t in enumerate(texts))
    return ConversationItem(key=f"{source}-0", source=source, id=id, image=image, turns=turns)


def vqa_item(qas, key="vqav2-0", source="vqav2") -> VQAItem:
    return VQAItem(
        key=key, source=source, id="000000000001", image="coco/train2017/000000000001.jpg", qas=tuple(qas)
    )


def region(i: int, phrase: str = "", x=10.0, y=20.0, w=30.0, h=40.0) -> Region:
    return Region(region_id=str(i), phrase=phrase or f"thing {i}", x=x, y=y, w=w, h=h)


def region_item(regions, source="vg", key="vg-0", width=200, height=100) -> RegionItem:
    return RegionItem(
        key=key,
        source=source,
        id="1",
        image="vg/VG_100K/1.jpg",
        width=width,
        height=height,
        regions=tuple(regions),
    )


# ------------------------------------------------------------------------------------------------
# randomness


def test_derived_seed_is_stable_and_separates_purposes():
    # golden values: a change here changes every build
    assert derive_seed(0, "vqav2", "turns", "vqav2-0") == 1323812086702705621
    assert item_rng(0, "vqav2", "turns", "vqav2-0").random() == 0.45505035428367746
    seeds = {
        derive_seed(s, src, p, k) for s in (0, 1) for src in ("a", "b") for p in ("x", "y") for k in ("", "k")
    }
    assert len(seeds) == 16


# ------------------------------------------------------------------------------------------------
# conversation sources


def test_conversation_image_moved_to_front():
    item = conversation_item(
        "llava_instruct",
        "000000000113",
        "coco/train2017/000000000113.jpg",
        *("What is this photo about'?\n<image>", "A cat.", "Why?", "It purrs."),
    )
    assert format_conversation(item) == [
        [h("<image>\nWhat is this photo about'?"), g("A cat."), h("Why?"), g("It purrs.")]
    ]
    assert format_conversation(item, image_placement="raw")[0][0] == h("What is this photo about'?\n<image>")


def test_strip_image_token_matches_llava_preprocess_multimodal():
    assert strip_image_token("<image>\nHi") == "Hi"
    assert strip_image_token("Hi\n<image>") == "Hi"
    assert strip_image_token("A\n<image>\nB") == "A\nB"
    assert strip_image_token(" <image> x ") == "x"


def test_pretrain_keeps_instruction_and_placement():
    item = conversation_item(
        "llava_pretrain",
        "004539375",
        "llava_pretrain/images/00453/004539375.jpg",
        "Render a clear and concise summary of the photo.\n<image>",
        "select luxury furniture 3 - inch gel memory foam mattress topper",
    )
    spec = SPEC_TYPES["llava_pretrain"](choose="all")
    assert format_item(item, spec, seed=0) == [
        [
            h("Render a clear and concise summary of the photo.\n<image>"),
            g("select luxury furniture 3 - inch gel memory foam mattress topper"),
        ]
    ]


def sharegpt_item() -> ConversationItem:
    texts = ["one two", "three four five", "six", "seven eight", "nine", "ten eleven twelve thirteen"]
    return conversation_item("sharegpt", "wgByO4Y_0", None, *texts)


def test_sharegpt_truncates_at_pair_boundary():
    item = sharegpt_item()
    words = lambda s: len(s.split())  # noqa: E731
    full = format_sharegpt(item)[0]
    assert len(full) == 6 and "<image>" not in str(full)
    assert format_sharegpt(item, max_tokens=8, count_tokens=words) == [full[:4]]  # 5 + 3 = 8 fits
    assert format_sharegpt(item, max_tokens=7, count_tokens=words) == [full[:2]]
    assert format_sharegpt(item, max_tokens=1, count_tokens=words) == [full[:2]]  # first pair always kept
    assert format_sharegpt(item, max_tokens=100, count_tokens=words) == [full]
    assert format_sharegpt(item, max_tokens=1) == [full]  # no tokenizer: no truncation


# ------------------------------------------------------------------------------------------------
# VQA


def test_vqa_suffix_first_turn_only_sorted_and_capitalised():
    item = vqa_item(
        [
            QA(question_id="10", question="What color is the bus?", answer="red", answers=("red",) * 10),
            QA(question_id="9", question="Is it raining?", answer="no", answers=()),
            QA(question_id="100", question="How many people?", answer="3", answers=()),
        ]
    )
    assert format_vqa(item, seed=0, shuffle_turns=False) == [
        [
            h("<image>\nIs it raining?" + SUFFIX),
            g("No"),
            h("What color is the bus?"),
            g("Red"),
            h("How many people?"),
            g("3"),
        ]
    ]
    as_is = format_vqa(item, seed=0, shuffle_turns=False, answer_case="as_is", max_turns=2)[0]
    assert as_is == [h("<image>\nIs it raining?" + SUFFIX), g("no"), h("What color is the bus?"), g("red")]
    # one conversation per question (or per 2): each opens with the image and the suffix
    assert format_vqa(item, seed=0, shuffle_turns=False, turns_per_conversation=2) == [
        [h("<image>\nIs it raining?" + SUFFIX), g("No"), h("What color is the bus?"), g("Red")],
        [h("<image>\nHow many people?" + SUFFIX), g("3")],
    ]
    singles = format_vqa(item, seed=0, shuffle_turns=False, max_turns=2, turns_per_conversation=1)
    assert singles == [
        [h("<image>\nIs it raining?" + SUFFIX), g("No")],
        [h("<image>\nWhat color is the bus?" + SUFFIX), g("Red")],
    ]
    spec = VQASpec(choose="all", max_turns=2, turns_per_conversation=1)
    assert count_conversations(item, spec) == 2 == len(format_item(item, spec, seed=0))
    assert count_conversations(item, VQASpec(choose="all", turns_per_conversation=2)) == 2
    assert count_conversations(item, VQASpec(choose="all")) == 1


def test_vqa_shuffle_is_seeded():
    item = vqa_item([QA(question_id=str(i), question=f"q{i}?", answer=f"a{i}") for i in range(12)])
    first = lambda conv: conv[0]["value"]  # noqa: E731
    a = format_vqa(item, seed=0)[0]
    assert a == format_vqa(item, seed=0)[0]
    assert a != format_vqa(item, seed=1)[0]
    assert [t["value"] for t in a[1::2]] != [f"A{i}" for i in range(12)]  # really shuffled
    assert first(a).startswith("<image>\n") and first(a).endswith(SUFFIX)
    assert sum(SUFFIX in t["value"] for t in a) == 1
    assert sorted(t["value"] for t in a[1::2]) == sorted(f"A{i}" for i in range(12))


def test_okvqa_most_common_raw_answer_ties_by_first_occurrence():
    assert most_common(["racing", "race", "race", "racing", "car"]) == "racing"
    assert most_common(["", "  ", "b", "a", "a"]) == "a"
    assert most_common(["", ""]) is None
    item = vqa_item(
        [
            QA(
                question_id="5175",
                question="What sport?",
                answer=None,
                answers=("racing", "race", "race", "racing"),
            )
        ],
        key="okvqa-0",
        source="okvqa",
    )
    spec = SPEC_TYPES["okvqa"](choose="all")
    assert format_item(item, spec, seed=3) == [[h("<image>\nWhat sport?" + SUFFIX), g("Racing")]]


def test_vqa_answer_modes():
    qa = QA(question_id="1", question="q?", answer="two", answers=("2", "2", "two"))
    item = vqa_item([qa])
    assert format_vqa(item, seed=0, answer="consensus")[0][1] == g("Two")
    assert format_vqa(item, seed=0, answer="most_common")[0][1] == g("2")
    empty = vqa_item([QA(question_id="1", question="q?", answer=None, answers=("",))])
    with pytest.raises(FormatError, match="vqav2-0"):
        format_vqa(empty, seed=0)


# ------------------------------------------------------------------------------------------------
# A-OKVQA


def test_aokvqa_rotations_letters_and_suffix():
    item = coco_item(
        MCQItem,
        "aokvqa",
        299207,
        questions=(
            Choice(
                question_id="22MexNkBPpdZGX6sxbxVBH",
                question="What is the man by the bags awaiting?",
                choices=("skateboarder", "train", "delivery", "cab"),
                correct=3,
            ),
            Choice(
                question_id="zz", question="What color?", choices=("red", "blue", "green", "gold"), correct=0
            ),
        ),
    )
    convs = format_mcq(item, seed=0, shuffle_turns=False)
    assert len(convs) == 4 == count_conversations(item, SPEC_TYPES["aokvqa"](choose="all"))
    q = "What is the man by the bags awaiting?"
    assert convs[1] == [
        h(f"<image>\n{q}\nA. train\nB. delivery\nC. cab\nD. skateboarder" + MCQ_SUFFIX),
        g("C"),
        h("What color?\nA. blue\nB. green\nC. gold\nD. red"),
        g("D"),
    ]
    assert convs[0][0] == h(f"<image>\n{q}\nA. skateboarder\nB. train\nC. delivery\nD. cab" + MCQ_SUFFIX)
    assert [c[1]["value"] for c in convs] == ["D", "C", "B", "A"]
    assert [c[3]["value"] for c in convs] == ["A", "D", "C", "B"]
    assert format_mcq(item, seed=0, augment="none", shuffle_turns=False) == [convs[0]]


# ------------------------------------------------------------------------------------------------
# TextCaps


def test_textcaps_prompt_and_ocr_line():
    def item(ocr):
        return CaptionItem(
            key="textcaps-0",
            source="textcaps",
            id="011e7e629fb9ae7b",
            image="textvqa/train_images/011e7e629fb9ae7b.jpg",
            captions=("A bottle of Listerine on a shelf.", "Mouthwash.", "A shelf."),
            ocr_tokens=ocr,
        )

    prompt = "<image>\nProvide a one-sentence caption for the provided image."
    assert format_caption(item(("listerine", "cool", "mint")), seed=0) == [
        [h(prompt + "\nReference OCR token: listerine, cool, mint"), g("A bottle of Listerine on a shelf.")]
    ]
    assert format_caption(item(()), seed=0) == [[h(prompt), g("A bottle of Listerine on a shelf.")]]
    assert format_caption(item(None), seed=0)[0][0] == h(prompt)
    assert format_caption(item(("a",)), seed=0, ocr_tokens=False)[0][0] == h(prompt)
    picks = {format_caption(item(None), seed=s, caption="random")[0][1]["value"] for s in range(30)}
    assert picks == {"A bottle of Listerine on a shelf.", "Mouthwash.", "A shelf."}
    assert format_caption(item(None), seed=7, caption="random") == format_caption(
        item(None), seed=7, caption="random"
    )


@pytest.mark.parametrize(
    ("caption", "final_period", "answer"),
    [
        (
            "Five Listerine Zero mouthwash bottles on a store shelf",
            True,
            "Five Listerine Zero mouthwash bottles on a store shelf.",
        ),
        (
            "Five Listerine Zero mouthwash bottles on a store shelf",
            False,
            "Five Listerine Zero mouthwash bottles on a store shelf",
        ),
        (
            "The time is now 10:22 according to this clock.",
            True,
            "The time is now 10:22 according to this clock.",
        ),
        (
            "a clock says Angel Square ",
            True,
            "a clock says Angel Square.",
        ),  # trailing space dropped, case kept
        ("Is this the exit?", True, "Is this the exit?"),
        ("Welcome to Paris!", True, "Welcome to Paris!"),
        ("Welcome to Paris! ", False, "Welcome to Paris! "),  # off: caption_str verbatim
    ],
)
def test_textcaps_final_period(caption, final_period, answer):
    item = CaptionItem(
        key="textcaps-0", source="textcaps", id="x", image="textvqa/train_images/x.jpg", captions=(caption,)
    )
    assert format_caption(item, seed=0, final_period=final_period)[0][1] == g(answer)
    spec = SPEC_TYPES["textcaps"](choose="all", final_period=final_period)
    assert format_item(item, spec, seed=0)[0][1] == g(answer)
    assert SPEC_TYPES["textcaps"](choose="all").final_period is True


def test_format_prompt_off_drops_the_suffixes_only():
    item = vqa_item(
        [
            QA(question_id="9", question="Is it raining?", answer="no"),
            QA(question_id="10", question="What color is the bus?", answer="red"),
        ]
    )
    off = format_vqa(item, seed=0, shuffle_turns=False, format_prompt=False)
    assert off == [[h("<image>\nIs it raining?"), g("No"), h("What color is the bus?"), g("Red")]]
    spec = VQASpec(choose="all", shuffle_turns=False, format_prompt=False)
    assert format_item(item, spec, seed=0) == off
    assert format_item(item, VQASpec(choose="all", shuffle_turns=False), seed=0)[0][0] == h(
        "<image>\nIs it raining?" + SUFFIX
    )
    singles = format_vqa(item, seed=0, shuffle_turns=False, format_prompt=False, turns_per_conversation=1)
    assert singles == [
        [h("<image>\nIs it raining?"), g("No")],
        [h("<image>\nWhat color is the bus?"), g("Red")],
    ]
    mcq = MCQItem(
        key="aokvqa-0",
        source="aokvqa",
        id="1",
        image="coco/train2017/000000000001.jpg",
        questions=(Choice(question_id="a", question="Which?", choices=("x", "y"), correct=1),),
    )
    assert format_mcq(mcq, seed=0, format_prompt=False)[0] == [h("<image>\nWhich?\nA. x\nB. y"), g("B")]
    spec = SPEC_TYPES["aokvqa"](choose="all", format_prompt=False)
    assert format_item(mcq, spec, seed=0) == format_mcq(mcq, seed=0, format_prompt=False)
    assert format_mcq(mcq, seed=0)[0][0] == h("<image>\nWhich?\nA. x\nB. y" + MCQ_SUFFIX)


def test_unshuffled_ocrvqa_keeps_dataset_order_past_ten_questions():
    # OCR-VQA question ids are `<book>-<i>` (i = position in dataset.json's `questions`): "b-10" after "b-9"
    qas = [QA(question_id=f"761183272-{i}", question=f"q{i}?", answer=f"a{i}") for i in range(12)]
    item = vqa_item(reversed(qas), key="ocrvqa-0", source="ocrvqa")
    conv = format_vqa(item, seed=0, shuffle_turns=False)[0]
    assert [t["value"] for t in conv[1::2]] == [f"A{i}" for i in range(12)]
    assert formats.natural_key("9") < formats.natural_key("10") < formats.natural_key("b-2")
    assert formats.natural_key("b-2") < formats.natural_key("b-10") < formats.natural_key("c")


# ------------------------------------------------------------------------------------------------
# regions


@pytest.mark.parametrize(
    ("box", "width", "height", "frame", "text"),
    [
        ((20, 10, 60, 80), 200, 100, "padded_square", "[0.1, 0.3, 0.4, 0.7]"),  # landscape: y shifted by 50
        ((20, 10, 60, 80), 200, 100, "original", "[0.1, 0.1, 0.4, 0.9]"),
        ((0, 0, 100, 300), 100, 300, "padded_square", "[0.33, 0.0, 0.67, 1.0]"),  # portrait: x shifted by 100
        ((0, 0, 100, 300), 100, 300, "original", "[0.0, 0.0, 1.0, 1.0]"),
        ((0, 0, 101, 50), 101, 50, "padded_square", "[0.0, 0.25, 1.0, 0.74]"),  # offset (101 - 50) // 2 = 25
        ((-5, -5, 300, 40), 200, 100, "original", "[0.0, 0.0, 1.0, 0.35]"),  # clipped
        ((50, 50, 50, 50), 100, 100, "padded_square", "[0.5, 0.5, 1.0, 1.0]"),  # square: frames agree
    ],
)
def test_box_text(box, width, height, frame, text):
    assert box_text(box, width, height, frame) == text


def test_reg_and_rec_text():
    assert reg_answer("brown wicker basket on bike") == "Brown wicker basket on bike."
    assert reg_answer("Red jacket.") == "Red jacket."
    assert reg_answer(" the clock is green in colour ") == "The clock is green in colour."
    assert rec_prompt("guy on right") == (
        "Please provide the bounding box coordinate of the region this sentence describes: guy on right."
    )
    assert rec_prompt("food in the container.").endswith("describes: food in the container.")


def test_region_single_task_exact():
    item = region_item([region(1, "brown wicker basket on bike", 20, 10, 60, 80)])
    reg = format_vg(item, seed=0, pairs=1, region_tasks=["reg"])
    assert reg == [
        [
            h("<image>\nPlease provide a short description for this region: [0.1, 0.3, 0.4, 0.7]."),
            g("Brown wicker basket on bike."),
        ]
    ]
    rec = format_vg(item, seed=0, pairs=1, region_tasks=["rec"], box_frame="original")
    assert rec == [
        [
            h(
                "<image>\nPlease provide the bounding box coordinate of the region this sentence describes: "
                "brown wicker basket on bike."
            ),
            g("[0.1, 0.1, 0.4, 0.9]"),
        ]
    ]


def test_vg_ten_pairs_and_threshold():
    item = region_item([region(i) for i in range(12)])
    convs = format_vg(item, seed=0)
    assert len(convs) == 1 and len(convs[0]) == 20
    assert convs[0][0]["value"].startswith("<image>\nPlease provide")
    assert sum("<image>" in t["value"] for t in convs[0]) == 1
    assert convs == format_vg(item, seed=0)
    assert convs != format_vg(item, seed=1)
    kinds = {t["value"].removeprefix("<image>\n").split(":")[0] for t in convs[0][0::2]}
    assert len(kinds) == 2  # both REG and REC drawn for 10 pairs with this seed
    assert format_vg(region_item([region(i) for i in range(9)]), seed=0) == []
    assert len(format_vg(region_item([region(i) for i in range(9)]), seed=0, min_regions=5)[0]) == 18
    spec = SPEC_TYPES["vg"](choose="all")
    assert count_conversations(item, spec) == 1
    assert count_conversations(region_item([region(i) for i in range(9)]), spec) == 0


def test_refcoco_chunks_of_nine():
    item = region_item(
        [region(i) for i in range(20)], source="refcoco", key="refcoco-0", width=640, height=480
    )
    convs = format_refcoco(item, seed=0, region_tasks=["reg"])
    assert [len(c) // 2 for c in convs] == [9, 9, 2]
    assert all(c[0]["value"].startswith("<image>\n") for c in convs)
    assert sum("<image>" in t["value"] for c in convs for t in c) == 3
    answers = sorted(t["value"] for c in convs for t in c[1::2])
    assert answers == sorted(f"Thing {i}." for i in range(20))
    assert [t["value"] for t in convs[0][1::2]] != [f"Thing {i}." for i in range(9)]  # shuffled
    assert count_conversations(item, SPEC_TYPES["refcoco"](choose="all")) == 3
    assert format_refcoco(item, seed=0) == format_refcoco(item, seed=0)


def test_format_item_rejects_wrong_kind():
    item = region_item([region(0)])
    with pytest.raises(FormatError, match="expected a VQAItem"):
        format_item(item, SPEC_TYPES["vqav2"](choose="all"), seed=0)


def test_prompts_are_known():
    for prompt in formats.KNOWN_PROMPTS:
        assert prompt.strip() == prompt
