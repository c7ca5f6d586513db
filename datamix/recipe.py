"""Recipes: what a mix is made of, validated at the boundary (pydantic, `extra="forbid"`).

A recipe (`recipes/<name>.yaml`) names a seed, the stage, and per source exactly one selection rule
(`choose: N|all`, `proportion: p` or `repeat: r`) plus the formatting options of docs/sources.md#decisions
that apply to that source. Every option that public material leaves open is a field here, never a
constant buried in a normalizer or a formatter, so that a user can change it and the recipe hash
changes with it.

Which options a source accepts depends on its kind (one spec class per source below): a `pairs:` on
`vqav2`, a `box_frame: padded` or a misspelt key fails at load with a `RecipeError` that names the
file, the dotted field path and the offending value. Defaults are filled in at validation time, so a
validated `Recipe` (and its hash, `recipe_hash`) spells out every choice the build makes.

Public API: `Recipe`, `SourceSpec` and its per-source subclasses, `ShardSpec`, `PresizeSpec`,
`RecipeError`, `load_recipe(name_or_path)`, `parse_recipe(data, file=...)`, `recipe_hash(recipe)`,
`recipe_dir()`, `available_recipes()`, `SOURCE_NAMES`, `SOURCE_KINDS`, `SPEC_TYPES`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from datamix import yamlio
from datamix.errors import UsageError

log = logging.getLogger(__name__)


_NAME_RE = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"  # used in shard names `<recipe>-NNNNNN.tar`: no dots, no slashes
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)

PositiveInt = Annotated[int, Field(ge=1)]


class RecipeError(UsageError, ValueError):
    """A recipe that cannot be used: names the file, the dotted field path and the offending value.

    `problems` holds every (field, value, message) found; `file`, `field`, `value` and `message` are
    those of the first one.
    """

    def __init__(self, file: str | os.PathLike[str] | None, problems: list[tuple[str, Any, str]]):
        self.file = str(file) if file is not None else "<recipe>"
        self.problems = problems or [("", None, "invalid recipe")]
        self.field, self.value, self.message = self.problems[0]
        Exception.__init__(self, self._text())  # keeps the fields above (DatamixError would reset them)

    def _text(self) -> str:
        lines = []
        for field, value, message in self.problems:
            where = f"{self.file}: {field}" if field else self.file
            shown = "" if value is _MISSING_VALUE else f" (got {_short(value)})"
            lines.append(f"{where}: {message}{shown}")
        return "\n".join(lines)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING_VALUE = _Missing()


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 4, 4, 4, 4
_REPR.maxstring = _REPR.maxother = 60


def _short(value: Any, n: int = 80) -> str:
    """A bounded repr: never walks more of `value` than it shows (a huge value costs nothing)."""
    text = _REPR.repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


class _Strict(BaseModel):
    """Unknown keys are errors; no silent coercion (`"10"` is not an int, `1` is not a bool)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ------------------------------------------------------------------------------------------------
# per-source specs


class SourceSpec(_Strict):
    """Selection options every source accepts: exactly one of `choose`, `proportion`, `repeat`.

    - `choose: N` draws N conversations without replacement (generator of (seed, source, "choose"));
      `choose: all` keeps every conversation.
    - `proportion: p` (0 < p <= 1) = `choose: round(p * available)` (half up).
    - `repeat: r` keeps every conversation r times (upsampling).
    - `allow_short: true` turns "fewer available than asked" from an error into a warning.
    """

    choose: PositiveInt | Literal["all"] | None = None
    proportion: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    repeat: PositiveInt | None = None
    allow_short: bool = False

    @model_validator(mode="after")
    def _exactly_one_rule(self) -> SourceSpec:
        given = [k for k in ("choose", "proportion", "repeat") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "selection_rule",
                "exactly one of choose, proportion, repeat must be given (got {given})",
                {"given": ", ".join(given) or "none"},
            )
        return self


class LlavaInstructSpec(SourceSpec):
    """LLaVA-Instruct-150K: ready-made conversations on COCO images.

    `image_placement: front` strips `<image>` (with one adjacent newline) from every turn and puts
    `<image>\\n` at the start of the first human turn, as LLaVA's train.py `preprocess_multimodal`
    does at training time; `raw` keeps the placement of `llava_instruct_150k.json` (some records end
    with `\\n<image>`), as the release does (docs/sources.md#image-token; recipe `llava15_665k`).
    """

    image_placement: Literal["front", "raw"] = "front"


