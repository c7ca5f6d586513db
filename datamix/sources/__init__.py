"""The source registry: every raw dataset of LLaVA-1.5, by its canonical name (docs/architecture.md#source-names).

Every public module of this package (`datamix/sources/<name>.py`; helpers start with `_`) holds one
source: its descriptor (a `Source` subclass: kind, raw files, image folders, remote files, recipe
spec class, formatter, how `import-llava` recognises it, synth writer) and its raw -> canonical
mapping. `SOURCES` is the one registry, built from those modules in the descriptors' `order` (the
order of every table, plan and summary); every other per-source table is derived from it:
`catalog.CATALOG`, `recipe.SOURCE_NAMES` / `SOURCE_KINDS` / `SPEC_TYPES`, the formatters of
`formats.format_item`, `llava_json.infer_source`. Adding a source is adding a module
(docs/adding-a-source.md); tests/test_registry.py checks that every module is registered and that
no other module names a source.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from datamix.sources.base import Context, RawFile, RecordError, Source


def _discover() -> dict[str, Source]:
    """One descriptor per public module of this package, in `order`."""
    found: list[Source] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        defined = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, Source)
            and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)
        ]
        if len(defined) != 1:
            raise ImportError(
                f"{module.__name__} defines {len(defined)} sources; a source module defines one"
            )
        found.append(defined[0]())
    found.sort(key=lambda s: s.order)
    orders = [s.order for s in found]
    if len(set(orders)) != len(orders):
        raise ImportError(f"two sources share an order: {sorted((s.order, s.name) for s in found)}")
    return {s.name: s for s in found}


SOURCES: dict[str, Source] = _discover()

SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCE_NAMES)}") from None


__all__ = ["SOURCES", "SOURCE_NAMES", "Context", "RawFile", "RecordError", "Source", "get_source"]
