"""VQAv2, OK-VQA, GQA, OCR-VQA: real raw layouts -> one item per image, exact QAs and drops."""

from __future__ import annotations

import io

from PIL import Image

from datamix.schema import QA, VQAItem

from .helpers import reasons, run


def _answers(words, field="answer"):
    return [{"answer_id": i + 1, field: w, "answer_confidence": "yes"} for i, w in enumerate(words)]


def test_vqav2_groups_per_image_in_question_order(world):
    world.image("coco/train2017/000000123456.jpg")
    world.image("coco/train2017/000000000009.jpg")
    world.json(
        "vqav2",
        "v2_OpenEnded_mscoco_train2014_questions.json",
        {
            "info": {},
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "license": {},
            "data_subtype": "train2014",
            "questions": [
                {"image_id": 123456, "question": "How many people are visible?", "question_id": 123456001},
                {"image_id": 123456, "question": "What color is the bus?", "question_id": 123456000},
                {"image_id": 9, "question": "Is it raining?", "question_id": 9000},
                {"image_id": 777, "question": "Where?", "question_id": 777000},  # image absent
                {"image_id": 9, "question": "Unannotated?", "question_id": 9001},
                {"image_id": "9", "question": "Bad id type", "question_id": 9002},
            ],
        },
    )
    world.json(
        "vqav2",
        "v2_mscoco_train2014_annotations.json",
        {
            "info": {},
            "license": {},
            "data_subtype": "train2014",
            "data_type": "mscoco",
            "annotations": [
                {
                    "question_id": 123456000,
                    "image_id": 123456,
                    "question_type": "what color is the",
                    "answer_type": "other",
                    "multiple_choice_answer": "red",
                    "answers": _answers(["red"] * 9 + ["dark red"]),
                },
                {
                    "question_id": 123456001,
                    "image_id": 123456,
                    "question_type": "how many",
                    "answer_type": "number",
                    "multiple_choice_answer": "3",
                    "answers": _answers(["3", "3", "4"]),
                },
                {
                    "question_id": 9000,
                    "image_id": 9,
                    "question_type": "is it",
                    "answer_type": "yes/no",
                    "multiple_choice_answer": "no",
                    "answers": _answers(["no"]),
                },
                {
                    "question_id": 777000,
                    "image_id": 777,
                    "question_type": "where",
                    "answer_type": "other",
                    "multiple_choice_answer": "park",
                    "answers": _answers(["park"]),
                },
                {
                    "question_id": 5555,
                    "image_id": 5,
                    "question_type": "x",
                    "answer_type": "other",
                    "multiple_choice_answer": "x",
                    "answers": _answers(["x"]),
                },
            ],
        },
    )
    items, drops, stats = run(world.root, "vqav2")
    assert items == [
        VQAItem(
            key="vqav2-00000000",
            source="vqav2",
            id="000000000009",
            image="coco/train2017/000000000009.jpg",
            qas=(QA(question_id="9000", question="Is it raining?", answer="no", answers=("no",)),),
        ),
        VQAItem(
            key="vqav2-00000001",
            source="vqav2",
            id="000000123456",
            image="coco/train2017/000000123456.jpg",
            qas=(
                QA(
                    question_id="123456000",
                    question="What color is the bus?",
                    answer="red",
                    answers=tuple(["red"] * 9 + ["dark red"]),
                ),
                QA(
                    question_id="123456001",
                    question="How many people are visible?",
                    answer="3",
                    answers=("3", "3", "4"),
                ),
            ),
        ),
    ]
    assert sorted(reasons(drops)) == sorted(
        [
            ("9001", "missing_annotation"),
            ("5", "bad_type"),
            ("5555", "orphan_annotation"),
            ("image_id=777", "image_missing"),
        ]
    )
    assert stats["counts"] == {"qas": 3, "questions": 5}


def test_okvqa_keeps_raw_answers_without_consensus(world):
    world.image("coco/train2017/000000000517.jpg")
    world.json(
        "okvqa",
        "OpenEnded_mscoco_train2014_questions.json",
        {
            "questions": [
                {"image_id": 517, "question": "What sport can you use this for?", "question_id": 5175}
            ]
        },
    )
    answers = [
        {"answer_id": i + 1, "raw_answer": r, "answer_confidence": "yes", "answer": s}
        for i, (r, s) in enumerate([("racing", "race"), ("racing", "race"), ("motocross", "motocross")])
    ]
    world.json(
        "okvqa",
        "mscoco_train2014_annotations.json",
        {
            "annotations": [
                {
                    "question_id": 5175,
                    "image_id": 517,
                    "question_type": "one",
                    "answer_type": "other",
                    "answers": answers,
                }
            ]
        },
    )
    items, drops, _ = run(world.root, "okvqa")
    assert items[0].qas == (
        QA(
            question_id="5175",
            question="What sport can you use this for?",
            answer=None,
            answers=("racing", "racing", "motocross"),
        ),
    )
    assert items[0].id == "000000000517" and drops == []


