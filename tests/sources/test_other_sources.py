"""A-OKVQA, TextCaps, Visual Genome, RefCOCO: real raw layouts -> exact items, drops and refusals."""

from __future__ import annotations

import os
import pickle

import pytest

from datamix.fileio import RawFormatError
from datamix.normalize import NormalizeError, normalize_source
from datamix.schema import Choice, Region
from datamix.sources.refcoco import SafeUnpickler, safe_load_pickle

from .helpers import reasons, run


def test_aokvqa_train_only_grouped_per_image(world):
    world.image("coco/train2017/000000299207.jpg")
    rec = {
        "split": "train",
        "image_id": 299207,
        "question_id": "22MexNkBPpdZGX6sxbxVBH",
        "question": "What is the man by the bags awaiting?",
        "choices": ["skateboarder", "train", "delivery", "cab"],
        "correct_choice_idx": 3,
        "direct_answers": ["cab", "taxi"],
        "difficult_direct_answer": False,
        "rationales": ["a", "b", "c"],
    }
    world.json(
        "aokvqa",
        "aokvqa_v1p0_train.json",
        [
            rec,
            {**rec, "question_id": "11aaa", "question": "What color?", "correct_choice_idx": 0},
            {**rec, "split": "val", "question_id": "v1"},
            {**rec, "question_id": "bad", "correct_choice_idx": 4},
            {**rec, "question_id": "noimg", "image_id": 1},
        ],
    )
    items, drops, stats = run(world.root, "aokvqa")
    assert len(items) == 1
    assert items[0].id == "000000299207" and items[0].image == "coco/train2017/000000299207.jpg"
    same = {"choices": ("skateboarder", "train", "delivery", "cab"), "direct_answers": ("cab", "taxi")}
    assert items[0].questions == (
        Choice(question_id="11aaa", question="What color?", correct=0, **same),
        Choice(
            question_id="22MexNkBPpdZGX6sxbxVBH",
            question="What is the man by the bags awaiting?",
            correct=3,
            **same,
        ),
    )
    assert reasons(drops) == [("3", "bad_value"), ("image_id=1", "image_missing")]
    assert stats["counts"] == {"questions": 2, "skipped_split_val": 1}


def _caption(image_id, cid, text, w=1024, h=768):
    return {
        "image_id": image_id,
        "image_classes": ["Bottle"],
        "flickr_original_url": "u",
        "flickr_300k_url": "u",
        "image_width": w,
        "image_height": h,
        "set_name": "train",
        "image_name": image_id,
        "image_path": f"train/{image_id}.jpg",
        "caption_id": cid,
        "caption_str": text,
        "caption_tokens": text.lower().split(),
        "reference_strs": [text],
        "reference_tokens": [[]],
    }


def test_textcaps_grouped_with_ocr_tokens(world):
    world.image("textvqa/train_images/011e7e629fb9ae7b.jpg")
    world.image("textvqa/train_images/00aa.jpg")
    world.json(
        "textcaps",
        "TextCaps_0.1_train.json",
        {
            "dataset_type": "train",
            "dataset_name": "textcaps",
            "dataset_version": "0.1",
            "data": [
                _caption("011e7e629fb9ae7b", 7, "A bottle of Listerine on a shelf."),
                _caption("011e7e629fb9ae7b", 5, "Listerine mouthwash."),
                _caption("00aa", 1, "A sign.", 640, 480),
                _caption("missing", 1, "Gone."),
                {"image_id": "00aa", "caption_id": 2},
            ],
        },
    )
    world.json(
        "textcaps",
        "TextVQA_Rosetta_OCR_v0.2_train.json",
        {"data": [{"image_id": "011e7e629fb9ae7b", "ocr_tokens": ["LISTERINE", "", "cool"], "ocr_info": []}]},
    )
    items, drops, stats = run(world.root, "textcaps")
    assert [(i.id, i.image, i.width, i.height, i.captions, i.ocr_tokens) for i in items] == [
        ("00aa", "textvqa/train_images/00aa.jpg", 640, 480, ("A sign.",), ()),
        (
            "011e7e629fb9ae7b",
            "textvqa/train_images/011e7e629fb9ae7b.jpg",
            1024,
            768,
            ("Listerine mouthwash.", "A bottle of Listerine on a shelf."),
            ("LISTERINE", "cool"),
        ),
    ]
    assert reasons(drops) == [("4", "missing_field"), ("image_id=missing", "image_missing")]
    assert stats["warnings"] == []


