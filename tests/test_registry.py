"""Every source is registered, described and covered by tests; every per-source table is derived from
the descriptors (no module outside datamix/sources names a source); datamix stays free of torch."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import datamix.sources as sources_pkg
from datamix import catalog, formats, llava_json, recipe
from datamix.schema import ITEM_TYPES, Kind
from datamix.sources import SOURCE_NAMES, SOURCES, Source
from datamix.sources.base import LlavaMatch, RemoteFile

EXPECTED = (
    "llava_instruct sharegpt vqav2 gqa okvqa aokvqa ocrvqa textcaps vg refcoco llava_pretrain"
).split()
DATAMIX = Path(sources_pkg.__file__).parent.parent


def test_registry_has_the_eleven_sources_in_order():
    """LLaVA-1.5's eleven sources first, in the order of docs/architecture.md 4.1; new ones after."""
    assert list(SOURCE_NAMES)[: len(EXPECTED)] == EXPECTED
    assert [s.order for s in SOURCES.values()] == sorted(s.order for s in SOURCES.values())


def test_every_source_module_is_registered():
    modules = [m.name for m in pkgutil.iter_modules(sources_pkg.__path__) if not m.name.startswith("_")]
    registered = {type(s).__module__.rsplit(".", 1)[1] for s in SOURCES.values()}
    assert sorted(set(modules) - {"base"}) == sorted(registered)
    for m in modules:
        importlib.import_module(f"datamix.sources.{m}")
    for name, src in SOURCES.items():
        assert type(src).__module__ == f"datamix.sources.{name}", "a source's module is named after it"


def test_every_source_is_described():
    for name, src in SOURCES.items():
        assert isinstance(src, Source) and src.name == name
        assert isinstance(src.kind, Kind)
        assert src.stage in ("stage1", "stage2")
        assert src.homepage.startswith("https://") and src.paper.startswith("https://")
        assert src.license and src.title and src.raw_files
        doc = sys.modules[type(src).__module__].__doc__
        assert doc and "Licence" in doc and "Raw" in doc and "Paper" in doc, name
        assert src.homepage in " ".join(doc.split()), f"{name}: the docstring names the homepage"
    assert [n for n, s in SOURCES.items() if s.stage == "stage1"] == ["llava_pretrain"]


def test_every_descriptor_is_complete():
    for name, src in SOURCES.items():
        assert isinstance(src.llava, LlavaMatch), name
        assert issubclass(src.spec, recipe.SourceSpec), name
        assert isinstance(src.formatter, formats.Formatter), name
        assert src.formatter.item_type is ITEM_TYPES[src.kind], f"{name}: formatter of another kind"
        assert src.remote and all(isinstance(f, RemoteFile) for f in src.remote), name
        assert all(d.count("/") >= 1 for d in src.image_dirs), name
        assert (src.llava.folder is None and src.llava.pattern is None) == (not src.image_dirs), name


def test_every_source_has_hand_written_fixture_tests():
    text = "".join(p.read_text() for p in (Path(__file__).parent / "sources").glob("test_*.py"))
    for name in SOURCE_NAMES:
        assert f'"{name}"' in text, f"no test runs source {name}"


def test_every_source_has_a_synth_writer():
    for name, src in SOURCES.items():
        writer = src.synth_writer()
        assert writer.__name__ == f"datamix.synth.{name}"
        assert callable(getattr(writer, "write_demo", None)) and callable(
            getattr(writer, "write_volume", None)
        )


# --- the derived tables equal the descriptors ------------------------------------------------------


def test_recipe_tables_are_the_descriptors():
    assert recipe.SOURCE_NAMES == SOURCE_NAMES
    assert recipe.SOURCE_KINDS == {n: s.kind for n, s in SOURCES.items()}
    assert recipe.SPEC_TYPES == {n: s.spec for n, s in SOURCES.items()}


