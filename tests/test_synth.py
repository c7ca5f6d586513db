"""datamix.synth: determinism, real raw formats, annotations that agree with the drawn pixels."""

from __future__ import annotations

import json
import pickle
import pickletools
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from datamix.synth import (
    COLORS,
    MAX_SIDE,
    MIN_SIDE,
    SHAPES,
    SOURCES,
    draw_scene,
    nearest_color,
    render_scene,
    synth,
)

RAW_FILES = {
    "llava_instruct": ["llava_instruct_150k.json"],
    "sharegpt": ["ShareGPT_V3_unfiltered_cleaned_split.json"],
    "vqav2": ["v2_OpenEnded_mscoco_train2014_questions.json", "v2_mscoco_train2014_annotations.json"],
    "gqa": ["train_balanced_questions.json"],
    "okvqa": ["OpenEnded_mscoco_train2014_questions.json", "mscoco_train2014_annotations.json"],
    "aokvqa": ["aokvqa_v1p0_train.json"],
    "ocrvqa": ["dataset.json"],
    "textcaps": ["TextCaps_0.1_train.json", "TextVQA_Rosetta_OCR_v0.2_train.json"],
    "vg": ["image_data.json", "region_descriptions.json"],
    "refcoco": [
        "refcoco/instances.json",
        "refcoco/refs(unc).p",
        "refcoco+/instances.json",
        "refcoco+/refs(unc).p",
        "refcocog/instances.json",
        "refcocog/refs(umd).p",
    ],
    "llava_pretrain": ["blip_laion_cc_sbu_558k.json"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("synth")
    counts = synth(root, "tiny", seed=0)
    return root, counts


def _raw(root: Path, source: str, name: str):
    path = root / "raw" / source / name
    if name.endswith(".p"):
        with open(path, "rb") as f:
            return pickle.load(f)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _present_colors(image: Image.Image, min_pixels: int = 80) -> set[str]:
    """Palette colours covering at least `min_pixels` (pixels within 60 of a palette colour)."""
    pixels = Counter(zip(*[iter(image.convert("RGB").tobytes())] * 3, strict=True))
    counts: Counter[str] = Counter()
    for (r, g, b), n in pixels.items():
        name = nearest_color((r, g, b))
        cr, cg, cb = COLORS[name]
        if (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2 < 60**2:
            counts[name] += n
    return {c for c, n in counts.items() if n >= min_pixels}


def _center_color(root: Path, rel: str, box_xywh: tuple[float, float, float, float]) -> str:
    x, y, w, h = box_xywh
    with Image.open(root / "images" / rel) as im:
        return nearest_color(im.convert("RGB").getpixel((int(x + w / 2), int(y + h / 2))))


# --------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert synth(a, "tiny", seed=3) == synth(b, "tiny", seed=3)
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    assert [k for k in fa if fa[k] != fb[k]] == []
    synth(c, "tiny", seed=4)
    fc = _files(c)
    assert (
        fc["raw/vqav2/v2_OpenEnded_mscoco_train2014_questions.json"]
        != fa["raw/vqav2/v2_OpenEnded_mscoco_train2014_questions.json"]
    )


def test_refuses_a_root_with_data_it_did_not_write(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datamix.cli import app
    from datamix.synth import SynthError

    real = tmp_path / "real" / "raw" / "vqav2" / "v2_mscoco_train2014_annotations.json"
    real.parent.mkdir(parents=True)
    real.write_text('{"annotations": []}')
    with pytest.raises(SynthError, match=r"already holds data that synth did not write \(raw/"):
        synth(tmp_path / "real", "tiny")
    res = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "real")])
    assert res.exit_code == 2
    assert "--force" in res.output and "Traceback" not in res.output
    assert real.read_text() == '{"annotations": []}'  # nothing written
    assert sorted(p.name for p in (tmp_path / "real").rglob("*")) == sorted([real.name, "raw", "vqav2"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(SynthError, match="is not a folder"):
        synth(tmp_path / "file", "tiny")
    # --force writes over it; a root synth made itself is rewritten without --force
    res = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "real"), "--force"])
    assert res.exit_code == 0, res.output
    assert real.read_text() != '{"annotations": []}'
    assert json.loads((tmp_path / "real" / "raw" / "synth.json").read_text())["scale"] == "tiny"
    synth(tmp_path / "real", "tiny")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        synth(tmp_path, "huge")
    with pytest.raises(ValueError, match="seed"):
        synth(tmp_path, "tiny", seed="0")  # type: ignore[arg-type]


