"""LLaVA-Instruct-150K: GPT-4 generated conversations about COCO train2017 images.

Paper: Liu et al., "Visual Instruction Tuning", NeurIPS 2023 (arXiv 2304.08485).
Homepage: https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K. Licence: CC BY 4.0
(data); COCO images under their Flickr terms; GPT-4 output under OpenAI's terms of use.

Raw: `llava_instruct_150k.json`, an array of `{"id": "<12-digit>", "image": "<12-digit>.jpg",
"conversations": [...]}` (157,712 records over 81,479 images; ids repeat). The raw `image` has no
folder; the release puts it under `coco/train2017/`. `<image>` may lead or trail the first turn
(docs/sources.md#p9): kept as written. In a LLaVA-format file: a COCO record with none of the known
format prompts.
"""

from __future__ import annotations

from datamix import formats
from datamix.paths import COCO_DIR
from datamix.recipe import LlavaInstructSpec
from datamix.sources._coco import COCO_FOLDER, COCO_TRAIN2017
from datamix.sources._conversations import ConversationSource
from datamix.sources.base import LlavaMatch, RawFile, RemoteFile

FILE = "llava_instruct_150k.json"


class LlavaInstruct(ConversationSource):
    name = "llava_instruct"
    order = 0
    title = "LLaVA-Instruct-150K"
    homepage = "https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K"
    paper = "https://arxiv.org/abs/2304.08485"
    license = "CC BY 4.0 (+ OpenAI terms for GPT-4 output; COCO images: Flickr terms)"
    raw_files = (
        RawFile(FILE, "GPT-4 conversations (conversation_58k + detail_23k + complex_reasoning_77k)"),
    )
    image_dirs = (COCO_DIR,)
    image_shape = "bare COCO file name"
    remote = (
        RemoteFile(url=f"https://huggingface.co/datasets/liuhaotian/LLaVA-Instruct-150K/resolve/main/{FILE}"),
        COCO_TRAIN2017,
    )
    spec = LlavaInstructSpec
    formatter = formats.CONVERSATION
    llava = LlavaMatch(folder=COCO_FOLDER)
