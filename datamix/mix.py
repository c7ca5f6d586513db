"""Mixing: normalized tables + a recipe -> the ordered list of samples a build writes.

Per source (in the canonical order of the registry, `datamix.sources.SOURCE_NAMES`):

1. count the conversations every item gives (the source's `formats.Formatter`; for region sources
   straight from the Arrow list lengths, without decoding items);
2. hold out the recipe's `eval_split` images, drawn with the generator of (seed, source, "eval")
   among the items that give at least one conversation;
3. select among the conversations of the remaining items: `choose: N` samples N without replacement
   with the generator of (seed, source, "choose") (kept in table order), `choose: all` keeps all,
   `proportion: p` = `choose: round(p * available)`, `repeat: r` keeps each r times; fewer available
   than asked is a `MixError` (naming source, asked, available) unless `allow_short`;
4. format only the items that have a selected (or held-out) conversation, streaming the table a
   second time, and number the samples `<source>-<n>` (eval: `<source>-eval-<n>`).

Finally all training samples are shuffled once with the generator of (seed, "", "shuffle").

`plan(recipe, root)` runs steps 1-3 only (cheap: what `build --dry-run` shows); `build_samples` runs
all of them and returns a `Mix`. Selection depends only on per-item conversation counts, and
formatting only on the item, its options and the seed, so a plan and a build always agree.

Memory: a `Sample` (`datamix.schema`) is a slotted record holding its final `<key>.json` as compact
UTF-8 JSON bytes, encoded once here and written to the shard as is (no list of dicts per sample).
The peak is the kept samples (about the size of the release JSON: ~1 GB for the 665K mix) plus one
source's selection arrays and one decoded batch: 1.75 GiB peak RSS for a 665,298-sample build (see
`build_samples`; measured when samples held only their conversation's bytes). Rows that nothing
selects are never decoded.
"""

from __future__ import annotations

import logging
import math
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamix.errors import DataError
from datamix.formats import TokenCounter, format_item, formatter_for, item_rng
from datamix.paths import Layout
from datamix.recipe import Recipe, SourceSpec, recipe_hash
from datamix.schema import Item, Kind, Sample, item_from_row, read_items
from datamix.sources import get_source

log = logging.getLogger(__name__)

_PAYLOAD_COLUMN = {
    Kind.CONVERSATION: "turns",
    Kind.VQA: "qas",
    Kind.MCQ: "questions",
    Kind.CAPTION: "captions",
    Kind.REGION: "regions",
}


class MixError(DataError, ValueError):
    """A recipe that cannot be satisfied by the normalized tables (missing table, too few items)."""

    def __init__(self, source: str, message: str, *, asked: int | None = None, available: int | None = None):
        super().__init__(f"{source}: {message}")
        self.source = source
        self.asked = asked
        self.available = available


@dataclass(frozen=True)
class SourcePlan:
    """What the mix takes from one source (all counts are conversations unless named items)."""

    source: str
    kind: str
    items: int  # rows of the normalized table
    eval_items: int  # items held out for evaluation
    eval_conversations: int
    available: int  # conversations of the remaining items
    rule: str  # "choose 80000", "choose all", "proportion 0.5", "repeat 2"
    asked: int | None  # conversations asked for (None: all of them / repeat)
    selected: int  # conversations in the mix
    expected: int | None  # from the recipe's expect block
    short: bool  # fewer than asked, accepted by allow_short


