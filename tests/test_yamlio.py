"""datamix.yamlio: strict keys, bounded alias expansion, deep nesting; and the loaders that use it."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
import yaml

from datamix import yamlio
from datamix.catalog import CatalogError, load_catalog
from datamix.recipe import RecipeError, load_recipe


def laughs(levels: int, width: int = 9, top: str = "") -> str:
    """The "billion laughs" document: level k is a list of `width` aliases of level k-1."""
    lines = [top] if top else []
    lines.append('a0: &a0 "lol"')
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_expanded_size_counts_every_alias_once_per_use() -> None:
    node = yaml.compose(laughs(3, width=2))
    # mapping 1 + 4 keys + a0 1 + a1 (1 + 2) + a2 (1 + 2*3) + a3 (1 + 2*7)
    assert yamlio.expanded_size(node) == 1 + 4 + 1 + 3 + 7 + 15
    assert yamlio.loads(laughs(3, width=2))["a3"] == [[["lol", "lol"]] * 2] * 2


@pytest.mark.parametrize("levels", [6, 9])
def test_alias_bomb_is_refused_before_construction(levels: int) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(yamlio.YamlError, match="more than 100,000 values"):
            yamlio.loads(laughs(levels))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20  # bytes allocated while refusing: the file's size, not the expansion's


def test_duplicate_keys_unhashable_keys_and_deep_nesting() -> None:
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'seed' \(first at line 1\)"):
        yamlio.loads("seed: 1\nname: x\nseed: 2\n")
    with pytest.raises(yaml.YAMLError, match="unhashable"):
        yamlio.loads("{[2]: b}")
    with pytest.raises(yamlio.YamlError, match="nested too deeply"):
        yamlio.loads("[" * 100_000 + "]" * 100_000)
    assert yamlio.loads("") is None


def test_recipe_and_catalog_loaders_name_the_file(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(9, top="name: bomb"))
    with pytest.raises(RecipeError, match="bomb.yaml") as err:
        load_recipe(bomb)
    assert "more than 100,000 values" in str(err.value)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RecipeError, match=r"latin1.yaml.*not UTF-8 text \(byte 9\)"):
        load_recipe(latin1)
    cat = tmp_path / "catalog.yaml"
    cat.write_bytes(b"- source: vqav2\n  url: \xff\n")
    with pytest.raises(CatalogError, match=r"(?s)catalog.yaml.*not UTF-8 text \(byte 23\)"):
        load_catalog(cat)
    cat.write_text(laughs(9))
    with pytest.raises(CatalogError, match="more than 100,000 values"):
        load_catalog(cat)


def test_train_config_loader_refuses_a_bomb(tmp_path: Path) -> None:
    from trainer.config import load_config

    bomb = tmp_path / "train.yaml"
    bomb.write_text(laughs(8))
    with pytest.raises(ValueError, match=r"train.yaml: not a valid train config: .*more than 100,000 values"):
        load_config(bomb)
    with pytest.raises(ValueError, match="--set 'seed=\\[': value is not valid YAML"):
        load_config(Path(__file__).parents[1] / "recipes" / "train" / "tiny_stage1.yaml", ["seed=["])
