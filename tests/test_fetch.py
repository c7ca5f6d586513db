"""Downloader, safe extraction, OCR-VQA covers and the `download` CLI function, all on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

from datamix import fetch
from datamix.catalog import RemoteFile
from datamix.commands_download import download as download_cmd
from datamix.commands_download import download_state
from datamix.fetch import FetchOptions, UnsafeArchiveError, extract_archive, fetch_ocrvqa_covers, map_mirror
from datamix.paths import Layout

try:
    from tests.conftest_http import FileServer
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from conftest_http import FileServer

HOST = "files.example.org"


def blob(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def entry(
    name: str, data: bytes | None = None, *, source: str = "vqav2", host: str = HOST, **kw
) -> RemoteFile:
    kw.setdefault("path", f"raw/{source}/{name}")
    if data is not None and kw.pop("checksum", True):
        kw.setdefault("sha256", sha(data))
        kw.setdefault("size", len(data))
    return RemoteFile(source=source, url=f"https://{host}/d/{name}", **kw)


def with_part(e: RemoteFile, layout: Layout, prefix: bytes) -> Path:
    """Leave `prefix` in `e`'s .part file, as a killed download does; returns that file."""
    part = fetch.part_path(e, layout)
    part.parent.mkdir(parents=True)
    part.write_bytes(prefix)
    return part


def opts(srv: FileServer, **kw) -> FetchOptions:
    return FetchOptions(mirror=srv.url, backoff=0.001, timeout=5, chunk_size=16 * 1024, hf_token="", **kw)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "root")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


# ---------------------------------------------------------------------------------------------
# transfers


def test_map_mirror():
    assert map_mirror("https://huggingface.co/datasets/a/resolve/main/x.json", "http://127.0.0.1:9/") == (
        "http://127.0.0.1:9/huggingface.co/datasets/a/resolve/main/x.json"
    )
    assert map_mirror("http://images.cocodataset.org/zips/train2017.zip?x=1", "https://m.example/base") == (
        "https://m.example/base/images.cocodataset.org/zips/train2017.zip?x=1"
    )
    assert map_mirror("https://h/a", None) == "https://h/a"


def test_dropped_connection_is_resumed_with_range(layout):
    data = blob(200_000)
    e = entry("a.json", data)
    with FileServer({f"/{HOST}/d/a.json": data}) as srv:
        srv.fault(f"/{HOST}/d/a.json", "drop:70000")
        [r] = fetch.download([e], layout, options=opts(srv))
        gets = srv.gets()
    assert (r.status, r.reason, r.transferred) == ("ok", "", 200_000)
    assert [g.header("Range") for g in gets] == [None, "bytes=70000-"]
    assert (layout.root / e.path).read_bytes() == data
    assert not fetch.part_path(e, layout).exists()
    assert fetch.part_path(e, layout).parent.is_dir()


