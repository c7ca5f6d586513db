"""Conversation templates and tokenization: LLaVA conversations -> `input_ids` + `labels`, exact by construction.

Responsible for: the two LLaVA-1.5 templates (`plain` for stage 1, `vicuna_v1` for stage 2) as values
(`Template`, passed around, never a module-global conversation), LLaVA's load-time `<image>`
normalisation (`_place_image`), `encode` (token ids and the training mask), `render` (the prompt
string, which the exported Jinja chat template reproduces), and `load_tokenizer` (the project's one
loader, `datamix.tokenizer`, with the bundled LLaMA vocabulary as default and LLaVA's extra tokens).

How `encode` stays exact (docs/trainer.md#masks): the original LLaVA code
(`llava/train/train.py: preprocess_v1`) tokenizes the whole prompt and then re-tokenizes pieces to
count how many tokens to mask; when the counts disagree it masks the whole sample ("tokenization
mismatch ... (ignored)"). Here `input_ids` are BUILT from separately tokenized segments, and each
segment carries its own mask, so the trained tokens are by construction exactly each answer followed
by the control token `</s>` (id 2):

    [BOS] "SYS USER: " [<image>] "\\nq1 ASSISTANT:" | "a1" [</s>] | "USER: q2 ASSISTANT:" | "a2" [</s>]
    masked------------------------------------------ | trained--- | masked--------------- | trained-

The same ids as LLaVA-1.5's own `preprocess_v1` / `preprocess_plain` under its pinned transformers
4.31.0 (slow SentencePiece `LlamaTokenizer`), token for token, for both values of the tokenizer's
`legacy` flag: tests/fixtures/llava_golden holds LLaVA's output on records with several rounds,
no image, unicode, `<image>` at the end, and special strings in the text.

SentencePiece boundaries: a LLaMA tokenizer puts a dummy prefix "▁" in front of every text span it
encodes. LLaVA tokenized the prompt in chunks: split at `<image>` (`tokenizer_image_token`, one
tokenizer call per chunk) and, inside a call, at the special token `</s>`. A chunk after `<image>`
is a fresh call, so it gets the prefix ("\\nq1" -> "▁", "<0x0A>", ...). A chunk after `</s>` gets it
with `legacy: true` ("▁US"), and loses it with `legacy: false` ("US", 3308 instead of 3148; the
flag comes from the tokenizer folder's `tokenizer_config.json`, see `datamix.tokenizer`); `encode`
marks those segments (`after_eos`) and encodes them the same way. An answer follows "ASSISTANT:" and
a space inside the same chunk; the dummy prefix of its separately encoded segment stands for exactly
that space ("▁a1"). The LLaMA vocabulary has no token that joins a ":" with a following "▁", so the
concatenation equals the whole-chunk tokenization (tested on the real vocabulary in
tests/trainer/test_templates.py).

Text is always text: `</s>`, `<s>`, `<image>` (in text-only samples) or `<pad>` inside the data are
tokenized as ordinary characters (`split_special_tokens=True`), never as control tokens. (LLaVA
read `</s>` / `<s>` / `<unk>` in the data as control tokens, and its mask count then failed: such a
sample was silently masked whole; the golden fixtures show it. Here it is trained, as text.) The image
placeholder is inserted as the single id `IMAGE_TOKEN_ID` (32000), never tokenized from text.

Nothing is ever silently dropped: a sample that cannot be encoded raises `EncodeError` with a
`reason` (an `EncodeFailure`), which callers count (`EncodeStats`). Truncation is counted too.

Length: `max_length` is checked AFTER image expansion (docs/trainer.md#truncation): an image placeholder counts as
`image_seq_length` tokens (576 for CLIP ViT-L/14-336, 64 for the tiny 112 px tower). A sample longer
than `max_length` is cut at the end (`Encoded.truncated`); if the cut would fall inside the image's
tokens, or no trained token would remain, it raises instead.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from datamix.errors import DatamixError, UsageError
from datamix.schema import IMAGE_TOKEN
from datamix.tokenizer import encode_chunks, is_legacy, make_spm_legacy, read_gguf_metadata
from datamix.tokenizer import load_tokenizer as _load
from trainer.config import MissingInput, looks_local

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
IMAGE_TOKEN_ID = 32000
PAD_TOKEN = "<pad>"
PAD_TOKEN_ID = 32001
BOS_TOKEN_ID = 1
EOS_TOKEN_ID = 2

ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLED_VOCAB = ASSETS / "llama-spm-vocab" / "ggml-vocab-llama-spm.gguf"
# The same LLaMA vocabulary as a SentencePiece model (what Vicuna v1.5 ships; exports copy it).
BUNDLED_TOKENIZER_MODEL = ASSETS / "llama-spm-tokenizer" / "tokenizer.model"

VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

_HUMAN_ROLES = frozenset({"human", "user"})
_GPT_ROLES = frozenset({"gpt", "assistant"})


# --------------------------------------------------------------------------------------------
# templates


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A conversation template (value object; cf. LLaVA `llava/conversation.py`, without its global state).

    style "plain": LLaVA `conv_llava_plain` + `preprocess_plain`: one (human, gpt) pair; the human
        turn is replaced by the image alone; sequence = [BOS] <image> answer "\\n"; answer + "\\n" trained.
    style "two": LLaVA `conv_vicuna_v1` (SeparatorStyle.TWO, sep " ", sep2 "</s>"):
        system + " " + "USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>"; answers + `</s>` trained.
    """

    name: str
    style: Literal["plain", "two"]
    system: str = ""
    user: str = "USER"
    assistant: str = "ASSISTANT"
    plain_sep: str = "\n"


