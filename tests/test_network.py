"""The catalog's download URLs answer (marked `network`: deselected by default; `pytest -m network`
on a machine that reaches the dataset hosts).

Each distinct URL that `datamix download` fetches is asked for its first byte: the host must answer
with the file (200 or 206), and where the catalog records a size, a ranged answer's total must be it."""

from __future__ import annotations

import urllib.request

import pytest

from datamix.catalog import CATALOG
from datamix.fetch import USER_AGENT

pytestmark = pytest.mark.network

URLS = sorted({(f.url, f.size) for f in CATALOG if f.manual is None})


@pytest.mark.parametrize(("url", "size"), URLS, ids=[u for u, _ in URLS])
def test_catalog_url_answers(url: str, size: int | None) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Range": "bytes=0-0"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status in (200, 206), (url, resp.status)
        content_range = resp.headers.get("Content-Range")
        if size is not None and resp.status == 206 and content_range:
            assert int(content_range.rsplit("/", 1)[1]) == size, (url, content_range)