@dataclass(frozen=True)
class Plan:
    recipe: str
    recipe_hash: str
    seed: int
    sources: dict[str, SourcePlan]
    expected_total: int | None

    @property
    def total(self) -> int:
        return sum(p.selected for p in self.sources.values())

    @property
    def eval_total(self) -> int:
        return sum(p.eval_conversations for p in self.sources.values())

    def counts(self) -> dict[str, int]:
        return {name: p.selected for name, p in self.sources.items()}

    def expected(self) -> dict[str, int | None]:
        return {name: p.expected for name, p in self.sources.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "recipe_hash": self.recipe_hash,
            "seed": self.seed,
            "sources": {name: p.__dict__.copy() for name, p in self.sources.items()},
            "total": self.total,
            "expected_total": self.expected_total,
            "eval_total": self.eval_total,
        }

    def lines(self) -> list[str]:
        """A plain-text table (source, items, held out, available, rule, selected, expected)."""
        head = f"{'source':<15} {'items':>8} {'eval':>6} {'available':>9}  {'rule':<16} {'selected':>8} {'expected':>8}"
        rows = [head]
        for p in self.sources.values():
            exp = "-" if p.expected is None else str(p.expected)
            mark = (
                " short"
                if p.short
                else (" MISMATCH" if p.expected is not None and p.expected != p.selected else "")
            )
            rows.append(
                f"{p.source:<15} {p.items:>8} {p.eval_items:>6} {p.available:>9}  {p.rule:<16} {p.selected:>8} {exp:>8}{mark}"
            )
        exp_total = "-" if self.expected_total is None else str(self.expected_total)
        rows.append(f"{'total':<15} {'':>8} {'':>6} {'':>9}  {'':<16} {self.total:>8} {exp_total:>8}")
        return rows


@dataclass
class Mix:
    """The result of `build_samples`: training samples in final order, held-out eval samples (in
    source, table order), the plan, and actual vs expected counts per source."""

    recipe: Recipe
    plan: Plan
    samples: list[Sample]
    eval_samples: list[Sample] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.samples:
            out[s.source] = out.get(s.source, 0) + 1
        return {name: out.get(name, 0) for name in self.plan.sources}

    @property
    def eval_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.eval_samples:
            out[s.source] = out.get(s.source, 0) + 1
        return out

    @property
    def expected(self) -> dict[str, int] | None:
        return self.recipe.expected()

    def summary(self) -> dict[str, Any]:
        """Per-source `{actual, expected, eval}` plus totals, for summary.json."""
        counts, evals, expected = self.counts, self.eval_counts, self.expected or {}
        return {
            "recipe": self.recipe.name,
            "recipe_hash": self.plan.recipe_hash,
            "seed": self.recipe.seed,
            "sources": {
                name: {"actual": counts[name], "expected": expected.get(name), "eval": evals.get(name, 0)}
                for name in self.plan.sources
            },
            "total": {
                "actual": len(self.samples),
                "expected": expected.get("total"),
                "eval": len(self.eval_samples),
            },
        }


# ------------------------------------------------------------------------------------------------
# selection (steps 1-3)


@dataclass
class _Selection:
    source: str
    spec: SourceSpec
    path: Path
    counts: array  # conversations per table row
    eval_items: list[int]  # held-out row indices, sorted
    wanted: dict[int, list[int]]  # row -> conversation indices taken (repeated for `repeat`)
    plan: SourcePlan


def _table_path(root: str | os.PathLike[str] | Path, source: str) -> Path:
    path = Layout.at(root).items(source)
    if not path.is_file():
        raise MixError(source, f"normalized table {path} not found (run `datamix normalize {source}`)")
    return path


