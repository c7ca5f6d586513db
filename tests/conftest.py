"""Shared fixtures: a temporary DATAMIX_ROOT and helpers to plant raw files and images."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


class RawWorld:
    """A tmp ROOT with helpers to write raw files and images in the LLaVA layout."""

    def __init__(self, root: Path):
        self.root = root

    def json(self, source: str, name: str, data: Any) -> Path:
        path = self.root / "raw" / source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def pickle(self, source: str, name: str, data: Any, protocol: int = 2) -> Path:
        path = self.root / "raw" / source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        return path

    def image(
        self, rel: str, size: tuple[int, int] = (8, 6), fmt: str = "JPEG", data: bytes | None = None
    ) -> Path:
        path = self.root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            buf = io.BytesIO()
            Image.new("RGB", size, (200, 10, 10)).save(buf, format=fmt)
            data = buf.getvalue()
        path.write_bytes(data)
        return path


@pytest.fixture
def world(tmp_path: Path) -> RawWorld:
    return RawWorld(tmp_path / "root")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The tiny synthetic raw data of every source (seed 0), normalized, written once for the session.
    Tests build into their own tmp_path (`build(..., out=...)`, `--out`) and leave this root as it is."""
    from datamix.normalize import normalize
    from datamix.synth import synth

    root = tmp_path_factory.mktemp("tiny_root")
    synth(root, scale="tiny", seed=0)
    assert not [r for r in normalize(root=root) if "error" in r]
    return root