def test_one_writer_module_per_source() -> None:
    import importlib

    from datamix.synth.volume import WRITERS

    for source in SOURCES:
        module = importlib.import_module(f"datamix.synth.{source}")
        assert module.SOURCE == source
        assert callable(module.write_demo) and callable(module.write_volume), source
    assert list(WRITERS) == list(SOURCES)


def test_counts_and_every_official_file(world) -> None:
    root, counts = world
    assert list(counts) == list(SOURCES)
    for source, n in counts.items():
        assert 8 <= n <= 30, (source, n)
    for source, names in RAW_FILES.items():
        for name in names:
            assert (root / "raw" / source / name).is_file(), (source, name)
    meta = json.loads((root / "raw" / "synth.json").read_text())
    assert meta["scale"] == "tiny" and meta["seed"] == 0 and meta["counts"] == counts


def test_conversation_sources_structure(world) -> None:
    root, _ = world
    li = _raw(root, "llava_instruct", "llava_instruct_150k.json")
    assert isinstance(li, list)
    good = [r for r in li if "conversations" in r]
    assert all(len(r["id"]) == 12 and r["image"] == f"{r['id']}.jpg" for r in good)
    firsts = [r["conversations"][0]["value"] for r in good]
    assert any(v.endswith("\n<image>") for v in firsts) and any(v.startswith("<image>\n") for v in firsts)
    assert max(Counter(r["id"] for r in good).values()) >= 2  # several records per image
    assert len(li) - len(good) >= 1  # planted record without conversations

    sg = _raw(root, "sharegpt", "ShareGPT_V3_unfiltered_cleaned_split.json")
    assert all("image" not in r and r["id"].rsplit("_", 1)[1].isdigit() for r in sg)
    assert any(r["conversations"][0]["from"] == "gpt" for r in sg)
    assert any("<image>" in t["value"] for r in sg for t in r["conversations"])
    assert any(t["value"] == "" for r in sg for t in r["conversations"])

    lcs = _raw(root, "llava_pretrain", "blip_laion_cc_sbu_558k.json")
    for r in lcs:
        assert len(r["id"]) == 9 and r["image"] == f"{r['id'][:5]}/{r['id']}.jpg"
    human = [r["conversations"][0]["value"] for r in lcs if "conversations" in r]
    assert all("<image>" in v for v in human)
    assert all(
        r["conversations"][1]["value"] == r["conversations"][1]["value"].lower()
        for r in lcs
        if "conversations" in r
    )