def _conversation_counts(path: Path, source: str, spec: SourceSpec) -> array:
    """Conversations per row, computed from Arrow columns where that avoids decoding items (the
    source's formatter says how: one each, from the payload's length, or per item)."""
    kind = get_source(source).kind
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise MixError(
            source, f"{path}: damaged table ({e}); rerun `datamix normalize {source} --force`"
        ) from None
    payload = _PAYLOAD_COLUMN[kind]
    if payload not in schema.names:
        raise MixError(
            source,
            f"{path} is not a {kind.value} table (no {payload!r} column; columns: {', '.join(schema.names)})",
        )
    fmt = formatter_for(spec)
    if fmt.one_each(spec):
        return array("q", [1]) * pq.ParquetFile(path).metadata.num_rows
    if fmt.count_length is not None:
        lengths = pc.list_value_length(pq.read_table(path, columns=[payload]).column(payload))
        return array("q", (fmt.count_length(n, spec) for n in pc.fill_null(lengths, 0).to_pylist()))
    return array("q", (fmt.conversations(item, spec) for item in read_items(path)))


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _select_source(recipe: Recipe, root: Any, source: str, spec: SourceSpec) -> _Selection:
    path = _table_path(root, source)
    counts = _conversation_counts(path, source, spec)
    n_items = len(counts)
    seed = recipe.seed

    # 2. held-out images
    eval_items: list[int] = []
    amount = (recipe.eval_split or {}).get(source)
    if amount is not None:
        eligible = [i for i in range(n_items) if counts[i] > 0]
        n_eval = amount if isinstance(amount, int) else _round_half_up(amount * len(eligible))
        if n_eval > len(eligible):
            if not spec.allow_short:
                raise MixError(
                    source,
                    f"eval_split asks {n_eval} images but only {len(eligible)} are available",
                    asked=n_eval,
                    available=len(eligible),
                )
            log.warning("%s: eval_split asks %d images, only %d available", source, n_eval, len(eligible))
            n_eval = len(eligible)
        eval_items = sorted(item_rng(seed, source, "eval").sample(eligible, n_eval))
    held = set(eval_items)

    # 3. conversations of the remaining items, flattened in table order
    rows = array("q")
    convs = array("q")
    for i in range(n_items):
        if i not in held:
            for j in range(counts[i]):
                rows.append(i)
                convs.append(j)
    available = len(rows)

    asked: int | None = None
    short = False
    copies = 1
    chosen: Sequence[int]
    if spec.repeat is not None:
        rule, chosen = f"repeat {spec.repeat}", range(available)
        copies = spec.repeat
    elif spec.choose == "all":
        rule, chosen = "choose all", range(available)
    else:
        if spec.proportion is not None:
            rule, asked = f"proportion {spec.proportion:g}", _round_half_up(spec.proportion * available)
        else:
            assert isinstance(spec.choose, int)
            rule, asked = f"choose {spec.choose}", spec.choose
        if asked > available:
            if not spec.allow_short:
                raise MixError(
                    source,
                    f"asked for {asked} conversations but only {available} are available "
                    "(set allow_short: true to accept fewer)",
                    asked=asked,
                    available=available,
                )
            log.warning(
                "%s: asked for %d conversations, only %d available (allow_short)", source, asked, available
            )
            short = True
            chosen = range(available)
        else:
            # sampling without replacement, kept in table order (keys then follow the table)
            chosen = sorted(item_rng(seed, source, "choose").sample(range(available), asked))

    wanted: dict[int, list[int]] = {}
    for c in chosen:
        wanted.setdefault(rows[c], []).extend([convs[c]] * copies)
    selected = len(chosen) * copies
    expected = (recipe.expect or {}).get(source)
    eval_conversations = sum(counts[i] for i in eval_items)
    plan = SourcePlan(
        source=source,
        kind=get_source(source).kind.value,
        items=n_items,
        eval_items=len(eval_items),
        eval_conversations=eval_conversations,
        available=available,
        rule=rule,
        asked=asked,
        selected=selected,
        expected=expected,
        short=short,
    )
    log.info(
        "%s: %d items (%d held out), %d conversations available, %s -> %d%s",
        source,
        n_items,
        len(eval_items),
        available,
        rule,
        selected,
        "" if expected is None else f" (expected {expected})",
    )
    return _Selection(source, spec, path, counts, eval_items, wanted, plan)


def _select(recipe: Recipe, root: Any) -> tuple[list[_Selection], Plan]:
    selections = [_select_source(recipe, root, name, spec) for name, spec in recipe.sources.items()]
    expected = recipe.expected()
    plan = Plan(
        recipe=recipe.name,
        recipe_hash=recipe_hash(recipe),
        seed=recipe.seed,
        sources={s.source: s.plan for s in selections},
        expected_total=None if expected is None else expected.get("total"),
    )
    return selections, plan


def plan(recipe: Recipe, root: str | os.PathLike[str] | None) -> Plan:
    """Counts per source (items, held out, available, selected, expected) without formatting anything."""
    return _select(recipe, root)[1]


# ------------------------------------------------------------------------------------------------
# formatting (step 4) and the final shuffle