class LlavaPretrainSpec(SourceSpec):
    """LCS-558K (stage 1): one human turn (instruction + `<image>` as in the data), one caption."""

    image_placement: Literal["front", "raw"] = "raw"


class ShareGPTSpec(SourceSpec):
    """ShareGPT (text-only): `max_tokens` truncates at a turn boundary (whole human+gpt pairs) when a
    token counter is given to the build (`--tokenizer`); `null` never truncates."""

    max_tokens: PositiveInt | None = 2048


class VQASpec(SourceSpec):
    """Short-answer VQA (VQAv2, GQA, OCR-VQA): one conversation per image, suffix on turn 1 only.

    - `answer_case`: `capitalize_first` upper-cases the first letter, the rest untouched (docs/sources.md#answer-case).
    - `answer`: `consensus` = the dataset's main answer (VQAv2 `multiple_choice_answer`, GQA `answer`);
      `most_common` = most frequent annotator answer, ties by first occurrence.
    - `shuffle_turns`: questions sorted by question id, then shuffled with (seed, source, "turns", item);
      `false` keeps the sorted order, which for OCR-VQA is dataset.json's order (the release's).
    - `max_turns`: keep at most this many QA pairs per image (`null`: all).
    - `turns_per_conversation`: split an image's QA pairs into conversations of at most this many,
      each opening with the image and the suffix (`null`: one conversation per image, as released).
      With 1, no answer can be read off an earlier turn of the same conversation ("Which shape is
      red? Circle." then "What color is the circle?"), and every question has the suffix.
    - `format_prompt`: `false` leaves out the short-answer suffix (`Answer the question using a
      single word or phrase.`), the paper's "VQAv2 without the format prompt" ablation row.
    """

    answer_case: Literal["capitalize_first", "as_is"] = "capitalize_first"
    answer: Literal["consensus", "most_common"] = "consensus"
    shuffle_turns: bool = True
    max_turns: PositiveInt | None = None
    turns_per_conversation: PositiveInt | None = None
    format_prompt: bool = True


class OKVQASpec(VQASpec):
    """OK-VQA has no consensus answer (docs/sources.md#okvqa-raw): only `most_common` raw answer is possible."""

    answer: Literal["most_common"] = "most_common"


class MCQSpec(SourceSpec):
    """A-OKVQA: `augment: rotate_choices` makes k conversations per image (k = number of choices),
    copy j with every question's choices rotated left by j; `none` makes one, choices as given.
    `format_prompt: false` leaves out the option-letter instruction."""

    augment: Literal["rotate_choices", "none"] = "rotate_choices"
    shuffle_turns: bool = True
    format_prompt: bool = True


class CaptionSpec(SourceSpec):
    """TextCaps: `caption: first` (lowest caption id) or `random` (seeded per image); `ocr_tokens`
    adds the `Reference OCR token:` line when the image has tokens; `final_period` ends the caption
    with a full stop where `caption_str` has none (the release's answers do; `false`: `caption_str`
    verbatim)."""

    caption: Literal["first", "random"] = "first"
    ocr_tokens: bool = True
    final_period: bool = True


