"""`python -m trainer clip`: the tiny tower's contrastive pretraining on a caption mix, and the tiny
preset starting from the saved tower (`model.vision_tower` beside `preset: tiny`)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer.clip import BOS_ID, EOS_ID, CaptionTransform, build_clip, clip_loss, pretrain, swap_words  # noqa: E402
from trainer.config import load_config  # noqa: E402
from trainer.data import SkipSample, collate  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.templates import PAD_TOKEN_ID, load_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STAGE1 = REPO / "recipes" / "train" / "tiny_stage1.yaml"
SMALL = ["model.tiny.llm_layers=1", "model.tiny.vision_layers=1", "data.shuffle_buffer=16"]


@pytest.fixture(scope="module")
def mix(every_source_mix) -> Path:
    return every_source_mix


@pytest.fixture(scope="module")
def tower(mix, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tower") / "tiny_clip"
    cfg = load_config(STAGE1, [f"data.mix={mix}", *SMALL])
    return out, pretrain(cfg, out, steps=4, batch_size=4, lr=2e-3)


def test_caption_transform():
    tok = load_tokenizer(add_llava_tokens=True)
    t = CaptionTransform(tok, max_tokens=6)
    image = torch.zeros(3, 4, 4)
    rec = {
        "conversations": [
            {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": " a red circle and a blue square "},
        ]
    }
    ids = t(rec, image)["input_ids"]
    assert ids == [
        BOS_ID,
        *tok("a red circle and a blue square", add_special_tokens=False).input_ids[:4],
        EOS_ID,
    ]
    with pytest.raises(SkipSample, match="no image"):
        t(rec, None)
    with pytest.raises(SkipSample, match="no caption"):
        t({"conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "  "}]}, image)


COLOURS = frozenset({"red", "green", "blue", "yellow", "purple", "orange"})


def test_swap_words_rotates_the_named_words():
    assert swap_words("a red circle and a blue square on a white background", COLOURS) == (
        "a blue circle and a red square on a white background"
    )
    assert swap_words("red circle , blue square , green triangle - 3 shapes", COLOURS) == (
        "blue circle , green square , red triangle - 3 shapes"
    )
    assert swap_words("a red circle on white", COLOURS) is None  # one colour: nothing to swap
    assert swap_words("a red circle and a red square", COLOURS) is None  # the same caption again
    assert swap_words("a reddish circle and a blue square", COLOURS) is None  # whole words only


def test_caption_transform_adds_the_swapped_caption_as_negative():
    tok = load_tokenizer(add_llava_tokens=True)
    rec = {
        "conversations": [
            {"from": "human", "value": "<image>"},
            {"from": "gpt", "value": "a red circle and a blue square"},
        ]
    }
    image = torch.zeros(3, 4, 4)
    out = CaptionTransform(tok, max_tokens=32, swap_words=COLOURS)(rec, image)
    assert out["negative_ids"] == [
        BOS_ID,
        *tok("a blue circle and a red square", add_special_tokens=False).input_ids,
        EOS_ID,
    ]
    assert CaptionTransform(tok, max_tokens=32)(rec, image)["negative_ids"] is None


def _caption_batch(tok, captions, swap=frozenset()):
    gen = torch.Generator().manual_seed(0)
    t = CaptionTransform(tok, max_tokens=16, swap_words=swap)
    rec = lambda c: {"conversations": [{"from": "gpt", "value": c}]}  # noqa: E731
    image = torch.zeros(3, 4, 4)
    samples = [{**t(rec(c), image), "key": str(i), "pixel_values": torch.randn(3, 112, 112, generator=gen)}
               for i, c in enumerate(captions)]  # fmt: skip
    return collate(samples, pad_id=PAD_TOKEN_ID)


def _fit(model, batch, steps: int) -> list[float]:
    """`steps` AdamW steps on one batch; the loss before each."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = clip_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_negatives_join_each_images_captions_and_are_learnt():
    cfg = load_config(STAGE1, SMALL)
    tok = load_tokenizer(add_llava_tokens=True)
    model = build_clip(cfg, len(tok), 16)
    captions = ["a red circle and a blue square", "a blue circle and a red square", "a green triangle"]
    plain, hard = _caption_batch(tok, captions), _caption_batch(tok, captions, COLOURS)
    assert hard["negative_ids"][2] is None and hard["negative_ids"][0] is not None
    with torch.no_grad():
        # more wrong captions per image: a strictly larger loss for the same model
        assert clip_loss(model, hard).item() > clip_loss(model, plain).item()
    losses = _fit(model, hard, 25)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("layer", [-1, -2])
