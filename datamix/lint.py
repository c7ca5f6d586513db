"""Prompt-format and structure rules over LLaVA-format records (`datamix lint`, users' CI).

Input (`lint_path`): a LLaVA-format JSON file (an array, streamed; JSON lines also accepted), a mix
folder (`DIR/manifest.parquet` + `DIR/shards/*.tar`), or a mix's `manifest.parquet`. For a mix the
samples' `<key>.json` are read from the tars and the shards are checked against the manifest.
`lint_records` runs the record rules over any iterable of dicts.

Every rule has a stable id `<category>/<name>`; `select` / `ignore` take ids or whole categories
(`prompt`, `box`, ...), comma-separated or repeated. The rules (`RULES`):

- structure/record          record is an object with `id`, a non-empty `conversations` list of
                            `{"from": str, "value": str}` turns, and `image` (if any) a path
- structure/alternation     turns alternate human, gpt, human, ... starting with human
- structure/odd-turns       an even number of turns (every human turn answered)
- structure/empty-turn      no empty (or whitespace-only) turn
- structure/image-token     an image record holds exactly one `<image>` across all its turns, wherever
                            it stands (the release keeps LLaVA-Instruct's and LCS-558K's trailing
                            `\\n<image>`; LLaVA's trainer moves it to the front at load time)
- structure/text-only-image-token  a text-only record holds no `<image>`
- structure/image-null      a text-only record omits `image` rather than setting it to null
- prompt/suffix-missing     a format suffix (short-answer / option-letter) used on a later human turn
                            is also on the first one (i.e. it is never on a later turn only)
- prompt/suffix-repeated    the suffix is on the first human turn only (later turns: bare question)
- prompt/suffix-doubled     the suffix occurs at most once in a turn
- prompt/suffix-position    the suffix ends its turn, after a newline (a trailing `\\n<image>` allowed)
- prompt/near-miss          a line that almost equals a known prompt (misspelt, case, punctuation,
                            whitespace, curly apostrophe; difflib ratio >= 0.85)
- mc/answer                 the answer to a multiple-choice turn is one of its offered option letters
- mc/options                options are lettered A, B, C, ... in order, at least two
- box/format                region prompts and REC answers hold `[x1, y1, x2, y2]`, four plain numbers
- box/range                 every coordinate in [0, 1]
- box/order                 x1 <= x2 and y1 <= y2
- box/precision             at most 2 decimals
- image/missing             with `images_root`: the record's image file exists
- image/outside-root        the image path is relative and has no `..` part (import-llava refuses it)
- mix/missing-sample        every manifest row has its `<key>.json` in the shard it names
- mix/extra-sample          every sample in the shards has exactly one manifest row
- mix/image-missing         every image row has its `<key>.jpg` in the shard
- mix/image-hash            sha256 of `<key>.jpg` equals the manifest's `stored_sha256` (the stored
                            bytes; differs from the original's `image_sha256` in presized mixes),
                            else its `image_sha256`
- mix/manifest-mismatch     the sample's json agrees with its row (id, image, source, key, n_turns, shard)

Outputs: `format_text`, `format_json` (`{"violations": [{"index", "id", "rule", "message"}],
"checked": N}`, docs/architecture.md#lint-json) and `format_github` (workflow annotations). `exit_code` gives
0 for clean, 1 for violations; input that cannot be linted raises `LintInputError` (exit 2).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from datamix.errors import UsageError
from datamix.fileio import BadRecord
from datamix.formats import IMAGE_TOKEN, KNOWN_PROMPTS
from datamix.llava_json import (
    MC_LETTER,
    REGION_REC,
    REGION_REG,
    SHORT_ANSWER,
    LlavaJsonError,
    iter_json_array,
)
from datamix.mixio import MixIOError, MixReader
from datamix.paths import image_path_problem
from datamix.schema import IMAGE_EXT, JSON_EXT

log = logging.getLogger(__name__)

RULES: dict[str, str] = {
    "structure/record": "record shape: object with id, non-empty conversations of {from, value} strings",
    "structure/alternation": "turns alternate human/gpt starting with human",
    "structure/odd-turns": "an even number of turns",
    "structure/empty-turn": "no empty turn",
    "structure/image-token": "exactly one <image> in an image record",
    "structure/text-only-image-token": "no <image> in a text-only record",
    "structure/image-null": "text-only records omit 'image' instead of null",
    "prompt/suffix-missing": "a format suffix used in a record is on its first human turn",
    "prompt/suffix-repeated": "a format suffix is on the first human turn only",
    "prompt/suffix-doubled": "a format suffix at most once per turn",
    "prompt/suffix-position": "a format suffix ends its turn after a newline",
    "prompt/near-miss": "no near-miss of a known prompt",
    "mc/answer": "multiple-choice answer is an offered option letter",
    "mc/options": "options lettered A, B, C, ... in order",
    "box/format": "boxes are [x1, y1, x2, y2] with four plain numbers",
    "box/range": "box coordinates in [0, 1]",
    "box/order": "x1 <= x2 and y1 <= y2",
    "box/precision": "box coordinates have at most 2 decimals",
    "image/missing": "the image file exists under the images root",
    "image/outside-root": "the image path stays inside the images root (no absolute path, no '..')",
    "mix/missing-sample": "every manifest row has its sample in its shard",
    "mix/extra-sample": "every shard sample has exactly one manifest row",
    "mix/image-missing": "every image row has its image bytes in the shard",
    "mix/image-hash": "image bytes match the manifest's stored_sha256 (else image_sha256)",
    "mix/manifest-mismatch": "sample json agrees with its manifest row",
}

CATEGORIES = tuple(sorted({rule.split("/", 1)[0] for rule in RULES}))

#: The format suffixes whose placement is checked (docs/sources.md#format-prompts).
SUFFIXES: dict[str, str] = {"short-answer": SHORT_ANSWER, "option-letter": MC_LETTER}

NEAR_MISS_RATIO = 0.85

#: What `lint_path(on_record=...)` is given in place of a record whose JSON does not decode.
UNREADABLE: Any = object()
#: `on_record(where, record)`: where = "<shard>:<member>" for a mix, "<file>:<index>" for a JSON file.
RecordVisitor = Callable[[str, Any], None]

_PROGRESS_EVERY = 100_000


class LintInputError(UsageError):
    """The input cannot be linted at all (missing path, unreadable file, bad rule name): exit 2."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    index: int | None  # record position (manifest row for a mix); None for a sample with no row
    id: str | None
    rule: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LintReport:
    violations: tuple[Violation, ...]
    checked: int

    @property
    def clean(self) -> bool:
        return not self.violations

    def counts(self) -> dict[str, int]:
        """Violations per rule, in `RULES` order."""
        c = Counter(v.rule for v in self.violations)
        return {rule: c[rule] for rule in RULES if c[rule]}


