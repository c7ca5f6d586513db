"""datamix.mixio + the mix records of datamix.schema: `Sample` (frozen, slotted, keyword-only, its json
encoded once), the member-name rule, `MixWriter` / `MixReader` (streaming, by key, by (shard, member)),
shard paths confined to the mix folder, and the build's once-per-worker tokenizer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamix import shards as shards_mod
from datamix.lint import LintInputError, lint_path
from datamix.llava_json import LlavaJsonError, export_llava_json
from datamix.mixio import MixIOError, MixReader, MixWriter, iter_members, iter_shard_samples, resolve_shard
from datamix.schema import MANIFEST_SCHEMA, Sample, member_name, split_member
from datamix.shards import write_mix

TURNS = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]


def _sample(i: int, image: str | None = "a.jpg", text: str = "q") -> Sample:
    turns = [
        {"from": "human", "value": ("<image>\n" if image else "") + f"{text} {i}"},
        {"from": "gpt", "value": "yes"},
    ]
    return Sample.create(key=f"t-{i}", id=str(100 + i), source="synth", image=image, conversations=turns)


# --------------------------------------------------------------------------------------------
# Sample


def test_sample_is_a_frozen_slotted_keyword_only_record():
    s = Sample.create(
        key="vqav2-0", id="7", source="vqav2", image="coco/x.jpg", conversations=TURNS, width=4, height=3
    )
    assert dataclasses.is_dataclass(s) and not hasattr(s, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.key = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Sample("vqav2-0", "7", "vqav2", None, b"{}", 1, 1)  # type: ignore[misc]
    assert (s.n_turns, s.n_text_chars, s.width, s.height) == (2, len(TURNS[0]["value"]) + len("A cat."), 4, 3)
    assert s == Sample.create(
        key="vqav2-0", id="7", source="vqav2", image="coco/x.jpg", conversations=TURNS, width=4, height=3
    )
    assert len({s, dataclasses.replace(s)}) == 1


def test_sample_json_is_the_release_record_encoded_once_as_the_standard_library_would():
    image = Sample.create(key="k-0", id="1", source="s", image="i.jpg", conversations=TURNS)
    text = Sample.create(key="k-1", id="2", source="s", image=None, conversations=TURNS)
    assert list(image.record()) == ["id", "image", "conversations", "source", "key"]
    assert list(text.record()) == ["id", "conversations", "source", "key"]  # text-only: no image key
    assert image.conversations == TURNS
    # every code point but the surrogates: the bytes are json.dumps(ensure_ascii=False)'s
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    turns = [{"from": "human", "value": every}, {"from": "gpt", "value": '"\\\n\t\x00\x7f\u2028'}]
    s = Sample.create(key="k-2", id="é", source="s", image="ü.jpg", conversations=turns)
    assert s.json == json.dumps(s.record(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert s.record()["conversations"] == turns


def test_member_name_rule():
    assert split_member("vqav2-12.json") == ("vqav2-12", "json")
    assert split_member("vqav2-12.jpg") == ("vqav2-12", "jpg")
    assert split_member("k.seg.png") == ("k", "seg.png")  # the first dot: WebDataset's grouping
    assert split_member("some/dir/k-1.json") == ("k-1", "json")  # a leading folder is dropped
    assert split_member("README") == ("README", "")
    assert member_name("vqav2-12", "json") == "vqav2-12.json"
    for bad in ("a.b", "", "x/y"):
        with pytest.raises(ValueError, match="no '.' or '/'|without"):
            member_name(bad, "json")


# --------------------------------------------------------------------------------------------
# writer and reader


@pytest.fixture()
def mix(tmp_path: Path) -> tuple[Path, list[Sample]]:
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for name, color in (("a.jpg", "red"), ("b.jpg", "blue")):
        Image.new("RGB", (6, 4), color).save(images / name)
    samples = [_sample(0), _sample(1, None), _sample(2, "b.jpg"), _sample(3), _sample(4, None)]
    write_mix(tmp_path / "mix", "t", samples, images, summary={}, max_samples=2)
    return tmp_path / "mix", samples


def test_writer_output_reads_back_in_every_way(mix):
    out, samples = mix
    images = out.parent / "images"
    with MixReader(out) as reader:
        assert len(reader) == 5 and reader.columns == MANIFEST_SCHEMA.names
        streamed = list(reader.iter_samples(images=True))
        assert [s.key for s in streamed] == [s.key for s in samples]
        assert [s.row for s in streamed] == list(range(5))
        assert [s.shard for s in streamed] == ["t-000000.tar"] * 2 + ["t-000001.tar"] * 2 + ["t-000002.tar"]
        for got, want in zip(streamed, samples, strict=True):
            assert got.json == want.json  # the member is the sample's bytes, as they were encoded
            assert got.image == ((images / want.image).read_bytes() if want.image else None)
        assert [s.image for s in reader.iter_samples()] == [None] * 5  # images only when asked for
        by_key = reader.get("t-3")
        assert (by_key.row, by_key.shard, by_key.json, by_key.image) == (
            3,
            "t-000001.tar",
            samples[3].json,
            streamed[3].image,
        )
        with pytest.raises(KeyError):
            reader.get("t-99")
        assert reader.read("t-000001.tar", "t-2.jpg") == (images / "b.jpg").read_bytes()
        assert reader.read("t-000001.tar", "t-0.json") is None  # not in that shard
        members = [(m.key, m.ext) for shard in reader.shard_files() for m in reader.members(shard)]
    assert members == [
        ("t-0", "json"),
        ("t-0", "jpg"),
        ("t-1", "json"),
        ("t-2", "json"),
        ("t-2", "jpg"),
        ("t-3", "json"),
        ("t-3", "jpg"),
        ("t-4", "json"),
    ]
    assert [k for k, _, _ in iter_shard_samples(out / "shards" / "t-000001.tar")] == ["t-2", "t-3"]
    manifest = pl.read_parquet(out / "manifest.parquet")
    assert manifest["n_turns"].to_list() == [2] * 5
    assert manifest["n_text_chars"].to_list() == [s.n_text_chars for s in samples]
    assert manifest["image_sha256"][0] == hashlib.sha256((images / "a.jpg").read_bytes()).hexdigest()
    # the fixed tar metadata, read back by tarfile
    with tarfile.open(out / "shards" / "t-000000.tar") as tar:
        assert [(m.name, m.mtime, m.uid, m.uname, m.mode) for m in tar][:1] == [("t-0.json", 0, 0, "", 0o644)]
    assert lint_path(out).clean


def test_reader_takes_the_manifest_path_and_names_what_is_wrong(mix, tmp_path):
    out, _ = mix
    with MixReader(out / "manifest.parquet") as reader:
        assert reader.mix_dir == out and len(reader) == 5
    with pytest.raises(MixIOError, match="no manifest.parquet"):
        MixReader(tmp_path).parquet()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(MixIOError, match=r"bad/manifest.parquet: cannot read manifest"):
        MixReader(bad).parquet()
    pq.write_table(pq.read_table(out / "manifest.parquet").drop(["shard"]), bad / "manifest.parquet")
    with pytest.raises(MixIOError, match=r"manifest lacks column\(s\) \['shard'\]"):
        MixReader(bad).parquet()
    (out / "shards" / "t-000002.tar").write_bytes(b"garbage" * 200)
    with pytest.raises(MixIOError, match="t-000002.tar: cannot read shard"), MixReader(out) as reader:
        list(reader.iter_samples())
    with pytest.raises(MixIOError, match="unreadable tar shard"):
        list(iter_members(out / "shards" / "t-000002.tar"))


def test_a_failing_shard_leaves_nothing_under_its_name(tmp_path):
    writer = MixWriter(tmp_path / "m")
    writer.prepare()
    with pytest.raises(RuntimeError), writer.shard("x-000000.tar") as shard:
        shard.add(_sample(0, None))
        raise RuntimeError("killed")
    assert list((tmp_path / "m" / "shards").iterdir()) == [] and not writer.done("x-000000.tar")
    with writer.shard("x-000000.tar") as shard:
        shard.add(_sample(0, None))
    assert writer.done("x-000000.tar")
    assert writer.write_manifest(["x-000000.tar"]).num_rows == 1


# --------------------------------------------------------------------------------------------
# shard paths are confined to the mix folder (issue 18 defect 8)


def _point_row_at(out: Path, row: int, shard: str) -> None:
    table = pq.read_table(out / "manifest.parquet")
    values = table["shard"].to_pylist()
    values[row] = shard
    index = table.schema.get_field_index("shard")
    table = table.set_column(index, table.schema.field(index), pa.array(values, pa.string()))
    pq.write_table(table, out / "manifest.parquet")


@pytest.mark.parametrize(
    "value", ["/etc/passwd", "../outside.tar", "shards/../../outside.tar", "..\\outside.tar"]
)
def test_a_shard_outside_the_mix_is_refused_naming_manifest_and_row(mix, tmp_path, value):
    out, _ = mix
    shutil.copy(out / "shards" / "t-000001.tar", tmp_path / "outside.tar")
    _point_row_at(out, 3, value)
    manifest = out / "manifest.parquet"
    with pytest.raises(MixIOError) as err, MixReader(out) as reader:
        list(reader.iter_samples())
    assert str(err.value).startswith(
        f"{manifest}: row 3: shard {value!r} is not a path inside the mix folder"
    )
    assert err.value.row == 3
    with pytest.raises(LintInputError, match="row 3: shard .* is not a path inside the mix folder"):
        lint_path(out)
    with pytest.raises(LlavaJsonError, match="record 3: shard .* is not a path inside the mix folder"):
        export_llava_json(out, tmp_path / "x.json")
    with pytest.raises(MixIOError, match="not a path inside"):
        resolve_shard(out, value)


def test_a_symlinked_shards_folder_stays_allowed(mix, tmp_path):
    out, samples = mix
    elsewhere = tmp_path / "disk2" / "shards"
    elsewhere.parent.mkdir()
    shutil.move(out / "shards", elsewhere)
    os.symlink(elsewhere, out / "shards")
    with MixReader(out) as reader:
        assert [s.json for s in reader.iter_samples()] == [s.json for s in samples]
    assert lint_path(out).clean
    assert export_llava_json(out, tmp_path / "x.json") == 5
    # a value with a folder inside the mix is fine too
    _point_row_at(out, 0, "shards/t-000000.tar")
    with MixReader(out) as reader:
        assert reader.get("t-0").json == samples[0].json


# --------------------------------------------------------------------------------------------
# the build's tokenizer: loaded once per worker process, not once per shard


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_token_counter_is_made_once_per_worker(mix, tmp_path, monkeypatch, jobs):
    _, _ = mix
    images = tmp_path / "images"
    calls = tmp_path / "calls"
    calls.mkdir()

    def fake_counter(tokenizer):
        (calls / f"{os.getpid()}-{len(list(calls.iterdir()))}").touch()
        return lambda s: 7

    monkeypatch.setattr(shards_mod, "make_token_counter", fake_counter)
    samples = [_sample(i, "a.jpg" if i % 2 else None) for i in range(12)]
    write_mix(tmp_path / "tok", "t", samples, images, summary={}, max_samples=2, jobs=jobs, tokenizer="fake")
    made = [p.name.split("-")[0] for p in calls.iterdir()]
    assert len(made) == len(set(made)) <= jobs  # at most one per process, 6 shards written
    assert pl.read_parquet(tmp_path / "tok" / "manifest.parquet")["n_tokens"].to_list() == [7] * 12
