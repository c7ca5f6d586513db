"""Formatters: one normalized item -> the LLaVA conversations it becomes, with the release's prompts.

A formatter is a pure function of (item, source options, seed): no I/O, no global state. It returns a
list of conversations (most items give one; A-OKVQA gives one per rotation, RefCOCO one per chunk of
pairs, VG none when an image has too few regions); a conversation is a list of
`{"from": "human"|"gpt", "value": str}` turns starting with `human`, exactly the `conversations`
field of `llava_v1_5_mix665k.json`.

The prompt strings and conversation shapes follow docs/sources.md#conventions and docs/sources.md#decisions byte for byte:
- `<image>\\n` opens the first human turn of every image conversation (academic sources);
- `\\nAnswer the question using a single word or phrase.` ends the first human turn only (VQAv2,
  GQA, OK-VQA, OCR-VQA); later turns carry the bare question;
- A-OKVQA: question + `\\nA. x\\nB. y\\nC. z\\nD. w`, and on the first question
  `\\nAnswer with the option's letter from the given choices directly.`; the answer is the bare letter;
- TextCaps: `Provide a one-sentence caption for the provided image.` (+ `\\nReference OCR token: a, b`);
- RefCOCO / VG: `Please provide a short description for this region: [x1, y1, x2, y2].` (REG) and
  `Please provide the bounding box coordinate of the region this sentence describes: <phrase>.` (REC).

Randomness: every random choice uses `item_rng(seed, source, purpose, item_key)`, a `random.Random`
seeded from a sha256 of those four values, so an item's output depends on nothing but the item, its
options and the recipe seed (never on the global `random`, never on Python's salted `hash()`, never
on which other items are in the table).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from datamix.recipe import SourceSpec, VQASpec
from datamix.schema import (
    IMAGE_TOKEN,
    QA,
    SHORT_ANSWER_PROMPT,
    CaptionItem,
    Choice,
    ConversationItem,
    Item,
    MCQItem,
    Region,
    RegionItem,
    VQAItem,
)

Turn = dict[str, str]
Conversation = list[Turn]
TokenCounter = Callable[[str], int]

# IMAGE_TOKEN and the short-answer prompt are defined in datamix.schema (the trainer imports them there)
SHORT_ANSWER_SUFFIX = SHORT_ANSWER_PROMPT
MCQ_SUFFIX = "Answer with the option's letter from the given choices directly."  # ASCII apostrophe
CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
OCR_PREFIX = "Reference OCR token: "
REG_PROMPT = "Please provide a short description for this region: {box}."
REC_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: {phrase}"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# every known prompt, for lint's near-miss checks and import-llava's source inference
KNOWN_PROMPTS: tuple[str, ...] = (
    SHORT_ANSWER_SUFFIX,
    MCQ_SUFFIX,
    CAPTION_PROMPT,
    OCR_PREFIX.strip(),
    "Please provide a short description for this region:",
    "Please provide the bounding box coordinate of the region this sentence describes:",
)


class FormatError(ValueError):
    """An item that cannot be formatted (an invariant the normalizer should have enforced)."""

    def __init__(self, item_key: str, message: str):
        super().__init__(f"{item_key}: {message}")
        self.item_key = item_key


# ------------------------------------------------------------------------------------------------
# deterministic randomness


def derive_seed(seed: int, source: str, purpose: str, key: str = "") -> int:
    """A 64-bit seed from (recipe seed, source, purpose, key) via sha256: stable across runs, machines
    and Python versions (unlike `hash()`, which is salted per process)."""
    text = "\x1f".join((str(int(seed)), source, purpose, key))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def item_rng(seed: int, source: str, purpose: str, key: str = "") -> random.Random:
    """A private generator for one purpose (`"turns"`, `"tasks"`, `"choose"`, `"shuffle"`, ...)."""
    return random.Random(derive_seed(seed, source, purpose, key))


# ------------------------------------------------------------------------------------------------
# small text helpers


def turn(role: str, value: str) -> Turn:
    return {"from": role, "value": value}


def capitalize_first(text: str) -> str:
    """First character upper-cased, the rest untouched (`yes` -> `Yes`, `iPhone 6` -> `IPhone 6`)."""
    return text[:1].upper() + text[1:]


def apply_case(text: str, answer_case: str) -> str:
    if answer_case == "capitalize_first":
        return capitalize_first(text)
    if answer_case == "as_is":
        return text
    raise ValueError(f"unknown answer_case {answer_case!r}")


def most_common(answers: Iterable[str]) -> str | None:
    """The most frequent non-empty answer; ties go to the one that occurs first. None if there is none."""
    counts: dict[str, int] = {}
    for a in answers:
        if a.strip():
            counts[a] = counts.get(a, 0) + 1  # dicts keep first-insertion order
    best: str | None = None
    for a, n in counts.items():
        if best is None or n > counts[best]:
            best = a
    return best


_NUM_RE = re.compile(r"\d+")
_INDEXED_RE = re.compile(r"(.*)-(\d+)")


def natural_key(text: str) -> tuple[int, int | str, int | str]:
    """Sort key for ids kept as strings: numeric ids by value (`"9"` < `"10"`), then ids that end in a
    `-<index>` (OCR-VQA's `<book>-<i>`, the i-th question of dataset.json) by prefix and index value
    (`"b-2"` < `"b-10"`), others lexically."""
    if _NUM_RE.fullmatch(text):
        return (0, int(text), "")
    m = _INDEXED_RE.fullmatch(text)
    if m:
        return (1, m.group(1), int(m.group(2)))
    return (1, text, -1)


# `<image>` with one adjacent newline (the following one if any, else the preceding one)
_IMAGE_TOKEN_RE = re.compile(re.escape(IMAGE_TOKEN) + r"\n|\n?" + re.escape(IMAGE_TOKEN))


def strip_image_token(text: str) -> str:
    """`text` without any `<image>` (each with one adjacent newline), then stripped, as LLaVA's
    train.py `preprocess_multimodal` does before re-prepending `<image>\\n`."""
    return _IMAGE_TOKEN_RE.sub("", text).strip()


def with_image_front(conversation: Conversation) -> Conversation:
    """`<image>\\n` at the start of the first human turn, removed from every other place.

    Reproduces haotian-liu/LLaVA llava/train/train.py `preprocess_multimodal` (`replace(<image>, '')
    .strip()` then `<image> + '\\n' + value`), applied once, to the first human turn.
    """
    out: Conversation = []
    placed = False
    for t in conversation:
        value = t["value"]
        if t["from"] == "human" and not placed:
            out.append(turn("human", IMAGE_TOKEN + "\n" + strip_image_token(value)))
            placed = True
        elif IMAGE_TOKEN in value:
            out.append(turn(t["from"], strip_image_token(value)))
        else:
            out.append(turn(t["from"], value))
    return out


# ------------------------------------------------------------------------------------------------
# boxes


def box_text(region: Region | tuple[float, float, float, float], width: int, height: int, frame: str) -> str:
    """`[x1, y1, x2, y2]` for a pixel box (top-left x, y + size w, h), normalised to [0, 1].

    - `padded_square`: the frame of LLaVA's `expand2square` (llava/train/train.py; the image pasted
      centred on a max(w, h) square, offset `(max - min) // 2` on the short axis): add that offset to
      the short-axis coordinates, divide all by max(w, h).
    - `original`: x / width, y / height.
    Each value is clipped to [0, 1], rounded to 2 decimals (Python `round`) and printed as a Python
    float (`0.0`, `1.0`, `0.64`), as in the release (docs/sources.md#boxes).
    """
    if isinstance(region, Region):
        x, y, w, h = region.x, region.y, region.w, region.h
    else:
        x, y, w, h = region
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is not positive")
    if frame == "padded_square":
        side = max(width, height)
        dx = (side - width) // 2
        dy = (side - height) // 2
        values = ((x + dx) / side, (y + dy) / side, (x + w + dx) / side, (y + h + dy) / side)
    elif frame == "original":
        values = (x / width, y / height, (x + w) / width, (y + h) / height)
    else:
        raise ValueError(f"unknown box frame {frame!r}")
    parts = [repr(round(min(1.0, max(0.0, v)), 2) + 0.0) for v in values]  # + 0.0: no "-0.0"
    return "[" + ", ".join(parts) + "]"


def reg_answer(phrase: str) -> str:
    """REG answer: the phrase, first letter upper-cased, ending with a single `.`."""
    text = capitalize_first(phrase.strip())
    return text if text.endswith(".") else text + "."


def rec_prompt(phrase: str) -> str:
    """REC prompt: the phrase as given (stripped) + `.` (not doubled when it already ends with one)."""
    text = phrase.strip()
    return REC_PROMPT.format(phrase=text) + ("" if text.endswith(".") else ".")


def region_pairs(
    regions: Sequence[Region],
    width: int,
    height: int,
    *,
    frame: str,
    tasks: Sequence[str],
    rng: random.Random,
) -> Conversation:
    """One human/gpt pair per region, REG or REC (uniform over `tasks`, one draw per region);
    `<image>\\n` opens the first human turn."""
    out: Conversation = []
    for region in regions:
        task = tasks[0] if len(tasks) == 1 else ("reg" if rng.random() < 0.5 else "rec")
        box = box_text(region, width, height, frame)
        if task == "reg":
            human, gpt = REG_PROMPT.format(box=box), reg_answer(region.phrase)
        else:
            human, gpt = rec_prompt(region.phrase), box
        if not out:
            human = IMAGE_TOKEN + "\n" + human
        out += [turn("human", human), turn("gpt", gpt)]
    return out


# ------------------------------------------------------------------------------------------------
# formatters per source kind


def format_conversation(item: ConversationItem, *, image_placement: str = "front") -> list[Conversation]:
    """LLaVA-Instruct / LCS-558K: the turns of the data; for image items with `front` placement,
    `<image>\\n` moved to the start of the first human turn (see `with_image_front`)."""
    conv = [turn(t.role, t.text) for t in item.turns]
    if item.image is not None and image_placement == "front":
        conv = with_image_front(conv)
    elif image_placement not in ("front", "raw"):
        raise ValueError(f"unknown image_placement {image_placement!r}")
    return [conv]


def format_sharegpt(
    item: ConversationItem, *, max_tokens: int | None = None, count_tokens: TokenCounter | None = None
) -> list[Conversation]:
    """ShareGPT (text-only): the turns as given; with a token counter and `max_tokens`, truncated at a
    turn boundary to the longest prefix of whole human+gpt pairs within `max_tokens` (the sum of
    `count_tokens(value)` over the kept turns; template overhead is the counter's business). The first
    pair is always kept ("long conversations are truncated rather than split", PAPER)."""
    conv = [turn(t.role, t.text) for t in item.turns]
    if max_tokens is None or count_tokens is None:
        return [conv]
    kept: Conversation = []
    used = 0
    for i in range(0, len(conv) - 1, 2):
        pair = conv[i : i + 2]
        cost = sum(count_tokens(t["value"]) for t in pair)
        if kept and used + cost > max_tokens:
            break
        kept += pair
        used += cost
    return [kept or conv]


def _ordered(records: Sequence[Any], *, shuffle: bool, rng: random.Random) -> list[Any]:
    """Sorted by question id (numeric ids by value), then shuffled with `rng` when asked."""
    out = sorted(records, key=lambda r: natural_key(r.question_id))
    if shuffle:
        rng.shuffle(out)
    return out


def pick_answer(qa: QA, mode: str) -> str | None:
    """`consensus`: the dataset's main answer (falls back to the most common one when there is none);
    `most_common`: the most frequent annotator answer, ties by first occurrence (falls back to the
    main answer when there are no annotator answers)."""
    if mode == "consensus":
        return qa.answer if qa.answer else most_common(qa.answers)
    if mode == "most_common":
        return most_common(qa.answers) or qa.answer
    raise ValueError(f"unknown answer mode {mode!r}")


def format_vqa(
    item: VQAItem,
    *,
    seed: int,
    answer_case: str = "capitalize_first",
    answer: str = "consensus",
    shuffle_turns: bool = True,
    max_turns: int | None = None,
    turns_per_conversation: int | None = None,
    format_prompt: bool = True,
) -> list[Conversation]:
    """VQAv2 / GQA / OK-VQA / OCR-VQA: all QAs of the image in one conversation (PAPER A.2), the
    short-answer suffix on the first human turn only (docs/sources.md#format-prompts).

    `shuffle_turns=False` keeps the questions sorted by question id, which for OCR-VQA is the order
    of the book's `questions` list in dataset.json (author, title, genre, yes/no), as in the release.
    `turns_per_conversation` = N splits the (shuffled, `max_turns`-cut) QAs into consecutive
    conversations of at most N pairs, each opening with the image and the suffix like the first.
    `format_prompt=False` leaves the suffix out (the paper's "VQAv2 without the format prompt"
    ablation): every question is bare, the first one still opens with `<image>\\n`."""
    if not item.qas:
        raise FormatError(item.key, "no questions")
    qas = _ordered(item.qas, shuffle=shuffle_turns, rng=item_rng(seed, item.source, "turns", item.key))
    if max_turns is not None:
        qas = qas[:max_turns]
    size = turns_per_conversation or len(qas)
    out: list[Conversation] = []
    for start in range(0, len(qas), size):
        conv: Conversation = []
        for i, qa in enumerate(qas[start : start + size]):
            text = pick_answer(qa, answer)
            if not text:
                raise FormatError(item.key, f"question {qa.question_id} has no answer")
            question = qa.question
            if i == 0:
                question = (
                    IMAGE_TOKEN + "\n" + question + ("\n" + SHORT_ANSWER_SUFFIX if format_prompt else "")
                )
            conv += [turn("human", question), turn("gpt", apply_case(text, answer_case))]
        out.append(conv)
    return out


def n_rotations(item: MCQItem, augment: str) -> int:
    """How many conversations an A-OKVQA item gives: k = the number of choices (PAPER: "augmented k
    times, k = #choices"; max over the image's questions), or 1 without augmentation."""
    if augment == "none":
        return 1
    if augment == "rotate_choices":
        return max((len(q.choices) for q in item.questions), default=0)
    raise ValueError(f"unknown augment {augment!r}")


def _mcq_turn(q: Choice, shift: int) -> tuple[str, str]:
    k = len(q.choices)
    if not 0 <= q.correct < k:
        raise ValueError(f"correct index {q.correct} outside {k} choices")
    if k > len(LETTERS):
        raise ValueError(f"{k} choices: more than {len(LETTERS)} letters")
    r = shift % k
    rotated = q.choices[r:] + q.choices[:r]  # rotated left by r: choice r comes first
    options = "".join(f"\n{LETTERS[m]}. {c}" for m, c in enumerate(rotated))
    return q.question + options, LETTERS[(q.correct - r) % k]


def format_mcq(
    item: MCQItem,
    *,
    seed: int,
    augment: str = "rotate_choices",
    shuffle_turns: bool = True,
    format_prompt: bool = True,
) -> list[Conversation]:
    """A-OKVQA: copy j presents every question with its choices rotated left by j (LLaVA's MMBench
    eval augments by the same cyclic rotation, llava/eval/model_vqa_mmbench.py); the instruction
    follows the options on the first question only (none with `format_prompt=False`); answers are
    bare letters. Question order is the same in every copy."""
    if not item.questions:
        raise FormatError(item.key, "no questions")
    questions = _ordered(
        item.questions, shuffle=shuffle_turns, rng=item_rng(seed, item.source, "turns", item.key)
    )
    out: list[Conversation] = []
    for j in range(n_rotations(item, augment)):
        conv: Conversation = []
        for i, q in enumerate(questions):
            try:
                human, letter = _mcq_turn(q, j)
            except ValueError as err:
                raise FormatError(item.key, f"question {q.question_id}: {err}") from None
            if i == 0:
                human = IMAGE_TOKEN + "\n" + human + ("\n" + MCQ_SUFFIX if format_prompt else "")
            conv += [turn("human", human), turn("gpt", letter)]
        out.append(conv)
    return out


def with_final_period(text: str) -> str:
    """`text` (trailing whitespace dropped) ending with a full stop: `.` appended unless it already
    ends with `.`, `!` or `?`. The release's TextCaps answers end with a period where the raw
    `caption_str` has none ("Five Listerine Zero mouthwash bottles on a store shelf" ->
    "... on a store shelf."); what it does after `!`/`?` or trailing spaces was not seen (our choice)."""
    text = text.rstrip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def format_caption(
    item: CaptionItem,
    *,
    seed: int,
    caption: str = "first",
    ocr_tokens: bool = True,
    final_period: bool = True,
) -> list[Conversation]:
    """TextCaps: one single-turn conversation per image; the OCR line only when there are tokens;
    with `final_period`, the caption ends with a full stop (`with_final_period`), else it is the raw
    `caption_str`. Capitalisation is the caption's own (TextCaps captions start upper-case)."""
    if not item.captions:
        raise FormatError(item.key, "no captions")
    if caption == "first":
        text = item.captions[0]  # the normalizer orders captions by caption id
    elif caption == "random":
        text = item_rng(seed, item.source, "caption", item.key).choice(item.captions)
    else:
        raise ValueError(f"unknown caption mode {caption!r}")
    human = IMAGE_TOKEN + "\n" + CAPTION_PROMPT
    if ocr_tokens and item.ocr_tokens:
        human += "\n" + OCR_PREFIX + ", ".join(item.ocr_tokens)
    if final_period:
        text = with_final_period(text)
    return [[turn("human", human), turn("gpt", text)]]


def _size(item: RegionItem) -> tuple[int, int]:
    if not item.width or not item.height or item.width <= 0 or item.height <= 0:
        raise FormatError(item.key, f"image size {item.width}x{item.height} is not positive")
    return item.width, item.height


def vg_regions(
    item: RegionItem, *, seed: int, pairs: int = 10, min_regions: int | None = None
) -> list[Region]:
    """The regions a VG image contributes: none below `min_regions` (default `pairs`), else `pairs`
    drawn without replacement (all of them, shuffled, when there are fewer)."""
    need = pairs if min_regions is None else min_regions
    if len(item.regions) < need:
        return []
    rng = item_rng(seed, item.source, "regions", item.key)
    return rng.sample(list(item.regions), min(pairs, len(item.regions)))


def format_vg(
    item: RegionItem,
    *,
    seed: int,
    pairs: int = 10,
    min_regions: int | None = None,
    region_tasks: Sequence[str] = ("reg", "rec"),
    box_frame: str = "padded_square",
) -> list[Conversation]:
    """Visual Genome: "we sample 10 annotations for images with additional annotations" (PAPER A.2):
    one conversation of `pairs` REG/REC pairs per image with enough regions, none otherwise."""
    regions = vg_regions(item, seed=seed, pairs=pairs, min_regions=min_regions)
    if not regions:
        return []
    width, height = _size(item)
    rng = item_rng(seed, item.source, "tasks", item.key)
    return [region_pairs(regions, width, height, frame=box_frame, tasks=region_tasks, rng=rng)]


def n_chunks(n_pairs: int, max_pairs: int) -> int:
    return -(-n_pairs // max_pairs)


def format_refcoco(
    item: RegionItem,
    *,
    seed: int,
    max_pairs: int = 9,
    region_tasks: Sequence[str] = ("reg", "rec"),
    box_frame: str = "padded_square",
) -> list[Conversation]:
    """RefCOCO/+/g: every (ref, sentence) pair of the image, shuffled, "dissected into segments, each
    containing fewer than 10 conversations" (PAPER A.2): chunks of at most `max_pairs` pairs, each its
    own conversation opening with `<image>\\n`."""
    width, height = _size(item)
    regions = list(item.regions)
    item_rng(seed, item.source, "pairs", item.key).shuffle(regions)
    rng = item_rng(seed, item.source, "tasks", item.key)
    return [
        region_pairs(regions[i : i + max_pairs], width, height, frame=box_frame, tasks=region_tasks, rng=rng)
        for i in range(0, len(regions), max_pairs)
    ]


# ------------------------------------------------------------------------------------------------
# dispatch: each source descriptor (datamix.sources) names its spec class and one of the formatters
# below; `format_item` / `count_conversations` find the formatter by the spec's class


@dataclass(frozen=True, slots=True, kw_only=True)
class Formatter:
    """How items of one spec class become conversations, and how many they give.

    - `function(item, **options)`: the conversations (`format_item`); its keyword arguments are named
      after the spec's own options (the fields a spec class adds to `SourceSpec`), plus `seed` and
      `count_tokens` when it takes them, so a new option is a spec field and an argument of one name;
    - `count(item, spec)`: how many, without formatting (default: one per item);
    - `count_length(n, spec)`: the same from the length of the item's `payload` alone, so that the mix
      counts from Arrow list lengths without decoding items (region sources, split VQA);
    - `one_each(spec)`: every item gives exactly one conversation under `spec` (nothing to count).
    """

    item_type: type
    function: Callable[..., list[Conversation]]
    count: Callable[[Any, Any], int] | None = None
    count_length: Callable[[int, Any], int] | None = None
    payload: str = ""
    one_each: Callable[[Any], bool] = lambda spec: False

    def format(
        self, item: Item, spec: SourceSpec, seed: int, count_tokens: TokenCounter | None
    ) -> list[Conversation]:
        params = _parameters(self.function)
        options = {name: getattr(spec, name) for name in options_of(type(spec))}
        if "seed" in params:
            options["seed"] = seed
        if "count_tokens" in params:
            options["count_tokens"] = count_tokens
        return self.function(_expect(item, self.item_type), **options)

    def conversations(self, item: Item, spec: SourceSpec) -> int:
        if self.count is not None:
            return self.count(_expect(item, self.item_type), spec)
        if self.count_length is not None:
            return self.count_length(len(getattr(_expect(item, self.item_type), self.payload)), spec)
        return 1


@functools.cache
def options_of(spec_type: type[SourceSpec]) -> tuple[str, ...]:
    """The formatting options of a spec class: its fields beyond the selection rule of `SourceSpec`."""
    return tuple(name for name in spec_type.model_fields if name not in SourceSpec.model_fields)


@functools.cache
def _parameters(function: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def _vg_count(n_regions: int, spec: Any) -> int:
    return 1 if n_regions >= (spec.pairs if spec.min_regions is None else spec.min_regions) else 0


def _always(spec: Any) -> bool:
    return True


#: LLaVA-Instruct / LCS-558K (`image_placement`)
CONVERSATION = Formatter(item_type=ConversationItem, function=format_conversation, one_each=_always)
#: ShareGPT (`max_tokens` with the build's token counter)
SHAREGPT = Formatter(item_type=ConversationItem, function=format_sharegpt, one_each=_always)
#: short-answer VQA (VQAv2, GQA, OK-VQA, OCR-VQA)
VQA = Formatter(
    item_type=VQAItem,
    function=format_vqa,
    count_length=lambda n, spec: n_vqa_conversations(n, spec),
    payload="qas",
    one_each=lambda spec: spec.turns_per_conversation is None,
)
#: A-OKVQA (one conversation per rotation)
MCQ = Formatter(
    item_type=MCQItem, function=format_mcq, count=lambda item, spec: n_rotations(item, spec.augment)
)
#: TextCaps
CAPTION = Formatter(item_type=CaptionItem, function=format_caption, one_each=_always)
#: Visual Genome (one conversation per image with enough regions)
VG = Formatter(item_type=RegionItem, function=format_vg, count_length=_vg_count, payload="regions")
#: RefCOCO/+/g (chunks of at most `max_pairs` pairs)
REFCOCO = Formatter(
    item_type=RegionItem,
    function=format_refcoco,
    count_length=lambda n, spec: n_chunks(n, spec.max_pairs),
    payload="regions",
)


@functools.cache
def _formatters() -> dict[type, Formatter]:
    from datamix.sources import SOURCES  # the descriptors import this module: read them on first use

    table: dict[type, Formatter] = {}
    for src in SOURCES.values():
        if table.setdefault(src.spec, src.formatter) is not src.formatter:
            raise TypeError(f"{src.name}: spec {src.spec.__name__} already has another formatter")
    return table


def formatter_for(spec: SourceSpec) -> Formatter:
    """The formatter of a spec's class (or of the nearest registered base class)."""
    table = _formatters()
    for cls in type(spec).__mro__:
        found = table.get(cls)
        if found is not None:
            return found
    raise TypeError(f"no formatter for {type(spec).__name__}")


def format_item(
    item: Item, spec: SourceSpec, *, seed: int, count_tokens: TokenCounter | None = None
) -> list[Conversation]:
    """The conversations of one item under its source's spec (the spec class decides the formatter)."""
    return formatter_for(spec).format(item, spec, seed, count_tokens)


def count_conversations(item: Item, spec: SourceSpec) -> int:
    """How many conversations `format_item` gives for `item`, without formatting it."""
    return formatter_for(spec).conversations(item, spec)


def n_vqa_conversations(n_qas: int, spec: VQASpec) -> int:
    """Conversations `format_vqa` gives for an image with `n_qas` questions under `spec`; an image
    without questions counts as one (its formatting fails and is reported)."""
    if spec.turns_per_conversation is None:
        return 1
    n = n_qas if spec.max_turns is None else min(n_qas, spec.max_turns)
    return max(1, n_chunks(n, spec.turns_per_conversation))


def _expect(item: Item, cls: type) -> Any:
    if not isinstance(item, cls):
        raise FormatError(getattr(item, "key", "?"), f"expected a {cls.__name__}, got {type(item).__name__}")
    return item
