"""Conversation templates and tokenization: LLaVA conversations -> `input_ids` + `labels`, exact by construction.

Responsible for: the two LLaVA-1.5 templates (`plain` for stage 1, `vicuna_v1` for stage 2) as values
(`Template`, passed around, never a module-global conversation), `encode` (token ids and the training
mask), `render` (the prompt string, which the exported Jinja chat template reproduces), and
`load_tokenizer` (the LLaMA SentencePiece vocabulary from a `.gguf` file or a tokenizer folder).

How `encode` stays exact (training.md "Templates"): the original LLaVA code
(`llava/train/train.py: preprocess_v1`) tokenizes the whole prompt and then re-tokenizes pieces to
count how many tokens to mask; when the counts disagree it masks the whole sample ("tokenization
mismatch ... (ignored)"). Here `input_ids` are BUILT from separately tokenized segments, and each
segment carries its own mask, so the trained tokens are by construction exactly each answer followed
by the control token `</s>` (id 2):

    [BOS] "SYS USER: " [<image>] "\\nq1 ASSISTANT:" | "a1" [</s>] | "USER: q2 ASSISTANT:" | "a2" [</s>]
    masked------------------------------------------ | trained--- | masked--------------- | trained-

SentencePiece boundaries: a LLaMA tokenizer puts a dummy prefix "▁" in front of every text span it
encodes. A span that follows a control token (`<s>`, `</s>`, `<image>`) starts a new SentencePiece
span, so it gets that prefix in the whole-string tokenization too (this is the LLaMA/"legacy"
behaviour the LLaVA-1.5 weights were trained with, and what llama.cpp's reference tokenizations in
`ggml-vocab-llama-spm.gguf.out` show). An answer follows "ASSISTANT:" and a space inside the same span;
the dummy prefix of its separately encoded segment stands for exactly that space ("▁a1"). The LLaMA
vocabulary has no token that joins a ":" with a following "▁", so the concatenation equals the
whole-string tokenization (tested on the real vocabulary in tests/trainer/test_templates.py).

Text is always text: `</s>`, `<s>`, `<image>` (in text-only samples) or `<pad>` inside the data are
tokenized as ordinary characters (`split_special_tokens=True`), never as control tokens. The image
placeholder is inserted as the single id `IMAGE_TOKEN_ID` (32000), never tokenized from text.

Nothing is ever silently dropped: a sample that cannot be encoded raises `EncodeError` with a
`reason` (an `EncodeFailure`), which callers count (`EncodeStats`). Truncation is counted too.

Length: `max_length` is checked AFTER image expansion (training.md): an image placeholder counts as
`image_seq_length` tokens (576 for CLIP ViT-L/14-336, 64 for the tiny 112 px tower). A sample longer
than `max_length` is cut at the end (`Encoded.truncated`); if the cut would fall inside the image's
tokens, or no trained token would remain, it raises instead.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_ID = 32000
PAD_TOKEN = "<pad>"
PAD_TOKEN_ID = 32001
BOS_TOKEN_ID = 1
EOS_TOKEN_ID = 2

ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLED_VOCAB = ASSETS / "llama-spm-vocab" / "ggml-vocab-llama-spm.gguf"

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
    """LLaVA `preprocess_multimodal`: strip `<image>` from the first human turn and re-prepend it as
    "<image>\\n" + text.strip(). For text-only samples nothing changes (any `<image>` is plain text)."""
    if not has_image:
        return turns
    for i, (_, text) in enumerate(turns[1:], start=1):
        if IMAGE_TOKEN in text:
            raise EncodeError(EncodeFailure.IMAGE_PLACEMENT, f"{IMAGE_TOKEN} in turn {i}; only turn 0 may hold it")
    role, text = turns[0]
    if text.count(IMAGE_TOKEN) > 1:
        raise EncodeError(EncodeFailure.IMAGE_PLACEMENT, f"{text.count(IMAGE_TOKEN)} {IMAGE_TOKEN} in turn 0")
    text = IMAGE_TOKEN + "\n" + text.replace(IMAGE_TOKEN, "").strip()
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
            raise EncodeError(EncodeFailure.BAD_ROLES, f"plain template needs 1 (human, gpt) pair, got {len(turns)} turns")
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


def tokenize_text(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text as a fresh SentencePiece span, every special-token string as plain text."""
    if not texts:
        return []
    out = tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [list(x) for x in out]


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
    pieces = iter(tokenize_text(tokenizer, [s.text for s in segs if s.text is not None]))
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


