"""datamix.llava_json: reading LLaVA-format files, source inference, export of a mix folder, import."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from llava_records import MC, REC, REG, SA, exchange, g, h
from mix_helpers import add_member, write_mix

from datamix.fileio import iter_json_list
from datamix.lint import lint_path
from datamix.llava_json import (
    LlavaJsonError,
    export_image_path,
    export_llava_json,
    import_records,
    infer_source,
    iter_json_array,
    mix_stage,
    read_llava_json,
    tar_members,
)

COCO = "coco/train2017/000000000001.jpg"

# One record per source, shaped like the release examples (docs/sources.md (per source: #<source>-release, e.g. docs/sources.md#vqav2-release)).
BY_SOURCE = {
    "llava_instruct": {
        "id": "000000000001",
        "image": COCO,
        "conversations": [h("What is this photo about'?\n<image>"), g("A cat.")],
    },
    "sharegpt": {
        "id": "wgByO4Y_0",
        "model": "",
        "conversations": [h("Write a haiku about rain."), g("Soft rain...")],
    },
    "vqav2": {
        "id": "000000000001",
        "image": COCO,
        "conversations": [
            h("<image>\nWhat color?" + SA),
            g("Red"),
            h("How many?"),
            g("3"),
            h("Raining?"),
            g("No"),
        ],
    },
    "okvqa": {
        "id": "000000000001",
        "image": COCO,
        "conversations": [h("<image>\nWhat sport?" + SA), g("Racing")],
    },
    "gqa": {
        "id": 2354786,
        "image": "gqa/images/2354786.jpg",
        "conversations": [h("<image>\nIs the sky dark?" + SA), g("Yes")],
    },
    "aokvqa": {
        "id": "000000299207",
        "image": "coco/train2017/000000299207.jpg",
        "conversations": [
            h("<image>\nAwaiting?\nA. train\nB. delivery\nC. cab\nD. skateboarder" + MC),
            g("C"),
        ],
    },
    "ocrvqa": {
        "id": "140031996X",
        "image": "ocr_vqa/images/140031996X.jpg",
        "conversations": [h("<image>\nWho wrote this book?" + SA), g("H. Jackson Brown")],
    },
    "textcaps": {
        "id": "011e7e629fb9ae7b",
        "image": "textvqa/train_images/011e7e629fb9ae7b.jpg",
        "conversations": [
            h("<image>\nProvide a one-sentence caption for the provided image.\nReference OCR token: A"),
            g("A bottle."),
        ],
    },
    "vg": exchange(
        "2345678", "vg/VG_100K/2345678.jpg", "<image>\n" + REG + "[0.47, 0.15, 0.52, 0.19].", "Basket."
    ),
    "refcoco": exchange(
        "000000581857",
        "coco/train2017/000000581857.jpg",
        "<image>\n" + REC + "lady.",
        "[0.24, 0.47, 0.56, 0.75]",
    ),
    "llava_pretrain": exchange(
        "004539375",
        "00453/004539375.jpg",
        "Render a clear and concise summary of the photo.\n<image>",
        "a mattress",
    ),
}


@pytest.mark.parametrize("source", sorted(BY_SOURCE))
def test_infer_source_one_record_per_source(source):
    assert infer_source(BY_SOURCE[source]) == source


def test_infer_source_edges():
    two_pairs = {"image": COCO, "conversations": [h("<image>\nA?" + SA), g("A"), h("B?"), g("B")]}
    assert infer_source(two_pairs) == "okvqa"  # at most 2 QA pairs
    three = {"image": COCO, "conversations": [*two_pairs["conversations"], h("C?"), g("C")]}
    assert infer_source(three) == "vqav2"
    assert (
        infer_source({"image": "llava_pretrain/images/00453/004539375.jpg", "conversations": []})
        == "llava_pretrain"
    )
    assert infer_source({"image": "./gqa/images/1.jpg", "conversations": []}) == "gqa"
    assert infer_source({"image": "vg/VG_100K_2/9.jpg", "conversations": []}) == "vg"
    assert infer_source(BY_SOURCE["textcaps"] | {"image": COCO}) == "unknown"  # caption prompt on COCO
    assert infer_source({"image": "sam/images/1.jpg", "conversations": []}) == "unknown"
    assert infer_source({"image": 3, "conversations": []}) == "unknown"
    assert infer_source({"id": "1", "conversations": [h("<image>\nHi"), g("Hello")]}) == "sharegpt"


# --- reading --------------------------------------------------------------------------------------------


def test_read_llava_json_coerces_ids_and_drops_null_image(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": 2354786,
                    "image": "gqa/images/2354786.jpg",
                    "conversations": [h("<image>\nQ"), g("A")],
                },
                {"id": "wgByO4Y_0", "image": None, "model": "", "conversations": [h("Q"), g("A")]},
            ]
        )
    )
    assert list(read_llava_json(path)) == [
        {"id": "2354786", "image": "gqa/images/2354786.jpg", "conversations": [h("<image>\nQ"), g("A")]},
        {"id": "wgByO4Y_0", "model": "", "conversations": [h("Q"), g("A")]},
    ]


def test_read_llava_json_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": 1, "conversations": []}\n\n{"id": "b", "conversations": []}\n')
    assert [r["id"] for r in read_llava_json(path)] == ["1", "b"]


@pytest.mark.parametrize(
    "records, message",
    [
        ([{"id": "a", "conversations": []}, ["x"]], "record 1: expected an object, got list"),
        ([{"conversations": []}], "record 0: missing 'id'"),
        ([{"id": "a"}], "record 0: 'conversations' must be a list of turns"),
        ([{"id": "a", "conversations": [{"from": "human", "value": 3}]}], "record 0: turn 0 must be"),
        ([{"id": 1.5, "conversations": []}], "record 0: 'id' must be a string or an integer"),
        (
            [{"id": "a", "image": "", "conversations": []}],
            "record 0: 'image' must be a non-empty relative path",
        ),
    ],
)
def test_read_llava_json_errors_name_file_and_record(tmp_path, records, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(LlavaJsonError) as e:
        list(read_llava_json(path))
    assert str(e.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    "content, message", [("", "empty file"), ("[1,", "not valid JSON"), ("3", "expected a JSON array")]
)
def test_read_llava_json_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LlavaJsonError, match=message):
        list(read_llava_json(path))
    with pytest.raises(LlavaJsonError, match="cannot open"):
        list(read_llava_json(tmp_path / "absent.json"))


def test_import_records_yields_sources_and_release_shape(tmp_path):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps(list(BY_SOURCE.values())))
    pairs = list(import_records(path))
    assert [source for source, _ in pairs] == list(BY_SOURCE)
    assert pairs[1][1] == {
        "id": "wgByO4Y_0",
        "conversations": BY_SOURCE["sharegpt"]["conversations"],
    }  # no model
    assert pairs[4][1] == {"id": "2354786", **{k: v for k, v in BY_SOURCE["gqa"].items() if k != "id"}}


# --- export ---------------------------------------------------------------------------------------------


def build_mix(root: Path, shards: list[list[tuple[str, str, dict]]], order: list[str]) -> Path:
    """Tars holding the given (key, source, record) samples; manifest rows in `order` (by key)."""
    return write_mix(root, shards, order=order)


def _mix(tmp_path: Path) -> Path:
    share = {k: v for k, v in BY_SOURCE["sharegpt"].items() if k != "model"}
    return build_mix(
        tmp_path / "mix",
        [
            [("gqa-0", "gqa", BY_SOURCE["gqa"]), ("sharegpt-0", "sharegpt", share)],
            [("aokvqa-0", "aokvqa", BY_SOURCE["aokvqa"])],
        ],
        order=["sharegpt-0", "aokvqa-0", "gqa-0"],
    )


EXPECTED_EXPORT = (
    "[\n"
    '{"id":"wgByO4Y_0","conversations":[{"from":"human","value":"Write a haiku about rain."},'
    '{"from":"gpt","value":"Soft rain..."}]},\n'
    '{"id":"000000299207","image":"coco/train2017/000000299207.jpg","conversations":[{"from":"human","value":'
    "\"<image>\\nAwaiting?\\nA. train\\nB. delivery\\nC. cab\\nD. skateboarder\\nAnswer with the option's letter "
    'from the given choices directly."},{"from":"gpt","value":"C"}]},\n'
    '{"id":"2354786","image":"gqa/images/2354786.jpg","conversations":[{"from":"human","value":'
    '"<image>\\nIs the sky dark?\\nAnswer the question using a single word or phrase."},{"from":"gpt","value":"Yes"}]}\n'
    "]\n"
)


def test_export_llava_json_exact(tmp_path):
    mix = _mix(tmp_path)
    out = tmp_path / "out" / "mix.json"
    assert export_llava_json(mix, out) == 3
    assert out.read_text() == EXPECTED_EXPORT
    assert [p.name for p in out.parent.iterdir()] == ["mix.json"]  # no temp file left
    assert lint_path(out).violations == ()
    assert lint_path(mix).violations == ()


def test_export_refuses_to_overwrite_without_force(tmp_path):
    mix = _mix(tmp_path)
    out = tmp_path / "mix.json"
    out.write_text("old")
    with pytest.raises(LlavaJsonError, match="exists"):
        export_llava_json(mix, out)
    assert out.read_text() == "old"
    assert export_llava_json(mix, out, force=True) == 3
    assert out.read_text() == EXPECTED_EXPORT


def test_export_of_an_empty_mix(tmp_path):
    mix = build_mix(tmp_path / "mix", [[]], order=[])
    schema = pa.schema([("key", pa.string()), ("shard", pa.string())])
    pq.write_table(pa.Table.from_pylist([], schema=schema), mix / "manifest.parquet")
    out = tmp_path / "empty.json"
    assert export_llava_json(mix, out) == 0
    assert json.loads(out.read_text()) == []


def test_export_missing_sample_fails_and_leaves_nothing(tmp_path):
    mix = _mix(tmp_path)
    with tarfile.open(mix / "shards/test-000001.tar", "w"):
        pass  # the shard of aokvqa-0, now empty
    out = tmp_path / "mix.json"
    with pytest.raises(LlavaJsonError, match=r"test-000001.tar: record 1: no sample aokvqa-0.json"):
        export_llava_json(mix, out)
    assert not out.exists()
    assert list(tmp_path.glob("mix.json*")) == []
    with pytest.raises(LlavaJsonError, match="no manifest.parquet"):
        export_llava_json(tmp_path, out)


def test_export_import_round_trip(tmp_path):
    samples = [(f"{s}-0", s, r) for s, r in BY_SOURCE.items() if s != "sharegpt"]
    mix = build_mix(tmp_path / "mix", [samples[:5], samples[5:]], order=[k for k, _, _ in samples])
    out = tmp_path / "mix.json"
    export_llava_json(mix, out)
    back = list(import_records(out))
    assert [s for s, _ in back] == [s for _, s, _ in samples]
    assert [r["conversations"] for _, r in back] == [r["conversations"] for _, _, r in samples]
    assert [r["id"] for _, r in back] == [str(r["id"]) for _, _, r in samples]


@pytest.mark.parametrize(
    ("image", "stage", "prefix", "written"),
    [
        ("coco/train2017/000000033471.jpg", 2, "auto", "coco/train2017/000000033471.jpg"),
        ("gqa/images/2354786.jpg", 2, None, "gqa/images/2354786.jpg"),
        ("ocr_vqa/images/140031996X.jpg", 2, "auto", "ocr_vqa/images/140031996X.jpg"),
        ("textvqa/train_images/011e7e629fb9ae7b.jpg", 2, "auto", "textvqa/train_images/011e7e629fb9ae7b.jpg"),
        ("vg/VG_100K/4.jpg", 2, "auto", "vg/VG_100K/4.jpg"),
        # stage 1: relative to the LCS-558K images folder, as blip_laion_cc_sbu_558k.json writes it
        ("llava_pretrain/images/00453/004539375.jpg", 1, "auto", "00453/004539375.jpg"),
        ("00453/004539375.jpg", 1, "auto", "00453/004539375.jpg"),  # an imported stage-1 file
        ("llava_pretrain/images/00453/004539375.jpg", 1, "", "llava_pretrain/images/00453/004539375.jpg"),
        (
            "coco/train2017/000000033471.jpg",
            2,
            "/data/images/",
            "/data/images/coco/train2017/000000033471.jpg",
        ),
        ("llava_pretrain/images/00453/004539375.jpg", 1, "./", "./llava_pretrain/images/00453/004539375.jpg"),
    ],
)
def test_export_image_path(image, stage, prefix, written):
    assert export_image_path(image, stage=stage, image_prefix=prefix) == written


def _stage1_mix(tmp_path: Path, summary: dict | None) -> Path:
    record = {**BY_SOURCE["llava_pretrain"], "image": "llava_pretrain/images/00453/004539375.jpg"}
    mix = build_mix(
        tmp_path / "mix", [[("llava_pretrain-0", "llava_pretrain", record)]], order=["llava_pretrain-0"]
    )
    if summary is not None:
        (mix / "summary.json").write_text(json.dumps(summary))
    return mix


@pytest.mark.parametrize(
    ("summary", "stage"),
    [
        ({"recipe_resolved": {"stage": 1}, "sources": {"llava_pretrain": {"actual": 1}}}, 1),
        ({"sources": {"llava_pretrain": {"actual": 1, "expected": None}}}, 1),  # import-llava: no recipe
        ({"sources": {"llava_pretrain": {"actual": 1}, "gqa": {"actual": 0}}}, 1),
        ({"sources": {"llava_pretrain": {"actual": 1}, "gqa": {"actual": 2}}}, 2),
        ({"recipe_resolved": {"stage": 2}, "sources": {"llava_pretrain": {"actual": 1}}}, 2),
        (None, 2),
    ],
)
def test_export_stage_one_paths_relative_to_the_lcs_images_folder(tmp_path, summary, stage):
    mix = _stage1_mix(tmp_path, summary)
    assert mix_stage(mix) == stage
    out = tmp_path / "stage1.json"
    export_llava_json(mix, out)
    [record] = json.loads(out.read_text())
    assert record["image"] == (
        "00453/004539375.jpg" if stage == 1 else "llava_pretrain/images/00453/004539375.jpg"
    )
    assert record["id"] == "004539375"
    export_llava_json(mix, out, force=True, image_prefix="")
    assert json.loads(out.read_text())[0]["image"] == "llava_pretrain/images/00453/004539375.jpg"
    # import-llava infers the source of the unprefixed path too
    assert [s for s, _ in import_records(out)] == ["llava_pretrain"]


def test_export_stage_two_paths_relative_to_the_images_root_and_prefix(tmp_path):
    mix = _mix(tmp_path)
    (mix / "summary.json").write_text(json.dumps({"recipe_resolved": {"stage": 2}}))
    out = tmp_path / "mix.json"
    export_llava_json(mix, out, image_prefix="playground/data/")
    images = [r.get("image") for r in json.loads(out.read_text())]
    assert images == [
        None,
        "playground/data/coco/train2017/000000299207.jpg",
        "playground/data/gqa/images/2354786.jpg",
    ]
    export_llava_json(mix, out, force=True)
    assert out.read_text() == EXPECTED_EXPORT


# --- tar scanning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_members_agrees_with_tarfile(tmp_path, fmt):
    path = tmp_path / "s.tar"
    names = ["a-0.json", "a-0.jpg", "dir/b-1.json", "x" * 120 + ".json", "empty.txt"]
    with tarfile.open(path, "w", format=fmt) as tar:
        for n, name in enumerate(names):
            if fmt == tarfile.USTAR_FORMAT and len(name) > 100:
                continue
            add_member(tar, name, b"z" * (n * 300))
        tar.addfile(tarfile.TarInfo("folder/"))  # not a regular file
    with tarfile.open(path) as tar:
        expected = [(i.name, i.offset_data, i.size) for i in tar if i.isfile()]
    with open(path, "rb") as f:
        assert tar_members(f) == expected


def test_tar_members_reports_a_truncated_archive(tmp_path):
    path = tmp_path / "s.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        add_member(tar, "a-0.json", b"{}")
        add_member(tar, "a-0.jpg", b"j" * 5000)
    path.write_bytes(path.read_bytes()[:3000])
    with open(path, "rb") as f, pytest.raises(tarfile.TarError):
        tar_members(f)


@pytest.mark.parametrize("reader", [iter_json_array, iter_json_list])
def test_a_reader_left_halfway_releases_the_file(tmp_path, reader):
    """Closing (or dropping) an array reader after two records releases the memory map without error,
    and every record is decoded once when it is read to the end."""
    import gc

    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"id": str(i), "conversations": []} for i in range(5)]))
    it = reader(path)
    next(it)
    next(it)
    it.close()
    it = reader(path)
    next(it)
    del it
    gc.collect()
    assert len(list(reader(path))) == 5
