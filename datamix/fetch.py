"""HTTP download (resume, retry, verify, atomic promotion), safe extraction, OCR-VQA book covers.

Responsibilities:
- `download(entries, layout)`: fetch catalog entries with bounded parallelism. Each file is written
  to `<path>.part`, resumed with an HTTP Range request after a dropped connection or a killed run,
  retried with exponential backoff on connection errors, timeouts, 429 and 5xx, then checked
  (size, sha256, md5 where the catalog knows them) and only then renamed onto its final path. A
  mismatch fails that file alone (named in its result) and promotes nothing; the others go on.
- A verified file gets a marker `downloads/.verified/<path>.json` (size, mtime, sha256, md5,
  extracted); a rerun trusts the marker while size and mtime are unchanged and sends no request.
- First-seen sha256 of every verified file (in particular of those without a published checksum)
  is recorded in `downloads/provenance.json`.
- `--mirror M` maps `https://HOST/PATH` to `M/HOST/PATH` (`map_mirror`).
- `HF_TOKEN` (environment) is sent as `Authorization: Bearer ...` only on HTTPS requests to
  huggingface.co itself (never to a `--mirror`, which is where the request goes once one is set), as
  an unredirected header (never forwarded to the CDN a redirect points to), and never logged.
- `extract_archive`: zip and tar(.gz) members with absolute paths, `..`, links pointing outside the
  target or special files are refused before anything is written; the archive is extracted into a
  temporary folder beside the target and moved into place.
- `fetch_ocrvqa_covers`: each train book's `imageURL` of `raw/ocrvqa/dataset.json`, converted to
  RGB JPEG, saved atomically as `images/ocr_vqa/images/<key>.jpg`; every failure goes to
  `downloads/ocrvqa_failures.parquet`; a rerun fetches only what is missing.

This module logs (logging) and reports progress through a callback; it never prints.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import ssl
import stat
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from datamix.catalog import RemoteFile
from datamix.errors import DataError
from datamix.fileio import atomic_path, write_json_atomic
from datamix.paths import OCRVQA_DIR, Layout

log = logging.getLogger(__name__)

# Pillow's decompression-bomb guard stays on (an error above 2x this many pixels); make it explicit.
Image.MAX_IMAGE_PIXELS = 89_478_485

HF_HOSTS = ("huggingface.co",)
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "datamix-download/0.1 (+https://github.com/haotian-liu/LLaVA data rebuild)"
MARKER_DIR = ".verified"
PROVENANCE_NAME = "provenance.json"
OCRVQA_FAILURES_NAME = "ocrvqa_failures.parquet"
MAX_COVER_BYTES = 32 << 20

Status = Literal["ok", "skipped", "failed", "manual"]


# ---------------------------------------------------------------------------------------------
# public value types


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchOptions:
    """How transfers behave. `hf_token` None means: read HF_TOKEN from the environment."""

    jobs: int = 4
    mirror: str | None = None
    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 60.0
    chunk_size: int = 1 << 20
    hf_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileResult:
    """Outcome for one catalog entry: ok (fetched/extracted now), skipped (already verified),
    failed (reason says why), manual (must be placed by hand; reason names the target path)."""

    entry: RemoteFile
    status: Status
    reason: str = ""
    transferred: int = 0
    sha256: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressEvent:
    """`start` (total may be None; completed = bytes already there), `advance` (+advance),
    `extract` (an archive is being extracted), `done` (result set). `unit` is "B" or "images"."""

    kind: Literal["start", "advance", "extract", "done"]
    name: str
    source: str
    total: int | None = None
    completed: int = 0
    advance: int = 0
    unit: str = "B"
    result: FileResult | None = None


ProgressFn = Callable[[ProgressEvent], None]


class FetchError(DataError):
    """A transfer or verification that failed for good; the message names the file."""


class UnsafeArchiveError(DataError):
    """An archive with a member that would land outside its target (or is not a plain member)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverFailure:
    key: str
    url: str
    status: int | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverReport:
    """OCR-VQA covers: train books, fetched now, already present, failed (see `report`)."""

    total: int
    fetched: int
    present: int
    failures: tuple[CoverFailure, ...]
    report: Path

    @property
    def failed(self) -> int:
        return len(self.failures)


