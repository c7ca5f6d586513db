"""Shared trainer fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def every_source_mix(tiny_root, tmp_path_factory) -> Path:
    """A mix of every source of the tiny synthetic data, in shards of 24 samples (built once)."""
    from datamix.build import build

    out = tmp_path_factory.mktemp("every_source")
    recipe = (REPO / "tests" / "fixtures" / "recipes" / "every_source.yaml").read_text()
    (out / "demo.yaml").write_text(recipe.replace("max_samples: 256", "max_samples: 24"))
    build(out / "demo.yaml", tiny_root, out=out / "mix")
    return out / "mix"


@pytest.fixture(scope="session")
def published_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random models in the published folder layouts (tests/published_models.py), written once:
    `llm` / `vision_tower` as `lmsys/vicuna-7b-v1.5` / `openai/clip-vit-large-patch14-336` publish them
    (.bin shards, full CLIPModel checkpoint), and `llm_st` / `vision_tower_st`, their safetensors variants."""
    from published_models import write_published

    root = tmp_path_factory.mktemp("published")
    llm, tower = write_published(root / "bin")
    llm_st, tower_st = write_published(root / "safetensors", safetensors=True)
    return {"llm": llm, "vision_tower": tower, "llm_st": llm_st, "vision_tower_st": tower_st}