PLAIN = Template(name="plain", style="plain")
VICUNA_V1 = Template(name="vicuna_v1", style="two", system=VICUNA_V1_SYSTEM)
TEMPLATES: Mapping[str, Template] = MappingProxyType({t.name: t for t in (PLAIN, VICUNA_V1)})


def get_template(name: str | Template) -> Template:
    if isinstance(name, Template):
        return name
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; known: {sorted(TEMPLATES)}") from None


# --------------------------------------------------------------------------------------------
# results and failures


class EncodeFailure(str, enum.Enum):
    """Why a sample could not be encoded. Callers count these; nothing is dropped silently."""

    BAD_ROLES = "bad_roles"  # not human/gpt alternating starting with human, or unknown role
    EMPTY_ANSWER = "empty_answer"  # an answer with no text: nothing to train on in that turn
    IMAGE_PLACEMENT = "image_placement"  # <image> outside the first human turn of an image sample
    IMAGE_TRUNCATED = "image_truncated"  # max_length would cut through the image's tokens
    NO_LABELS = "no_labels"  # every label would be IGNORE_INDEX


class EncodeError(ValueError):
    def __init__(self, reason: EncodeFailure, detail: str):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, kw_only=True)
class Encoded:
    """One encoded sample. `input_ids` holds ONE `IMAGE_TOKEN_ID` per image (not expanded)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool
    has_image: bool
    image_seq_length: int = 0  # what the image counts as for lengths (0 when has_image is False)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_tokens(self) -> int:
        """Sequence length after image expansion (what max_length was checked against)."""
        extra = self.image_seq_length - 1 if self.has_image else 0
        return len(self.input_ids) + extra

    @property
    def num_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def expanded(self, image_seq_length: int | None = None) -> tuple[list[int], list[int]]:
        """(input_ids, labels) with the image placeholder repeated `image_seq_length` times (labels
        IGNORE_INDEX there): the form transformers' `LlavaForConditionalGeneration` consumes."""
        n = self.image_seq_length if image_seq_length is None else image_seq_length
        ids: list[int] = []
        labels: list[int] = []
        for tok, lab in zip(self.input_ids, self.labels, strict=True):
            if tok == IMAGE_TOKEN_ID and self.has_image:
                ids.extend([tok] * n)
                labels.extend([IGNORE_INDEX] * n)
            else:
                ids.append(tok)
                labels.append(lab)
        return ids, labels