def test_killed_run_part_file_is_resumed(layout):
    data = blob(50_000, seed=1)
    e = entry("b.json", data)
    part = fetch.part_path(e, layout)
    assert part == layout.downloads / "partial/raw/vqav2/b.json.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:12_345])
    with FileServer({f"/{HOST}/d/b.json": data}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
        gets = srv.gets()
    assert (r.status, r.transferred) == ("ok", 50_000 - 12_345)
    assert [g.header("Range") for g in gets] == ["bytes=12345-"]
    assert (layout.root / e.path).read_bytes() == data


def test_complete_part_file_is_promoted_after_416(layout):
    data = blob(10_000, seed=13)
    e = entry("full.json", data)
    with_part(e, layout, data)  # killed after the last byte, before the rename
    with FileServer({f"/{HOST}/d/full.json": data}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
        assert [g.header("Range") for g in srv.gets()] == ["bytes=10000-"]
    assert (r.status, r.transferred) == ("ok", 0)
    assert (layout.root / e.path).read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(layout):
    data = blob(30_000, seed=2)
    e = entry("c.json", data)
    with_part(e, layout, b"garbage" * 100)  # a stale prefix; the full 200 body replaces it
    with FileServer({f"/{HOST}/d/c.json": data}) as srv:
        srv.fault(f"/{HOST}/d/c.json", "norange")
        [r] = fetch.download([e], layout, options=opts(srv))
    assert r.status == "ok"
    assert (layout.root / e.path).read_bytes() == data


def test_503_and_429_then_success(layout):
    data = blob(1000, seed=3)
    e = entry("d.json", data)
    with FileServer({f"/{HOST}/d/d.json": data}) as srv:
        srv.fault(f"/{HOST}/d/d.json", "status:503", "status:429")
        [r] = fetch.download([e], layout, options=opts(srv))
        assert len(srv.gets()) == 3
    assert r.status == "ok"


def test_404_fails_at_once_and_retries_are_bounded(layout):
    with FileServer({f"/{HOST}/d/e.json": b"x"}) as srv:
        srv.fault(f"/{HOST}/d/e.json", *["status:500"] * 3)
        missing, flaky = fetch.download(
            [entry("nope.json"), entry("e.json")], layout, options=opts(srv, retries=2, jobs=1)
        )
        assert len(srv.gets(f"/{HOST}/d/nope.json")) == 1
        assert len(srv.gets(f"/{HOST}/d/e.json")) == 3
    assert missing.status == "failed" and missing.reason.startswith("raw/vqav2/nope.json: HTTP 404 Not Found")
    assert (flaky.status, flaky.reason) == (
        "failed",
        "raw/vqav2/e.json: gave up after 3 attempts: HTTP 500 Internal Server Error",
    )
    assert not (layout.root / "raw/vqav2/e.json").exists()


def test_connection_refused_is_retried_then_fails(layout):
    with FileServer({}) as srv:
        dead = srv.url
    o = FetchOptions(mirror=dead, backoff=0.001, timeout=2, retries=1, hf_token="")
    [r] = fetch.download([entry("z.json")], layout, options=o)
    assert r.status == "failed" and "gave up after 2 attempts: connection error" in r.reason


def test_wrong_bytes_fail_that_file_only(layout):
    good, bad, big = blob(5000, 4), blob(5000, 5), blob(5000, 6)
    e_good, e_bad = entry("good.json", good), entry("bad.json", bad)
    e_size = entry("size.json", big, size=4999)
    e_md5 = entry("md5.json", big, checksum=False, md5=hashlib.md5(big).hexdigest())
    files = {
        f"/{HOST}/d/good.json": good,
        f"/{HOST}/d/bad.json": bad,
        f"/{HOST}/d/size.json": big,
        f"/{HOST}/d/md5.json": big,
    }
    with FileServer(files) as srv:
        srv.fault(f"/{HOST}/d/bad.json", "wrong")
        results = fetch.download([e_good, e_bad, e_size, e_md5], layout, options=opts(srv))
    assert [r.status for r in results] == ["ok", "failed", "failed", "ok"]
    assert (
        results[1].reason
        == f"raw/vqav2/bad.json: sha256 mismatch: expected {sha(bad)}, got {sha(bytes(b ^ 0xFF for b in bad))}"
    )
    assert results[2].reason == "raw/vqav2/size.json: size mismatch: expected 4999 bytes, got 5000"
    assert sorted(p.name for p in (layout.root / "raw/vqav2").iterdir()) == ["good.json", "md5.json"]
    assert (layout.root / "raw/vqav2/good.json").read_bytes() == good
    assert not fetch.part_path(e_bad, layout).exists()  # a bad body is not resumed next time


def test_rerun_of_complete_download_sends_nothing(layout):
    data = blob(4000, 7)
    arc = tar_bytes([("train2017/000000000001.jpg", b"jpeg-1"), ("train2017/000000000002.jpg", b"jpeg-2")])
    entries = [
        entry("a.json", data),
        entry(
            "train2017.tar.gz",
            arc,
            source="vqav2",
            path="downloads/coco/train2017.tar.gz",
            extract_to="images/coco",
            kind="images",
        ),
        entry(
            "train2017.tar.gz",
            arc,
            source="okvqa",
            path="downloads/coco/train2017.tar.gz",
            extract_to="images/coco",
            kind="images",
        ),
    ]
    files = {f"/{HOST}/d/a.json": data, f"/{HOST}/d/train2017.tar.gz": arc}
    with FileServer(files) as srv:
        first = fetch.download(entries, layout, options=opts(srv))
        assert len(srv.requests) == 2  # the shared archive is fetched once
        second = fetch.download(entries, layout, options=opts(srv))
        assert len(srv.requests) == 2  # no GET, no HEAD
    assert [r.status for r in first] == ["ok", "ok", "ok"]
    assert [(r.status, r.reason) for r in second] == [("skipped", "verified")] * 3
    assert (layout.images / "coco/train2017/000000000002.jpg").read_bytes() == b"jpeg-2"
    assert download_state(layout, entries) == {"vqav2": "2/2 verified", "okvqa": "1/1 verified"}


def test_changed_file_is_fetched_again_and_state_reports_it(layout):
    data = blob(3000, 8)
    e = entry("a.json", data)
    with FileServer({f"/{HOST}/d/a.json": data}) as srv:
        fetch.download([e], layout, options=opts(srv))
        (layout.root / e.path).write_bytes(b"tampered")
        assert download_state(layout, [e, entry("b.json", data)]) == {"vqav2": "1/2 missing, 1 unverified"}
        [r] = fetch.download([e], layout, options=opts(srv))
        assert len(srv.gets()) == 2
    assert r.status == "ok" and (layout.root / e.path).read_bytes() == data


def test_existing_file_without_marker_is_verified_without_network(layout):
    data = blob(3000, 9)
    e = entry("a.json", data)
    (layout.root / "raw/vqav2").mkdir(parents=True)
    (layout.root / e.path).write_bytes(data)
    with FileServer({}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
        assert srv.requests == []
    assert (r.status, r.reason) == ("skipped", "present, verified")


def test_provenance_records_first_sha256(layout):
    data = blob(2500, 10)
    e = entry("nosum.json", data, checksum=False)
    with FileServer({f"/{HOST}/d/nosum.json": data}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
    prov = json.loads((layout.downloads / "provenance.json").read_text())
    rec = prov["files"]["raw/vqav2/nosum.json"]
    assert (r.status, r.sha256) == ("ok", sha(data))
    assert {k: rec[k] for k in ("source", "url", "size", "sha256", "checksum_published")} == {
        "source": "vqav2",
        "url": e.url,
        "size": 2500,
        "sha256": sha(data),
        "checksum_published": False,
    }


def test_hf_token_only_to_hf_and_not_across_redirects(layout, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRET123")
    caplog.set_level(logging.DEBUG)
    hf_data, other = blob(1000, 11), blob(1000, 12)
    e_hf = RemoteFile(
        source="sharegpt",
        url="https://huggingface.co/datasets/o/r/resolve/main/s.json",
        path="raw/sharegpt/s.json",
        sha256=sha(hf_data),
    )
    e_hf2 = RemoteFile(
        source="llava_pretrain",
        url="https://huggingface.co/datasets/o/p/resolve/main/b.json",
        path="raw/llava_pretrain/b.json",
        sha256=sha(hf_data),
    )
    e_other = entry("o.json", other)
    files = {
        "/huggingface.co/datasets/o/r/resolve/main/s.json": hf_data,
        f"/{HOST}/d/o.json": other,
        "/cdn.example/blob": hf_data,
    }
    with FileServer(files) as srv:
        srv.fault("/huggingface.co/datasets/o/p/resolve/main/b.json", f"redirect:{srv.url}/cdn.example/blob")
        o = FetchOptions(mirror=srv.url, backoff=0.001, timeout=5)  # token from the environment
        results = fetch.download([e_hf, e_hf2, e_other], layout, options=o)
        auth = {r.path: r.header("Authorization") for r in srv.gets()}
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    # the requests went to the (plain-HTTP) mirror, not to huggingface.co: the token stays home
    assert auth == {
        "/huggingface.co/datasets/o/r/resolve/main/s.json": None,
        "/huggingface.co/datasets/o/p/resolve/main/b.json": None,
        "/cdn.example/blob": None,
        f"/{HOST}/d/o.json": None,
    }
    assert "hf_SECRET123" not in caplog.text
    assert "hf_SECRET123" not in repr(FetchOptions(hf_token="hf_SECRET123"))


@pytest.mark.parametrize(
    ("url", "mirror", "sent"),
    [
        ("https://huggingface.co/datasets/o/r/resolve/main/s.json", None, True),
        ("https://cdn-lfs.huggingface.co/x", None, True),
        ("http://huggingface.co/datasets/o/r/resolve/main/s.json", None, False),  # plain HTTP
        ("https://huggingface.co/datasets/o/r/resolve/main/s.json", "http://127.0.0.1:9", False),
        ("https://huggingface.co/datasets/o/r/resolve/main/s.json", "https://mirror.example", False),
        ("https://huggingface.co.evil.example/x", None, False),
        ("https://example.org/x", None, False),
    ],
)
def test_hf_token_only_over_https_to_hf_itself(url, mirror, sent):
    req = fetch._request(url, FetchOptions(mirror=mirror, hf_token="hf_SECRET123"))
    assert (req.unredirected_hdrs.get("Authorization") == "Bearer hf_SECRET123") is sent
    assert "Authorization" not in req.headers


def test_jobs_bound_parallel_transfers(layout):
    import threading

    active, peak, lock = 0, 0, threading.Lock()

    def progress(ev):
        nonlocal active, peak
        with lock:
            if ev.kind == "start" and ev.completed == 0 and ev.total is not None and ev.name not in seen:
                seen.add(ev.name)
                active += 1
                peak = max(peak, active)
            elif ev.kind == "done":
                active -= 1

    seen: set[str] = set()
    datas = {f"f{i}.json": blob(20_000, 100 + i) for i in range(6)}
    with FileServer({f"/{HOST}/d/{k}": v for k, v in datas.items()}) as srv:
        results = fetch.download(
            [entry(k, v) for k, v in datas.items()], layout, options=opts(srv, jobs=2), progress=progress
        )
    assert [r.status for r in results] == ["ok"] * 6
    assert 1 <= peak <= 2


# ---------------------------------------------------------------------------------------------
# extraction


def test_zip_slip_refused_nothing_written(layout, tmp_path):
    arc = zip_bytes({"ok/a.txt": b"a", "../evil.txt": b"evil"})
    e = entry("slip.zip", arc, path="downloads/vqav2/slip.zip", extract_to="raw/vqav2")
    with FileServer({f"/{HOST}/d/slip.zip": arc}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
    assert r.status == "failed"
    assert r.reason == f"{layout.root / e.path}: member '../evil.txt' contains '..'; nothing extracted"
    assert not (layout.root / "raw/evil.txt").exists() and not (layout.root / "raw/vqav2/ok").exists()
    assert sorted(p.name for p in (layout.root / "raw").iterdir()) == []  # no temp folder left behind
    assert fetch.file_state(e, layout) == "not extracted"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("/abs.txt", b"x")], "member '/abs.txt' has an absolute path"),
        ([("a/../../x.txt", b"x")], "member 'a/../../x.txt' contains '..'"),
        ([link("sub/link", "../../outside")], "link 'sub/link' -> '../../outside' points outside the target"),
        ([link("link", "/etc")], "link 'link' points to absolute path '/etc'"),
        ([link("hard", "/etc/passwd", tarfile.LNKTYPE)], "member '/etc/passwd' has an absolute path"),
        ([link("hard", "../x", tarfile.LNKTYPE)], "member '../x' contains '..'"),
    ],
)
def test_tar_escapes_refused(tmp_path, members, message):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_bytes([("fine.txt", b"ok"), *members]))
    target = tmp_path / "out" / "target"
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(archive, target)
    assert str(info.value) == f"{archive}: {message}; nothing extracted"
    assert not target.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "out"]