def test_vqa_sources_structure(world) -> None:
    root, _ = world
    q = _raw(root, "vqav2", "v2_OpenEnded_mscoco_train2014_questions.json")
    a = _raw(root, "vqav2", "v2_mscoco_train2014_annotations.json")
    assert list(q) == ["info", "task_type", "data_type", "license", "data_subtype", "questions"]
    assert set(a) == {"info", "license", "data_subtype", "annotations", "data_type"}
    assert q["data_subtype"] == "train2014"
    for ann in a["annotations"]:
        assert isinstance(ann["image_id"], int) and isinstance(ann["question_id"], int)
        assert [x["answer_id"] for x in ann["answers"]] == list(range(1, 11))
        assert (
            Counter(x["answer"] for x in ann["answers"]).most_common(1)[0][0] == ann["multiple_choice_answer"]
        )

    ok = _raw(root, "okvqa", "mscoco_train2014_annotations.json")
    answers = [x for ann in ok["annotations"] if "answers" in ann for x in ann["answers"]]
    assert answers and all(
        set(x) == {"answer_id", "raw_answer", "answer_confidence", "answer"} for x in answers
    )

    gqa = _raw(root, "gqa", "train_balanced_questions.json")
    assert isinstance(gqa, dict) and list(gqa) == sorted(gqa)
    fields = {"question", "imageId", "answer", "fullAnswer", "isBalanced", "groups", "types", "semantic",
              "semanticStr", "annotations", "entailed", "equivalent"}  # fmt: skip
    assert sum(set(v) == fields for v in gqa.values()) >= len(gqa) - 2
    assert any(v["imageId"].startswith("n") for v in gqa.values())

    ao = _raw(root, "aokvqa", "aokvqa_v1p0_train.json")
    for r in ao:
        assert r["split"] == "train" and isinstance(r["image_id"], int) and len(r["question_id"]) == 22
        assert len(r["direct_answers"]) == 10 and len(r["rationales"]) == 3
        if isinstance(r["choices"], list):
            assert len(r["choices"]) == 4 and 0 <= r["correct_choice_idx"] < 4


def test_refcoco_pickles_hold_plain_data_only(world) -> None:
    root, _ = world
    for name in ("refcoco/refs(unc).p", "refcoco+/refs(unc).p", "refcocog/refs(umd).p"):
        data = (root / "raw" / "refcoco" / name).read_bytes()
        ops = {op.name for op, _, _ in pickletools.genops(data)}
        assert data[:2] == b"\x80\x02"  # protocol 2
        assert not ops & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ"}, (name, ops)
        refs = _raw(root, "refcoco", name)
        assert {r["split"] for r in refs} >= {"train"}
        keys = {"ref_id", "ann_id", "image_id", "category_id", "split", "sent_ids", "sentences", "file_name"}
        assert all(set(r) == keys for r in refs)