def _read_rows(path: Path, keep: Any, batch_size: int = 4096) -> Iterator[tuple[int, Item]]:
    """(row index, item) for the rows of a normalized table that `keep(row)`; the other rows are never
    decoded into Python objects (half of OCR-VQA and ShareGPT, a fifth of VG in llava15_665k)."""
    with pq.ParquetFile(path) as pf:
        start = 0
        for batch in pf.iter_batches(batch_size=batch_size):
            local = [j for j in range(batch.num_rows) if keep(start + j)]
            if local:
                rows = (
                    batch.take(pa.array(local, type=pa.int64())).to_pylist()
                    if len(local) < batch.num_rows
                    else batch.to_pylist()
                )
                for j, row in zip(local, rows, strict=True):
                    yield start + j, item_from_row(row)
            start += batch.num_rows


def _samples_of(
    sel: _Selection, seed: int, count_tokens: TokenCounter | None
) -> tuple[list[Sample], list[Sample]]:
    source = sel.source
    train: list[Sample] = []
    held: list[Sample] = []
    held_rows = set(sel.eval_items)
    for i, item in _read_rows(sel.path, lambda i: i in sel.wanted or i in held_rows):
        want = sel.wanted.get(i)
        conversations = format_item(item, sel.spec, seed=seed, count_tokens=count_tokens)
        if len(conversations) != sel.counts[i]:  # internal invariant: counting agrees with formatting
            raise AssertionError(
                f"{item.key}: counted {sel.counts[i]} conversations, formatted {len(conversations)}"
            )
        width = getattr(item, "width", None)
        height = getattr(item, "height", None)
        target, indices, prefix = (
            (train, want, f"{source}-")
            if want is not None
            else (held, range(len(conversations)), f"{source}-eval-")
        )
        for j in indices:  # each sample's json is encoded once, here (Sample.create)
            target.append(
                Sample.create(
                    key=f"{prefix}{len(target)}",
                    id=item.id,
                    source=source,
                    image=item.image,
                    conversations=conversations[j],
                    width=width,
                    height=height,
                    item_key=item.key,
                )
            )
    if len(train) != sel.plan.selected or len(held) != sel.plan.eval_conversations:  # pragma: no cover
        raise AssertionError(f"{source}: table changed between counting and formatting")
    return train, held


def iter_source_samples(
    recipe: Recipe, root: Any, *, count_tokens: TokenCounter | None = None
) -> Iterator[tuple[str, list[Sample], list[Sample]]]:
    """(source, training samples in table order, eval samples) for each source of the recipe."""
    selections, _ = _select(recipe, root)
    for sel in selections:
        train, held = _samples_of(sel, recipe.seed, count_tokens)
        yield sel.source, train, held


def build_samples(
    recipe: Recipe, root: str | os.PathLike[str] | None, *, count_tokens: TokenCounter | None = None
) -> Mix:
    """Every training sample of the recipe in final (shuffled) order, plus the held-out eval samples.

    `count_tokens(text) -> int` (e.g. a tokenizer's length) enables ShareGPT's `max_tokens` truncation.

    Memory: samples keep their conversation as JSON bytes; the peak is the kept samples plus one
    source's formatting. Measured (llava15_665k recipe, synthetic normalized tables shaped like the
    real ones: 157K LLaVA-Instruct, 90K ShareGPT, 166K OCR-VQA books, 108K VG images with 5-90
    regions, ...): 665,298 samples, 810 MB of conversation JSON, peak RSS 1.75 GiB, 108 s on one core.
    """
    selections, the_plan = _select(recipe, root)
    samples: list[Sample] = []
    eval_samples: list[Sample] = []
    for sel in selections:
        train, held = _samples_of(sel, recipe.seed, count_tokens)
        samples += train
        eval_samples += held
        del train, held
    # one final shuffle of everything (docs/sources.md#final-order)
    item_rng(recipe.seed, "", "shuffle").shuffle(samples)
    mix = Mix(recipe=recipe, plan=the_plan, samples=samples, eval_samples=eval_samples)
    for name, n in mix.counts.items():
        exp = the_plan.sources[name].expected
        if exp is not None and exp != n:
            log.warning("%s: %d samples, the recipe expects %d", name, n, exp)
    log.info(
        "%s: %d samples (%d eval) from %d sources",
        recipe.name,
        len(samples),
        len(eval_samples),
        len(selections),
    )
    return mix


__all__ = [
    "Mix",
    "MixError",
    "Plan",
    "Sample",
    "SourcePlan",
    "build_samples",
    "iter_source_samples",
    "plan",
]