def test_zip_symlink_escape_refused(tmp_path):
    archive = tmp_path / "l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "../../etc")
    with pytest.raises(UnsafeArchiveError, match="link 'link' -> '../../etc' points outside the target"):
        extract_archive(archive, tmp_path / "t")


def test_tar_gz_extracted_into_layout_with_inner_links(layout):
    arc = tar_bytes(
        [
            ("images/1.jpg", b"one"),
            ("images/sub/2.jpg", b"two"),
            link("images/alias.jpg", "1.jpg"),
            link("images/hard.jpg", "images/1.jpg", tarfile.LNKTYPE),
        ]
    )
    e = entry(
        "images.tar.gz",
        arc,
        source="gqa",
        path="downloads/gqa/images.tar.gz",
        extract_to="images/gqa",
        kind="images",
    )
    (layout.images / "gqa/images").mkdir(parents=True)
    (layout.images / "gqa/images/old.jpg").write_bytes(b"kept")  # merged, not replaced
    with FileServer({f"/{HOST}/d/images.tar.gz": arc}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
    assert r.status == "ok"
    d = layout.images / "gqa/images"
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*")) == [
        "1.jpg",
        "alias.jpg",
        "hard.jpg",
        "old.jpg",
        "sub",
        "sub/2.jpg",
    ]
    assert (d / "alias.jpg").is_symlink() and (d / "alias.jpg").read_bytes() == b"one"
    assert (d / "hard.jpg").read_bytes() == b"one" and (d / "sub/2.jpg").read_bytes() == b"two"
    assert [p.name for p in layout.images.iterdir()] == ["gqa"]


