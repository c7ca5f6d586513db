"""Issue 18, defect 6: the trainer's loader reads past a damaged shard, counts what it lost, warns once.

Before: `tarfile` took the first bad header for the end of the archive; 4 KB scrambled inside a
20-sample shard gave 1 sample, no warning, nothing counted. Now the reader scans forward for the next
checksum-valid header, every undamaged sample is read (byte for byte), the damaged shard and its lost
samples are counted (over the whole run, not the last epoch only) and one warning names the shard.
"""

from __future__ import annotations

import io
import json
import logging
import random
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("torch")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from trainer.data import ShardLoader, ShardStream, iter_tar  # noqa: E402

N = 20
SHARD = "mix-000000.tar"


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 10 % 256, 40, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def _record(key: str) -> bytes:
    conv = [{"from": "human", "value": "<image>\nwhat?"}, {"from": "gpt", "value": f"answer {key}"}]
    return json.dumps({"id": key, "image": f"{key}.jpg", "conversations": conv, "key": key}).encode()


def _write_mix(root: Path, *, manifest: bool = True) -> dict[str, tuple[int, int]]:
    """A mix of one 20-sample shard; returns key -> (first byte, end byte) of its members in the tar."""
    (root / "shards").mkdir(parents=True)
    keys = [f"s{i:03d}" for i in range(N)]
    with tarfile.open(root / "shards" / SHARD, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, key in enumerate(keys):
            for name, data in ((f"{key}.json", _record(key)), (f"{key}.jpg", _jpeg(i))):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    spans: dict[str, tuple[int, int]] = {}
    with tarfile.open(root / "shards" / SHARD) as tar:
        for m in tar:
            key = m.name.split(".")[0]
            end = m.offset_data + -(-m.size // 512) * 512
            a, b = spans.get(key, (m.offset, end))
            spans[key] = (min(a, m.offset), max(b, end))
    if manifest:
        pq.write_table(pa.table({"key": keys, "shard": [SHARD] * N}), root / "manifest.parquet")
    return spans


def _scramble(path: Path, start: int, length: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[start : start + length] = random.Random(0).randbytes(length)
    path.write_bytes(bytes(data))


def _stream(root: Path, **kw) -> ShardStream:
    return ShardStream(root, batch_size=4, shuffle=False, group_by_modality_length=False, **kw)


@pytest.mark.parametrize(
    "case, start, manifest",
    [
        ("4 KB scrambled after the first sample", 2600, True),  # issue 18: tarfile read 1 sample
        ("4 KB scrambled mid-shard", 25000, True),
        ("4 KB scrambled, no manifest", 2600, False),
        ("4 KB zeroed headers", None, True),
    ],
)
def test_damaged_shard_reads_every_undamaged_sample(tmp_path, caplog, case, start, manifest):
    spans = _write_mix(tmp_path, manifest=manifest)
    shard = tmp_path / "shards" / SHARD
    original = {r.key: (r.json, r.image) for r in iter_tar(shard)}
    if start is None:  # zeros instead of noise: a zero block inside the archive is not its end
        start = 2600
        data = bytearray(shard.read_bytes())
        data[start : start + 4096] = bytes(4096)
        shard.write_bytes(bytes(data))
    else:
        _scramble(shard, start)
    damaged = {k for k, (a, b) in spans.items() if a < start + 4096 and b > start}
    undamaged = set(spans) - damaged
    assert len(undamaged) >= N - 4

    caplog.set_level(logging.WARNING, logger="trainer.data")
    loader = ShardLoader(_stream(tmp_path))
    got = {k for batch in loader for k in batch["keys"]}
    assert undamaged <= got  # every undamaged sample trained
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and SHARD in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "damaged" in warnings[0].getMessage()
    sk = loader.skipped
    assert sk["bad_shard"] == 1
    not_trained = sum(v for k, v in sk.items() if k != "bad_shard")
    if manifest:  # every sample is either trained or counted
        assert len(got) + not_trained == N, (sorted(got), sk)
        assert sk["lost"] >= 1
    else:
        assert len(got) + not_trained <= N

    raws = {r.key: (r.json, r.image) for r in iter_tar(shard)}
    for key in undamaged:
        assert raws[key] == original[key]  # byte for byte


def test_truncated_shard_counts_the_rest_as_lost(tmp_path, caplog):
    spans = _write_mix(tmp_path)
    shard = tmp_path / "shards" / SHARD
    cut = spans["s010"][0] + 700  # inside sample 10
    shard.write_bytes(shard.read_bytes()[:cut])
    caplog.set_level(logging.WARNING, logger="trainer.data")
    loader = ShardLoader(_stream(tmp_path))
    got = sorted(k for batch in loader for k in batch["keys"])
    assert got == [f"s{i:03d}" for i in range(10)]
    assert loader.skipped["bad_shard"] == 1 and loader.skipped["lost"] == 10
    assert sum("truncated" in r.getMessage() for r in caplog.records) == 1


def test_skip_counts_cover_the_whole_run_and_survive_a_resume(tmp_path):
    _write_mix(tmp_path)
    _scramble(tmp_path / "shards" / SHARD, 2600)
    loader = ShardLoader(_stream(tmp_path))
    for _ in loader:
        pass
    one = loader.skipped
    for _ in loader:  # the second epoch adds to the first (before: only the last epoch counted)
        pass
    two = loader.skipped
    assert two["bad_shard"] == 2 * one["bad_shard"] == 2 and two["lost"] == 2 * one["lost"] > 0

    # resumed mid-epoch: the counts saved with the position plus what follows, equal to the straight run
    straight = ShardLoader(_stream(tmp_path))
    it = iter(straight)
    next(it)
    state = json.loads(json.dumps(straight.state_dict()))
    rest = list(it)
    resumed = ShardLoader(_stream(tmp_path))
    resumed.load_state_dict(state)
    again = list(resumed)
    assert [b["keys"] for b in again] == [b["keys"] for b in rest]
    assert resumed.skipped == straight.skipped == one
