"""Every source is registered, described and covered by tests; datamix stays free of torch."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import datamix.sources as sources_pkg
from datamix.schema import Kind
from datamix.sources import SOURCE_NAMES, SOURCES, Source

EXPECTED = ("llava_instruct sharegpt vqav2 gqa okvqa aokvqa ocrvqa textcaps vg refcoco llava_pretrain").split()


def test_registry_has_the_eleven_sources_in_order():
    assert list(SOURCE_NAMES) == EXPECTED


def test_every_source_module_is_registered():
    modules = [m.name for m in pkgutil.iter_modules(sources_pkg.__path__) if not m.name.startswith("_")]
    registered = {type(s).__module__.rsplit(".", 1)[1] for s in SOURCES.values()}
    assert sorted(set(modules) - {"base"}) == sorted(registered)
    for m in modules:
        importlib.import_module(f"datamix.sources.{m}")


def test_every_source_is_described():
    for name, src in SOURCES.items():
        assert isinstance(src, Source) and src.name == name
        assert isinstance(src.kind, Kind)
        assert src.stage in ("stage1", "stage2")
        assert src.homepage.startswith("https://") and src.paper.startswith("https://")
        assert src.license and src.title and src.raw_files
        assert type(src).__doc__ is None or True
        doc = sys.modules[type(src).__module__].__doc__
        assert doc and "Licence" in doc and "Raw" in doc, name
    assert [n for n, s in SOURCES.items() if s.stage == "stage1"] == ["llava_pretrain"]


def test_every_source_has_hand_written_fixture_tests():
    text = "".join(p.read_text() for p in (Path(__file__).parent / "sources").glob("test_*.py"))
    for name in SOURCE_NAMES:
        assert f'"{name}"' in text, f"no test runs source {name}"


def test_import_datamix_does_not_import_torch():
    code = "import sys, datamix, datamix.cli, datamix.normalize, datamix.sources; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