def test_gqa_dict_keyed_by_question_id(world):
    world.image("gqa/images/2354786.jpg")
    world.image("gqa/images/n161313.jpg")
    full = {
        "fullAnswer": "Yes, the sky is dark.",
        "isBalanced": True,
        "groups": {"global": None, "local": "06-sky_dark"},
        "types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"},
        "semantic": [{"operation": "select", "dependencies": [], "argument": "sky (2486325)"}],
        "semanticStr": "select: sky",
        "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
        "entailed": ["02930160"],
        "equivalent": ["02930152"],
    }
    world.json(
        "gqa",
        "train_balanced_questions.json",
        {
            "02930152": {"question": "Is the sky dark?", "imageId": "2354786", "answer": "yes", **full},
            "0293015": {"question": "What is on the table?", "imageId": "2354786", "answer": "cup", **full},
            "201307251": {"question": "Is it day?", "imageId": "n161313", "answer": "no", **full},
            "3": {"question": "Lost?", "imageId": "99", "answer": "no", **full},
            "4": {"question": "No answer", "imageId": "2354786", **full},
        },
    )
    items, drops, stats = run(world.root, "gqa")
    assert [(i.id, i.image, [(q.question_id, q.question, q.answer) for q in i.qas]) for i in items] == [
        (
            "2354786",
            "gqa/images/2354786.jpg",
            [("0293015", "What is on the table?", "cup"), ("02930152", "Is the sky dark?", "yes")],
        ),
        ("n161313", "gqa/images/n161313.jpg", [("201307251", "Is it day?", "no")]),
    ]
    assert sorted(reasons(drops)) == [("4", "missing_field"), ("imageId=99", "image_missing")]
    assert stats["counts"]["questions"] == 5


def _bytes(fmt: str, size=(10, 14)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (0, 90, 200)).save(buf, format=fmt)
    return buf.getvalue()


def test_ocrvqa_train_split_and_decoding(world):
    good = _bytes("JPEG")
    world.image("ocr_vqa/images/761183272.jpg", data=good)
    world.image("ocr_vqa/images/140031996X.jpg", data=_bytes("GIF"))  # GIF bytes under .jpg: kept
    world.image("ocr_vqa/images/0001.jpg", data=_bytes("PNG"))
    world.image("ocr_vqa/images/111.jpg", data=good[: len(good) // 2])  # truncated
    world.image("ocr_vqa/images/222.jpg", data=good)
    book = {
        "imageURL": "http://ecx.images-amazon.com/images/I/61Y5cOdHJbL.jpg",
        "title": "T",
        "authorName": "A",
        "genre": "Calendars",
    }
    world.json(
        "ocrvqa",
        "dataset.json",
        {
            "761183272": {
                **book,
                "questions": ["Who wrote this book?", "Is this a games related book?"],
                "answers": ["Sandra Boynton", "No"],
                "split": 1,
            },
            "140031996X": {
                **book,
                "questions": ["What is the genre of this book?"],
                "answers": ["Travel"],
                "split": 1,
            },
            "0001": {**book, "questions": ["Q?"], "answers": ["A"], "split": 2},
            "111": {**book, "questions": ["Q?"], "answers": ["A"], "split": 1},
            "222": {**book, "questions": ["Q?", "R?"], "answers": ["A"], "split": 1},
            "333": {**book, "questions": ["Q?"], "answers": ["A"], "split": 1},
        },
    )
    items, drops, stats = run(world.root, "ocrvqa")
    assert [
        (i.id, i.image, i.width, i.height, [(q.question_id, q.question, q.answer) for q in i.qas])
        for i in items
    ] == [
        (
            "140031996X",
            "ocr_vqa/images/140031996X.jpg",
            10,
            14,
            [("140031996X-0", "What is the genre of this book?", "Travel")],
        ),
        (
            "761183272",
            "ocr_vqa/images/761183272.jpg",
            10,
            14,
            [
                ("761183272-0", "Who wrote this book?", "Sandra Boynton"),
                ("761183272-1", "Is this a games related book?", "No"),
            ],
        ),
    ]
    assert reasons(drops) == [("111", "image_undecodable"), ("222", "bad_value"), ("333", "image_missing")]
    assert stats["counts"]["skipped_split_2"] == 1