def test_catalog_is_the_descriptors_remote_files():
    assert catalog.CATALOG == tuple(f for s in SOURCES.values() for f in s.remote_files)
    assert catalog.sources_in(catalog.CATALOG) == list(SOURCE_NAMES)
    for name, src in SOURCES.items():
        assert all(f.source == name for f in src.remote_files)
        assert all(f.source in ("", name) for f in src.remote), f"{name}: a remote file names another source"


@pytest.mark.parametrize("name", EXPECTED)
def test_formatter_dispatch_is_the_descriptors(name):
    src = SOURCES[name]
    spec = src.spec(choose="all")
    assert formats.formatter_for(spec) is src.formatter
    assert (
        recipe.parse_recipe({"name": "t", "seed": 0, "sources": {name: {"choose": "all"}}}).kind(name)
        is src.kind
    )


def test_every_spec_option_is_a_formatter_argument():
    import inspect

    for name, src in SOURCES.items():
        params = set(inspect.signature(src.formatter.function).parameters)
        assert set(formats.options_of(src.spec)) <= params, f"{name}: an option the formatter does not take"


def test_one_spec_class_one_formatter():
    by_spec: dict[type, set[int]] = {}
    for src in SOURCES.values():
        by_spec.setdefault(src.spec, set()).add(id(src.formatter))
    assert all(len(f) == 1 for f in by_spec.values())


def test_llava_recognition_is_the_descriptors():
    """A record on each source's own image folder is recognised from the descriptors alone."""
    image = {
        "sharegpt": None,
        "gqa": "gqa/images/1.jpg",
        "ocrvqa": "ocr_vqa/images/1.jpg",
        "textcaps": "textvqa/train_images/1.jpg",
        "vg": "vg/VG_100K/1.jpg",
        "llava_pretrain": "00453/004539375.jpg",
    }
    for name, path in image.items():
        rec = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
        if path is not None:
            rec["image"] = path
        assert llava_json.infer_source(rec) == name
    coco = [s for s in SOURCES.values() if s.llava.folder == "coco/"]
    assert sorted(s.name for s in coco) == ["aokvqa", "llava_instruct", "okvqa", "refcoco", "vqav2"]
    for src in coco:
        prompt = src.llava.prompts[0] if src.llava.prompts else "What is this?"
        rec = {
            "image": "coco/train2017/1.jpg",
            "conversations": [{"from": "human", "value": f"<image>\nQ\n{prompt}"}],
        }
        assert llava_json.llava_family(llava_json.infer_source(rec)) == llava_json.llava_family(src.name)
    assert llava_json.llava_family("okvqa") == "vqav2" and llava_json.llava_family("gqa") == "gqa"


# --- no module outside datamix/sources names a source ---------------------------------------------

# (file relative to datamix/, the source names it may spell) - each with the reason it is not derived
ALLOWED: dict[str, set[str]] = {
    # OCR-VQA's covers are fetched by a step of their own (not a catalog entry)
    "fetch.py": {"ocrvqa"},
    "commands_download.py": {"ocrvqa"},
    # image domains (LLaVA-layout folders of paths.py), not source names
    "compare.py": {"gqa", "vg", "llava_pretrain"},
    # datamix/synth/<source>.py writers are per-source by design; demo.py and volume.py derive their
    # tables from the descriptors' synth writers (DEMO_SIZES, DEMO_NEEDS, write_demo, write_volume)
    "synth/scene.py": {"vg"},  # GQA pictures that are also VG pictures
}


def _source_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SOURCES
    }


def test_no_module_outside_the_descriptors_names_a_source():
    offenders = {}
    for path in sorted(DATAMIX.rglob("*.py")):
        rel = path.relative_to(DATAMIX).as_posix()
        if rel.startswith("sources/"):
            continue
        if rel.startswith("synth/") and path.stem in SOURCES:
            continue  # a source's synth writer
        extra = _source_literals(path) - ALLOWED.get(rel, set())
        if extra:
            offenders[rel] = sorted(extra)
    assert not offenders, (
        f"source names outside their descriptors (derive them from datamix.sources): {offenders}"
    )


def test_import_datamix_does_not_import_torch():
    code = (
        "import sys, datamix, datamix.cli, datamix.normalize, datamix.sources; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
