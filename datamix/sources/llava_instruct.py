"""LLaVA-Instruct-150K: GPT-4 generated conversations about COCO train2017 images.

Paper: Liu et al., "Visual Instruction Tuning", NeurIPS 2023 (arXiv 2304.08485).
Homepage: https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K. Licence: CC BY 4.0
(data); COCO images under their Flickr terms; GPT-4 output under OpenAI's terms of use.

Raw: `llava_instruct_150k.json`, an array of `{"id": "<12-digit>", "image": "<12-digit>.jpg",
"conversations": [...]}` (157,712 records over 81,479 images; ids repeat). The raw `image` has no
folder; the release puts it under `coco/train2017/`. `<image>` may lead or trail the first turn
(sources.md P9): kept as written.
"""

from __future__ import annotations

from collections.abc import Iterator

from datamix.fileio import iter_json_list
from datamix.paths import COCO_DIR
from datamix.schema import ConversationItem, Drop, DropReason, Kind
from datamix.sources._conversations import ConversationRecord, check_alternating, parse_turns
from datamix.sources.base import Context, RawFile, RecordError, Source, require, require_id

FILE = "llava_instruct_150k.json"


class LlavaInstruct(Source):
    name = "llava_instruct"
    kind = Kind.CONVERSATION
    title = "LLaVA-Instruct-150K"
    homepage = "https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K"
    paper = "https://arxiv.org/abs/2304.08485"
    license = "CC BY 4.0 (+ OpenAI terms for GPT-4 output; COCO images: Flickr terms)"
    raw_files = (RawFile(FILE, "GPT-4 conversations (conversation_58k + detail_23k + complex_reasoning_77k)"),)
    image_dirs = (COCO_DIR,)

    def read(self, ctx: Context) -> Iterator[ConversationItem | Drop]:
        path = ctx.require_file(FILE)
        records = iter_json_list(path, ConversationRecord)
        for index, rec in enumerate(records):
            ctx.progress()
            try:
                rid = require_id(rec, "id")
                name = require(rec, "image", str)
                if "/" in name or not name:
                    raise RecordError(DropReason.BAD_VALUE, f"image {name!r} is not a bare COCO file name")
                turns = parse_turns(rec)
                check_alternating(turns)
                image = f"{COCO_DIR}/{name}"
                ctx.images.check(image)
            except RecordError as err:
                yield ctx.drop_for(FILE, index, err)
                continue
            yield ConversationItem(key="", source=self.name, id=rid, image=image, turns=tuple(turns))
