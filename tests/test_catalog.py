"""The built-in catalog's shape, `select`, and validation of `--catalog` files."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from datamix.catalog import (
    CATALOG,
    SOURCE_NAMES,
    CatalogError,
    RemoteFile,
    load_catalog,
    parse_catalog,
    select,
    sources_in,
)


def test_every_source_has_entries_and_paths_are_relative():
    assert sources_in(CATALOG) == list(SOURCE_NAMES)
    for e in CATALOG:
        assert not PurePosixPath(e.path).is_absolute() and ".." not in PurePosixPath(e.path).parts
        assert e.url.startswith(("http://", "https://"))
        if e.extract_to is not None:
            assert e.path.startswith("downloads/"), e
        else:
            assert e.path.startswith("raw/"), e


def test_official_raw_names_and_image_layout():
    paths = {e.path for e in CATALOG}
    for p in (
        "raw/llava_instruct/llava_instruct_150k.json",
        "raw/sharegpt/ShareGPT_V3_unfiltered_cleaned_split.json",
        "raw/ocrvqa/dataset.json",
        "raw/textcaps/TextCaps_0.1_train.json",
        "raw/llava_pretrain/blip_laion_cc_sbu_558k.json",
    ):
        assert p in paths
    archives = {PurePosixPath(e.url).name + "@" + e.source: e.extract_to for e in CATALOG if e.extract_to}
    assert archives["train2017.zip@vqav2"] == "images/coco"  # train2017/ -> images/coco/train2017
    assert archives["images.zip@gqa"] == "images/gqa"  # images/ -> images/gqa/images
    assert archives["train_val_images.zip@textcaps"] == "images/textvqa"  # train_images/
    assert archives["images.zip@vg"] == "images/vg" and archives["images2.zip@vg"] == "images/vg"
    assert archives["images.zip@llava_pretrain"] == "images/llava_pretrain/images"
    assert archives["v2_Questions_Train_mscoco.zip@vqav2"] == "raw/vqav2"
    assert archives["aokvqa_v1p0.tar.gz@aokvqa"] == "raw/aokvqa"
    assert {e.extract_to for e in CATALOG if e.source == "refcoco"} == {"raw/refcoco", "images/coco"}
    assert not any(e.url.endswith("/train2014.zip") for e in CATALOG)


def test_coco_shared_and_consistent():
    coco = [e for e in CATALOG if e.url.endswith("train2017.zip")]
    assert {e.source for e in coco} == {"llava_instruct", "vqav2", "okvqa", "aokvqa", "refcoco"}
    assert {(e.path, e.md5, e.size) for e in coco} == {
        ("downloads/coco/train2017.zip", "cced6f7f71b7629ddf16f17bbcfab6b2", 19_336_861_798)
    }
    assert all(e.kind == "images" for e in coco)


def test_hf_files_use_resolve_urls_and_ocrvqa_is_manual():
    hf = [e for e in CATALOG if "huggingface.co" in e.url]
    assert {e.source for e in hf} == {"llava_instruct", "sharegpt", "llava_pretrain"}
    assert all("/resolve/main/" in e.url for e in hf)
    manual = [e for e in CATALOG if e.manual]
    assert [e.path for e in manual] == ["raw/ocrvqa/dataset.json"]
    assert "{target}" in manual[0].manual


def test_select():
    vq = select(CATALOG, ["vqav2"])
    assert [e.name for e in vq] == [
        "v2_Questions_Train_mscoco.zip",
        "v2_Annotations_Train_mscoco.zip",
        "train2017.zip",
    ]
    assert [e.name for e in select(CATALOG, ["vqav2", "gqa"], annotations_only=True)] == [
        "v2_Questions_Train_mscoco.zip",
        "v2_Annotations_Train_mscoco.zip",
        "questions1.2.zip",
    ]
    assert select(CATALOG, None) == CATALOG
    assert select(CATALOG, []) == CATALOG
    with pytest.raises(ValueError, match="unknown source.*: nope"):
        select(CATALOG, ["vqav2", "nope"])


def test_load_json_and_yaml(tmp_path):
    entries = [
        {
            "source": "vqav2",
            "url": "https://h.example/q.zip",
            "path": "downloads/vqav2/q.zip",
            "extract_to": "raw/vqav2",
            "sha256": "A" * 64,
            "size": 10,
        },
        {
            "source": "gqa",
            "url": "http://h.example/i.zip",
            "path": "downloads/gqa/i.zip",
            "extract_to": "images/gqa",
            "md5": "b" * 32,
        },
        {"source": "textcaps", "url": "https://h.example/t.json", "path": "./raw/textcaps/t.json"},
    ]
    j = tmp_path / "c.json"
    j.write_text(json.dumps(entries))
    y = tmp_path / "c.yaml"
    import yaml

    y.write_text(yaml.safe_dump(entries))
    for f in (j, y):
        cat = load_catalog(f)
        assert cat == (
            RemoteFile(**{**entries[0], "sha256": "a" * 64}, kind="annotation"),  # checksum lower-cased
            RemoteFile(**entries[1], kind="images"),  # extracted under images/
            RemoteFile(source="textcaps", url="https://h.example/t.json", path="raw/textcaps/t.json"),
        )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"bogus": 1}, "entry 1, field 'bogus': unknown field"),
        ({"sha256": "xyz"}, "entry 1, field 'sha256': Value error, 'xyz' is not a sha256"),
        ({"md5": "0" * 31}, "entry 1, field 'md5'"),
        ({"path": "/etc/passwd"}, "entry 1, field 'path': Value error, '/etc/passwd' must be relative"),
        ({"path": "raw/../../x"}, "entry 1, field 'path': Value error, 'raw/../../x' must not contain '..'"),
        ({"extract_to": "../out"}, "entry 1, field 'extract_to'"),
        ({"source": "coco"}, "entry 1, field 'source': Value error, unknown source 'coco'"),
        ({"url": "ftp://x/y"}, "entry 1, field 'url'"),
        ({"size": -1}, "entry 1, field 'size'"),
    ],
)
def test_invalid_entries_name_file_index_field(tmp_path, entry, expected):
    good = {"source": "vqav2", "url": "https://h.example/a.json", "path": "raw/vqav2/a.json"}
    f = tmp_path / "cat.json"
    f.write_text(json.dumps([good, {**good, "path": "raw/vqav2/b.json", **entry}]))
    with pytest.raises(CatalogError) as info:
        load_catalog(f)
    assert str(info.value).startswith(f"{f}: invalid catalog:")
    assert expected in str(info.value)


def test_missing_field_and_document_shape(tmp_path):
    f = tmp_path / "cat.yaml"
    f.write_text("- {source: vqav2, path: raw/vqav2/a.json}\n")
    with pytest.raises(CatalogError, match=r"entry 0, field 'url': Field required"):
        load_catalog(f)
    f.write_text("source: vqav2\n")
    with pytest.raises(CatalogError, match="expected a list of entries, got dict"):
        load_catalog(f)
    g = tmp_path / "cat.json"
    g.write_text("[{")
    with pytest.raises(CatalogError, match=r"cat.json: invalid catalog:\n  not valid JSON: line 1"):
        load_catalog(g)
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "absent.json")


def test_conflicting_duplicate_paths():
    a = {"source": "vqav2", "url": "https://h/a.zip", "path": "downloads/a.zip", "extract_to": "raw/vqav2"}
    assert len(parse_catalog([a, {**a, "source": "okvqa"}])) == 2  # same file shared by two sources
    with pytest.raises(CatalogError, match="entry 1: path 'downloads/a.zip' is also entry 0"):
        parse_catalog([a, {**a, "url": "https://h/b.zip"}], "x.json")