class RegionSpec(SourceSpec):
    """Region sources: each pair is REG or REC (p = 0.5 each when both are listed); boxes in the
    `padded_square` frame (what the model sees after LLaVA's expand2square) or the `original` one
    (x / width, y / height: the release's RefCOCO frame, LLaVA issue #623; its VG boxes are padded)."""

    region_tasks: Annotated[list[Literal["reg", "rec"]], Field(min_length=1, max_length=2)] = ["reg", "rec"]
    box_frame: Literal["padded_square", "original"] = "padded_square"

    @field_validator("region_tasks")
    @classmethod
    def _unique_tasks(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("duplicate_task", "region_tasks lists a task twice")
        return value


class VGSpec(RegionSpec):
    """Visual Genome: images with at least `min_regions` (default: `pairs`) regions; `pairs` regions
    drawn per image (fewer only when `min_regions < pairs` lets smaller images in)."""

    pairs: PositiveInt = 10
    min_regions: PositiveInt | None = None


class RefCOCOSpec(RegionSpec):
    """RefCOCO/+/g: all (ref, sentence) pairs of an image, shuffled, cut into chunks of <= `max_pairs`."""

    max_pairs: PositiveInt = 9


# ------------------------------------------------------------------------------------------------
# the per-source tables, derived from the source descriptors (datamix.sources): each descriptor names
# its kind and its spec class (one of the above). The descriptors import this module, so the tables
# are built on first use; `from datamix.recipe import SPEC_TYPES` works as for any constant.
# SOURCE_NAMES: the registry keys (docs/architecture.md 4.1) in the canonical order used everywhere a
# mix lists sources (plans, summaries, the order in which per-source samples are concatenated
# before the final shuffle); SOURCE_KINDS: name -> Kind; SPEC_TYPES: name -> spec class.

if TYPE_CHECKING:
    from datamix.schema import Kind  # datamix.schema imports pyarrow: a recipe loads without it

    SOURCE_NAMES: tuple[str, ...]
    SOURCE_KINDS: dict[str, Kind]
    SPEC_TYPES: dict[str, type[SourceSpec]]


@functools.cache
def _tables() -> dict[str, Any]:
    from datamix.sources import SOURCES

    return {
        "SOURCE_NAMES": tuple(SOURCES),
        "SOURCE_KINDS": {name: src.kind for name, src in SOURCES.items()},
        "SPEC_TYPES": {name: src.spec for name, src in SOURCES.items()},
    }


def __getattr__(name: str) -> Any:
    if name in ("SOURCE_NAMES", "SOURCE_KINDS", "SPEC_TYPES"):
        return _tables()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------------
# recipe


def _parse_size(value: Any) -> Any:
    """`1000000`, `"512MB"`, `"1GiB"` -> bytes; anything else is left for the type check to reject."""
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            unit = (m.group(2) or "").lower()
            base = 1024 if "i" in unit else 1000
            power = "kmgt".index(unit[0]) + 1 if unit[:1] in ("k", "m", "g", "t") else 0
            return int(float(m.group(1)) * base**power)
    return value


class PresizeSpec(_Strict):
    """Opt-in "presized images" (`shards: presize: {size: 336, quality: 95}`): each image is stored as
    the trainer's own padded, resized `size` x `size` square (`trainer.images.ImageProcessor.square`:
    decode, RGB, pad with the CLIP mean colour, bicubic resize), re-encoded as a baseline JPEG with
    `quality` and chroma `subsampling`. The loader then decodes a small square and skips padding and
    resizing. It CHANGES PIXELS (one more JPEG generation), so it is a trade-off a recipe states;
    `size` must be the model's image size (the trainer resizes any other size again)."""

    size: Annotated[int, Field(ge=1, le=4096)] = 336
    quality: Annotated[int, Field(ge=1, le=100)] = 95
    subsampling: Literal["4:4:4", "4:2:2", "4:2:0"] = "4:4:4"


class ShardSpec(_Strict):
    """Shard size targets: a shard closes at `max_samples` samples or `max_bytes` bytes, whichever first
    (`max_bytes` accepts `"512MB"`, `"1GiB"`, and counts the source image files); at least one must be
    set. `presize` (off by default; see `PresizeSpec`) stores presized images instead of the originals.
    Left out of the canonical dump when off, so recipes without it keep their hash."""

    max_samples: PositiveInt | None = 10_000
    max_bytes: PositiveInt | None = None
    presize: PresizeSpec | None = None

    @model_serializer(mode="wrap")
    def _drop_presize_when_off(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and data.get("presize", True) is None:
            del data["presize"]
        return data

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return _parse_size(value)

    @model_validator(mode="after")
    def _one_target(self) -> ShardSpec:
        if self.max_samples is None and self.max_bytes is None:
            raise PydanticCustomError("shard_target", "set max_samples and/or max_bytes")
        return self


EvalAmount = Annotated[float, Field(gt=0.0, lt=1.0)] | PositiveInt


class ExcludeSpec(_Strict):
    """`exclude:` build a decontaminated mix: drop every training sample that overlaps an item of
    `benchmarks` (`datamix.evalsets` names, or `all`) by one of `match` (`image`: same picture by pool
    id or content hash; `near_image`: perceptual-hash near-duplicate; `question`: the benchmark's
    normalised question on the same picture). See `datamix.contamination`."""

    benchmarks: Annotated[list[str], Field(min_length=1)]
    match: Annotated[list[Literal["image", "near_image", "question"]], Field(min_length=1)] = ["image"]

    @field_validator("benchmarks", mode="after")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from datamix import evalsets

        try:
            return evalsets.parse_names(value)
        except ValueError as e:
            raise PydanticCustomError("unknown_benchmark", str(e)) from None


class Recipe(_Strict):
    """A validated recipe. `sources` maps a source name to its spec (the subclass of `SourceSpec` for
    that source, defaults filled in), in the canonical source order (`SOURCE_NAMES`)."""

    name: Annotated[str, Field(pattern=_NAME_RE)]
    description: str = ""
    seed: Annotated[int, Field(ge=0)]
    stage: Literal[1, 2] = 2
    template: str | None = None  # hint for the trainer (e.g. vicuna_v1, plain); not used by the build
    sources: dict[str, SerializeAsAny[SourceSpec]]
    shards: ShardSpec = ShardSpec()
    expect: dict[str, Annotated[int, Field(ge=0)]] | None = None  # per-source counts (+ optional `total`)
    # held-out images for evaluation: {source: fraction in (0, 1) or a count}, drawn per source with
    # (seed, source, "eval"); their conversations go to the eval set, never to the training samples
    eval_split: dict[str, EvalAmount] | None = None
    # drop training samples that overlap evaluation benchmarks (datamix.contamination)
    exclude: ExcludeSpec | None = None

    @field_validator("sources", mode="wrap")
    @classmethod
    def _per_source(cls, value: Any, handler: Any) -> dict[str, SourceSpec]:
        if not isinstance(value, Mapping):
            return handler(value)  # the dict type check reports it
        errors: list[InitErrorDetails] = []
        out: dict[str, SourceSpec] = {}
        for name, spec in value.items():
            spec_type = _tables()["SPEC_TYPES"].get(name) if isinstance(name, str) else None
            if spec_type is None:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "unknown_source",
                            "unknown source '{name}'; known sources: {known}",
                            {"name": name, "known": ", ".join(_tables()["SOURCE_NAMES"])},
                        ),
                        loc=(name,),
                        input=spec,
                    )
                )
                continue
            if isinstance(spec, SourceSpec):
                spec = spec.model_dump(exclude_unset=True)
            try:
                out[name] = spec_type.model_validate(spec)
            except ValidationError as err:
                for e in err.errors(include_url=False):
                    errors.append(_reloc(e, (name,)))
        if errors:
            raise ValidationError.from_exception_data("sources", errors)
        if not out:
            raise PydanticCustomError("no_sources", "a recipe needs at least one source")
        return {name: out[name] for name in _tables()["SOURCE_NAMES"] if name in out}

    @field_validator("expect", "eval_split", mode="after")
    @classmethod
    def _keys_are_sources(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        sources = info.data.get("sources")
        if value is None or sources is None:  # sources invalid: reported on its own
            return value
        errors: list[InitErrorDetails] = []
        for key, amount in value.items():
            if key == "total" and info.field_name == "expect":
                continue
            if key not in sources:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "not_in_sources",
                            "not a source of this recipe (sources: {names})",
                            {"names": ", ".join(sources)},
                        ),
                        loc=(key,),
                        input=amount,
                    )
                )
        if info.field_name == "expect" and "total" in value and all(n in value for n in sources):
            parts = sum(value[n] for n in sources)
            if parts != value["total"]:
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "total_mismatch", "the per-source counts sum to {parts}", {"parts": parts}
                        ),
                        loc=("total",),
                        input=value["total"],
                    )
                )
        if errors:
            raise ValidationError.from_exception_data(info.field_name or "recipe", errors)
        return value

    @model_validator(mode="after")
    def _presize_needs_padded_boxes(self) -> Recipe:
        """Presized images are padded squares: boxes in the `original` frame would not match them.

        The release-exact recipe (`llava15_665k`, RefCOCO in the `original` frame) therefore does not
        presize; a presized build uses `llava15_665k_fixed` (padded-square boxes) or sets
        `box_frame: padded_square` itself. The stored square carries no trace of the original frame,
        so a presized shard and an original-frame box could never be checked against each other."""
        if self.shards.presize is None:
            return self
        errors: list[InitErrorDetails] = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "presize_box_frame",
                    "box_frame 'original' cannot be combined with shards.presize: the stored images are "
                    "padded squares, so boxes must be in the padded_square frame (as in llava15_665k_fixed; "
                    "or drop shards.presize)",
                ),
                loc=("sources", name, "box_frame"),
                input=spec.box_frame,
            )
            for name, spec in self.sources.items()
            if isinstance(spec, RegionSpec) and spec.box_frame == "original"
        ]
        if errors:
            raise ValidationError.from_exception_data("recipe", errors)
        return self

    # convenience ---------------------------------------------------------------------------------

    def kind(self, source: str) -> Kind:
        return _tables()["SOURCE_KINDS"][source]

    def expected(self) -> dict[str, int] | None:
        """Expected per-source counts plus `total` (computed when the recipe gives every source)."""
        if self.expect is None:
            return None
        out = {name: self.expect[name] for name in self.sources if name in self.expect}
        if "total" in self.expect:
            out["total"] = self.expect["total"]
        elif len(out) == len(self.sources):
            out["total"] = sum(out.values())
        return out


