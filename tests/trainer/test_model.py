"""Tiny model assembly, freezing per stage, stage 1 -> stage 2 hand-over, and the labelled-only loss."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer.config import load_config  # noqa: E402
from trainer.model import (  # noqa: E402
    apply_freezing,
    build_model,
    labelled_loss,
    load_stage1_parts,
    parameter_groups,
    save_stage1_parts,
)
from trainer.templates import IGNORE_INDEX, VICUNA_V1, encode  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "train"
SMALL = ["model.tiny.llm_layers=1", "model.tiny.vision_layers=1"]


@pytest.fixture(scope="module")
def stage2():
    cfg = load_config(RECIPES / "tiny_stage2.yaml", ["pretrained_projector=null", *SMALL])
    model, tok = build_model(cfg)
    return cfg, model, tok


def test_tiny_model_layout(stage2):
    cfg, model, tok = stage2
    c = model.config
    assert c.image_token_index == 32000 and c.pad_token_id == 32001
    assert c.projector_hidden_act == "gelu" and c.vision_feature_layer == cfg.model.vision_feature_layer == -1
    assert c.vision_feature_select_strategy == "default" and c.image_seq_length == 64
    assert model.get_input_embeddings().weight.shape[0] == 32064
    assert model.lm_head.weight.shape[0] == 32064 and c.text_config.vocab_size == 32064
    proj = model.model.multi_modal_projector
    vision, llm = cfg.model.tiny.vision_hidden_size, cfg.model.tiny.llm_hidden_size  # 96 -> 96 in the recipe
    assert (proj.linear_1.in_features, proj.linear_1.out_features) == (vision, llm)
    assert (proj.linear_2.in_features, proj.linear_2.out_features) == (llm, llm)
    assert c.vision_config.image_size == 112 and c.vision_config.patch_size == 14
    assert len(tok) == 32002


def test_build_is_deterministic(stage2):
    cfg, model, _ = stage2
    again, _ = build_model(cfg)
    for (n, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), n


def test_freezing_per_stage(stage2):
    cfg, model, _ = stage2
    s1 = load_config(
        RECIPES / "tiny_stage1.yaml", ["train_vision_tower=false", "train_llm=false", *SMALL]
    )  # as LLaVA
    counts = apply_freezing(model, s1)
    assert counts["projector"] > 0 and counts["llm"] == 0 and counts["vision_tower"] == 0
    assert (
        not model.lm_head.weight.requires_grad
        and model.model.multi_modal_projector.linear_1.weight.requires_grad
    )
    unfrozen = load_config(RECIPES / "tiny_stage2.yaml", ["train_vision_tower=true", *SMALL])
    counts = apply_freezing(model, unfrozen)  # the option that trains the tower too
    assert counts["llm"] > 0 and counts["vision_tower"] > 0
    total = sum(p.numel() for p in model.parameters())
    assert sum(counts.values()) == total
    groups = parameter_groups(model, unfrozen)
    assert len(groups) == 2 and sum(p.numel() for g in groups for p in g["params"]) == total
    counts = apply_freezing(model, cfg)  # the tiny stage 2 recipe, as LLaVA: tower frozen
    assert counts["vision_tower"] == 0 and counts["llm"] > 0 and counts["projector"] > 0
    assert len(parameter_groups(model, cfg)) == 1


def test_stage1_projector_goes_into_stage2(stage2, tmp_path):
    cfg, _, _ = stage2
    s1cfg = load_config(
        RECIPES / "tiny_stage1.yaml",
        [*SMALL, "model.tiny.init_seed=7", "train_llm=false", "train_vision_tower=true"],
    )
    s1, _ = build_model(s1cfg)
    path = save_stage1_parts(s1, tmp_path / "s1")
    assert path.name == "stage1.safetensors"
    s2cfg = load_config(RECIPES / "tiny_stage2.yaml", [f"pretrained_projector={tmp_path / 's1'}", *SMALL])
    s2, _ = build_model(s2cfg)
    a, b = s1.model.multi_modal_projector, s2.model.multi_modal_projector
    assert torch.equal(a.linear_1.weight, b.linear_1.weight) and torch.equal(a.linear_2.bias, b.linear_2.bias)
    # a stage 1 that trained its tower hands it over too; the LLM does not
    t1, t2 = s1.model.vision_tower.state_dict(), s2.model.vision_tower.state_dict()
    assert all(torch.equal(t1[k], t2[k]) for k in t1)
    assert not torch.equal(s1.lm_head.weight, s2.lm_head.weight)
    # ...unless stage 1 trained the LLM (train_llm: a tiny random LLM learns in stage 1 too)
    s1cfg = load_config(
        RECIPES / "tiny_stage1.yaml", [*SMALL, "model.tiny.init_seed=7", "train_vision_tower=false"]
    )
    assert s1cfg.train_llm and not s1cfg.train_vision_tower
    s1l, _ = build_model(s1cfg)
    assert (
        s1l.lm_head.weight.requires_grad
        and not s1l.model.vision_tower.embeddings.patch_embedding.weight.requires_grad
    )
    save_stage1_parts(s1l, tmp_path / "s1llm")
    s2l, _ = build_model(
        load_config(RECIPES / "tiny_stage2.yaml", [f"pretrained_projector={tmp_path / 's1llm'}", *SMALL])
    )
    l1, l2 = s1l.model.language_model.state_dict(), s2l.model.language_model.state_dict()
    assert all(torch.equal(l1[k], l2[k]) for k in l1) and torch.equal(s1l.lm_head.weight, s2l.lm_head.weight)
    t1, t2 = s1l.model.vision_tower.state_dict(), s2l.model.vision_tower.state_dict()
    assert not all(torch.equal(t1[k], t2[k]) for k in t1)  # a frozen stage-1 tower is not handed over
    # the original LLaVA mm_projector.bin naming is understood too
    orig = {
        "model.mm_projector.0.weight": a.linear_1.weight.detach() * 2,
        "model.mm_projector.0.bias": a.linear_1.bias.detach(),
        "model.mm_projector.2.weight": a.linear_2.weight.detach(),
        "model.mm_projector.2.bias": a.linear_2.bias.detach(),
    }
    torch.save(orig, tmp_path / "mm_projector.bin")
    loaded = load_stage1_parts(s2, tmp_path / "mm_projector.bin")
    assert len(loaded) == 4 and torch.equal(b.linear_1.weight, a.linear_1.weight * 2)
    torch.save({"x": torch.zeros(1)}, tmp_path / "nothing.bin")
    with pytest.raises(ValueError, match="no projector"):
        load_stage1_parts(s2, tmp_path / "nothing.bin")


def _batch(tok, n_image_tokens=64):
    convs = [
        [{"from": "human", "value": "<image>\nWhat color is the circle?"}, {"from": "gpt", "value": "Red."}],
        [
            {"from": "human", "value": "<image>\nShape?"},
            {"from": "gpt", "value": "A square."},
            {"from": "human", "value": "And its colour?"},
            {"from": "gpt", "value": "Blue, mostly."},
        ],
    ]
    rows = [
        encode(c, tok, VICUNA_V1, has_image=True, max_length=512, image_seq_length=n_image_tokens).expanded()
        for c in convs
    ]
    width = max(len(r[0]) for r in rows)
    ids = torch.full((2, width), 32001)
    labels = torch.full((2, width), IGNORE_INDEX)
    mask = torch.zeros((2, width), dtype=torch.long)
    for i, (a, b) in enumerate(rows):
        ids[i, : len(a)] = torch.tensor(a)
        labels[i, : len(b)] = torch.tensor(b)
        mask[i, : len(a)] = 1
    g = torch.Generator().manual_seed(0)
    return ids, labels, mask, torch.randn(2, 3, 112, 112, generator=g)


def test_labelled_loss_equals_full_loss(stage2):
    _, model, tok = stage2
    ids, labels, mask, pixels = _batch(tok)
    model.eval()
    full = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).loss
    mine, n = labelled_loss(model, input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels)
    assert n == int((labels[:, 1:] != IGNORE_INDEX).sum()) > 6
    torch.testing.assert_close(mine, full, rtol=1e-6, atol=1e-6)
    # gradients agree too
    model.zero_grad()
    full.backward()
    g_full = model.model.multi_modal_projector.linear_2.weight.grad.clone()
    model.zero_grad()
    mine, _ = labelled_loss(model, input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels)
    mine.backward()
    torch.testing.assert_close(
        model.model.multi_modal_projector.linear_2.weight.grad, g_full, rtol=1e-5, atol=1e-7
    )
    model.zero_grad()
    # sum normalisation for gradient accumulation
    summed, n = labelled_loss(
        model, input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels, num_items_in_batch=1
    )
    torch.testing.assert_close(summed, full.detach() * n, rtol=1e-5, atol=1e-5)
    none, n0 = labelled_loss(
        model, input_ids=ids, pixel_values=pixels, labels=torch.full_like(labels, IGNORE_INDEX)
    )
    assert n0 == 0 and none.item() == 0.0


def test_init_command(tmp_path):
    from trainer.__main__ import main

    out = tmp_path / "init"
    assert (
        main(
            [
                "init",
                "--config",
                str(RECIPES / "tiny_stage1.yaml"),
                "--out",
                str(out),
                "--set",
                "model.tiny.llm_layers=1",
            ]
        )
        == 0
    )
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert (out / "train_config.json").exists() and (out / "processor_config.json").exists()


def test_linear_projector_is_one_linear_and_exports_as_llava(tmp_path):
    """`projector: linear` (the paper's Table 2 baseline): the two-layer module with an identity
    activation and a frozen identity second layer computes exactly x W1^T + b1, trains W1 only, and the
    export reloads as a plain LlavaForConditionalGeneration with the same outputs."""
    from transformers import LlavaForConditionalGeneration

    s1 = load_config(RECIPES / "tiny_stage1.yaml", ["model.projector=linear", "train_llm=false", *SMALL])
    model, _ = build_model(s1)
    proj = model.model.multi_modal_projector
    assert model.config.projector_hidden_act == "linear"
    assert (
        torch.equal(proj.linear_2.weight, torch.eye(proj.linear_2.out_features))
        and not proj.linear_2.bias.any()
    )
    assert not proj.linear_2.weight.requires_grad and proj.linear_1.weight.requires_grad
    counts = apply_freezing(model, s1)
    assert counts["projector"] == proj.linear_1.weight.numel() + proj.linear_1.bias.numel()
    x = torch.randn(3, proj.linear_1.in_features)
    with torch.no_grad():
        torch.testing.assert_close(
            proj(x), x @ proj.linear_1.weight.T + proj.linear_1.bias, rtol=0, atol=1e-6
        )

    # an optimiser step moves W1 and leaves the identity alone
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    proj(x).sum().backward()
    opt.step()
    assert torch.equal(proj.linear_2.weight, torch.eye(proj.linear_2.out_features))

    # stage 1 -> stage 2 hands the linear projector over; the saved folder reloads in plain transformers
    save_stage1_parts(model, tmp_path / "s1")
    s2 = load_config(
        RECIPES / "tiny_stage2.yaml",
        ["model.projector=linear", f"pretrained_projector={tmp_path / 's1'}", *SMALL],
    )
    m2, _ = build_model(s2)
    assert torch.equal(m2.model.multi_modal_projector.linear_1.weight, proj.linear_1.weight)
    m2.save_pretrained(tmp_path / "hf")
    again = LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(again.model.multi_modal_projector(x), m2.model.multi_modal_projector(x))


def test_stage2_reads_projector_and_tower_from_an_export(stage2, tmp_path):
    """A LLaVA folder in the llava-hf layout (`vision_tower.vision_model.*`, as our export and
    transformers' conversion write it) hands its projector and tower to stage 2; its LLM is not taken."""
    from trainer.export import save_hf_folder

    cfg, model, tok = stage2
    save_hf_folder(model, tok, tmp_path / "export")
    fresh_cfg = load_config(
        RECIPES / "tiny_stage2.yaml", ["pretrained_projector=null", "model.tiny.init_seed=7", *SMALL]
    )
    fresh, _ = build_model(fresh_cfg)
    loaded = load_stage1_parts(fresh, tmp_path / "export")
    assert {n.split(".")[1] for n in loaded} == {"multi_modal_projector", "vision_tower"}
    own, theirs = dict(fresh.named_parameters()), dict(model.named_parameters())
    assert all(torch.equal(own[n], theirs[n]) for n in loaded)
    assert sum(n.startswith("model.vision_tower.") for n in loaded) == sum(
        n.startswith("model.vision_tower.") for n in own
    )
    assert not torch.equal(own["lm_head.weight"], theirs["lm_head.weight"])