def test_textcaps_without_ocr_file_warns(world):
    world.image("textvqa/train_images/00aa.jpg")
    world.json("textcaps", "TextCaps_0.1_train.json", {"data": [_caption("00aa", 1, "A sign.")]})
    items, _, stats = run(world.root, "textcaps")
    assert items[0].ocr_tokens is None
    assert len(stats["warnings"]) == 1 and "no OCR token file" in stats["warnings"][0]


def test_visual_genome_streams_regions_and_folders(world):
    world.image("vg/VG_100K/1.jpg")
    world.image("vg/VG_100K_2/2.jpg")
    world.image("vg/VG_100K_2/3.jpg", data=b"")  # empty file, as ~170 real ones
    world.json(
        "vg",
        "image_data.json",
        [
            {
                "image_id": 1,
                "url": "https://cs.stanford.edu/people/rak248/VG_100K/1.jpg",
                "width": 800,
                "height": 600,
                "coco_id": None,
                "flickr_id": 123,
            },
            {
                "id": 2,
                "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/2.jpg",
                "width": 500,
                "height": 333,
                "coco_id": 42,
                "flickr_id": None,
            },
            {
                "image_id": 3,
                "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/3.jpg",
                "width": 10,
                "height": 10,
            },
            {"image_id": 4, "url": "https://example.org/elsewhere/4.jpg", "width": 10, "height": 10},
        ],
    )
    world.json(
        "vg",
        "region_descriptions.json",
        [
            {
                "id": 1,
                "regions": [
                    {
                        "region_id": 1382,
                        "image_id": 1,
                        "phrase": "the clock is green in colour",
                        "x": 421,
                        "y": 57,
                        "width": 82,
                        "height": 139,
                    },
                    {
                        "region_id": 1383,
                        "image_id": 1,
                        "phrase": "sky ",
                        "x": 0,
                        "y": 0,
                        "width": 0,
                        "height": 5,
                    },
                ],
            },
            {
                "image_id": 2,
                "regions": [
                    {
                        "region_id": 7,
                        "image_id": 2,
                        "phrase": "a man",
                        "x": 1.5,
                        "y": 2,
                        "width": 30,
                        "height": 40,
                    }
                ],
            },
            {"id": 3, "regions": [{"region_id": 9, "phrase": "x", "x": 0, "y": 0, "width": 1, "height": 1}]},
            {"id": 5, "regions": []},
        ],
    )
    items, drops, stats = run(world.root, "vg")
    assert [(i.id, i.image, i.width, i.height, i.regions) for i in items] == [
        (
            "1",
            "vg/VG_100K/1.jpg",
            800,
            600,
            (
                Region(
                    region_id="1382", phrase="the clock is green in colour", x=421.0, y=57.0, w=82.0, h=139.0
                ),
            ),
        ),
        (
            "2",
            "vg/VG_100K_2/2.jpg",
            500,
            333,
            (Region(region_id="7", phrase="a man", x=1.5, y=2.0, w=30.0, h=40.0),),
        ),
    ]
    assert reasons(drops) == [
        ("3", "bad_value"),
        ("1/1383", "bad_box"),
        ("2", "image_empty"),
        ("3", "missing_annotation"),
    ]
    assert [d["file"] for d in drops] == ["image_data.json"] + ["region_descriptions.json"] * 3
    assert stats["counts"] == {"images_without_regions": 0, "regions": 2}


def test_visual_genome_unparseable_file_names_position(world):
    world.json("vg", "image_data.json", [])
    path = world.root / "raw" / "vg" / "region_descriptions.json"
    path.write_text('[{"id": 1, "regions": [}]')
    with pytest.raises(NormalizeError, match=r"region_descriptions.json: not valid JSON near byte \d+"):
        normalize_source("vg", world.root)
    assert not (world.root / "normalized" / "vg.parquet").exists()
    assert not (world.root / "normalized" / "vg.stats.json").exists()


