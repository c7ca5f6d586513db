"""trainer.data on tiny mixes written by datamix.shards: split, shuffle, grouping, corrupt samples,
collation and exact resume."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from datamix.mixio import MixWriter  # noqa: E402
from datamix.schema import MANIFEST_SCHEMA, Sample, split_member  # noqa: E402
from trainer.data import (  # noqa: E402
    IGNORE_INDEX,
    ShardLoader,
    ShardStream,
    SkipSample,
    collate,
    iter_tar,
    load_lengths,
)
from trainer.images import ImageProcessor  # noqa: E402

SIZE = 16
PROC = ImageProcessor(size=SIZE)


def _jpeg(seed: int, w: int = 20, h: int = 12) -> bytes:
    px = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.frombytes("RGB", (w, h), px.tobytes()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_test_mix(
    out: Path, name: str, samples: list[dict], images: dict[str, bytes], per_shard: int
) -> None:
    """Shards + manifest written by datamix's own mix writer (`datamix.mixio.MixWriter`, what a build
    uses), so the loader is tested on exactly what datamix lays out (docs/architecture.md 4.3)."""
    writer = MixWriter(out)
    writer.prepare()
    names = []
    for n, start in enumerate(range(0, len(samples), per_shard)):
        names.append(f"{name}-{n:06d}.tar")
        with writer.shard(names[-1]) as shard:
            for rec in samples[start : start + per_shard]:
                sample = Sample.create(
                    key=rec["key"],
                    id=rec["id"],
                    source=rec["source"],
                    image=rec.get("image"),
                    conversations=rec["conversations"],
                )
                shard.add(sample, images.get(rec["key"]))
    writer.write_manifest(names)
    writer.finish()


def make_mix(root: Path, n_image: int, n_text: int, per_shard: int, name: str = "mix") -> Path:
    """Samples k0000..: every third one text-only (while both kinds remain); varied text lengths."""
    samples, images = [], {}
    n_img = n_txt = 0
    for i in range(n_image + n_text):
        is_image = (i % 3 != 2 and n_img < n_image) or n_txt >= n_text
        key = f"k{i:04d}"
        q = ("<image>\n" if is_image else "") + "q" * (1 + (i * 7) % 23)
        rec = {"id": str(i)}
        if is_image:
            rec["image"] = f"img/{i:04d}.jpg"
            images[key] = _jpeg(i, 20 + i % 7, 12 + i % 5)
            n_img += 1
        else:
            n_txt += 1
        rec.update(
            conversations=[{"from": "human", "value": q}, {"from": "gpt", "value": "a"}],
            source="synth",
            key=key,
        )
        samples.append(rec)
    out = root / name
    write_test_mix(out, name, samples, images, per_shard)
    return out


def keys_of(batches) -> list[str]:
    return [k for b in batches for k in b["keys"]]


def stream(mix: Path, **kw) -> ShardStream:
    kw.setdefault("batch_size", 2)
    kw.setdefault("image_processor", PROC)
    kw.setdefault("shuffle_buffer", 8)
    return ShardStream(mix, **kw)


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    return make_mix(tmp_path_factory.mktemp("data"), n_image=24, n_text=12, per_shard=5)  # 8 shards


@pytest.fixture(scope="module")
def small_mix(tmp_path_factory) -> Path:
    return make_mix(tmp_path_factory.mktemp("small"), n_image=8, n_text=5, per_shard=7)  # 2 shards


ALL_KEYS_36 = {f"k{i:04d}" for i in range(36)}


@pytest.mark.parametrize("which", ["mix", "small_mix"])  # shard-level split / sample-level split
def test_two_ranks_two_workers_see_every_sample_once(which, request):
    path = request.getfixturevalue(which)
    n = 36 if which == "mix" else 13
    seen = Counter()
    for rank in range(2):
        loader = ShardLoader(stream(path, rank=rank, world_size=2, seed=5), num_workers=2)
        seen.update(keys_of(loader))
    assert sorted(seen) == [f"k{i:04d}" for i in range(n)]
    assert set(seen.values()) == {1}


def test_ranks_are_disjoint_and_workers_partition_rank(mix):
    per_rank = []
    for rank in range(2):
        ds = stream(mix, rank=rank, world_size=2, seed=1)
        by_worker = [keys_of(ds.iter_worker(w, 2)) for w in range(2)]
        assert not set(by_worker[0]) & set(by_worker[1])
        per_rank.append(set(by_worker[0]) | set(by_worker[1]))
    assert not per_rank[0] & per_rank[1] and per_rank[0] | per_rank[1] == ALL_KEYS_36


def test_shuffle_is_seeded_and_changes_with_epoch(mix):
    a = keys_of(ShardLoader(stream(mix, seed=3)))
    b = keys_of(ShardLoader(stream(mix, seed=3)))
    c = keys_of(ShardLoader(stream(mix, seed=4)))
    assert a == b and a != c and set(a) == ALL_KEYS_36
    loader = ShardLoader(stream(mix, seed=3))
    e0, e1 = keys_of(loader), keys_of(loader)  # the loader moves to epoch 1 after a full pass
    assert loader.epoch == 2 and e0 == a and e1 != e0 and set(e1) == ALL_KEYS_36
    unshuffled = keys_of(ShardLoader(stream(mix, shuffle=False, group_by_modality_length=False)))
    assert unshuffled == sorted(ALL_KEYS_36)


def test_batches_group_by_modality_and_length(mix):
    lengths = load_lengths(mix)
    assert len(lengths) == 36
    batches = list(ShardLoader(stream(mix, batch_size=3, megabatch=4, shuffle_buffer=100, seed=2)))
    assert keys_of(batches) and set(keys_of(batches)) == ALL_KEYS_36
    for b in batches:
        mask = b["image_mask"].tolist()
        assert all(mask) or not any(mask)  # never mixed
        if any(mask):
            assert b["pixel_values"].shape == (len(mask), 3, SIZE, SIZE)
        else:
            assert b["pixel_values"] is None
        assert b["lengths"].tolist() == [lengths[k] for k in b["keys"]]
        assert b["lengths"].tolist() == sorted(b["lengths"].tolist(), reverse=True)
    # 24 image samples = 2 full megabatches of 12: each batch is a contiguous slice of its sorted megabatch
    image_batches = [b for b in batches if b["image_mask"].all()]
    assert len(image_batches) == 8 and all(len(b["keys"]) == 3 for b in image_batches)


def test_grouping_off_still_sees_everything(mix):
    grouped = keys_of(ShardLoader(stream(mix, seed=2, group_by_modality_length=False)))
    assert set(grouped) == ALL_KEYS_36


def test_pixel_values_are_the_image_processor_output(mix):
    batch = next(iter(ShardLoader(stream(mix, shuffle=False, group_by_modality_length=False, batch_size=1))))
    assert batch["keys"] == ["k0000"]
    i = 0
    raw = _jpeg(i, 20 + i % 7, 12 + i % 5)
    assert np.array_equal(batch["pixel_values"][0].numpy(), PROC(raw))


def test_transform_hook_and_text_only(mix):
    calls = []

    def transform(record, image):
        calls.append((record["key"], image is None))
        if record["key"] == "k0005":
            raise SkipSample("not wanted")
        n = len(record["conversations"][0]["value"])
        return {
            "input_ids": list(range(1, n + 1)),
            "labels": [IGNORE_INDEX] * (n - 1) + [7],
            "has_image": image is not None,
        }

    loader = ShardLoader(stream(mix, transform=transform, pad_id=0, seed=9))
    batches = list(loader)
    assert len(calls) == 36 and loader.skipped["transform"] == 1
    assert "k0005" not in keys_of(batches)
    for b in batches:
        assert b["has_image"] == b["image_mask"].tolist()
        assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape
        for row in range(len(b["keys"])):
            n = int(b["attention_mask"][row].sum())
            assert b["input_ids"][row, :n].tolist() == list(range(1, n + 1))
            assert (b["input_ids"][row, n:] == 0).all() and (b["labels"][row, n:] == IGNORE_INDEX).all()
    assert dict(calls)["k0002"] is True  # k0002 is a text-only sample: no image tensor


def test_collate_pads_and_stacks():
    img = torch.ones(3, 4, 4)
    out = collate(
        [
            {"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "pixel_values": img, "key": "a", "length": 3},
            {"input_ids": [8], "labels": [8], "pixel_values": None, "key": "b", "length": 1},
        ],
        pad_id=32001,
    )
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 32001, 32001]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["pixel_values"].shape == (1, 3, 4, 4)
    assert out["image_mask"].tolist() == [True, False] and out["n_images"].tolist() == [1, 0]
    assert out["keys"] == ["a", "b"] and out["lengths"].tolist() == [3, 1]


def _rec(key: str, image: bool) -> bytes:
    conv = [{"from": "human", "value": ("<image>\n" if image else "") + "hi"}, {"from": "gpt", "value": "yo"}]
    rec = {
        "id": key,
        **({"image": f"{key}.jpg"} if image else {}),
        "conversations": conv,
        "source": "s",
        "key": key,
    }
    return json.dumps(rec).encode()


def test_corrupt_samples_are_skipped_and_counted(tmp_path):
    shards = tmp_path / "bad" / "shards"
    shards.mkdir(parents=True)
    with tarfile.open(shards / "bad-000000.tar", "w") as tar:
        _add(tar, "good1.json", _rec("good1", True))
        _add(tar, "good1.jpg", _jpeg(1))
        _add(tar, "badjson.json", b"{not json")
        _add(tar, "badjson.jpg", _jpeg(2))
        _add(tar, "badimg.json", _rec("badimg", True))
        _add(tar, "badimg.jpg", b"\xff\xd8\xff garbage")
        _add(tar, "noimg.json", _rec("noimg", True))  # says image, has none
        _add(tar, "notdict.json", b"[1, 2]")
        _add(tar, "text1.json", _rec("text1", False))
        _add(tar, "trunc.json", _rec("trunc", True))
        _add(tar, "trunc.jpg", _jpeg(3)[:100])
    with tarfile.open(shards / "bad-000001.tar", "w") as tar:
        _add(tar, "good2.json", _rec("good2", True))
        _add(tar, "good2.jpg", _jpeg(4))
        _add(tar, "lost.json", _rec("lost", False))
    cut = (shards / "bad-000001.tar").read_bytes()
    (shards / "bad-000001.tar").write_bytes(
        cut[: 512 + 512 + 512 + 700]
    )  # truncated inside good2.jpg (980 bytes)
    loader = ShardLoader(stream(tmp_path / "bad", batch_size=4, shuffle=False))
    got = sorted(keys_of(loader))
    assert got == ["good1", "text1"]
    sk = loader.skipped
    assert sk["bad_json"] == 1 and sk["bad_record"] == 1 and sk["missing_image"] == 1
    assert sk["bad_image"] == 2 and sk["bad_shard"] == 1  # undecodable + truncated JPEG; truncated tar


def test_iter_tar_groups_members(mix):
    shard = sorted((mix / "shards").glob("*.tar"))[0]
    raws = list(iter_tar(shard))
    assert [r.key for r in raws] == [f"k{i:04d}" for i in range(5)]
    assert [r.image is not None for r in raws] == [True, True, False, True, True]


def test_iter_tar_shares_the_member_name_rule_of_datamix(tmp_path):
    """`<key>.<ext>` splits at the first dot of the base name (datamix.schema.split_member), as
    datamix's reader and WebDataset group members."""
    names = ["a-1.json", "a-1.jpg", "dir/b-2.json", "b-2.seg.png", "c-3.json", "c-3.png"]
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for name in names:
            _add(tar, name, name.encode())
    raws = list(iter_tar(tmp_path / "s.tar"))
    assert (
        [r.key for r in raws]
        == ["a-1", "b-2", "c-3"]
        == list(dict.fromkeys(split_member(n)[0] for n in names))
    )
    assert [(r.json, r.image) for r in raws] == [
        (b"a-1.json", b"a-1.jpg"),
        (b"dir/b-2.json", None),
        (b"c-3.json", b"c-3.png"),
    ]  # "seg.png" is not an image extension


