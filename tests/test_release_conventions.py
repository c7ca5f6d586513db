"""The release's conventions, each on a real record quoted from public material (issue 16).

`llava15_665k` reproduces `llava_v1_5_mix665k.json` / `blip_laion_cc_sbu_558k.json` wherever their
convention is known; `llava15_665k_fixed` holds our corrections. Every test below quotes a real
release record and/or raw record verbatim (the string literals are copied, not retyped), names where
it is quoted publicly, runs the raw side through the real normalizer and formatter (or the whole
build and export), and asserts the release's bytes. Where only one side of a pair is public, the
other side is derived by the documented rule and the test says so.

Sources (a repository path is given where the index named it; a few public copies could only be
found without their repository, as docs/sources.md allows):
- OCR-VQA raw `dataset.json` record 761183272: open-mmlab/mmpretrain, mmpretrain/datasets/ocr_vqa.py
  (https://github.com/open-mmlab/mmpretrain/blob/main/mmpretrain/datasets/ocr_vqa.py, "ann example").
- OCR-VQA release conversation ("Rough Guide Map of South Africa, Lesotho"): the TEST_CONVERSATIONS
  fixture of an NVIDIA VILA-derived tokenizer test (tests of `llava.utils.tokenizer`; docs/sources.md#ocrvqa-release
  "NVIDIA VILA unit-test fixture"); same order in the release records of books 967097339,
  1451670761 and 140031996X quoted by public prompt-rewriting scripts.
- TextCaps release record 011e7e629fb9ae7b: SSSokach/Multimodal_llava README_en.md
  (https://github.com/SSSokach/Multimodal_llava/blob/main/README_en.md, its first two turns; the
  README appends a "Thanks." turn of its own). Raw `caption_str` / `reference_strs` of the same
  image: a public TextCaps loader test fixture (tests/dataloaders/test_textcaps_loader.py of an
  unnamed repository; its URLs and caption_id are placeholders, the caption strings are TextCaps').
- LLaVA-Instruct release record 000000000113: DariaVoo/LLaVA_for_proteins,
  data_preparation/convert_data_to_llava_format.py ("Example LLAVA format"; also in docs/sources.md#image-token).
- RefCOCO release turn (coco/train2017/000000314530.jpg, `[0.61, 0.36, 0.92, 0.83]`): LLaVA issue #623
  (https://github.com/haotian-liu/LLaVA/issues/623); the box lines up with the unpadded image and
  not after expand2square. #822 (https://github.com/haotian-liu/LLaVA/issues/822) reports the same
  for another RefCOCO image and then withdraws it; later comments there stay unresolved. VG boxes
  are padded-square per #606 (https://github.com/haotian-liu/LLaVA/issues/606#issuecomment-1774076879).
- LCS-558K record 004539375: record 0 of `blip_laion_cc_sbu_558k.json`
  (https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain), printed in many public copies (a
  LLaVA fork's train.py comment prints `list_data_dict[0]`; docs/sources.md#llava_pretrain-raw); `--image_folder
  ./playground/data/LLaVA-Pretrain/images` in haotian-liu/LLaVA scripts/v1_5/pretrain.sh.
"""

from __future__ import annotations

import json
from pathlib import Path

from llava_records import coco_item

from datamix.build import build, import_llava
from datamix.formats import format_item, format_refcoco
from datamix.lint import lint_path, lint_records
from datamix.llava_json import export_llava_json, read_llava_json
from datamix.normalize import normalize_source
from datamix.recipe import load_recipe, parse_recipe
from datamix.schema import Region, RegionItem, read_items

RELEASE = load_recipe("llava15_665k")
FIXED = load_recipe("llava15_665k_fixed")
SA = "\nAnswer the question using a single word or phrase."


def h(value: str) -> dict[str, str]:
    return {"from": "human", "value": value}


def g(value: str) -> dict[str, str]:
    return {"from": "gpt", "value": value}


def items_of(root: Path, source: str) -> list:
    normalize_source(source, root, force=True)
    return list(read_items(root / "normalized" / f"{source}.parquet"))


# ------------------------------------------------------------------------------------------------
# OCR-VQA: the turns in the order of dataset.json (no shuffle)

# open-mmlab/mmpretrain mmpretrain/datasets/ocr_vqa.py, "ann example" (a raw dataset.json record)
OCRVQA_RAW = {
    "761183272": {
        "imageURL": "http://ecx.images-amazon.com/images/I/61Y5cOdHJbL.jpg",
        "questions": [
            "Who wrote this book?",
            "What is the title of this book?",
            "What is the genre of this book?",
            "Is this a games related book?",
            "What is the year printed on this calendar?",
        ],
        "answers": ["Sandra Boynton", "Mom's Family Wall Calendar 2016", "Calendars", "No", "2016"],
        "title": "Mom's Family Wall Calendar 2016",
        "authorName": "Sandra Boynton",
        "genre": "Calendars",
        "split": 1,
    }
}

