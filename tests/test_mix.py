"""Mixing: exact counts, sampling, held-out eval images, determinism of the final order."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datamix.mix import MixError, Sample, build_samples, iter_source_samples, plan
from datamix.recipe import parse_recipe, recipe_hash
from datamix.schema import (
    QA,
    Choice,
    ConversationItem,
    Kind,
    MCQItem,
    Region,
    RegionItem,
    Turn,
    VQAItem,
    items_table,
)

N_VQA = 50
N_AOKVQA = 6
N_VG = 8  # 5 with >= 10 regions
N_REFCOCO = 4  # 20 pairs each -> 3 chunks each
N_SHAREGPT = 7


def vqa(source: str, i: int) -> VQAItem:
    return VQAItem(
        key=f"{source}-{i}",
        source=source,
        id=f"{i:012d}",
        image=f"coco/train2017/{i:012d}.jpg",
        width=640,
        height=480,
        qas=tuple(QA(question_id=str(i * 10 + q), question=f"q{i}.{q}?", answer=f"a{q}") for q in range(3)),
    )


def aokvqa(i: int) -> MCQItem:
    return MCQItem(
        key=f"aokvqa-{i}",
        source="aokvqa",
        id=f"{i:012d}",
        image=f"coco/train2017/{i:012d}.jpg",
        questions=(
            Choice(question_id=f"q{i}", question="Which?", choices=("a", "b", "c", "d"), correct=i % 4),
        ),
    )


def regions(source: str, i: int, n: int) -> RegionItem:
    return RegionItem(
        key=f"{source}-{i}",
        source=source,
        id=str(i),
        image=f"vg/VG_100K/{i}.jpg",
        width=300,
        height=200,
        regions=tuple(
            Region(region_id=f"{i}-{r}", phrase=f"thing {r}", x=r, y=r, w=10, h=10) for r in range(n)
        ),
    )


def sharegpt(i: int) -> ConversationItem:
    return ConversationItem(
        key=f"sharegpt-{i}",
        source="sharegpt",
        id=f"conv{i}_0",
        image=None,
        turns=(Turn(role="human", text=f"hello {i}"), Turn(role="gpt", text=f"hi {i}")),
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("root")
    norm = root / "normalized"
    norm.mkdir()
    tables = {
        "vqav2": (Kind.VQA, [vqa("vqav2", i) for i in range(N_VQA)]),
        "gqa": (Kind.VQA, [vqa("gqa", i) for i in range(N_VQA)]),
        "aokvqa": (Kind.MCQ, [aokvqa(i) for i in range(N_AOKVQA)]),
        "vg": (Kind.REGION, [regions("vg", i, 12 if i % 3 else 4) for i in range(N_VG)]),
        "refcoco": (Kind.REGION, [regions("refcoco", i, 20) for i in range(N_REFCOCO)]),
        "sharegpt": (Kind.CONVERSATION, [sharegpt(i) for i in range(N_SHAREGPT)]),
    }
    for name, (kind, items) in tables.items():
        pq.write_table(items_table(items, kind), norm / f"{name}.parquet")
    return root


def recipe(sources: dict, seed: int = 7, **extra):
    return parse_recipe({"name": "t", "seed": seed, "sources": sources, **extra})


def keys(samples: list[Sample]) -> list[str]:
    return [s.key for s in samples]


# ------------------------------------------------------------------------------------------------


def test_counts_and_plan_agree(root):
    r = recipe(
        {
            "vqav2": {"choose": 20},
            "aokvqa": {"choose": "all"},
            "vg": {"choose": "all"},
            "refcoco": {"choose": 10},
            "sharegpt": {"repeat": 2},
        },
        expect={"vqav2": 20, "aokvqa": 24, "vg": 5, "refcoco": 10, "sharegpt": 14},
    )
    p = plan(r, root)
    assert p.counts() == {"sharegpt": 14, "vqav2": 20, "aokvqa": 24, "vg": 5, "refcoco": 10}
    assert p.sources["refcoco"].available == 12 and p.sources["vg"].items == N_VG
    assert p.total == 73 and p.expected_total == 73
    assert p.recipe_hash == recipe_hash(r)
    assert p.lines()[0].startswith("source") and "MISMATCH" not in "\n".join(p.lines())
    mix = build_samples(r, root)
    assert mix.counts == p.counts() and len(mix.samples) == 73
    assert mix.summary()["total"] == {"actual": 73, "expected": 73, "eval": 0}
    assert mix.summary()["sources"]["vg"] == {"actual": 5, "expected": 5, "eval": 0}
    ks = keys(mix.samples)
    assert len(set(ks)) == len(ks) and not any("." in k for k in ks)
    assert {k.rsplit("-", 1)[0] for k in ks} == set(p.counts())
    # A-OKVQA: 4 rotations of each of the 6 images, all with the same id
    by_id: dict[str, int] = {}
    for s in mix.samples:
        if s.source == "aokvqa":
            by_id[s.id] = by_id.get(s.id, 0) + 1
    assert set(by_id.values()) == {4} and len(by_id) == N_AOKVQA


def test_final_order_is_deterministic_and_mixed(root):
    r = recipe({"vqav2": {"choose": 30}, "gqa": {"choose": "all"}, "aokvqa": {"choose": "all"}})
    a = build_samples(r, root)
    b = build_samples(r, root)
    assert [x.record() for x in a.samples] == [x.record() for x in b.samples]
    sources = [s.source for s in a.samples]
    assert sources != sorted(sources, key=["vqav2", "gqa", "aokvqa"].index)  # shuffled across sources
    # the final order is a permutation of the per-source samples
    per_source = [s for _, train, _ in iter_source_samples(r, root) for s in train]
    assert sorted(keys(per_source)) == sorted(keys(a.samples))
    assert {s.key: s for s in per_source} == {s.key: s for s in a.samples}
    c = build_samples(
        recipe({"vqav2": {"choose": 30}, "gqa": {"choose": "all"}, "aokvqa": {"choose": "all"}}, seed=8), root
    )
    assert keys(c.samples) != keys(a.samples)
    assert {s.item_key for s in c.samples if s.source == "vqav2"} != {
        s.item_key for s in a.samples if s.source == "vqav2"
    }


def test_choose_samples_without_replacement_in_table_order(root):
    r = recipe({"vqav2": {"choose": 20}})
    train = next(iter_source_samples(r, root))[1]
    items = [s.item_key for s in train]
    assert len(set(items)) == 20
    assert items == sorted(items, key=lambda k: int(k.rsplit("-", 1)[1]))
    assert keys(train) == [f"vqav2-{i}" for i in range(20)]
    # the selection does not depend on the other sources of the recipe
    r2 = recipe({"vqav2": {"choose": 20}, "gqa": {"choose": 5}})
    assert [s.item_key for s in next(iter_source_samples(r2, root))[1]] == items


def test_short_is_an_error_unless_allowed(root):
    with pytest.raises(MixError) as info:
        plan(recipe({"vqav2": {"choose": 51}}), root)
    err = info.value
    assert err.source == "vqav2" and err.asked == 51 and err.available == 50
    assert "vqav2" in str(err) and "51" in str(err) and "50" in str(err)
    p = plan(recipe({"vqav2": {"choose": 51, "allow_short": True}}), root)
    assert p.sources["vqav2"].selected == 50 and p.sources["vqav2"].short
    with pytest.raises(MixError, match="refcoco.*13.*12"):
        plan(recipe({"refcoco": {"choose": 13}}), root)


def test_proportion_and_repeat(root):
    p = plan(recipe({"vqav2": {"proportion": 0.25}, "sharegpt": {"repeat": 3}}), root)
    assert p.counts() == {"sharegpt": 21, "vqav2": 13}  # round(12.5) half up
    mix = build_samples(recipe({"sharegpt": {"repeat": 3}}), root)
    assert sorted(s.id for s in mix.samples) == sorted([f"conv{i}_0" for i in range(N_SHAREGPT)] * 3)
    assert len(set(keys(mix.samples))) == 21


def test_eval_split_holds_out_whole_images(root):
    r = recipe({"vqav2": {"choose": "all"}, "gqa": {"choose": 10}}, eval_split={"vqav2": 0.1, "gqa": 3})
    p = plan(r, root)
    assert p.sources["vqav2"].eval_items == 5 and p.sources["vqav2"].available == 45
    assert p.sources["gqa"].eval_items == 3 and p.sources["gqa"].selected == 10
    mix = build_samples(r, root)
    assert mix.eval_counts == {"vqav2": 5, "gqa": 3}
    held = {s.item_key for s in mix.eval_samples}
    assert not held & {s.item_key for s in mix.samples}
    assert all(s.key.startswith(f"{s.source}-eval-") for s in mix.eval_samples)
    assert [s.record() for s in mix.eval_samples] == [s.record() for s in build_samples(r, root).eval_samples]
    with pytest.raises(MixError, match="eval_split"):
        plan(recipe({"vqav2": {"choose": "all"}}, eval_split={"vqav2": 51}), root)


def test_vg_images_below_threshold_never_selected_nor_held_out(root):
    r = recipe({"vg": {"choose": "all"}}, eval_split={"vg": 2})
    mix = build_samples(r, root)
    used = {s.item_key for s in mix.samples} | {s.item_key for s in mix.eval_samples}
    assert used == {f"vg-{i}" for i in range(N_VG) if i % 3}
    assert len(mix.eval_samples) == 2 and len(mix.samples) == 3
    assert all(len(s.conversations) == 20 for s in mix.samples)


def test_sample_record_shape(root):
    mix = build_samples(recipe({"sharegpt": {"choose": 1}, "vqav2": {"choose": 1}}), root)
    by_source = {s.source: s for s in mix.samples}
    text = by_source["sharegpt"].record()
    assert "image" not in text and list(text) == ["id", "conversations", "source", "key"]
    img = by_source["vqav2"].record()
    assert img["image"].startswith("coco/train2017/") and img["conversations"][0]["from"] == "human"
    assert img["conversations"][0]["value"].startswith("<image>\n")
    assert isinstance(by_source["vqav2"].json, bytes) and by_source["vqav2"].record() == img
    assert by_source["vqav2"].width == 640 and by_source["vqav2"].height == 480


def test_missing_or_wrong_table(root, tmp_path):
    with pytest.raises(MixError, match="okvqa.*not found"):
        plan(recipe({"okvqa": {"choose": "all"}}), root)
    (tmp_path / "normalized").mkdir()
    pq.write_table(items_table([vqa("vg", 0)], Kind.VQA), tmp_path / "normalized" / "vg.parquet")
    with pytest.raises(MixError, match="not a region table"):
        plan(recipe({"vg": {"choose": "all"}}), tmp_path)


def test_vqa_turns_per_conversation_counts_every_question(root):
    # 3 questions per image: one conversation each, or 2 + 1 with max_turns capping first
    r = recipe({"vqav2": {"choose": "all", "turns_per_conversation": 1}}, eval_split={"vqav2": 5})
    p = plan(r, root)
    assert p.sources["vqav2"].available == 3 * (N_VQA - 5)
    mix = build_samples(r, root)
    assert len(mix.samples) == 3 * (N_VQA - 5) and len(mix.eval_samples) == 15
    assert all(
        len(s.conversations) == 2 and s.conversations[0]["value"].startswith("<image>\n") for s in mix.samples
    )
    assert not {s.item_key for s in mix.eval_samples} & {s.item_key for s in mix.samples}
    capped = plan(recipe({"gqa": {"choose": "all", "turns_per_conversation": 2, "max_turns": 3}}), root)
    assert capped.sources["gqa"].available == 2 * N_VQA