@dataclass(slots=True)
class EncodeStats:
    """Counters for a stream of `encode` calls (logged by the data pipeline and `tokens`)."""

    encoded: int = 0
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    failed: Counter = field(default_factory=Counter)

    def add(self, enc: Encoded) -> None:
        self.encoded += 1
        self.truncated += int(enc.truncated)
        self.tokens += enc.num_tokens
        self.trained_tokens += enc.num_trained

    def fail(self, err: EncodeError) -> None:
        self.failed[err.reason.value] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "encoded": self.encoded,
            "truncated": self.truncated,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "failed": dict(sorted(self.failed.items())),
        }


# --------------------------------------------------------------------------------------------
# conversation normalisation (shared by encode and render)


def _turns(conversations: Iterable[Any]) -> list[tuple[str, str]]:
    """[(role, text)] with role in {"human", "gpt"}; accepts LLaVA dicts ({"from", "value"}),
    HF-style dicts ({"role", "content"} with string content) or objects with `role`/`text`."""
    out = []
    for i, turn in enumerate(conversations):
        if isinstance(turn, Mapping):
            role = turn.get("from", turn.get("role"))
            text = turn.get("value", turn.get("content"))
        else:
            role, text = getattr(turn, "role", None), getattr(turn, "text", None)
        if role in _HUMAN_ROLES:
            role = "human"
        elif role in _GPT_ROLES:
            role = "gpt"
        else:
            raise EncodeError(EncodeFailure.BAD_ROLES, f"turn {i}: unknown role {role!r}")
        if not isinstance(text, str):
            raise EncodeError(EncodeFailure.BAD_ROLES, f"turn {i}: value is {type(text).__name__}, not str")
        expected = "human" if i % 2 == 0 else "gpt"
        if role != expected:
            raise EncodeError(EncodeFailure.BAD_ROLES, f"turn {i}: role {role!r}, expected {expected!r}")
        out.append((role, text))
    if not out:
        raise EncodeError(EncodeFailure.BAD_ROLES, "empty conversation")
    return out


def _place_image(turns: list[tuple[str, str]], has_image: bool) -> list[tuple[str, str]]:
    """LLaVA's load-time normalisation (`preprocess_multimodal`, llava/train/train.py at the v1.5
    release), for image samples only: a turn holding `<image>` becomes
    `("<image>\\n" + text.replace("<image>", "").strip()).strip()`, so the placeholder leads its turn
    whatever the data did ("q\\n<image>" and "<image>\\nq" give the same tokens; a turn that is only
    "<image>" stays "<image>", without "\\n"; several placeholders in that turn become one).

    Where LLaVA's result could not be trained on, we raise instead: `<image>` in any turn but the
    first (LLaVA would give the sample a second image token for its one image). Where the data has no
    placeholder at all, LLaVA silently trains without the image; we put "<image>\\n" in front of the
    first turn. For text-only samples nothing changes (any `<image>` is plain text, as in LLaVA).
    """
    if not has_image:
        return turns
    for i, (_, text) in enumerate(turns[1:], start=1):
        if IMAGE_TOKEN in text:
            raise EncodeError(
                EncodeFailure.IMAGE_PLACEMENT, f"{IMAGE_TOKEN} in turn {i}; only turn 0 may hold it"
            )
    role, text = turns[0]
    text = (IMAGE_TOKEN + "\n" + text.replace(IMAGE_TOKEN, "").strip()).strip()
    return [(role, text), *turns[1:]]


# --------------------------------------------------------------------------------------------
# render