# a release conversation (VILA-derived tokenizer test fixture, docs/sources.md#ocrvqa-release): author, title, genre,
# then the yes/no genre questions, the order of dataset.json's `questions`
OCRVQA_RELEASE = [
    {
        "from": "human",
        "value": "<image>\nWho is the author of this book?\nAnswer the question using a single word or phrase.",
    },
    {"from": "gpt", "value": "*"},
    {"from": "human", "value": "What is the title of this book?"},
    {"from": "gpt", "value": "Rough Guide Map of South Africa, Lesotho"},
    {"from": "human", "value": "What is the genre of this book?"},
    {"from": "gpt", "value": "Travel"},
    {"from": "human", "value": "Is this book related to Travel?"},
    {"from": "gpt", "value": "Yes"},
    {"from": "human", "value": "Is this book related to History?"},
    {"from": "gpt", "value": "No"},
]


def _qa_pairs(conv: list[dict[str, str]]) -> list[tuple[str, str]]:
    return sorted(
        (conv[i]["value"].removeprefix("<image>\n").removesuffix(SA), conv[i + 1]["value"])
        for i in range(0, len(conv), 2)
    )


def test_ocrvqa_raw_record_keeps_dataset_json_order(world):
    world.image("ocr_vqa/images/761183272.jpg")
    world.json("ocrvqa", "dataset.json", OCRVQA_RAW)
    [item] = items_of(world.root, "ocrvqa")
    assert (item.id, item.image) == ("761183272", "ocr_vqa/images/761183272.jpg")
    [conv] = format_item(item, RELEASE.sources["ocrvqa"], seed=RELEASE.seed)
    assert conv == [
        h("<image>\nWho wrote this book?" + SA),
        g("Sandra Boynton"),
        h("What is the title of this book?"),
        g("Mom's Family Wall Calendar 2016"),
        h("What is the genre of this book?"),
        g("Calendars"),
        h("Is this a games related book?"),
        g("No"),
        h("What is the year printed on this calendar?"),
        g("2016"),
    ]
    [fixed] = format_item(item, FIXED.sources["ocrvqa"], seed=FIXED.seed)
    assert fixed != conv and fixed[0]["value"].startswith("<image>\n") and fixed[0]["value"].endswith(SA)
    assert _qa_pairs(fixed) == _qa_pairs(conv)  # the same questions and answers, shuffled


def test_ocrvqa_release_conversation_reproduced(world):
    # its raw side, derived by the rule the release follows: dataset.json's questions in their order
    questions = [t["value"].removeprefix("<image>\n").removesuffix(SA) for t in OCRVQA_RELEASE[0::2]]
    answers = [t["value"] for t in OCRVQA_RELEASE[1::2]]
    book = {
        "imageURL": "http://x/1.jpg",
        "title": answers[1],
        "authorName": "*",
        "genre": "Travel",
        "split": 1,
    }
    world.image("ocr_vqa/images/1843530198.jpg")  # the fixture does not give the book id: ours
    world.json("ocrvqa", "dataset.json", {"1843530198": {**book, "questions": questions, "answers": answers}})
    [item] = items_of(world.root, "ocrvqa")
    assert format_item(item, RELEASE.sources["ocrvqa"], seed=RELEASE.seed) == [OCRVQA_RELEASE]
    assert lint_records([{"id": "1843530198", "image": item.image, "conversations": OCRVQA_RELEASE}]).clean


# ------------------------------------------------------------------------------------------------
# TextCaps: a final period where caption_str has none

TEXTCAPS_REFERENCE_STRS = [  # reference_strs of image 011e7e629fb9ae7b, as quoted (caption order)
    "Five Listerine Zero mouthwash bottles on a store shelf",
    "Many bottles of Listerine Zero are placed together.",
    "Listerine Zero mouthwash is less intense with zero alcohol.",
    "Several bottles of Listerine Zero sit on display on a shelf",
    "Listerine zero bottles which is less intense and zero alcohol.",
]

