"""ShareGPT (Vicuna-cleaned): text-only multi-turn conversations, the language data of the mix.

Paper: Zheng et al., "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena" (Vicuna; arXiv 2306.05685);
data cleaning per FastChat `docs/commands/data_cleaning.md`. Homepage:
https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered. Licence: unclear upstream
(user-shared ChatGPT conversations; OpenAI terms apply) - use at your own judgement.

Raw: `ShareGPT_V3_unfiltered_cleaned_split.json`, an array of `{"id": "<base>_<chunk>", "model"?,
"conversations": [{"from", "value"}]}`. Quirks handled here (docs/sources.md#sharegpt-ours): leading `gpt` turns are
dropped (LLaVA's train.py does the same); a conversation that does not then strictly alternate
human/gpt, has an empty turn or contains a literal `<image>` is dropped with a reason; a trailing
human turn with no answer is cut (counted in stats as `trailing_human_cut`). Token-budget truncation
is a recipe option (`max_tokens`), not done here.
"""

from __future__ import annotations

from typing import Any

from datamix import formats
from datamix.recipe import ShareGPTSpec
from datamix.schema import DropReason
from datamix.sources._conversations import ConversationSource, check_alternating, parse_turns
from datamix.sources._fields import RecordError, require_id
from datamix.sources.base import Context, Draft, LlavaMatch, RawFile, RemoteFile

FILE = "ShareGPT_V3_unfiltered_cleaned_split.json"
_URL = "https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered/resolve/main"
IMAGE_TOKEN = "<image>"


class ShareGPT(ConversationSource):
    name = "sharegpt"
    order = 1
    title = "ShareGPT (Vicuna-cleaned)"
    homepage = "https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered"
    paper = "https://arxiv.org/abs/2306.05685"
    license = "unclear (user-shared ChatGPT conversations; OpenAI terms)"
    raw_files = (RawFile(FILE, "94,145 cleaned and split conversations"),)
    remote = (RemoteFile(url=f"{_URL}/{FILE}", size=672_837_942),)
    spec = ShareGPTSpec
    formatter = formats.SHAREGPT
    llava = LlavaMatch(folder=None)  # the records without an image

    def parse(self, ctx: Context, rec: Any) -> Draft:
        rid = require_id(rec, "id")
        turns = parse_turns(rec)
        lead = 0
        while lead < len(turns) and turns[lead].role == "gpt":
            lead += 1
        if lead:
            ctx.count("leading_gpt_dropped")
            turns = turns[lead:]
        if turns and len(turns) % 2 == 1 and turns[-1].role == "human":
            ctx.count("trailing_human_cut")
            turns = turns[:-1]
        if not turns:
            raise RecordError(DropReason.EMPTY_CONVERSATION, "no human/gpt exchange left")
        check_alternating(turns)
        for i, t in enumerate(turns):
            if IMAGE_TOKEN in t.text:
                raise RecordError(DropReason.IMAGE_TOKEN_IN_TEXT, f"turn {i} contains {IMAGE_TOKEN!r}")
        return Draft(id=rid, image=None, turns=tuple(turns))
