"""The `build` and `import-llava` stages: samples (from a recipe, or from a LLaVA-format JSON file)
-> shards + manifest.parquet + summary.json via `datamix.shards`.

A build records everything that made it in summary.json: the resolved recipe and its hash, the
seed, actual vs expected counts per source, and the sha256 of every raw input file (taken from the
normalized tables' stats, which hashed them when they were read).

A recipe with `shards: presize` stores presized images (the trainer's padded, resized square,
re-encoded as JPEG) in the training and the eval shards: a pixel-changing speed trade-off, recorded
in summary.json (`presize`) and the resolved recipe; see `datamix.shards`.

`overrides` (`datamix build --set sources.vqav2.choose=1000`, repeatable) change any recipe field for
one build without editing the file (`datamix.recipe.apply_overrides`: validated like the file); they
are recorded in summary.json (`overrides`), and the resolved recipe and its hash include them.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datamix.errors import DataError, UsageError
from datamix.fileio import sha256_file
from datamix.paths import Layout, image_path_problem
from datamix.recipe import PresizeSpec, apply_overrides, canonical_json, load_recipe

if TYPE_CHECKING:
    from datamix.mix import Sample

# datamix.mix and datamix.shards (pyarrow, numpy, polars) are imported where used, after the recipe
# is read: a recipe that fails to load fails fast and light (`datamix build`, issue 18).

log = logging.getLogger(__name__)

ShardProgress = Callable[[int, int], None]


def _raw_inputs(layout: Layout, sources: list[str]) -> dict[str, list[dict[str, Any]]]:
    from datamix.mix import MixError

    out = {}
    for name in sources:
        path = layout.stats(name)
        if not path.is_file():
            raise MixError(name, f"not normalized yet ({path} missing): run `datamix normalize {name}`")
        try:
            stats = json.loads(path.read_text(encoding="utf-8"))
            out[name] = [
                {"file": i["file"], "size": i["size"], "sha256": i.get("sha256")}
                for i in stats.get("inputs", [])
            ]
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise MixError(
                name,
                f"{path}: damaged stats ({type(e).__name__}: {e}); rerun `datamix normalize {name} --force`",
            ) from None
    return out


def _text_counter(tokenizer: str | None) -> Callable[[str], int] | None:
    from datamix.shards import text_token_counter

    return text_token_counter(tokenizer) if tokenizer else None


def build(
    recipe_ref: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    tokenizer: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_shard: ShardProgress | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Build a recipe's mix. With `dry_run`, return the plan (counts per source) and write nothing.

    `overrides` are `dotted.path=value` strings applied to the recipe before anything else (see the
    module docstring). Held-out eval samples (the recipe's `eval_split`) go to `<out>/eval/` as a mix
    folder of their own.
    """
    overrides = list(overrides)
    recipe = apply_overrides(load_recipe(recipe_ref), overrides, file=recipe_ref)
    from datamix.mix import plan
    from datamix.shards import out_lock

    layout = Layout.at(root)
    if dry_run:
        the_plan = plan(recipe, layout.root)
        return {**the_plan.as_dict(), "overrides": overrides, "lines": the_plan.lines()}
    target = Path(out) if out is not None else layout.mix(recipe.name)
    with out_lock(target):  # a second build into the same folder fails now, not after reading the tables
        return _build_locked(
            recipe,
            recipe_ref,
            layout,
            target,
            overrides=overrides,
            jobs=jobs,
            tokenizer=tokenizer,
            force=force,
            on_shard=on_shard,
        )