def test_lengths_come_typed_as_the_manifest_schema(mix):
    lengths = load_lengths(mix)
    assert len(lengths) == 36 and all(type(v) is int for v in lengths.values())
    assert pq.read_schema(mix / "manifest.parquet").equals(MANIFEST_SCHEMA, check_metadata=False)


@pytest.mark.parametrize("num_workers,batch_size,k", [(0, 1, 7), (2, 3, 3), (2, 2, 0)])
def test_resume_continues_exactly_after_last_consumed(mix, num_workers, batch_size, k):
    def fresh():
        return ShardLoader(
            stream(mix, batch_size=batch_size, seed=11, rank=1, world_size=2), num_workers=num_workers
        )

    full = [b["keys"] for b in fresh()]
    first = fresh()
    it = iter(first)
    head = [next(it)["keys"] for _ in range(k)]
    state = json.loads(json.dumps(first.state_dict()))  # survives a JSON checkpoint
    del it
    resumed = fresh()
    resumed.load_state_dict(state)
    tail = [b["keys"] for b in resumed]
    assert head + tail == full
    assert head == full[:k]
    assert resumed.epoch == 1


def test_resume_in_second_epoch_and_state_checks(mix):
    ref = ShardLoader(stream(mix, seed=1))
    ref.set_epoch(1)
    epoch1 = [b["keys"] for b in ref]
    loader = ShardLoader(stream(mix, seed=1))
    list(loader)  # epoch 0
    it = iter(loader)
    head = [next(it)["keys"], next(it)["keys"]]
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["positions"] == [2]
    resumed = ShardLoader(stream(mix, seed=1))
    resumed.load_state_dict(state)
    assert head + [b["keys"] for b in resumed] == epoch1
    with pytest.raises(ValueError, match="num_workers"):
        ShardLoader(stream(mix, seed=1), num_workers=2).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        ShardLoader(stream(mix, seed=2)).load_state_dict(state)