# SSSokach/Multimodal_llava README_en.md: a llava_v1_5_mix665k.json TextCaps record (first two turns)
TEXTCAPS_RELEASE = [
    {
        "from": "human",
        "value": "<image>\nProvide a one-sentence caption for the provided image.\nReference OCR token: LESS, IN, LESS, IN, SE, TENSE, ZERO, ALHC, ZERO, ALDL, LESS, INTENSE, $S, INTENSE, COHOL, RO, ALCOHOL, ZERO, ALCOHOL, LISTER, ERINE, ZER, LISTER, ZER, LISTERINE, ZERO, STERINE, ERO, MOUTHW, ProventoKill, MOUTHW, ZERO, MOUTH, Millions, Proven, illMillions, Contact, Germs, MOUTHWAS, ermstha, Cause, Breathon, Proven, Kill, Millions, Germs, CLEANMINT, Breath, Contact, CLEANMINT",
    },
    {"from": "gpt", "value": "Five Listerine Zero mouthwash bottles on a store shelf."},
]


def test_textcaps_release_record_adds_the_final_period(world):
    image_id = "011e7e629fb9ae7b"
    # the raw caption file has one entry per caption; caption ids follow reference_strs' order (our
    # assumption: the quoted fixture shows one entry only), so `caption: first` picks the first one
    entries = [
        {
            "image_id": image_id,
            "image_width": 1024,
            "image_height": 702,
            "set_name": "train",
            "image_name": image_id,
            "image_path": f"train/{image_id}.jpg",
            "caption_id": 100000000 + i,
            "caption_str": caption,
            "reference_strs": TEXTCAPS_REFERENCE_STRS,
        }
        for i, caption in enumerate(TEXTCAPS_REFERENCE_STRS)
    ]
    world.json(
        "textcaps",
        "TextCaps_0.1_train.json",
        {"dataset_type": "train", "dataset_name": "textcaps", "dataset_version": 0.1, "data": entries},
    )
    # the Rosetta OCR tokens of that image, in the order the release record lists them
    tokens = TEXTCAPS_RELEASE[0]["value"].split("Reference OCR token: ", 1)[1].split(", ")
    world.json(
        "textcaps",
        "TextVQA_Rosetta_OCR_v0.2_train.json",
        {"data": [{"image_id": image_id, "ocr_tokens": tokens}]},
    )
    world.image(f"textvqa/train_images/{image_id}.jpg")
    [item] = items_of(world.root, "textcaps")
    assert item.captions[0] == "Five Listerine Zero mouthwash bottles on a store shelf"  # raw: no period
    assert format_item(item, RELEASE.sources["textcaps"], seed=RELEASE.seed) == [TEXTCAPS_RELEASE]
    assert format_item(item, FIXED.sources["textcaps"], seed=FIXED.seed) == [TEXTCAPS_RELEASE]
    verbatim = RELEASE.sources["textcaps"].model_copy(update={"final_period": False})
    assert format_item(item, verbatim, seed=0)[0][1] == g(
        "Five Listerine Zero mouthwash bottles on a store shelf"
    )


# ------------------------------------------------------------------------------------------------
# LLaVA-Instruct: <image> where llava_instruct_150k.json has it

# DariaVoo/LLaVA_for_proteins data_preparation/convert_data_to_llava_format.py, "Example LLAVA format"
LLAVA_INSTRUCT_RELEASE = {
    "id": "000000000113",
    "image": "coco/train2017/000000000113.jpg",
    "conversations": [
        {"from": "human", "value": "What is this photo about'?\n<image>"},
        {
            "from": "gpt",
            "value": "The image depicts a man and a woman standing together near a large cake displayed on a dining table. The woman is cutting into the cake with a knife, while the man attentively stands behind her. They are surrounded by several cups placed on the table, which are likely to be used to serve drinks to celebrate the occasion.\n\nThere are two chairs in the scene, one of which is placed near the table and the other chair is positioned further back. It seems that the individuals are in the midst of an event or a celebration, as they happily cut the cake together.",
        },
    ],
}


def test_llava_instruct_keeps_the_raw_image_placement(world):
    # raw side (docs/sources.md#llava_instruct-raw, docs/sources.md#llava_instruct-release): the same record with the bare COCO file name
    raw = {**LLAVA_INSTRUCT_RELEASE, "image": "000000000113.jpg"}
    world.json("llava_instruct", "llava_instruct_150k.json", [raw])
    world.image("coco/train2017/000000000113.jpg")
    [item] = items_of(world.root, "llava_instruct")
    [conv] = format_item(item, RELEASE.sources["llava_instruct"], seed=RELEASE.seed)
    assert {"id": item.id, "image": item.image, "conversations": conv} == LLAVA_INSTRUCT_RELEASE
    [fixed] = format_item(item, FIXED.sources["llava_instruct"], seed=FIXED.seed)
    assert fixed[0] == h("<image>\nWhat is this photo about'?") and fixed[1] == conv[1]
    # the trailing `\n<image>` is the release's, not a lint violation
    assert lint_records([LLAVA_INSTRUCT_RELEASE]).clean