def render(
    conversations: Iterable[Any],
    template: Template | str,
    *,
    has_image: bool | None = None,
) -> str:
    """The prompt string the template produces (no BOS; `<image>` as text; `</s>` closes each answer).

    vicuna_v1: "SYS USER: <image>\\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT:" (a conversation ending in
    a human turn ends with the generation prompt "ASSISTANT:"). plain: "<image>" + answer + "\\n".
    `has_image=None` means: the first human turn mentions `<image>`.
    """
    template = get_template(template)
    turns = _turns(conversations)  # a trailing human turn is the generation prompt
    if has_image is None:
        has_image = IMAGE_TOKEN in turns[0][1]
    turns = _place_image(turns, has_image)
    if template.style == "plain":
        head = IMAGE_TOKEN if has_image else ""
        if len(turns) == 1:
            return head
        return head + turns[1][1] + template.plain_sep
    parts = [template.system + " "] if template.system else []
    for role, text in turns:
        if role == "human":
            parts.append(f"{template.user}: {text} {template.assistant}:")
        else:
            parts.append(f" {text}</s>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# encode


@dataclass(frozen=True, slots=True)
class _Seg:
    text: str | None  # None: a control token
    token_id: int
    trained: bool


def _segments(turns: list[tuple[str, str]], template: Template, has_image: bool) -> list[_Seg]:
    segs: list[_Seg] = [_Seg(None, BOS_TOKEN_ID, False)]
    if template.style == "plain":
        # LLaVA preprocess_plain: the human turn becomes the image alone; sep "\n" closes the answer.
        if len(turns) != 2:
            raise EncodeError(
                EncodeFailure.BAD_ROLES, f"plain template needs 1 (human, gpt) pair, got {len(turns)} turns"
            )
        if has_image:
            segs.append(_Seg(None, IMAGE_TOKEN_ID, False))
        answer = turns[1][1]
        if not answer.strip():
            raise EncodeError(EncodeFailure.EMPTY_ANSWER, "turn 1")
        segs.append(_Seg(answer + template.plain_sep, 0, True))
        return segs
    if len(turns) % 2:
        raise EncodeError(EncodeFailure.BAD_ROLES, "conversation ends with a human turn: nothing to train on")
    for i in range(0, len(turns), 2):
        question, answer = turns[i][1], turns[i + 1][1]
        if not answer.strip():
            raise EncodeError(EncodeFailure.EMPTY_ANSWER, f"turn {i + 1}")
        head = f"{template.system} " if (i == 0 and template.system) else ""
        prompt = f"{head}{template.user}: {question} {template.assistant}:"
        if i == 0 and has_image:
            before, after = prompt.split(IMAGE_TOKEN, 1)  # _place_image put exactly one at the front
            segs += [_Seg(before, 0, False), _Seg(None, IMAGE_TOKEN_ID, False), _Seg(after, 0, False)]
        else:
            segs.append(_Seg(prompt, 0, False))
        # The answer follows "ASSISTANT:" + " " in the rendered string; the segment's SentencePiece
        # dummy prefix "▁" is that space.
        segs += [_Seg(answer, 0, True), _Seg(None, EOS_TOKEN_ID, True)]
    return segs


def tokenize_text(
    tokenizer: Any, texts: Sequence[str], after_eos: Sequence[bool] | None = None
) -> list[list[int]]:
    """Token ids of each text as a fresh SentencePiece span, every special-token string as plain text.

    `after_eos[i]`: text i follows the template's `</s>` (LLaVA tokenized it in the same call, right
    after that special token); with a `legacy: false` tokenizer its first piece loses the "▁" as in
    transformers 4.31 (`datamix.tokenizer.encode_chunks`)."""
    return encode_chunks(tokenizer, texts, after_eos)


def encode(
    conversations: Iterable[Any],
    tokenizer: Any,
    template: Template | str,
    *,
    has_image: bool,
    max_length: int,
    image_seq_length: int = 576,
) -> Encoded:
    """Encode one conversation (LLaVA form) into `input_ids` + `labels` (see the module docstring).

    Raises `EncodeError` (with `.reason`) when the sample cannot be trained on; never returns a
    sample whose labels are all IGNORE_INDEX.
    """
    template = get_template(template)
    turns = _place_image(_turns(conversations), has_image)
    segs = _segments(turns, template, has_image)
    texts = [
        (s.text, i > 0 and segs[i - 1].token_id == EOS_TOKEN_ID and segs[i - 1].text is None)
        for i, s in enumerate(segs)
        if s.text is not None
    ]
    pieces = iter(tokenize_text(tokenizer, [t for t, _ in texts], [a for _, a in texts]))
    ids: list[int] = []
    labels: list[int] = []
    for seg in segs:
        toks = next(pieces) if seg.text is not None else [seg.token_id]
        ids += toks
        labels += toks if seg.trained else [IGNORE_INDEX] * len(toks)

    n_image = image_seq_length if has_image else 0
    extra = n_image - 1 if has_image else 0
    truncated = len(ids) + extra > max_length
    if truncated:
        keep = max_length - extra
        if has_image and ids.index(IMAGE_TOKEN_ID) >= keep:
            raise EncodeError(
                EncodeFailure.IMAGE_TRUNCATED,
                f"max_length {max_length} ends inside the image ({image_seq_length} tokens)",
            )
        ids, labels = ids[:keep], labels[:keep]
    if all(x == IGNORE_INDEX for x in labels):
        raise EncodeError(
            EncodeFailure.NO_LABELS,
            "no trained token" + (f" left after truncation to {max_length}" if truncated else ""),
        )
    return Encoded(
        input_ids=tuple(ids),
        labels=tuple(labels),
        truncated=truncated,
        has_image=has_image,
        image_seq_length=n_image,
    )


# --------------------------------------------------------------------------------------------
# tokenizer


def load_tokenizer(path: str | Path | None = None, *, add_llava_tokens: bool = False) -> Any:
    """A LLaMA tokenizer (`datamix.tokenizer.load_tokenizer`: a `.gguf` file, a `tokenizer.model` folder
    as Vicuna v1.5 publishes it, or any Hugging Face tokenizer folder / hub id; `None`: the bundled
    LLaMA vocabulary in trainer/assets, `legacy` True). The `legacy` flag of the folder's
    `tokenizer_config.json` is kept on the tokenizer (`is_legacy`) and decides how `encode` tokenizes
    the text after each `</s>`.

    With `add_llava_tokens`, `<image>` (32000) and `<pad>` (32001) are added as special tokens.
    """
    if path is not None and looks_local(path) and not Path(str(path)).expanduser().exists():
        raise MissingInput("tokenizer: no such file or folder", path=path)
    try:
        tok = _load(BUNDLED_VOCAB if path is None else path)
    except (OSError, ValueError, ImportError) as e:  # hub id not found, offline, not a tokenizer
        if isinstance(e, DatamixError):
            raise
        text = " ".join(str(e).split())
        raise UsageError(f"cannot load the tokenizer: {text[:200]}", path=path) from e
    if add_llava_tokens:
        add_llava_special_tokens(tok)
    return tok


def add_llava_special_tokens(tokenizer: Any) -> None:
    """Add `<image>` = 32000 and `<pad>` = 32001 (as the LLaVA-1.5 HF conversion does); checks the ids."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    new = [AddedToken(t, special=True, normalized=False) for t in (IMAGE_TOKEN, PAD_TOKEN) if t not in vocab]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    tokenizer.pad_token = PAD_TOKEN
    got = tokenizer.convert_tokens_to_ids([IMAGE_TOKEN, PAD_TOKEN])
    if got != [IMAGE_TOKEN_ID, PAD_TOKEN_ID]:
        raise ValueError(
            f"tokenizer gives <image>, <pad> ids {got}, expected [{IMAGE_TOKEN_ID}, {PAD_TOKEN_ID}]"
        )


__all__ = [
    "BOS_TOKEN_ID",
    "BUNDLED_TOKENIZER_MODEL",
    "BUNDLED_VOCAB",
    "EOS_TOKEN_ID",
    "EncodeError",
    "EncodeFailure",
    "EncodeStats",
    "Encoded",
    "IGNORE_INDEX",
    "IMAGE_TOKEN",
    "IMAGE_TOKEN_ID",
    "PAD_TOKEN",
    "PAD_TOKEN_ID",
    "PLAIN",
    "TEMPLATES",
    "Template",
    "VICUNA_V1",
    "VICUNA_V1_SYSTEM",
    "add_llava_special_tokens",
    "encode",
    "get_template",
    "is_legacy",
    "load_tokenizer",
    "make_spm_legacy",
    "read_gguf_metadata",
    "render",
    "tokenize_text",
]