def _build_locked(
    recipe: Any,
    recipe_ref: str | os.PathLike[str],
    layout: Layout,
    target: Path,
    *,
    overrides: list[str],
    jobs: int,
    tokenizer: str | None,
    force: bool,
    on_shard: ShardProgress | None,
) -> dict[str, Any]:
    import pyarrow as pa

    from datamix.mix import build_samples
    from datamix.shards import write_mix

    raw_inputs = _raw_inputs(layout, list(recipe.sources))
    count_tokens = _text_counter(tokenizer)
    try:
        mix = build_samples(recipe, layout.root, count_tokens=count_tokens)
    except pa.ArrowException as e:
        raise DataError(
            f"a normalized table is damaged ({e}); rerun `datamix normalize --force`", path=layout.normalized
        ) from None
    excluded = None
    if recipe.exclude is not None:  # a decontaminated mix (datamix.contamination)
        from datamix.contamination import decontaminate

        mix.samples, excluded = decontaminate(mix.samples, recipe.exclude, layout)
    summary = {
        **mix.summary(),
        "recipe_resolved": json.loads(canonical_json(recipe)),
        "recipe_file": str(recipe_ref),
        "overrides": overrides,
        "raw_inputs": raw_inputs,
        "tokenizer": tokenizer,
        **({"excluded": excluded} if excluded is not None else {}),
    }
    shards = recipe.shards
    # the same shard settings for the mix and its held-out part
    settings: dict[str, Any] = dict(
        max_samples=shards.max_samples or 10_000,
        max_bytes=shards.max_bytes,
        jobs=jobs,
        tokenizer=tokenizer,
        presize=shards.presize,
        force=force,
    )
    result = write_mix(
        target, recipe.name, mix.samples, layout.images, summary=summary, on_shard=on_shard, **settings
    )
    if mix.eval_samples:
        eval_summary = {
            "recipe_hash": summary["recipe_hash"],
            "seed": recipe.seed,
            "sources": {k: {"actual": v, "expected": None} for k, v in mix.eval_counts.items()},
            "held_out_from": recipe.name,
        }
        result["eval"] = write_mix(
            target / "eval",
            f"{recipe.name}-eval",
            mix.eval_samples,
            layout.images,
            summary=eval_summary,
            **settings,
        )
    result["out"] = str(target)
    return result


def import_llava(
    path: str | os.PathLike[str],
    images: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str = "import",
    max_samples: int = 10_000,
    jobs: int = 1,
    presize: PresizeSpec | None = None,
    force: bool = False,
    on_shard: ShardProgress | None = None,
) -> dict[str, Any]:
    """A LLaVA-format JSON file (e.g. the official `llava_v1_5_mix665k.json`) -> shards + manifest,
    each record's source inferred from its image path and prompts (`unknown` when unsure).
    `presize` stores presized images, as a recipe's `shards: presize` does (the release's boxes are
    already in the padded-square frame, which presizing keeps)."""
    from datamix.llava_json import import_records
    from datamix.mix import Sample
    from datamix.shards import BuildError, write_mix

    samples: list[Sample] = []
    counts: Counter[str] = Counter()
    images_root = Path(images)
    if not images_root.is_dir():
        raise UsageError("the image root is not a folder", path=images_root)
    for index, (source, rec) in enumerate(import_records(Path(path))):
        counts[source] += 1
        image = rec.get("image")
        if image is not None:
            problem = image_path_problem(image)
            if problem is not None:  # never read a file outside --images (docs/architecture.md#import-llava)
                raise BuildError(
                    f"image path {image!r} {problem}; image paths must lie inside --images {images_root}",
                    path=path,
                    record=f"{index} (id {rec['id']})",
                    field="image",
                )
            if not (images_root / image).is_file():
                raise BuildError(
                    f"{path}: record {index} (id {rec['id']}): image {images_root / image} not found"
                )
        samples.append(
            Sample.create(
                key=f"{name}-{index}",
                id=rec["id"],
                source=source,
                image=image,
                conversations=rec["conversations"],
            )
        )
    summary = {
        "sources": {k: {"actual": v, "expected": None} for k, v in sorted(counts.items())},
        "total": {"actual": len(samples), "expected": None},
        "imported_from": str(path),
        "input_sha256": sha256_file(Path(path)),
    }
    result = write_mix(
        Path(out),
        name,
        samples,
        images_root,
        summary=summary,
        max_samples=max_samples,
        jobs=jobs,
        presize=presize,
        force=force,
        on_shard=on_shard,
    )
    result["out"] = str(out)
    return result