# --- rule selection -------------------------------------------------------------------------------------


def _split(values: Iterable[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def _matching(selector: str) -> set[str]:
    selector = selector.rstrip("/")
    if selector in RULES:
        return {selector}
    if selector in CATEGORIES:
        return {rule for rule in RULES if rule.startswith(selector + "/")}
    raise LintInputError(f"unknown rule or category {selector!r}; known: {', '.join([*CATEGORIES, *RULES])}")


def resolve_rules(select: Iterable[str] | None = None, ignore: Iterable[str] | None = None) -> frozenset[str]:
    """The enabled rule ids: all (or those matching `select`) minus those matching `ignore`."""
    selected = _split(select)
    enabled = set().union(*(_matching(s) for s in selected)) if selected else set(RULES)
    for s in _split(ignore):
        enabled -= _matching(s)
    return frozenset(enabled)


# --- near-miss detection --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prompt:
    text: str
    prefix: bool  # True: the prompt starts a line and is followed by " <argument>"
    words: tuple[str, ...]
    need: int
    squashed: str

    @classmethod
    def of(cls, text: str, prefix: bool) -> _Prompt:
        words = tuple(dict.fromkeys(re.findall(r"[a-z]{4,}", text.lower())))
        squashed = re.sub(r"[\W_]+", "", text.casefold())
        return cls(text, prefix, words, 1 if len(words) <= 3 else 2, squashed)


#: Every known prompt (datamix.formats); one ending in ":" starts a line and takes an argument.
_PROMPTS = tuple(_Prompt.of(p, p.endswith(":")) for p in KNOWN_PROMPTS)

_CURLY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u02bc": "'"})


def _difference(candidate: str, prompt: str) -> str:
    """A short human description of how `candidate` differs from `prompt`."""
    if candidate.translate(_CURLY) == prompt:
        return "curly quote or apostrophe"
    if candidate.strip() == prompt or " ".join(candidate.split()) == " ".join(prompt.split()):
        return "whitespace"
    if candidate.casefold() == prompt.casefold():
        return "letter case"
    if _squash(candidate) == _squash(prompt):
        return "punctuation, hyphenation or spacing"
    return f"similarity {difflib.SequenceMatcher(None, candidate, prompt, autojunk=False).ratio():.2f}"


_WORD = re.compile(r"[a-z]{4,}")


def _squash(s: str) -> str:
    return re.sub(r"[\W_]+", "", s.translate(_CURLY).casefold())


def _near(candidate: str, words: set[str], p: _Prompt) -> bool:
    """Whether `candidate` (whose line holds `words`) is a near-miss of prompt `p`."""
    if candidate == p.text or not candidate:
        return False
    total = len(candidate) + len(p.text)
    if 2 * min(len(candidate), len(p.text)) < NEAR_MISS_RATIO * total:  # difflib's real_quick_ratio
        return False
    if sum(w in words for w in p.words) < p.need:
        return False
    if _squash(candidate) == p.squashed:
        return True
    sm = difflib.SequenceMatcher(None, candidate, p.text, autojunk=False)
    return sm.quick_ratio() >= NEAR_MISS_RATIO and sm.ratio() >= NEAR_MISS_RATIO


def _line_is_exact(line: str) -> bool:
    for p in _PROMPTS:
        if line == p.text or (p.prefix and line.startswith(p.text + " ")):
            return True
    return False


@functools.lru_cache(maxsize=1 << 16)
def _near_miss(line: str) -> tuple[str, str] | None:
    """(the candidate text, the prompt it nearly equals) for the first near-miss in a line, if any.

    Cached: the questions of VQA-style sources repeat a lot.
    """
    if _line_is_exact(line):
        return None
    words = set(_WORD.findall(line.casefold()))
    if not words:
        return None
    for p in _PROMPTS:
        if p.prefix:
            colon = line.find(":", 0, len(p.text) + 8)
            head = line[: colon + 1] if colon >= 0 else line[: len(p.text)]
            if head == p.text:
                return line[: len(p.text) + 1], p.text + " "  # the prompt not followed by a space
            candidates = [head]
        else:
            candidates = [line]
            if len(line) > len(p.text):
                candidates.append(line[-len(p.text) :])  # suffix glued to the question
        for c in candidates:
            if _near(c, words, p):
                return c, p.text
    return None


# --- boxes ----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.(\d+))?")
_OPTION = re.compile(r"([A-Z])\. \S")
_LETTER_ANSWER = re.compile(r"([A-Z])\.?")


def _check_box(text: str, where: str, emit: Any) -> None:
    """Check one `[x1, y1, x2, y2]` string (brackets included)."""
    if not (text.startswith("[") and text.endswith("]")):
        emit("box/format", f"{where}: expected a box [x1, y1, x2, y2], got {text!r:.80}")
        return
    parts = [s.strip() for s in text[1:-1].split(",")]
    if len(parts) != 4:
        emit("box/format", f"{where}: box {text!r:.80} has {len(parts)} values, expected 4")
        return
    values: list[float] = []
    decimals = 0
    for s in parts:
        m = _NUMBER.fullmatch(s)
        if not m:
            emit("box/format", f"{where}: box {text!r:.80} holds {s!r}, not a plain number")
            return
        values.append(float(s))
        decimals = max(decimals, len(m.group(1) or ""))
    if any(not 0.0 <= v <= 1.0 for v in values):
        emit("box/range", f"{where}: box {text} has a coordinate outside [0, 1]")
    x1, y1, x2, y2 = values
    if x1 > x2 or y1 > y2:
        emit("box/order", f"{where}: box {text} needs x1 <= x2 and y1 <= y2")
    if decimals > 2:
        emit("box/precision", f"{where}: box {text} has {decimals} decimals, at most 2 expected")


# --- the record rules -----------------------------------------------------------------------------------


class _Linter:
    """Applies the enabled record rules; collects violations."""

    def __init__(self, rules: frozenset[str], images_root: Path | None):
        self.rules = rules
        self.images_root = Path(images_root) if images_root is not None else None
        self.violations: list[Violation] = []

    def emit(self, index: int | None, rid: str | None, rule: str, message: str) -> None:
        assert rule in RULES, rule
        if rule in self.rules:
            self.violations.append(Violation(index=index, id=rid, rule=rule, message=message))

    def check(self, index: int | None, record: Any) -> None:
        rid = _record_id(record)

        def emit(rule: str, message: str) -> None:
            self.emit(index, rid, rule, message)

        if isinstance(record, BadRecord):
            emit("structure/record", record.message)
            return
        if not isinstance(record, dict):
            emit("structure/record", f"expected an object, got {type(record).__name__}")
            return
        if isinstance(record.get("id"), bool) or not isinstance(record.get("id"), (str, int)):
            emit("structure/record", f"'id' must be a string or an integer, got {record.get('id')!r:.40}")
        image: Any = record.get("image")
        if "image" in record and image is None:
            emit("structure/image-null", "text-only record has 'image': null; omit the key")
        elif "image" in record and (not isinstance(image, str) or not image):
            emit("structure/record", f"'image' must be a non-empty relative path, got {image!r:.60}")
        has_image = isinstance(image, str) and bool(image)
        convs = record.get("conversations")
        if not isinstance(convs, list) or not convs:
            emit("structure/record", "'conversations' must be a non-empty list of turns")
            return
        for t, turn in enumerate(convs):
            if not (
                isinstance(turn, dict)
                and isinstance(turn.get("from"), str)
                and isinstance(turn.get("value"), str)
            ):
                emit("structure/record", f"turn {t} must be {{'from': str, 'value': str}}, got {turn!r:.80}")
                return
        roles = [turn["from"] for turn in convs]
        values = [turn["value"] for turn in convs]

        self._structure(roles, values, has_image, emit)
        human = [t for t, role in enumerate(roles) if role == "human"]
        self._suffixes(human, values, emit)
        self._near_misses(human, values, emit)
        self._multiple_choice(human, roles, values, emit)
        self._boxes(human, roles, values, emit)
        outside = image_path_problem(image) if has_image else None
        if outside is not None:
            emit("image/outside-root", f"image path {image!r:.80} {outside}")
        elif has_image and self.images_root is not None and "image/missing" in self.rules:
            if not (self.images_root / image).is_file():
                emit("image/missing", f"image {image} not found under {self.images_root}")

    @staticmethod
    def _structure(roles: list[str], values: list[str], has_image: bool, emit: Any) -> None:
        for t, role in enumerate(roles):
            expected = "human" if t % 2 == 0 else "gpt"
            if role != expected:
                emit("structure/alternation", f"turn {t} is from {role!r}, expected {expected!r}")
                break
        if len(roles) % 2:
            emit("structure/odd-turns", f"{len(roles)} turns; the last human turn has no answer")
        empty = [t for t, v in enumerate(values) if not v.strip()]
        if empty:
            emit("structure/empty-turn", f"empty turn(s) {', '.join(map(str, empty))}")
        tokens = sum(v.count(IMAGE_TOKEN) for v in values)
        if has_image and tokens != 1:
            emit(
                "structure/image-token", f"image record has {tokens} {IMAGE_TOKEN} tokens, expected exactly 1"
            )
        if not has_image and tokens:
            emit("structure/text-only-image-token", f"text-only record has {tokens} {IMAGE_TOKEN} token(s)")

    @staticmethod
    def _suffixes(human: list[int], values: list[str], emit: Any) -> None:
        if not human:
            return
        for name, suffix in SUFFIXES.items():
            counts = [values[t].count(suffix) for t in human]
            if not any(counts):
                continue
            used = [human[i] for i, c in enumerate(counts) if c]
            if not counts[0]:
                emit(
                    "prompt/suffix-missing",
                    f"{name} suffix {suffix!r} is on turn {used[0]} but not on the first human turn {human[0]}",
                )
            elif len(used) > 1:
                emit(
                    "prompt/suffix-repeated",
                    f"{name} suffix repeated on later turn(s) {', '.join(map(str, used[1:]))}; first turn only",
                )
            doubled = [human[i] for i, c in enumerate(counts) if c > 1]
            if doubled:
                emit(
                    "prompt/suffix-doubled",
                    f"{name} suffix occurs more than once in turn(s) {', '.join(map(str, doubled))}",
                )
            for i, c in enumerate(counts):
                if c != 1:
                    continue
                value = values[human[i]].rstrip(" ")
                for tail in ("\n" + IMAGE_TOKEN, IMAGE_TOKEN):
                    value = value.removesuffix(tail)
                if not value.endswith("\n" + suffix):
                    emit(
                        "prompt/suffix-position",
                        f"turn {human[i]}: {name} suffix must end the turn after a newline ('\\n' + suffix)",
                    )

    @staticmethod
    def _near_misses(human: list[int], values: list[str], emit: Any) -> None:
        for t in human:
            for line in values[t].split("\n"):
                line = line.replace(IMAGE_TOKEN, "")
                hit = _near_miss(line)
                if hit:
                    candidate, prompt = hit
                    emit(
                        "prompt/near-miss",
                        f"turn {t}: {candidate!r} nearly equals the prompt {prompt!r} ({_difference(candidate, prompt)})",
                    )

    @staticmethod
    def _multiple_choice(human: list[int], roles: list[str], values: list[str], emit: Any) -> None:
        mc_record = any(MC_LETTER in values[t] for t in human)
        for t in human:
            letters = [m.group(1) for line in values[t].split("\n") if (m := _OPTION.match(line))]
            has_suffix = MC_LETTER in values[t]
            answer = values[t + 1].strip() if t + 1 < len(values) and roles[t + 1] == "gpt" else None
            letter = _LETTER_ANSWER.fullmatch(answer) if answer is not None else None
            is_mc = has_suffix or (len(letters) >= 2 and (mc_record or letter is not None))
            if not is_mc:
                continue
            expected = [chr(ord("A") + i) for i in range(len(letters))]
            if len(letters) < 2 or letters != expected:
                emit(
                    "mc/options",
                    f"turn {t}: options lettered {''.join(letters) or 'none'}, expected A, B, C, ... (at least two)",
                )
            if answer is None:
                continue
            if letter is None:
                emit("mc/answer", f"turn {t + 1}: answer {answer!r:.40} is not an option letter")
            elif letter.group(1) not in letters:
                emit(
                    "mc/answer",
                    f"turn {t + 1}: answer {letter.group(1)!r} is not among the offered options {', '.join(letters) or 'none'}",
                )

    @staticmethod
    def _boxes(human: list[int], roles: list[str], values: list[str], emit: Any) -> None:
        for t in human:
            value = values[t]
            start = value.find(REGION_REG)
            while start >= 0:
                rest = value[start + len(REGION_REG) :].split("\n", 1)[0].strip()
                close = rest.find("]")
                box = rest[: close + 1] if rest.startswith("[") and close >= 0 else rest
                _check_box(box, f"turn {t}", emit)
                start = value.find(REGION_REG, start + 1)
            if REGION_REC in value and t + 1 < len(values) and roles[t + 1] == "gpt":
                _check_box(values[t + 1].strip(), f"turn {t + 1}", emit)


def _record_id(record: Any) -> str | None:
    if isinstance(record, dict) and record.get("id") is not None:
        return str(record["id"])
    return None


def _sorted(violations: list[Violation]) -> tuple[Violation, ...]:
    return tuple(sorted(violations, key=lambda v: (v.index is None, v.index or 0)))


def lint_records(
    records: Iterable[Any],
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    images_root: Path | str | None = None,
) -> LintReport:
    """Run the record rules over LLaVA-format records; `index` in the report is the position."""
    linter = _Linter(resolve_rules(select, ignore), Path(images_root) if images_root is not None else None)
    checked = 0
    for index, record in enumerate(records):
        linter.check(index, record)
        checked += 1
        if checked % _PROGRESS_EVERY == 0:
            log.info("linted %d records, %d violations so far", checked, len(linter.violations))
    return LintReport(violations=_sorted(linter.violations), checked=checked)


# --- inputs ---------------------------------------------------------------------------------------------


def lint_path(
    path: Path | str,
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    images_root: Path | str | None = None,
    on_record: RecordVisitor | None = None,
) -> LintReport:
    """Lint a LLaVA-format JSON file, a mix folder or a mix's manifest.parquet.

    `on_record`, when given, sees every record as it is linted (in a mix: the first json of each
    manifest row, `UNREADABLE` where it is not valid JSON), so that a caller needing one more pass
    over the records (the report's prompt counts) does not read the shards again.
    Raises `LintInputError` when the input cannot be read (missing path, not JSON, not an array,
    unreadable manifest or shard) or a rule name is unknown.
    """
    path = Path(path)
    rules = resolve_rules(select, ignore)
    root = Path(images_root) if images_root is not None else None
    if root is not None and not root.is_dir():
        raise LintInputError(f"{root}: images root is not a directory")
    if path.is_dir():
        manifest = path / "manifest.parquet"
        if not manifest.is_file():
            raise LintInputError(f"{path}: a folder to lint must hold manifest.parquet (a built mix)")
        return _lint_mix(path, manifest, _Linter(rules, root), on_record)
    if not path.is_file():
        raise LintInputError(f"{path}: no such file or folder")
    if path.suffix == ".parquet":
        return _lint_mix(path.parent, path, _Linter(rules, root), on_record)
    return _lint_json(path, _Linter(rules, root), on_record)


def _lint_json(path: Path, linter: _Linter, on_record: RecordVisitor | None = None) -> LintReport:
    checked = 0
    try:
        for index, record in iter_json_array(path):
            if on_record is not None:
                on_record(f"{path.name}:{index}", record)
            linter.check(index, record)
            checked += 1
            if checked % _PROGRESS_EVERY == 0:
                log.info("linted %d records of %s", checked, path)
    except LlavaJsonError as e:
        raise LintInputError(str(e)) from None
    return LintReport(violations=_sorted(linter.violations), checked=checked)


@dataclass(slots=True)
class _Row:
    id: str | None
    source: str | None
    image: str | None
    sha256: str | None
    n_turns: int | None
    shard: Path


def _read_manifest(reader: MixReader) -> tuple[list[str], list[_Row]]:
    table = reader.read_manifest()
    n = table.num_rows

    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in table.column_names else [None] * n

    keys = [str(k) for k in col("key")]
    rows = []
    stored = col("stored_sha256")  # presized mixes store other bytes than the original's image_sha256
    shas = [s if s is not None else o for s, o in zip(stored, col("image_sha256"), strict=True)]
    for i, (rid, source, image, sha, n_turns, shard) in enumerate(
        zip(col("id"), col("source"), col("image"), shas, col("n_turns"), col("shard"), strict=True)
    ):
        rows.append(
            _Row(
                id=None if rid is None else str(rid),
                source=source,
                image=image,
                sha256=sha,
                n_turns=n_turns,
                shard=reader.shard_path(str(shard), row=i),  # confined to the mix folder
            )
        )
    return keys, rows


def _lint_mix(
    mix_dir: Path, manifest: Path, linter: _Linter, on_record: RecordVisitor | None = None
) -> LintReport:
    try:
        with MixReader(manifest) as reader:
            return _lint_mix_members(reader, linter, on_record)
    except MixIOError as e:
        raise LintInputError(str(e)) from None


def _lint_mix_members(reader: MixReader, linter: _Linter, on_record: RecordVisitor | None) -> LintReport:
    """Every member of every shard (those the manifest names and any other `shards/*.tar`), in
    archive order, against the manifest rows (`datamix.schema.split_member` names the key)."""
    keys, rows = _read_manifest(reader)
    row_of: dict[str, int] = {}
    i: int | None  # a manifest row; None for a member that has none
    for i, key in enumerate(keys):
        if key in row_of:
            linter.emit(
                i,
                rows[i].id,
                "mix/extra-sample",
                f"key {key} has more than one manifest row (first: {row_of[key]})",
            )
        else:
            row_of[key] = i
    shards = sorted({row.shard for row in rows} | set(reader.shard_files()))
    seen_json = bytearray(len(rows))
    seen_image = bytearray(len(rows))
    found_in: dict[int, Path] = {}
    decoder = msgspec.json.Decoder()
    for shard in shards:
        if not shard.is_file():
            continue
        extra: set[str] = set()
        for member in reader.members(shard):
            key, ext, data = member.key, member.ext, member.data
            if not ext:
                log.debug("%s: member %s has no extension; skipped", shard, member.name)
                continue
            i = row_of.get(key)
            if i is None:
                if key not in extra:
                    extra.add(key)
                    linter.emit(
                        None, None, "mix/extra-sample", f"{shard.name}: sample {key} has no manifest row"
                    )
                continue
            row = rows[i]
            if ext == JSON_EXT:
                if seen_json[i]:
                    linter.emit(
                        i,
                        row.id,
                        "mix/extra-sample",
                        f"{shard.name}: second {key}.json (first in {found_in[i].name})",
                    )
                    continue
                seen_json[i] = 1
                found_in[i] = shard
                try:
                    record = decoder.decode(data)
                except msgspec.DecodeError as e:
                    linter.emit(
                        i, row.id, "structure/record", f"{shard.name}: {key}.json is not valid JSON: {e}"
                    )
                    record = UNREADABLE
                if on_record is not None:
                    on_record(f"{shard.name}:{key}.json", record)
                if record is UNREADABLE:
                    continue
                _compare_row(linter, i, key, row, shard, record)
                linter.check(i, record)
            elif ext == IMAGE_EXT:
                seen_image[i] = 1
                if row.image is None:
                    linter.emit(
                        i,
                        row.id,
                        "mix/manifest-mismatch",
                        f"{shard.name}: {key}.jpg present but the row is text-only",
                    )
                elif row.sha256 is not None and hashlib.sha256(data).hexdigest() != row.sha256:
                    linter.emit(
                        i,
                        row.id,
                        "mix/image-hash",
                        f"{shard.name}: sha256 of {key}.jpg is {hashlib.sha256(data).hexdigest()}, manifest says {row.sha256}",
                    )
            else:
                log.debug("%s: member %s not checked", shard, member.name)
    for i, key in enumerate(keys):
        row = rows[i]
        if not seen_json[i]:
            where = row.shard.name if row.shard.is_file() else f"{row.shard.name} (shard file not found)"
            linter.emit(i, row.id, "mix/missing-sample", f"no {key}.json in {where}")
        elif row.image is not None and not seen_image[i]:
            linter.emit(
                i, row.id, "mix/image-missing", f"no {key}.jpg in {found_in[i].name} for image {row.image}"
            )
    return LintReport(violations=_sorted(linter.violations), checked=len(rows))


def _compare_row(linter: _Linter, i: int, key: str, row: _Row, shard: Path, record: Any) -> None:
    if not isinstance(record, dict):
        return  # structure/record says so
    diffs = []
    if shard != row.shard:
        diffs.append(f"sample is in {shard.name}, manifest names {row.shard.name}")
    if "key" in record and record["key"] != key:
        diffs.append(f"json key {record['key']!r} != member key {key!r}")
    if row.id is not None and _record_id(record) != row.id:
        diffs.append(f"id {_record_id(record)!r} != manifest {row.id!r}")
    if record.get("image") != row.image:
        diffs.append(f"image {record.get('image')!r} != manifest {row.image!r}")
    if row.source is not None and "source" in record and record["source"] != row.source:
        diffs.append(f"source {record['source']!r} != manifest {row.source!r}")
    convs = record.get("conversations")
    if row.n_turns is not None and isinstance(convs, list) and len(convs) != row.n_turns:
        diffs.append(f"{len(convs)} turns != manifest n_turns {row.n_turns}")
    if diffs:
        linter.emit(i, row.id, "mix/manifest-mismatch", f"{key}: " + "; ".join(diffs))


# --- outputs --------------------------------------------------------------------------------------------


def summary_line(report: LintReport) -> str:
    """One line: how many records, how many violations, per rule."""
    if report.clean:
        return f"datamix lint: {report.checked} records checked, no violations"
    per_rule = ", ".join(f"{rule} {n}" for rule, n in report.counts().items())
    return f"datamix lint: {len(report.violations)} violations in {report.checked} records ({per_rule})"


def _where(v: Violation) -> str:
    index = "-" if v.index is None else str(v.index)
    return f"record {index} (id {v.id if v.id is not None else '-'})"


def format_text(report: LintReport) -> str:
    """One line per violation, then the summary line."""
    lines = [f"{_where(v)}: {v.rule}: {v.message}" for v in report.violations]
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def format_json(report: LintReport) -> str:
    """`{"violations": [{"index", "id", "rule", "message"}], "checked": N}` (docs/architecture.md#lint-json)."""
    doc = {
        "violations": [
            {"index": v.index, "id": v.id, "rule": v.rule, "message": v.message} for v in report.violations
        ],
        "checked": report.checked,
    }
    return json.dumps(doc, ensure_ascii=False) + "\n"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def format_github(report: LintReport) -> str:
    """GitHub Actions workflow annotations, one `::error` per violation (empty when clean)."""
    lines = [
        f"::error title={_escape_property('datamix lint ' + v.rule)}::{_escape_data(_where(v) + ': ' + v.message)}"
        for v in report.violations
    ]
    return "".join(line + "\n" for line in lines)


FORMATS = {"text": format_text, "json": format_json, "github": format_github}


def exit_code(report: LintReport) -> int:
    """0 when clean, 1 when there are violations (2, cannot run, is `LintInputError`)."""
    return 0 if report.clean else 1


# --- command --------------------------------------------------------------------------------------------