def test_coco_ids_are_shared_between_sources(world) -> None:
    root, _ = world
    vqa = {
        q["image_id"]
        for q in _raw(root, "vqav2", "v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    }
    others = {int(r["id"]) for r in _raw(root, "llava_instruct", "llava_instruct_150k.json")}
    others |= {r["image_id"] for r in _raw(root, "aokvqa", "aokvqa_v1p0_train.json")}
    others |= {r["image_id"] for r in _raw(root, "refcoco", "refcoco/refs(unc).p")}
    assert vqa & others


def test_draw_scene_invariants() -> None:
    for seed in range(60):
        width, height = (112, 112) if seed % 3 else (140, 112)
        image, shapes = render_scene(seed, width, height)
        assert image.size == (width, height) and 1 <= len(shapes) <= 3
        assert len({s.kind for s in shapes}) == len(shapes) and len({s.color for s in shapes}) == len(shapes)
        for s in shapes:
            x1, y1, x2, y2 = s.box
            assert s.kind in SHAPES and s.color in COLORS
            assert MIN_SIDE <= x2 - x1 <= MAX_SIDE and x2 - x1 == y2 - y1
            assert 0 <= x1 and 0 <= y1 and x2 <= width and y2 <= height
            assert image.getpixel(s.center) == COLORS[s.color]
            if s.kind != "square":  # a circle's / triangle's top-left box corner is background
                assert image.getpixel((x1, y1)) == (255, 255, 255)
        for i, a in enumerate(shapes):
            for b in shapes[i + 1 :]:
                assert (
                    a.box[2] <= b.box[0]
                    or b.box[2] <= a.box[0]
                    or a.box[3] <= b.box[1]
                    or b.box[3] <= a.box[1]
                )
    import random

    assert draw_scene(random.Random(5), n_shapes=2)[1] == draw_scene(random.Random(5), n_shapes=2)[1]


def test_vqa_answers_agree_with_pixels(world) -> None:
    root, _ = world
    q = _raw(root, "vqav2", "v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    a = {
        x["question_id"]: x
        for x in _raw(root, "vqav2", "v2_mscoco_train2014_annotations.json")["annotations"]
    }
    checked = 0
    for question in q:
        path = root / "images" / f"coco/train2017/{question['image_id']:012d}.jpg"
        if "question" not in question or not path.exists():
            continue
        with Image.open(path) as im:
            colors = _present_colors(im)
        answer = a[question["question_id"]]["multiple_choice_answer"]
        if question["question"].startswith("What color is the"):
            assert answer in colors, (question, colors)
            checked += 1
        elif question["question"] == "How many shapes are there?":
            assert int(answer) == len(colors), (question, colors)
            checked += 1
    assert checked >= 20


def test_choice_questions_offer_the_answer_and_one_other_shape(world) -> None:
    """VQAv2 and GQA ask, for every shape, which of two shapes has its colour (the answer and
    another kind, in either order), so a model learns to read the shape words of a question."""
    root, _ = world
    choice = re.compile(r"^Which is (\w+), the (\w+) or the (\w+)\?$")
    q = _raw(root, "vqav2", "v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    a = {
        x["question_id"]: x["multiple_choice_answer"]
        for x in _raw(root, "vqav2", "v2_mscoco_train2014_annotations.json")["annotations"]
    }
    per_image: Counter[int] = Counter()
    colours: dict[int, set[str]] = {}
    for question in q:
        m = choice.match(question.get("question", ""))
        if m is None:
            if question.get("question", "").startswith("What color is the"):
                colours.setdefault(question["image_id"], set()).add(a[question["question_id"]])
            continue
        colour, first, second = m.groups()
        assert first != second and {first, second} <= set(SHAPES)
        assert a[question["question_id"]] in (first, second)
        colours.setdefault(question["image_id"], set())
        per_image[question["image_id"]] += 1
    assert per_image and all(per_image[i] == len(colours[i]) for i in per_image)

    gqa = _raw(root, "gqa", "train_balanced_questions.json")
    chosen = [  # (one planted record's question is a number)
        v
        for v in gqa.values()
        if v.get("types", {}).get("structural") == "choose" and isinstance(v["question"], str)
    ]
    assert chosen
    for v in chosen:
        m = choice.match(v["question"])
        assert m is not None and v["answer"] in m.groups()[1:]
        assert v["semanticStr"].endswith(f"choose name: {m.group(2)}|{m.group(3)} [1]")


def test_region_boxes_agree_with_pixels(world) -> None:
    root, _ = world
    data = {d["image_id"]: d for d in _raw(root, "vg", "image_data.json")}
    checked = 0
    nonsquare = 0
    for entry in _raw(root, "vg", "region_descriptions.json"):
        info = data[entry["id"]]
        folder = info["url"].split("/")[-2]
        rel = f"vg/{folder}/{entry['id']}.jpg"
        if not (root / "images" / rel).exists():
            continue
        with Image.open(root / "images" / rel) as im:
            assert im.size == (info["width"], info["height"])
        nonsquare += info["width"] != info["height"]
        for r in entry["regions"]:
            words = str(r.get("phrase", "")).split()
            box = (r["x"], r["y"], r["width"], r["height"])
            if not all(isinstance(v, int) for v in box):
                continue  # the planted bad region
            if len(words) == 2 and words[0] in COLORS and words[1] in SHAPES:
                assert _center_color(root, rel, box) == words[0]
                checked += 1
    assert checked >= 14 and nonsquare >= 1
    sizes = [len(e["regions"]) for e in _raw(root, "vg", "region_descriptions.json")]
    assert sum(n >= 10 for n in sizes) > len(sizes) // 2 and min(sizes) < 10

    inst = _raw(root, "refcoco", "refcoco+/instances.json")
    refs = _raw(root, "refcoco", "refcoco+/refs(unc).p")
    anns = {a["id"]: a for a in inst["annotations"]}
    images = {i["id"]: i for i in inst["images"]}
    cats = {c["id"]: c["name"] for c in inst["categories"]}
    checked = 0
    for ref in refs:
        ann = anns[ref["ann_id"]]
        rel = f"coco/train2017/{ref['image_id']:012d}.jpg"
        assert images[ref["image_id"]]["file_name"] == f"COCO_train2014_{ref['image_id']:012d}.jpg"
        assert ref["file_name"].startswith(f"COCO_train2014_{ref['image_id']:012d}_")
        color = _center_color(root, rel, tuple(ann["bbox"]))
        for sent in ref["sentences"]:
            assert color in sent["sent"] and cats[ref["category_id"]] in sent["sent"]
            assert sent["tokens"] == sent["sent"].split()
        checked += 1
    assert checked >= 10


def test_ocrvqa_covers_and_quirks(world) -> None:
    root, _ = world
    data = _raw(root, "ocrvqa", "dataset.json")
    formats = Counter()
    for key, book in data.items():
        assert not key.startswith("0") and book["split"] in (1, 2, 3)
        if isinstance(book["answers"], list):
            assert book["answers"][1] == book["title"] and book["answers"][0] == book["authorName"]
        path = root / "images" / f"ocr_vqa/images/{key}.jpg"
        if not path.exists():
            formats["missing"] += 1
            continue
        try:
            with Image.open(path) as im:
                fmt = im.format
                im.load()
                assert sum(1 for n in im.convert("L").histogram() if n) > 2  # rendered text, not a blank
            formats[fmt] += 1
        except OSError:
            formats["broken"] += 1
    assert formats["GIF"] == formats["PNG"] == formats["broken"] == formats["missing"] == 1
    assert formats["JPEG"] >= 8


def test_textcaps_ocr_boxes_hold_text(world) -> None:
    root, _ = world
    caps = _raw(root, "textcaps", "TextCaps_0.1_train.json")
    assert set(caps) == {"dataset_type", "dataset_name", "dataset_version", "data"}
    by_image = Counter(e["image_id"] for e in caps["data"])
    assert set(by_image.values()) == {5}
    refs = {e["image_id"]: e["reference_strs"] for e in caps["data"]}
    ocr = _raw(root, "textcaps", "TextVQA_Rosetta_OCR_v0.2_train.json")["data"]
    with_text = 0
    for rec in ocr:
        path = root / "images" / f"textvqa/train_images/{rec['image_id']}.jpg"
        if not rec["ocr_info"] or not path.exists():
            continue
        word = rec["ocr_tokens"][0]
        assert any(word in c for c in refs[rec["image_id"]])
        bb = rec["ocr_info"][0]["bounding_box"]
        with Image.open(path) as im:
            w, h = im.size
            crop = im.convert("L").crop(
                (
                    bb["top_left_x"] * w,
                    bb["top_left_y"] * h,
                    (bb["top_left_x"] + bb["width"]) * w,
                    (bb["top_left_y"] + bb["height"]) * h,
                )
            )
            assert crop.getextrema()[0] < 80  # dark text pixels inside the OCR box
        with_text += 1
    assert with_text >= 3


def test_normalize_gives_eleven_tables(world, tmp_path: Path) -> None:
    pytest.importorskip("datamix.normalize")
    from datamix.normalize import normalize
    from datamix.synth.demo import write_demo

    root, _ = world
    results = normalize(root=root)
    assert sorted(r["source"] for r in results) == sorted(SOURCES)
    assert {r["source"]: r.get("error") for r in results if r.get("error")} == {}
    assert all(r["items"] > 0 for r in results), [(r["source"], r["items"]) for r in results]
    # every planted bad record is dropped with the reason its writer typed it with, and nothing else
    planted = write_demo(tmp_path, "tiny", 0).planted  # the same seed writes the same files as `world`
    assert {r["source"]: Counter(r["drops_by_reason"]) for r in results} == {
        s: Counter({reason.value: n for reason, n in planted[s].items()}) for s in SOURCES
    }


@pytest.mark.slow
def test_small_scale(tmp_path: Path) -> None:
    counts = synth(tmp_path, "small", seed=0)
    assert counts["vqav2"] >= 1000 and counts["gqa"] >= 1000
    assert sum(counts.values()) >= 5000
