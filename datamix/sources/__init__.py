"""The source registry: every raw dataset of LLaVA-1.5, by its canonical name (architecture.md 4.1).

One module per source holds only its raw -> canonical mapping; `SOURCES` is the one explicit list.
"""

from __future__ import annotations

from datamix.sources.aokvqa import AOKVQA
from datamix.sources.base import Context, RawFile, RecordError, Source
from datamix.sources.gqa import GQA
from datamix.sources.llava_instruct import LlavaInstruct
from datamix.sources.llava_pretrain import LlavaPretrain
from datamix.sources.ocrvqa import OCRVQA
from datamix.sources.okvqa import OKVQA
from datamix.sources.refcoco import RefCOCO
from datamix.sources.sharegpt import ShareGPT
from datamix.sources.textcaps import TextCaps
from datamix.sources.vg import VisualGenome
from datamix.sources.vqav2 import VQAv2

# the order of architecture.md 4.1 (also the order of every table and summary)
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        LlavaInstruct(),
        ShareGPT(),
        VQAv2(),
        GQA(),
        OKVQA(),
        AOKVQA(),
        OCRVQA(),
        TextCaps(),
        VisualGenome(),
        RefCOCO(),
        LlavaPretrain(),
    )
}

SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCE_NAMES)}") from None


__all__ = ["SOURCES", "SOURCE_NAMES", "Context", "RawFile", "RecordError", "Source", "get_source"]