def test_stale_extraction_folder_of_a_dead_run_is_removed(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"x.txt": b"x"}))
    stale = tmp_path / ".t.extracting-4194305-1"  # above Linux's pid_max: no such process
    (stale / "half").mkdir(parents=True)
    assert extract_archive(archive, tmp_path / "t") == ["x.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "t"]


def test_zip_annotations_extracted_into_raw(layout):
    arc = zip_bytes({"v2_OpenEnded_mscoco_train2014_questions.json": b'{"questions": []}'})
    e = entry("v2_Questions_Train_mscoco.zip", arc, path="downloads/vqav2/q.zip", extract_to="raw/vqav2")
    with FileServer({f"/{HOST}/d/v2_Questions_Train_mscoco.zip": arc}) as srv:
        [r] = fetch.download([e], layout, options=opts(srv))
    assert r.status == "ok"
    assert (
        layout.raw("vqav2") / "v2_OpenEnded_mscoco_train2014_questions.json"
    ).read_bytes() == b'{"questions": []}'
    assert fetch.file_state(e, layout) == "verified"


# ---------------------------------------------------------------------------------------------
# OCR-VQA covers


def _img(fmt: str, mode: str = "RGB", size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    color = {"RGB": (200, 10, 10), "RGBA": (0, 0, 255, 128), "P": 3, "L": 100}[mode]
    Image.new(mode, size, color).save(buf, format=fmt)
    return buf.getvalue()


def test_ocrvqa_covers(layout):
    amazon = "ecx.images-amazon.com"
    jpg, gif, png = _img("JPEG"), _img("GIF", "P"), _img("PNG", "RGBA")
    books = {
        "761183272": ("/I/a.jpg", 1),
        "140031996X": ("/I/b.gif", 1),
        "0001": ("/I/c.png", 1),
        "dead": ("/I/dead.jpg", 1),
        "tiny": ("/I/tiny.gif", 1),
        "flaky": ("/I/f.jpg", 1),
        "junk": ("/I/junk.jpg", 1),
        "val": ("/I/v.jpg", 2),
    }
    dataset = {
        k: {"imageURL": f"http://{amazon}{p}", "questions": [], "answers": [], "split": s}
        for k, (p, s) in books.items()
    }
    (layout.raw("ocrvqa")).mkdir(parents=True)
    (layout.raw("ocrvqa") / "dataset.json").write_text(json.dumps(dataset))
    files = {
        f"/{amazon}/I/a.jpg": jpg,
        f"/{amazon}/I/b.gif": gif,
        f"/{amazon}/I/c.png": png,
        f"/{amazon}/I/tiny.gif": _img("GIF", "P", (1, 1)),
        f"/{amazon}/I/f.jpg": jpg,
        f"/{amazon}/I/junk.jpg": b"<html>not an image</html>",
        f"/{amazon}/I/v.jpg": jpg,
    }
    with FileServer(files) as srv:
        srv.fault(f"/{amazon}/I/f.jpg", "status:503")
        rep = fetch_ocrvqa_covers(layout, options=opts(srv), jobs=3)
        first_gets = len(srv.gets())
        rep2 = fetch_ocrvqa_covers(layout, options=opts(srv), jobs=3)
        rerun_paths = sorted(r.path for r in srv.gets()[first_gets:])
    out = layout.images / "ocr_vqa/images"
    assert (rep.total, rep.fetched, rep.present, rep.failed) == (7, 4, 0, 3)
    assert sorted(p.name for p in out.iterdir()) == [
        "0001.jpg",
        "140031996X.jpg",
        "761183272.jpg",
        "flaky.jpg",
    ]
    assert (out / "761183272.jpg").read_bytes() == jpg  # a JPEG is kept byte for byte
    for name in ("140031996X.jpg", "0001.jpg"):
        with Image.open(out / name) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (8, 6))
    table = pq.read_table(layout.downloads / "ocrvqa_failures.parquet").to_pylist()
    assert table == [
        {"key": "dead", "url": f"http://{amazon}/I/dead.jpg", "status": 404, "reason": "HTTP 404 Not Found"},
        {"key": "junk", "url": f"http://{amazon}/I/junk.jpg", "status": 200, "reason": table[1]["reason"]},
        {
            "key": "tiny",
            "url": f"http://{amazon}/I/tiny.gif",
            "status": 200,
            "reason": "placeholder image (1x1)",
        },
    ]
    assert table[1]["reason"].startswith("cannot decode image: ")
    # the rerun asks only for what is missing
    assert rerun_paths == [f"/{amazon}/I/dead.jpg", f"/{amazon}/I/junk.jpg", f"/{amazon}/I/tiny.gif"]
    assert (rep2.fetched, rep2.present, rep2.failed) == (0, 4, 3)


def test_to_jpeg_flattens_transparency_and_takes_first_frame():
    buf = io.BytesIO()
    frames = [Image.new("P", (4, 4), i) for i in (1, 2)]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = fetch.to_jpeg(buf.getvalue())
    with Image.open(io.BytesIO(out)) as im:
        assert (im.format, im.mode, im.size, getattr(im, "n_frames", 1)) == ("JPEG", "RGB", (4, 4), 1)
    with Image.open(io.BytesIO(fetch.to_jpeg(_img("PNG", "RGBA")))) as im:
        r, g, b = im.getpixel((0, 0))
        assert r > 100 and g > 100 and b > 200  # half-transparent blue on white


# ---------------------------------------------------------------------------------------------
# CLI function


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("download")(download_cmd)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `download` a named subcommand
        pass

    return app


def test_cli_download_vqav2_gqa_with_catalog_and_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    root = tmp_path / "R"
    q = zip_bytes({"v2_OpenEnded_mscoco_train2014_questions.json": b"{}"})
    a = zip_bytes({"v2_mscoco_train2014_annotations.json": b"{}"})
    gq = zip_bytes({"train_balanced_questions.json": b"{}"})
    gi = zip_bytes({"images/1.jpg": b"1", "images/2.jpg": b"2"})
    files = {
        "/s3.example/vqa/q.zip": q,
        "/s3.example/vqa/a.zip": a,
        "/stanford.example/gqa/questions1.2.zip": gq,
        "/stanford.example/gqa/images.zip": gi,
        "/other.example/t.json": b"{}",
    }
    cat = [
        {
            "source": "vqav2",
            "url": "https://s3.example/vqa/q.zip",
            "path": "downloads/vqav2/q.zip",
            "extract_to": "raw/vqav2",
            "sha256": sha(q),
            "size": len(q),
        },
        {
            "source": "vqav2",
            "url": "https://s3.example/vqa/a.zip",
            "path": "downloads/vqav2/a.zip",
            "extract_to": "raw/vqav2",
            "md5": hashlib.md5(a).hexdigest(),
        },
        {
            "source": "gqa",
            "url": "https://stanford.example/gqa/questions1.2.zip",
            "path": "downloads/gqa/q.zip",
            "extract_to": "raw/gqa",
        },
        {
            "source": "gqa",
            "url": "https://stanford.example/gqa/images.zip",
            "path": "downloads/gqa/images.zip",
            "extract_to": "images/gqa",
        },
        {"source": "textcaps", "url": "https://other.example/t.json", "path": "raw/textcaps/t.json"},
    ]
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(cat))
    runner = CliRunner()
    with FileServer(files) as srv:
        args = [
            "download",
            "vqav2",
            "gqa",
            "--root",
            str(root),
            "--catalog",
            str(catalog),
            "--mirror",
            srv.url,
            "--jobs",
            "2",
        ]
        res = runner.invoke(_app(), args)
        assert res.exit_code == 0, res.output
        assert len(srv.gets()) == 4  # textcaps not requested
        res2 = runner.invoke(_app(), args)
        assert res2.exit_code == 0, res2.output
        assert len(srv.requests) == 4
        res3 = runner.invoke(_app(), [*args[:3], "--annotations-only", *args[3:]])
        assert res3.exit_code == 0
    assert (root / "raw/vqav2/v2_OpenEnded_mscoco_train2014_questions.json").is_file()
    assert (root / "raw/vqav2/v2_mscoco_train2014_annotations.json").is_file()
    assert (root / "raw/gqa/train_balanced_questions.json").is_file()
    assert sorted(p.name for p in (root / "images/gqa/images").iterdir()) == ["1.jpg", "2.jpg"]
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("download: 4 files: 4 ok, 0 skipped, 0 failed, 0 manual;")
    assert (
        res2.output.strip()
        .splitlines()[-1]
        .startswith("download: 4 files: 0 ok, 4 skipped, 0 failed, 0 manual;")
    )
    assert res3.output.strip().splitlines()[-1].startswith("download: 3 files: 0 ok, 3 skipped, 0 failed")
    from datamix.catalog import load_catalog

    assert download_state(Layout(root), load_catalog(catalog)) == {
        "vqav2": "2/2 verified",
        "gqa": "2/2 verified",
        "textcaps": "1/1 missing",
    }