def test_the_loss_trains_the_patch_tokens_of_the_feature_layer(layer):
    """The image feature pools the patch tokens LLaVA reads: the layers above `vision_feature_layer`
    get no gradient, every layer up to it does."""
    cfg = load_config(STAGE1, ["model.tiny.llm_layers=1", "model.tiny.vision_layers=2"])
    tok = load_tokenizer(add_llava_tokens=True)
    model = build_clip(cfg, len(tok), 16)
    clip_loss(model, _caption_batch(tok, ["a red circle", "a blue square"]), layer).backward()
    layers = model.vision_model.encoder.layers
    grads = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in lay.parameters()) for lay in layers]
    assert grads == ([True, True] if layer == -1 else [True, False])


def test_the_contrastive_loss_learns_a_batch():
    cfg = load_config(STAGE1, SMALL)
    tok = load_tokenizer(add_llava_tokens=True)
    model = build_clip(cfg, len(tok), 16)
    gen = torch.Generator().manual_seed(0)
    captions = ["a red circle", "a blue square", "a green triangle", "a purple circle and a red square"]
    samples = [{"input_ids": [BOS_ID, *tok(c, add_special_tokens=False).input_ids, EOS_ID], "key": str(i),
                "pixel_values": torch.randn(3, 112, 112, generator=gen)} for i, c in enumerate(captions)]  # fmt: skip
    losses = _fit(model, collate(samples, pad_id=PAD_TOKEN_ID), 15)
    assert losses[0] == pytest.approx(
        torch.log(torch.tensor(4.0)).item(), abs=0.25
    )  # about chance at the start
    assert losses[-1] < 0.5 * losses[0]


def test_pretrain_saves_a_tower_the_tiny_preset_starts_from(mix, tower):
    out, summary = tower
    assert summary["steps"] == 4 and summary["out"] == str(out)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    from safetensors.torch import load_file

    saved = load_file(out / "model.safetensors")
    plain, _ = build_model(load_config(STAGE1, SMALL))
    started, _ = build_model(load_config(STAGE1, [*SMALL, f"model.vision_tower={out}"]))
    tower_sd = started.model.vision_tower.state_dict()
    assert tower_sd.keys() == saved.keys()
    assert all(torch.equal(tower_sd[k], saved[k]) for k in saved)
    assert not torch.equal(plain.model.vision_tower.state_dict()[next(iter(saved))], saved[next(iter(saved))])
    # the rest is the tiny preset's own random init
    for a, b in zip(
        plain.model.language_model.parameters(), started.model.language_model.parameters(), strict=True
    ):
        assert torch.equal(a, b)


def test_same_seed_same_tower(mix, tower, tmp_path):
    out, _ = tower
    again = tmp_path / "again"
    pretrain(load_config(STAGE1, [f"data.mix={mix}", *SMALL]), again, steps=4, batch_size=4, lr=2e-3)
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_a_tower_of_other_sizes_is_refused(tower):
    out, _ = tower
    with pytest.raises(ValueError, match="num_hidden_layers"):
        build_model(load_config(STAGE1, ["model.tiny.vision_layers=2", f"model.vision_tower={out}"]))


def test_preset_still_excludes_an_llm():
    with pytest.raises(ValueError, match="excludes `llm`"):
        load_config(STAGE1, ["model.llm=some/llm"])


def test_clip_needs_the_tiny_preset(tmp_path):
    cfg = load_config(STAGE1, ["model.preset=null", "model.vision_tower=a", "model.llm=b"])
    with pytest.raises(ValueError, match="tiny preset"):
        pretrain(cfg, tmp_path / "x", steps=1, batch_size=2, lr=1e-3)
