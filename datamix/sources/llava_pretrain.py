"""LCS-558K: the stage-1 alignment set (BLIP captions of a LAION/CC/SBU subset).

Paper: Liu et al., "Improved Baselines with Visual Instruction Tuning" (arXiv 2310.03744), App. A.
Homepage: https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain. Licence: the underlying LAION,
CC and SBU terms and BLIP's licence apply (see the dataset card).

Raw: `blip_laion_cc_sbu_558k.json`, an array of `{"id": "<9-digit>", "image": "<5-digit dir>/<9-digit>.jpg",
"conversations": [human brief-description instruction with `<image>` before or after it, gpt caption]}`
(558,128 records). Images live under `images/llava_pretrain/images/`.
"""

from __future__ import annotations

from collections.abc import Iterator

from datamix.fileio import iter_json_list
from datamix.paths import LLAVA_PRETRAIN_DIR
from datamix.schema import ConversationItem, Drop, DropReason, Kind
from datamix.sources._conversations import ConversationRecord, check_alternating, parse_turns
from datamix.sources.base import Context, RawFile, RecordError, Source, require, require_id

FILE = "blip_laion_cc_sbu_558k.json"


class LlavaPretrain(Source):
    name = "llava_pretrain"
    kind = Kind.CONVERSATION
    stage = "stage1"
    title = "LLaVA-Pretrain LCS-558K"
    homepage = "https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain"
    paper = "https://arxiv.org/abs/2310.03744"
    license = "LAION/CC/SBU terms + BLIP captions (see dataset card)"
    raw_files = (RawFile(FILE, "558,128 image-caption conversations"),)
    image_dirs = (LLAVA_PRETRAIN_DIR,)

    def read(self, ctx: Context) -> Iterator[ConversationItem | Drop]:
        path = ctx.require_file(FILE)
        records = iter_json_list(path, ConversationRecord)
        for index, rec in enumerate(records):
            ctx.progress()
            try:
                rid = require_id(rec, "id")
                name = require(rec, "image", str)
                if name.startswith("/") or ".." in name.split("/") or not name:
                    raise RecordError(DropReason.BAD_VALUE, f"image {name!r} is not a relative path")
                turns = parse_turns(rec)
                check_alternating(turns)
                image = f"{LLAVA_PRETRAIN_DIR}/{name}"
                ctx.images.check(image)
            except RecordError as err:
                yield ctx.drop_for(FILE, index, err)
                continue
            yield ConversationItem(key="", source=self.name, id=rid, image=image, turns=tuple(turns))