_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file (v2/v3), e.g. `tokenizer.ggml.tokens`.

    A small reader of the documented layout (github.com/ggml-org/ggml docs/gguf.md), ~100x faster
    than `gguf.GGUFReader` on a vocabulary file because arrays of scalars are unpacked in one call.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    (version,) = struct.unpack_from("<I", data, 4)
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} not supported")
    _, n_kv = struct.unpack_from("<QQ", data, 8)
    off = 24

    def read_str(off: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", data, off)
        return data[off + 8 : off + 8 + n].decode("utf-8"), off + 8 + n

    def read_value(kind: int, off: int) -> tuple[Any, int]:
        if kind == 8:
            return read_str(off)
        if kind == 9:
            sub, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if sub in _GGUF_SCALARS:
                fmt = f"<{n}{_GGUF_SCALARS[sub]}"
                return list(struct.unpack_from(fmt, data, off)), off + struct.calcsize(fmt)
            items = []
            for _ in range(n):
                item, off = read_value(sub, off)
                items.append(item)
            return items, off
        fmt = "<" + _GGUF_SCALARS[kind]
        return struct.unpack_from(fmt, data, off)[0], off + struct.calcsize(fmt)

    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key, off = read_str(off)
        (kind,) = struct.unpack_from("<I", data, off)
        meta[key], off = read_value(kind, off + 4)
    return meta


def _bpe_merges(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece-BPE vocabulary: every split of a piece into two pieces of
    the vocabulary, best piece score first (as transformers' `generate_merges` does for GGUF files)."""
    merges = []
    for piece, score in scores.items():
        local = [
            (piece[:i], piece[i:], score)
            for i in range(1, len(piece))
            if piece[:i] in vocab and piece[i:] in vocab
        ]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def make_spm_legacy(tokenizer: Any) -> Any:
    """Give a LLaMA SentencePiece tokenizer SentencePiece's own whitespace rule: "▁" is prepended to
    every text span (`Prepend` normalizer) instead of transformers' `Metaspace(prepend_scheme="first")`,
    which drops it when the text already starts with a space (" Hello" -> [15043] instead of
    SentencePiece's [29871, 15043]). Changes the tokenizer in place; returns it. No-op for others."""
    from tokenizers import normalizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer
    pre = backend.pre_tokenizer
    if pre is not None and type(pre).__name__ == "Metaspace":
        backend.normalizer = normalizers.Sequence(
            [normalizers.Prepend(prepend="\u2581"), normalizers.Replace(pattern=" ", content="\u2581")]
        )
        backend.pre_tokenizer = None
    return tokenizer


@lru_cache(maxsize=4)
def _gguf_backend_json(path: str) -> str:
    from tokenizers import Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    meta = read_gguf_metadata(path)
    if meta.get("tokenizer.ggml.model") != "llama":
        raise ValueError(f"{path}: tokenizer model {meta.get('tokenizer.ggml.model')!r}; only 'llama' (SentencePiece) is supported")
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    scores = dict(zip(tokens, meta["tokenizer.ggml.scores"], strict=True))
    unk = tokens[meta.get("tokenizer.ggml.unknown_token_id", 0)]
    bos = tokens[meta.get("tokenizer.ggml.bos_token_id", 1)]
    backend = Tokenizer(
        BPE(vocab=vocab, merges=_bpe_merges(vocab, scores), unk_token=unk, fuse_unk=True, byte_fallback=True)
    )
    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend(prepend="\u2581"), normalizers.Replace(pattern=" ", content="\u2581")]
    )
    backend.pre_tokenizer = None
    backend.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    )
    bos_id = vocab[bos]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
    )
    return backend.to_str()


def load_tokenizer(path: str | Path | None = None, *, add_llava_tokens: bool = False) -> Any:
    """A LLaMA tokenizer from a `.gguf` vocabulary file, a folder holding one `.gguf`, or a Hugging
    Face tokenizer folder / hub id (`None`: the bundled LLaMA vocabulary in trainer/assets).

    The result uses SentencePiece's whitespace rule (`make_spm_legacy`) and, with
    `add_llava_tokens`, has `<image>` (32000) and `<pad>` (32001) added as special tokens.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = BUNDLED_VOCAB if path is None else Path(path) if Path(str(path)).exists() else path
    gguf = None
    if isinstance(path, Path):
        if path.is_file() and path.suffix == ".gguf":
            gguf = path
        elif path.is_dir() and not (path / "tokenizer.json").exists() and not (path / "tokenizer.model").exists():
            found = sorted(path.glob("*.gguf"))
            if len(found) == 1:
                gguf = found[0]
    if gguf is not None:
        backend = Tokenizer.from_str(_gguf_backend_json(str(gguf.resolve())))
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            add_bos_token=True,
            add_eos_token=False,
            clean_up_tokenization_spaces=False,
            model_max_length=2048,
        )
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
        make_spm_legacy(tok)
    if add_llava_tokens:
        add_llava_special_tokens(tok)
    return tok


def add_llava_special_tokens(tokenizer: Any) -> None:
    """Add `<image>` = 32000 and `<pad>` = 32001 (as the LLaVA-1.5 HF conversion does); checks the ids."""
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    new = [
        AddedToken(t, special=True, normalized=False) for t in (IMAGE_TOKEN, PAD_TOKEN) if t not in vocab
    ]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    tokenizer.pad_token = PAD_TOKEN
    got = tokenizer.convert_tokens_to_ids([IMAGE_TOKEN, PAD_TOKEN])
    if got != [IMAGE_TOKEN_ID, PAD_TOKEN_ID]:
        raise ValueError(f"tokenizer gives <image>, <pad> ids {got}, expected [{IMAGE_TOKEN_ID}, {PAD_TOKEN_ID}]")


__all__ = [
    "BOS_TOKEN_ID",
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
    "load_tokenizer",
    "make_spm_legacy",
    "read_gguf_metadata",
    "render",
    "tokenize_text",
]
