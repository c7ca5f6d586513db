"""LCS-558K: the stage-1 alignment set (BLIP captions of a LAION/CC/SBU subset).

Paper: Liu et al., "Improved Baselines with Visual Instruction Tuning" (arXiv 2310.03744), App. A.
Homepage: https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain. Licence: the underlying LAION,
CC and SBU terms and BLIP's licence apply (see the dataset card).

Raw: `blip_laion_cc_sbu_558k.json`, an array of `{"id": "<9-digit>", "image": "<5-digit dir>/<9-digit>.jpg",
"conversations": [human brief-description instruction with `<image>` before or after it, gpt caption]}`
(558,128 records). Images live under `images/llava_pretrain/images/`; the stage-1 file names them
relative to that folder, which is how a LLaVA-format file's records are recognised.
"""

from __future__ import annotations

import re

from datamix import formats
from datamix.paths import LLAVA_PRETRAIN_DIR
from datamix.recipe import LlavaPretrainSpec
from datamix.sources._conversations import ConversationSource
from datamix.sources.base import LlavaMatch, RawFile, RemoteFile

FILE = "blip_laion_cc_sbu_558k.json"
_HF = "https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain/resolve/main"


class LlavaPretrain(ConversationSource):
    name = "llava_pretrain"
    order = 10
    stage = "stage1"
    title = "LLaVA-Pretrain LCS-558K"
    homepage = "https://huggingface.co/datasets/liuhaotian/LLaVA-Pretrain"
    paper = "https://arxiv.org/abs/2310.03744"
    license = "LAION/CC/SBU terms + BLIP captions (see dataset card)"
    raw_files = (RawFile(FILE, "558,128 image-caption conversations"),)
    image_dirs = (LLAVA_PRETRAIN_DIR,)
    nested_images = True
    remote = (
        RemoteFile(url=f"{_HF}/{FILE}"),
        # the zip holds the numbered folders themselves
        RemoteFile(url=f"{_HF}/images.zip", extract_to="images/llava_pretrain/images"),
    )
    spec = LlavaPretrainSpec
    formatter = formats.CONVERSATION
    llava = LlavaMatch(pattern=re.compile(r"^(?:llava_pretrain/images/)?\d{5}/\d{9}\.[A-Za-z]+$"))