def _reloc(error: Mapping[str, Any], prefix: tuple[Any, ...]) -> InitErrorDetails:
    """A line error of a nested validation, re-raised under `prefix` (keeps type, message and context)."""
    ctx = error.get("ctx")
    etype = error["type"]
    if etype in {"value_error", "assertion_error"} or etype not in _PYDANTIC_TYPES:
        detail: InitErrorDetails = {
            "type": PydanticCustomError(etype, error["msg"].replace("{", "{{").replace("}", "}}")),
            "loc": prefix + tuple(error["loc"]),
            "input": error.get("input"),
        }
    else:
        detail = {"type": etype, "loc": prefix + tuple(error["loc"]), "input": error.get("input")}
        if ctx:
            detail["ctx"] = ctx
    return detail


def _pydantic_error_types() -> set[str]:
    from pydantic_core import core_schema

    return set(core_schema.ErrorType.__args__)  # type: ignore[attr-defined]


try:
    _PYDANTIC_TYPES = _pydantic_error_types()
except Exception:  # pragma: no cover - pydantic-core internals moved: fall back to custom errors
    _PYDANTIC_TYPES = set()


# ------------------------------------------------------------------------------------------------
# loading


def recipe_dir() -> Path:
    """The repository's `recipes/` folder (beside the package in a checkout or editable install)."""
    return Path(__file__).resolve().parent.parent / "recipes"