# ---------------------------------------------------------------------------------------------
# URLs and requests


def map_mirror(url: str, mirror: str | None) -> str:
    """`https://HOST/PATH?Q` -> `MIRROR/HOST/PATH?Q`; unchanged without a mirror."""
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    rest = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{mirror.rstrip('/')}/{parts.netloc}{rest}{query}"


def is_hf_url(url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in HF_HOSTS)


def _may_carry_token(requested_url: str) -> bool:
    """The token goes only to the host it belongs to, over HTTPS: the URL actually requested (after
    `--mirror` mapping) decides, never the catalog URL, so a mirror never sees it."""
    return urllib.parse.urlsplit(requested_url).scheme == "https" and is_hf_url(requested_url)


def _hf_token(options: FetchOptions) -> str | None:
    return options.hf_token if options.hf_token is not None else (os.environ.get("HF_TOKEN") or None)


def _request(
    origin_url: str, options: FetchOptions, headers: dict[str, str] | None = None
) -> urllib.request.Request:
    req = urllib.request.Request(map_mirror(origin_url, options.mirror), headers={"User-Agent": USER_AGENT})
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    token = _hf_token(options)
    if token and _may_carry_token(req.full_url):
        # unredirected: urllib does not copy it onto the request a redirect leads to (HF -> CDN)
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    return req


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, short body, 429/5xx)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    ssl.SSLError,
)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _classify(exc: BaseException) -> Exception:
    """Map a urllib/network exception to _Transient or FetchError."""
    if isinstance(exc, urllib.error.HTTPError):
        msg = f"HTTP {exc.code} {exc.reason}"
        if exc.code in RETRY_STATUS:
            return _Transient(msg, _retry_after(exc.headers))
        return FetchError(msg)
    if isinstance(exc, urllib.error.URLError):
        return _Transient(f"connection error: {exc.reason}")
    return _Transient(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _sleep_backoff(options: FetchOptions, attempt: int, retry_after: float | None) -> None:
    delay = min(options.max_backoff, options.backoff * (2 ** (attempt - 1)))
    if retry_after is not None:
        delay = min(options.max_backoff, max(delay, retry_after))
    time.sleep(delay)


# ---------------------------------------------------------------------------------------------
# markers and provenance


def _marker_path(layout: Layout, entry: RemoteFile) -> Path:
    return layout.downloads / MARKER_DIR / f"{entry.path}.json"


def _read_marker(layout: Layout, entry: RemoteFile) -> dict[str, Any] | None:
    try:
        return json.loads(_marker_path(layout, entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _marker_matches(marker: dict[str, Any] | None, entry: RemoteFile, final: Path) -> bool:
    """The marker vouches for the file on disk (unchanged size and mtime) and fits the entry."""
    if not marker:
        return False
    try:
        st = final.stat()
    except OSError:
        return False
    if st.st_size != marker.get("size") or st.st_mtime_ns != marker.get("mtime_ns"):
        return False
    if entry.size is not None and entry.size != marker.get("size"):
        return False
    if entry.sha256 is not None and entry.sha256 != marker.get("sha256"):
        return False
    return entry.md5 is None or entry.md5 == marker.get("md5")


def _write_marker(layout: Layout, entry: RemoteFile, final: Path, digests: _Digests, extracted: bool) -> None:
    st = final.stat()
    write_json_atomic(
        _marker_path(layout, entry),
        {
            "path": entry.path,
            "url": entry.url,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": digests.sha256,
            "md5": digests.md5,
            "extract_to": entry.extract_to,
            "extracted": extracted,
            "verified_at": _now(),
        },
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Provenance:
    """`downloads/provenance.json`: first-seen sha256 (and size, url) per file path."""

    def __init__(self, layout: Layout):
        self.path = layout.downloads / PROVENANCE_NAME
        self.lock = threading.Lock()

    def record(self, entry: RemoteFile, digests: _Digests) -> None:
        with self.lock:
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                doc = {}
            files = doc.setdefault("files", {})
            old = files.get(entry.path)
            if old and old.get("sha256") == digests.sha256:
                return
            if old and not entry.has_checksum:
                log.warning(
                    "%s: sha256 %s differs from the one first recorded (%s) in %s: the upstream file changed",
                    entry.path,
                    digests.sha256,
                    old.get("sha256"),
                    self.path,
                )
            files[entry.path] = {
                "source": entry.source,
                "url": entry.url,
                "size": digests.size,
                "sha256": digests.sha256,
                "md5": digests.md5,
                "checksum_published": entry.has_checksum,
                "first_recorded": _now(),
                **({"previous_sha256": old.get("sha256")} if old else {}),
            }
            write_json_atomic(self.path, doc)


# ---------------------------------------------------------------------------------------------
# hashing


@dataclass(frozen=True, slots=True)
class _Digests:
    size: int
    sha256: str
    md5: str


class _Hasher:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha.update(data)
        self.md5.update(data)
        self.size += len(data)

    def update_from_file(self, path: Path, chunk: int = 1 << 20) -> None:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                self.update(block)

    def digests(self) -> _Digests:
        return _Digests(self.size, self.sha.hexdigest(), self.md5.hexdigest())


def _hash_file(path: Path) -> _Digests:
    h = _Hasher()
    h.update_from_file(path)
    return h.digests()


def _check(entry: RemoteFile, d: _Digests) -> str | None:
    """None when the digests fit the entry, else what is wrong."""
    if entry.size is not None and d.size != entry.size:
        return f"size mismatch: expected {entry.size} bytes, got {d.size}"
    if entry.sha256 is not None and d.sha256 != entry.sha256:
        return f"sha256 mismatch: expected {entry.sha256}, got {d.sha256}"
    if entry.md5 is not None and d.md5 != entry.md5:
        return f"md5 mismatch: expected {entry.md5}, got {d.md5}"
    return None


# ---------------------------------------------------------------------------------------------
# one transfer into <path>.part, resumable


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _transfer(entry: RemoteFile, part: Path, options: FetchOptions, emit: ProgressFn) -> tuple[_Digests, int]:
    """Fetch entry.url into `part` (resuming what is there); returns digests and bytes received."""
    hasher = _Hasher()
    part.parent.mkdir(parents=True, exist_ok=True)
    pos = part.stat().st_size if part.exists() else 0
    if entry.size is not None and pos > entry.size:
        log.warning("%s: partial file larger than expected; starting over", part)
        pos = 0
    if pos:
        with open(part, "r+b") as f:
            f.truncate(pos)
        hasher.update_from_file(part)
        log.info("%s: resuming at byte %d", entry.path, pos)
    else:
        part.write_bytes(b"")
    received = 0
    attempt = 0
    emit(ProgressEvent(kind="start", name=entry.path, source=entry.source, total=entry.size, completed=pos))
    while True:
        try:
            headers = {"Range": f"bytes={pos}-"} if pos else {}
            try:
                resp = urllib.request.urlopen(_request(entry.url, options, headers), timeout=options.timeout)
            except urllib.error.HTTPError as e:
                if e.code == 416 and pos:
                    m = re.match(r"bytes\s+\*/(\d+)", e.headers.get("Content-Range", "") or "")
                    e.close()
                    if m and int(m.group(1)) == pos:
                        break  # the .part already holds the whole file
                    log.warning("%s: server refused resume at byte %d; starting over", entry.path, pos)
                    pos = 0
                    hasher.reset()
                    part.write_bytes(b"")
                    raise _Transient("HTTP 416 on resume") from None
                raise
            with resp:
                expected: int | None
                length = resp.headers.get("Content-Length")
                if resp.status == 206 and pos:
                    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
                    if not m or int(m.group(1)) != pos:
                        log.warning(
                            "%s: unexpected Content-Range %r; starting over",
                            entry.path,
                            resp.headers.get("Content-Range"),
                        )
                        pos = 0
                        hasher.reset()
                        part.write_bytes(b"")
                        raise _Transient("unexpected Content-Range")
                    total = None if m.group(3) == "*" else int(m.group(3))
                    expected = int(m.group(2)) - pos + 1
                    mode = "ab"
                else:
                    if pos:
                        log.info("%s: server ignored the Range request; starting over", entry.path)
                    pos = 0
                    hasher.reset()
                    expected = int(length) if length and length.isdigit() else None
                    total = expected
                    mode = "wb"
                emit(
                    ProgressEvent(
                        kind="start",
                        name=entry.path,
                        source=entry.source,
                        total=total or entry.size,
                        completed=pos,
                    )
                )
                got = 0
                with open(part, mode) as f:
                    while True:
                        try:
                            data = resp.read(options.chunk_size)
                        except (OSError, http.client.HTTPException) as e:
                            raise _Transient(
                                f"connection dropped after {pos} bytes: {type(e).__name__}"
                            ) from None
                        if not data:
                            break
                        f.write(data)
                        hasher.update(data)
                        got += len(data)
                        pos += len(data)
                        received += len(data)
                        emit(
                            ProgressEvent(
                                kind="advance", name=entry.path, source=entry.source, advance=len(data)
                            )
                        )
                if expected is not None and got < expected:
                    raise _Transient(f"connection dropped after {pos} bytes ({expected - got} missing)")
            break
        except (_Transient, *_NETWORK_ERRORS) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()
            err = exc if isinstance(exc, _Transient) else _classify(exc)
            if isinstance(err, FetchError):
                raise FetchError(f"{entry.path}: {err} ({map_mirror(entry.url, options.mirror)})") from None
            attempt += 1
            if attempt > options.retries:
                raise FetchError(f"{entry.path}: gave up after {attempt} attempts: {err}") from None
            log.info("%s: %s; retry %d/%d", entry.path, err, attempt, options.retries)
            _sleep_backoff(options, attempt, getattr(err, "retry_after", None))
    return hasher.digests(), received


# ---------------------------------------------------------------------------------------------
# safe extraction


def _check_member_name(archive: Path, name: str) -> str:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; nothing extracted")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; nothing extracted")
    if "\x00" in norm:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains a NUL byte; nothing extracted")
    return "/".join(parts)


def _check_link(archive: Path, name: str, target: str, *, hard: bool) -> None:
    """A link must point inside the extraction root (symlinks relative to their folder, hard links
    relative to the root)."""
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target.replace("\\", "/")):
        raise UnsafeArchiveError(
            f"{archive}: link {name!r} points to absolute path {target!r}; nothing extracted"
        )
    base = "" if hard else posixpath.dirname(name)
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise UnsafeArchiveError(
            f"{archive}: link {name!r} -> {target!r} points outside the target; nothing extracted"
        )


def _inside(root: Path, path: Path) -> bool:
    root_r = os.path.realpath(root)
    p = os.path.realpath(path)
    return p == root_r or p.startswith(root_r + os.sep)


def _extract_zip(archive: Path, tmp: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        plan: list[tuple[str, zipfile.ZipInfo, str, str | None]] = []  # (what, info, name, link target)
        for info in infos:
            name = _check_member_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "surrogateescape")
                _check_link(archive, name, target, hard=False)
                plan.append(("link", info, name, target))
            elif info.is_dir() or not name:
                plan.append(("dir", info, name, None))
            else:
                plan.append(("file", info, name, None))
        links = []
        for what, info, name, link_target in plan:
            dest = tmp / name if name else tmp
            if what == "dir":
                dest.mkdir(parents=True, exist_ok=True)
            elif what == "file":
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not _inside(tmp, dest.parent):
                    raise UnsafeArchiveError(
                        f"{archive}: member {info.filename!r} would be written outside the target"
                    )
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            elif link_target is not None:  # "link"
                links.append((dest, link_target))
        for dest, target in links:  # created last: no member is ever written through a link
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, dest)


def _extract_tar(archive: Path, tmp: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for m in members:
            name = _check_member_name(archive, m.name)
            if m.issym():
                _check_link(archive, name, m.linkname, hard=False)
            elif m.islnk():
                _check_member_name(archive, m.linkname)
                _check_link(archive, name, m.linkname, hard=True)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device/fifo; nothing extracted")
        if hasattr(tarfile, "data_filter"):
            try:
                tf.extractall(tmp, members=members, filter="data")
            except tarfile.FilterError as e:
                raise UnsafeArchiveError(f"{archive}: {e}; nothing extracted") from None
        else:  # pragma: no cover - Python < 3.11.4; every member was checked above
            tf.extractall(tmp, members=members)


def _merge_move(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst` (renames; merges into folders that already exist)."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        target = dst / child.name
        if target.is_dir() and not target.is_symlink() and child.is_dir() and not child.is_symlink():
            _merge_move(child, target)
        elif target.is_dir() and not target.is_symlink():
            raise FileExistsError(f"cannot place file {child.name!r}: {target} is a folder")
        else:
            os.replace(child, target)


def archive_format(path: Path) -> str:
    """'zip' or 'tar' by name, else by content; ValueError if neither."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise ValueError(f"{path}: not a zip or tar archive")


def _remove_stale_extractions(target: Path) -> None:
    """Temporary folders left by a killed run (their process is gone) are removed."""
    for d in target.parent.glob(f".{target.name}.extracting-*"):
        m = re.match(r".*\.extracting-(\d+)-\d+$", d.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            log.info("removing %s left by an interrupted extraction", d)
            shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def extract_archive(archive: Path, target: Path) -> list[str]:
    """Extract zip/tar(.gz) `archive` into folder `target` safely; returns the top-level names.

    Every member is checked before anything is written; the archive goes into a temporary folder
    beside `target` that is moved into place only when complete. Raises UnsafeArchiveError for
    members with absolute paths, `..`, links pointing outside, or special files; the target is left
    as it was.
    """
    archive, target = Path(archive), Path(target)
    fmt = archive_format(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_extractions(target)
    tmp = target.parent / f".{target.name}.extracting-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        try:
            (_extract_zip if fmt == "zip" else _extract_tar)(archive, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
            raise ValueError(f"{archive}: corrupt {fmt} archive: {e}") from None
        tops = sorted(p.name for p in tmp.iterdir())
        _merge_move(tmp, target)
        return tops
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# one catalog entry, end to end


def part_path(entry: RemoteFile, layout: Layout) -> Path:
    """Where the partial download of an entry lives: beside archives under downloads/, and under
    `downloads/partial/` for files whose final place is elsewhere (raw/...)."""
    if entry.path.startswith("downloads/"):
        return layout.root / f"{entry.path}.part"
    return layout.downloads / "partial" / f"{entry.path}.part"


def _promote(part: Path, final: Path) -> None:
    """Atomic rename of a verified .part onto its final path (copy + rename across filesystems)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(part, final)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        with atomic_path(final) as tmp:
            shutil.copyfile(part, tmp)
        part.unlink()


def _noop(_: ProgressEvent) -> None:
    pass


def _extract_step(entry: RemoteFile, layout: Layout, final: Path, emit: ProgressFn) -> None:
    assert entry.extract_to is not None
    emit(ProgressEvent(kind="extract", name=entry.path, source=entry.source))
    target = layout.root / entry.extract_to
    tops = extract_archive(final, target)
    log.info("%s: extracted %s into %s", entry.path, ", ".join(tops) or "(empty)", target)


def fetch_file(
    entry: RemoteFile,
    layout: Layout,
    *,
    options: FetchOptions = FetchOptions(),
    progress: ProgressFn | None = None,
    provenance: _Provenance | None = None,
) -> FileResult:
    """Bring one entry to 'verified (and extracted)' on disk; never raises for file-level problems."""
    emit = progress or _noop
    provenance = provenance or _Provenance(layout)
    final = layout.root / entry.path

    def finish(result: FileResult) -> FileResult:
        emit(ProgressEvent(kind="done", name=entry.path, source=entry.source, result=result))
        return result

    try:
        marker = _read_marker(layout, entry)
        if _marker_matches(marker, entry, final):
            assert marker is not None
            if entry.extract_to and not marker.get("extracted"):
                _extract_step(entry, layout, final, emit)
                digests = _Digests(marker["size"], marker["sha256"], marker["md5"])
                _write_marker(layout, entry, final, digests, extracted=True)
                return finish(FileResult(entry=entry, status="ok", reason="extracted", sha256=digests.sha256))
            return finish(
                FileResult(entry=entry, status="skipped", reason="verified", sha256=marker["sha256"])
            )

        if final.is_file():  # present without a (fitting) marker: placed by hand or an older run
            digests = _hash_file(final)
            problem = _check(entry, digests)
            if problem is None:
                provenance.record(entry, digests)
                if entry.extract_to:
                    _extract_step(entry, layout, final, emit)
                _write_marker(layout, entry, final, digests, extracted=bool(entry.extract_to))
                return finish(
                    FileResult(
                        entry=entry, status="skipped", reason="present, verified", sha256=digests.sha256
                    )
                )
            if entry.manual:
                return finish(FileResult(entry=entry, status="failed", reason=f"{final}: {problem}"))
            log.warning("%s: existing file does not verify (%s); downloading it again", final, problem)

        if entry.manual:
            return finish(FileResult(entry=entry, status="manual", reason=f"place the file at {final}"))

        part = part_path(entry, layout)
        digests, received = _transfer(entry, part, options, emit)
        problem = _check(entry, digests)
        if problem is not None:
            part.unlink(missing_ok=True)  # a bad body must not be resumed on the next run
            return finish(
                FileResult(
                    entry=entry, status="failed", reason=f"{entry.path}: {problem}", transferred=received
                )
            )
        _promote(part, final)
        provenance.record(entry, digests)
        _write_marker(layout, entry, final, digests, extracted=False)
        if entry.extract_to:
            _extract_step(entry, layout, final, emit)
            _write_marker(layout, entry, final, digests, extracted=True)
        return finish(FileResult(entry=entry, status="ok", transferred=received, sha256=digests.sha256))
    except (FetchError, UnsafeArchiveError) as e:
        return finish(FileResult(entry=entry, status="failed", reason=str(e)))
    except (OSError, ValueError) as e:
        return finish(
            FileResult(entry=entry, status="failed", reason=f"{entry.path}: {type(e).__name__}: {e}")
        )


def download(
    entries: Sequence[RemoteFile],
    layout: Layout,
    *,
    options: FetchOptions = FetchOptions(),
    progress: ProgressFn | None = None,
) -> list[FileResult]:
    """Fetch every entry with at most `options.jobs` transfers at once; one result per entry, in order.

    Entries sharing a path (COCO train2017 for several sources) are fetched once; each gets the result.
    """
    if options.jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {options.jobs}")
    layout.downloads.mkdir(parents=True, exist_ok=True)
    provenance = _Provenance(layout)
    unique: dict[str, RemoteFile] = {}
    for e in entries:
        unique.setdefault(e.path, e)
    with ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="datamix-fetch") as pool:
        futures = {
            path: pool.submit(
                fetch_file, e, layout, options=options, progress=progress, provenance=provenance
            )
            for path, e in unique.items()
        }
        by_path = {path: f.result() for path, f in futures.items()}
    out = []
    for e in entries:
        r = by_path[e.path]
        out.append(
            r
            if r.entry is e
            else FileResult(entry=e, status=r.status, reason=r.reason, transferred=0, sha256=r.sha256)
        )
    return out


def file_state(
    entry: RemoteFile, layout: Layout
) -> Literal["verified", "unverified", "not extracted", "missing"]:
    """What is on disk for an entry, without hashing: verified (marker fits, extracted if an
    archive), not extracted, unverified (present without a fitting marker), missing."""
    final = layout.root / entry.path
    marker = _read_marker(layout, entry)
    if _marker_matches(marker, entry, final):
        assert marker is not None
        return "not extracted" if entry.extract_to and not marker.get("extracted") else "verified"
    return "unverified" if final.is_file() else "missing"


# ---------------------------------------------------------------------------------------------
# OCR-VQA covers


class _CoverError(Exception):
    def __init__(self, status: int | None, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _get_bytes(url: str, options: FetchOptions, limit: int = MAX_COVER_BYTES) -> bytes:
    """GET a small body with retries; raises _CoverError(status, reason)."""
    attempt = 0
    while True:
        status: int | None = None
        try:
            with urllib.request.urlopen(_request(url, options), timeout=options.timeout) as resp:
                status = resp.status
                length = resp.headers.get("Content-Length")
                data = resp.read(limit + 1)
                if len(data) > limit:
                    raise _CoverError(status, f"larger than {limit} bytes")
                if length and length.isdigit() and len(data) < int(length):
                    raise _Transient(f"connection dropped after {len(data)} of {length} bytes")
                return data
        except _CoverError:
            raise
        except (_Transient, *_NETWORK_ERRORS) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                status = exc.code
                exc.close()
            err = exc if isinstance(exc, _Transient) else _classify(exc)
            if isinstance(err, FetchError):
                raise _CoverError(status, str(err)) from None
            attempt += 1
            if attempt > options.retries:
                raise _CoverError(status, f"gave up after {attempt} attempts: {err}") from None
            _sleep_backoff(options, attempt, getattr(err, "retry_after", None))


def to_jpeg(data: bytes) -> bytes:
    """Cover bytes -> JPEG bytes: JPEG kept as is (after a full decode check); GIF/PNG/other ->
    first frame, RGB (transparency flattened on white). Raises ValueError when unusable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            im.seek(0)
            im.load()
            if im.width * im.height <= 1:
                raise ValueError(f"placeholder image ({im.width}x{im.height})")
            if fmt == "JPEG":
                return data
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                rgb = Image.new("RGB", rgba.size, (255, 255, 255))
                rgb.paste(rgba, mask=rgba.getchannel("A"))
            else:
                rgb = im.convert("RGB")
            buf = io.BytesIO()
            rgb.save(buf, format="JPEG", quality=95)
            return buf.getvalue()
    except Image.DecompressionBombError as e:
        raise ValueError(f"image too large: {e}") from None
    except (OSError, SyntaxError, Image.UnidentifiedImageError) as e:
        raise ValueError(f"cannot decode image: {e}") from None


_SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


def _fetch_cover(key: str, url: str, dest: Path, options: FetchOptions) -> CoverFailure | None:
    if not _SAFE_KEY.match(key):
        return CoverFailure(key=key, url=url, status=None, reason="key is not a safe file name")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return CoverFailure(key=key, url=str(url), status=None, reason="no http(s) imageURL")
    try:
        data = _get_bytes(url, options)
    except _CoverError as e:
        return CoverFailure(key=key, url=url, status=e.status, reason=e.reason)
    try:
        jpeg = to_jpeg(data)
    except ValueError as e:
        return CoverFailure(key=key, url=url, status=200, reason=str(e))
    with atomic_path(dest) as tmp:
        tmp.write_bytes(jpeg)
    return None


def ocrvqa_dataset_path(layout: Layout) -> Path:
    return layout.raw("ocrvqa") / "dataset.json"


def ocrvqa_failures_path(layout: Layout) -> Path:
    return layout.downloads / OCRVQA_FAILURES_NAME


def _train_books(dataset: Path) -> list[tuple[str, str]]:
    with open(dataset, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict):
        raise ValueError(f"{dataset}: expected a JSON object keyed by book id")
    books: list[tuple[str, Any]] = []  # (book id, its imageURL as the dataset has it)
    for key, rec in doc.items():
        if isinstance(rec, dict) and str(rec.get("split")) == "1":
            books.append((str(key), rec.get("imageURL")))
    books.sort()
    return books


def _write_failures(path: Path, failures: Iterable[CoverFailure]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(failures, key=lambda f: f.key)
    table = pa.table(
        {
            "key": pa.array([f.key for f in rows], pa.string()),
            "url": pa.array([f.url for f in rows], pa.string()),
            "status": pa.array([f.status for f in rows], pa.int32()),
            "reason": pa.array([f.reason for f in rows], pa.string()),
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def fetch_ocrvqa_covers(
    layout: Layout,
    *,
    options: FetchOptions = FetchOptions(),
    jobs: int = 16,
    progress: ProgressFn | None = None,
) -> CoverReport:
    """Fetch the cover of every split==1 book of `raw/ocrvqa/dataset.json` that is not yet saved.

    Saved as `images/ocr_vqa/images/<key>.jpg` (key exactly as in dataset.json). Failures (key, url,
    HTTP status or null, reason) of this run are written to `downloads/ocrvqa_failures.parquet`,
    replacing the previous report (a rerun retries exactly the missing covers). Raises
    FileNotFoundError when dataset.json is absent.
    """
    emit = progress or _noop
    dataset = ocrvqa_dataset_path(layout)
    if not dataset.is_file():
        raise FileNotFoundError(f"{dataset}: OCR-VQA dataset.json is missing")
    out_dir = layout.images / OCRVQA_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    books = _train_books(dataset)
    todo = [(k, u) for k, u in books if not (out_dir / f"{k}.jpg").is_file()]
    name = "ocrvqa covers"
    emit(ProgressEvent(kind="start", name=name, source="ocrvqa", total=len(todo), unit="images"))
    failures: list[CoverFailure] = []
    fetched = 0
    window = max(1, jobs) * 4
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="datamix-covers") as pool:
        pending: set[Future[CoverFailure | None]] = set()

        def collect() -> None:
            nonlocal fetched, pending
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                failure = f.result()
                if failure is None:
                    fetched += 1
                else:
                    failures.append(failure)
                emit(ProgressEvent(kind="advance", name=name, source="ocrvqa", advance=1, unit="images"))

        for key, url in todo:
            pending.add(pool.submit(_fetch_cover, key, url, out_dir / f"{key}.jpg", options))
            if len(pending) >= window:
                collect()
        while pending:
            collect()
    report = ocrvqa_failures_path(layout)
    _write_failures(report, failures)
    if failures:
        log.warning("OCR-VQA: %d of %d covers could not be fetched; see %s", len(failures), len(todo), report)
    result = CoverReport(
        total=len(books),
        fetched=fetched,
        present=len(books) - len(todo),
        failures=tuple(sorted(failures, key=lambda f: f.key)),
        report=report,
    )
    emit(ProgressEvent(kind="done", name=name, source="ocrvqa", unit="images"))
    return result


__all__ = [
    "CoverFailure",
    "CoverReport",
    "FetchError",
    "FetchOptions",
    "FileResult",
    "ProgressEvent",
    "ProgressFn",
    "UnsafeArchiveError",
    "archive_format",
    "download",
    "extract_archive",
    "fetch_file",
    "fetch_ocrvqa_covers",
    "file_state",
    "is_hf_url",
    "map_mirror",
    "part_path",
    "ocrvqa_dataset_path",
    "ocrvqa_failures_path",
    "to_jpeg",
]