def test_cli_failures_manual_and_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    root = tmp_path / "R"
    cat = [
        {
            "source": "vqav2",
            "url": "https://s3.example/vqa/q.json",
            "path": "raw/vqav2/q.json",
            "sha256": "0" * 64,
        },
        {"source": "vqav2", "url": "https://s3.example/vqa/a.json", "path": "raw/vqav2/a.json"},
        {
            "source": "ocrvqa",
            "url": "https://drive.example/folder",
            "path": "raw/ocrvqa/dataset.json",
            "manual": "download dataset.json by hand to {target}",
        },
    ]
    catalog = tmp_path / "c.json"
    catalog.write_text(json.dumps(cat))
    runner = CliRunner()
    with FileServer({"/s3.example/vqa/q.json": b"{}", "/s3.example/vqa/a.json": b"[]"}) as srv:
        res = runner.invoke(
            _app(), ["download", "--root", str(root), "--catalog", str(catalog), "--mirror", srv.url]
        )
        assert len(srv.gets()) == 2  # the manual file is never requested
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())
    assert f"download dataset.json by hand to {root / 'raw/ocrvqa/dataset.json'}" in out
    assert "failed (vqav2): raw/vqav2/q.json: sha256 mismatch" in out
    assert "download: 3 files: 1 ok, 0 skipped, 1 failed, 1 manual" in out
    assert (root / "raw/vqav2/a.json").read_bytes() == b"[]" and not (root / "raw/vqav2/q.json").exists()

    # the manual file placed by hand is verified (no network needed) and recorded
    (root / "raw/ocrvqa").mkdir(parents=True)
    (root / "raw/ocrvqa/dataset.json").write_text("{}")
    res = runner.invoke(
        _app(), ["download", "ocrvqa", "--root", str(root), "--catalog", str(catalog), "--annotations-only"]
    )
    assert res.exit_code == 0, res.output
    prov = json.loads((root / "downloads/provenance.json").read_text())
    assert prov["files"]["raw/ocrvqa/dataset.json"]["sha256"] == sha(b"{}")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**cat[1], "checksum": "x"}]))
    res = runner.invoke(_app(), ["download", "--root", str(root), "--catalog", str(bad)])
    assert res.exit_code == 2
    assert "entry 0, field 'checksum': unknown field" in " ".join(res.output.split())
    res = runner.invoke(_app(), ["download", "nosuch", "--root", str(root), "--catalog", str(catalog)])
    assert res.exit_code == 2 and "unknown source(s): nosuch" in res.output


def test_builtin_state_all_missing(tmp_path):
    state = download_state(Layout(tmp_path))
    assert state["vqav2"] == "3/3 missing" and state["ocrvqa"] == "1/1 missing"
    assert len(state) == 11
    assert os.listdir(tmp_path) == []