def _refs(split_of_second="val"):
    sent = lambda i, t: {"sent_id": i, "raw": t.capitalize(), "sent": t, "tokens": t.split()}  # noqa: E731
    return [
        {
            "ref_id": 14024,
            "ann_id": 1706357,
            "image_id": 421086,
            "category_id": 1,
            "split": "train",
            "sent_ids": [39906, 39907],
            "file_name": "COCO_train2014_000000421086_4.jpg",
            "sentences": [sent(39906, "left white shirt"), sent(39907, "white shirt")],
        },
        {
            "ref_id": 2,
            "ann_id": 1706357,
            "image_id": 421086,
            "category_id": 1,
            "split": split_of_second,
            "sent_ids": [1],
            "file_name": "x",
            "sentences": [sent(1, "val one")],
        },
        {
            "ref_id": 3,
            "ann_id": 999,
            "image_id": 421086,
            "category_id": 1,
            "split": "train",
            "sent_ids": [2],
            "file_name": "x",
            "sentences": [sent(2, "lost box")],
        },
    ]


def _instances():
    return {
        "images": [
            {"id": 421086, "file_name": "COCO_train2014_000000421086.jpg", "width": 640, "height": 480}
        ],
        "annotations": [
            {
                "id": 1706357,
                "image_id": 421086,
                "bbox": [10.5, 20, 100, 200],
                "category_id": 1,
                "segmentation": [[]],
                "area": 1.0,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }


def test_refcoco_unions_three_datasets_train_only(world):
    world.image("coco/train2017/000000421086.jpg")
    for ds, refs in (("refcoco", "refs(unc).p"), ("refcoco+", "refs(unc).p"), ("refcocog", "refs(umd).p")):
        world.json("refcoco", f"{ds}/instances.json", _instances())
        world.pickle("refcoco", f"{ds}/{refs}", _refs() if ds != "refcocog" else _refs()[:1])
    items, drops, stats = run(world.root, "refcoco")
    assert len(items) == 1
    item = items[0]
    assert (item.id, item.image, item.width, item.height) == (
        "000000421086",
        "coco/train2017/000000421086.jpg",
        640,
        480,
    )
    assert [(r.group, r.region_id, r.phrase, r.x, r.y, r.w, r.h) for r in item.regions] == [
        (ds, rid, text, 10.5, 20.0, 100.0, 200.0)
        for ds in ("refcoco", "refcoco+", "refcocog")
        for rid, text in (("14024:39906", "left white shirt"), ("14024:39907", "white shirt"))
    ]
    assert reasons(drops) == [("3", "missing_annotation"), ("3", "missing_annotation")]
    assert stats["counts"] == {"pairs": 6, "skipped_split_val": 2}


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_hostile_pickle_is_refused_without_running(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    world.image("coco/train2017/000000421086.jpg")
    world.json("refcoco", "refcoco/instances.json", _instances())
    world.pickle("refcoco", "refcoco/refs(unc).p", [{"ref_id": 1, "payload": _Evil()}])
    with pytest.raises(NormalizeError, match=r"refs\(unc\)\.p: refused global posix\.system"):
        normalize_source("refcoco", world.root)
    assert not (tmp_path / "pwned").exists()


def test_safe_unpickler_admits_plain_data_only(tmp_path):
    path = tmp_path / "ok.p"
    data = [{"a": 1, "b": [1.5, "x", None, True], "c": (1, 2), "d": {3, 4}}]
    path.write_bytes(pickle.dumps(data, protocol=2))
    assert safe_load_pickle(path) == data
    bad = tmp_path / "bad.p"
    bad.write_bytes(pickle.dumps([Region(region_id="", phrase="", x=0, y=0, w=1, h=1)], protocol=2))
    with pytest.raises(RawFormatError, match="refused global datamix.schema.Region"):
        safe_load_pickle(bad)
    trunc = tmp_path / "trunc.p"
    trunc.write_bytes(pickle.dumps(data, protocol=2)[:10])
    with pytest.raises(RawFormatError, match="not a readable pickle"):
        safe_load_pickle(trunc)
    assert issubclass(SafeUnpickler, pickle.Unpickler)