# ------------------------------------------------------------------------------------------------
# RefCOCO: boxes in the original-image frame; VG keeps the padded square

ISSUE_623 = [
    h(
        "<image>\nPlease provide the bounding box coordinate of the region this sentence describes: a man bent over behind the cigarette."
    ),
    g("[0.61, 0.36, 0.92, 0.83]"),
]


def test_refcoco_boxes_in_the_original_frame():
    # The issue quotes the release turn but not the COCO box; this 640x480 pixel box is ours, chosen
    # so that x / width, y / height gives the quoted values (the release's frame, LLaVA issue #623).
    item = coco_item(
        RegionItem,
        "refcoco",
        314530,
        width=640,
        height=480,
        regions=(
            Region(region_id="0", phrase="a man bent over behind the cigarette", x=390, y=173, w=199, h=225),
        ),
    )
    release, fixed = RELEASE.sources["refcoco"], FIXED.sources["refcoco"]
    assert (release.box_frame, fixed.box_frame) == ("original", "padded_square")
    assert format_refcoco(item, seed=0, region_tasks=["rec"], box_frame=release.box_frame) == [ISSUE_623]
    # after expand2square (80 px of padding above and below) the same box reads differently
    assert format_refcoco(item, seed=0, region_tasks=["rec"], box_frame=fixed.box_frame) == [
        [ISSUE_623[0], g("[0.61, 0.4, 0.92, 0.75]")]
    ]
    assert lint_records([{"id": item.id, "image": item.image, "conversations": ISSUE_623}]).clean


def test_vg_keeps_the_padded_square_in_both_recipes():
    assert RELEASE.sources["vg"].box_frame == FIXED.sources["vg"].box_frame == "padded_square"


# ------------------------------------------------------------------------------------------------
# LCS-558K: the record as released, its image path relative to the LCS-558K images folder

LCS_RECORD = {
    "id": "004539375",
    "image": "00453/004539375.jpg",
    "conversations": [
        {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
        {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress topper"},
    ],
}


def test_stage1_build_exports_the_release_record(world, tmp_path):
    world.json("llava_pretrain", "blip_laion_cc_sbu_558k.json", [LCS_RECORD])
    world.image("llava_pretrain/images/00453/004539375.jpg")
    normalize_source("llava_pretrain", world.root, force=True)
    build("llava15_pretrain_558k", world.root, out=tmp_path / "m")
    out = tmp_path / "blip_laion_cc_sbu_558k.json"
    export_llava_json(tmp_path / "m", out)
    assert json.loads(out.read_text()) == [LCS_RECORD]
    assert out.read_text().splitlines()[1] == json.dumps(LCS_RECORD, separators=(",", ":"))  # key order too
    # LLaVA's --image_folder ./playground/data/LLaVA-Pretrain/images; import-llava reads it back
    lcs = world.root / "images" / "llava_pretrain" / "images"
    assert (lcs / LCS_RECORD["image"]).is_file()
    import_llava(out, lcs, tmp_path / "back")
    back = tmp_path / "back.json"
    export_llava_json(tmp_path / "back", back)
    assert back.read_bytes() == out.read_bytes()


# ------------------------------------------------------------------------------------------------
# both recipes build and lint clean (synthetic raw data, every count turned into `choose: all`)


def _all_of(recipe):
    data = recipe.model_dump(mode="json")
    for spec in data["sources"].values():
        spec.update(choose="all", proportion=None, repeat=None)
    data["expect"] = None
    return parse_recipe(data)


def test_release_and_fixed_recipes_build_and_lint_clean(tiny_root, tmp_path):
    outs: dict[str, list[dict]] = {}
    for recipe in (RELEASE, FIXED):
        path = tmp_path / f"{recipe.name}.yaml"
        path.write_text(json.dumps(_all_of(recipe).model_dump(mode="json")))
        build(path, tiny_root, out=tmp_path / recipe.name)
        exported = tmp_path / f"{recipe.name}.json"
        export_llava_json(tmp_path / recipe.name, exported)
        assert lint_path(tmp_path / recipe.name).clean and lint_path(exported).clean
        outs[recipe.name] = list(read_llava_json(exported))
    release, fixed = outs["llava15_665k"], outs["llava15_665k_fixed"]
    assert len(release) == len(fixed)
    trailing = [
        r
        for r in release
        if r.get("image", "").startswith("coco/") and r["conversations"][0]["value"].endswith("\n<image>")
    ]
    assert trailing  # the synthetic llava_instruct_150k.json has trailing <image>s, kept as in the data
    assert not [
        r for r in fixed if "image" in r and not r["conversations"][0]["value"].startswith("<image>\n")
    ]