def available_recipes() -> list[str]:
    folder = recipe_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_recipe_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A path as given if it names a file (or looks like a path); a bare name -> recipes/<name>.yaml."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    looks_like_path = path.suffix in {".yaml", ".yml"} or os.sep in text or "/" in text
    if path.is_file() or looks_like_path:
        if not path.is_file():
            raise RecipeError(path, [("", _MISSING_VALUE, "recipe file not found")])
        return path
    for candidate in (recipe_dir() / f"{text}.yaml", Path.cwd() / "recipes" / f"{text}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(available_recipes()) or "none"
    raise RecipeError(
        text, [("", _MISSING_VALUE, f"no recipe named {text!r} in {recipe_dir()} (available: {known})")]
    )


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe: a bare name (`llava15_665k`) or a path to a YAML file."""
    path = resolve_recipe_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RecipeError(path, [("", _MISSING_VALUE, f"cannot read: {err}")]) from None
    except UnicodeDecodeError as err:
        raise RecipeError(path, [("", _MISSING_VALUE, f"not UTF-8 text (byte {err.start})")]) from None
    try:
        data = yamlio.loads(text)
    except yaml.YAMLError as err:
        raise RecipeError(path, [("", _MISSING_VALUE, f"not valid YAML: {err}")]) from None
    recipe = parse_recipe(data, file=path)
    log.debug("loaded recipe %s from %s (hash %s)", recipe.name, path, recipe_hash(recipe)[:12])
    return recipe


def parse_recipe(data: Any, *, file: str | os.PathLike[str] | None = None) -> Recipe:
    """Validate already-parsed recipe data; every problem becomes a `RecipeError` naming `file`."""
    if not isinstance(data, Mapping):
        raise RecipeError(file, [("", data, "a recipe must be a mapping at the top level")])
    try:
        return Recipe.model_validate(dict(data))
    except ValidationError as err:
        raise RecipeError(file, _problems(err, data)) from None


def _problems(err: ValidationError, data: Any) -> list[tuple[str, Any, str]]:
    """One (dotted field, value, message) per distinct field; union-member tags dropped from paths."""
    out: list[tuple[str, Any, str]] = []
    seen: set[str] = set()
    for e in err.errors(include_url=False):
        path, value = _walk(data, e["loc"], e.get("input", _MISSING_VALUE))
        if e["type"] == "missing":
            value = _MISSING_VALUE
        field = ".".join(str(p) for p in path)
        if field in seen:
            continue
        seen.add(field)
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown option" + _known_options(data, path)
        out.append((field, value, message))
    return out


def _walk(data: Any, loc: tuple[Any, ...], fallback: Any) -> tuple[list[Any], Any]:
    """Follow `loc` through the input data, skipping parts that are validator tags, not keys."""
    path: list[Any] = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, Mapping) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        elif i == len(loc) - 1 and isinstance(cur, Mapping) and isinstance(part, str):
            path.append(part)  # a missing field
            cur = fallback
    return path, cur


def _known_options(data: Any, path: list[Any]) -> str:
    """For an unknown key under `sources.<name>`, list what that source accepts."""
    spec_types = _tables()["SPEC_TYPES"]
    if len(path) == 3 and path[0] == "sources" and path[1] in spec_types:
        names = ", ".join(spec_types[path[1]].model_fields)
        return f" for source {path[1]!r} (accepted: {names})"
    if len(path) == 1:
        return f" (accepted: {', '.join(Recipe.model_fields)})"
    if len(path) == 2 and path[0] == "shards":
        return f" (accepted: {', '.join(ShardSpec.model_fields)})"
    if len(path) == 3 and path[:2] == ["shards", "presize"]:
        return f" (accepted: {', '.join(PresizeSpec.model_fields)})"
    return ""


# ------------------------------------------------------------------------------------------------
# hashing


def canonical_json(recipe: Recipe) -> str:
    """The recipe with every default filled in, as sorted compact JSON (what `recipe_hash` hashes)."""
    return json.dumps(
        recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def recipe_hash(recipe: Recipe) -> str:
    """sha256 (hex) of the canonical JSON dump: equal for equal resolved recipes, whatever the YAML
    spelling (key order, defaults written out or not, `"512MB"` vs `512000000`)."""
    return hashlib.sha256(canonical_json(recipe).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------------
# command-line overrides (`datamix build --set sources.vqav2.choose=1000`)

_SELECTION_RULES = ("choose", "proportion", "repeat")


def apply_overrides(
    recipe: Recipe, overrides: list[str] | tuple[str, ...], *, file: str | os.PathLike[str] | None = None
) -> Recipe:
    """`recipe` with `dotted.path=value` overrides applied, validated exactly as a recipe file is.

    Each value is parsed as YAML (`1000`, `false`, `null`, `[reg]`, `{choose: 10}`), so it has the type
    the same text would have in the file. A dotted path may name any field, a source that is not yet
    in the recipe (`sources.gqa.choose=100` adds it), or a whole mapping. Setting one selection rule of
    a source (`choose`, `proportion`, `repeat`) clears the other two, since a source takes exactly one.
    Overrides apply in order, later ones win. Returns a new `Recipe` (its hash covers the overrides);
    a malformed override or an invalid result raises `RecipeError` naming the field and the value, with
    `file` given as `<file> (with --set ...)`.
    """
    if not overrides:
        return recipe
    where = f"{file if file is not None else '<recipe>'} (with --set {' '.join(overrides)})"
    data: dict[str, Any] = recipe.model_dump(mode="json")
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not key or any(not p for p in parts):
            raise RecipeError(
                where, [(key, item, "an override is dotted.path=value (e.g. sources.vqav2.choose=1000)")]
            )
        try:
            value = yamlio.loads(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise RecipeError(where, [(key, text, f"value is not valid YAML: {err}")]) from None
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node, dict):
                raise RecipeError(
                    where, [(".".join(parts[:depth]), node, "is not a mapping: cannot set a field under it")]
                )
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        if not isinstance(node, dict):
            raise RecipeError(
                where, [(".".join(parts[:-1]), node, "is not a mapping: cannot set a field under it")]
            )
        leaf = parts[-1]
        if len(parts) == 3 and parts[0] == "sources" and leaf in _SELECTION_RULES and value is not None:
            for other in _SELECTION_RULES:
                if other != leaf:
                    node.pop(other, None)
        node[leaf] = value
    return parse_recipe(data, file=where)
