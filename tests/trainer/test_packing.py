"""Packing: packed rows give the unpacked logits, loss and gradients (attention never crosses samples)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer.config import load_config  # noqa: E402
from trainer.data import collate  # noqa: E402
from trainer.model import build_model, labelled_loss  # noqa: E402
from trainer.packing import pack_batch, padding_stats, plan_rows  # noqa: E402
from trainer.templates import IGNORE_INDEX, PAD_TOKEN_ID, VICUNA_V1, encode  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "train"
SMALL = ["model.tiny.llm_layers=2", "model.tiny.vision_layers=1"]

CONVERSATIONS = [  # (conversation, has_image): long and short, with and without an image
    (
        [{"from": "human", "value": "<image>\nWhat color is the circle?"}, {"from": "gpt", "value": "Red"}],
        True,
    ),
    (
        [
            {"from": "human", "value": "Write a haiku about tar files."},
            {
                "from": "gpt",
                "value": "Headers of ustar,\nblocks of five hundred twelve bytes,\nzeros at the end.",
            },
        ],
        False,
    ),
    (
        [
            {"from": "human", "value": "<image>\nShape?"},
            {"from": "gpt", "value": "A square."},
            {"from": "human", "value": "And its colour?"},
            {"from": "gpt", "value": "Blue, mostly."},
        ],
        True,
    ),
    ([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}], False),
    (
        [
            {
                "from": "human",
                "value": "<image>\nHow many shapes are there?\nAnswer the question using a single word or phrase.",
            },
            {"from": "gpt", "value": "3"},
        ],
        True,
    ),
]


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def model_and_batch(request):
    cfg = load_config(
        RECIPES / "tiny_stage2.yaml",
        [
            "pretrained_projector=null",
            "train_vision_tower=true",
            f"model.attn_implementation={request.param}",
            *SMALL,
        ],
    )
    model, tok = build_model(cfg)
    model.eval()
    g = torch.Generator().manual_seed(0)
    samples = []
    for k, (conv, has_image) in enumerate(CONVERSATIONS):
        ids, labels = encode(
            conv, tok, VICUNA_V1, has_image=has_image, max_length=512, image_seq_length=cfg.image_seq_length
        ).expanded()
        pixels = torch.randn(3, 112, 112, generator=g) if has_image else None
        samples.append(
            {"input_ids": ids, "labels": labels, "pixel_values": pixels, "key": f"s{k}", "length": len(ids)}
        )
    return model, collate(samples, pad_id=PAD_TOKEN_ID), cfg


def _places(packed, lengths):
    """(row, start, sample, length) of each sample in the packed rows, in order."""
    for r, row in enumerate(packed["rows"]):
        at = 0
        for i in row:
            yield r, at, i, lengths[i]
            at += lengths[i]


def _packed_logits(model, b):
    return model(
        input_ids=b["input_ids"],
        position_ids=b["position_ids"],
        pixel_values=b["pixel_values"],
        use_cache=False,
    ).logits


def test_plan_rows_first_fit_decreasing():
    assert plan_rows([5, 9, 3, 7, 2], 10) == [[1], [3, 2], [0, 4]]
    assert plan_rows([4, 4, 4], 12) == [[0, 1, 2]]
    assert plan_rows([], 8) == []
    with pytest.raises(ValueError, match="sample 1 has 9 tokens, more than the packing length 8"):
        plan_rows([3, 9], 8)


def test_pack_batch_layout(model_and_batch):
    _, batch, _ = model_and_batch
    lengths = [int(n) for n in batch["attention_mask"].sum(1)]
    packed = pack_batch(batch, max_length=200, pad_id=PAD_TOKEN_ID)
    assert packed["attention_mask"] is None
    assert sorted(i for row in packed["rows"] for i in row) == list(range(len(CONVERSATIONS)))
    assert len(packed["rows"]) < len(CONVERSATIONS)
    assert padding_stats(packed)[0] == sum(lengths) == padding_stats(batch)[0]
    assert padding_stats(packed)[1] < padding_stats(batch)[1]
    for r, row in enumerate(packed["rows"]):
        at = 0
        for i in row:
            n = lengths[i]
            assert packed["input_ids"][r, at : at + n].tolist() == batch["input_ids"][i, :n].tolist()
            assert packed["labels"][r, at : at + n].tolist() == batch["labels"][i, :n].tolist()
            assert packed["position_ids"][r, at : at + n].tolist() == list(range(n))
            assert packed["labels"][r, at].item() == IGNORE_INDEX  # a sample's first token is never a target
            at += n
        assert (packed["labels"][r, at:] == IGNORE_INDEX).all() and (
            packed["input_ids"][r, at:] == PAD_TOKEN_ID
        ).all()
    assert packed["pixel_values"].shape == batch["pixel_values"].shape


def test_packed_logits_loss_and_gradients_equal_unpacked(model_and_batch):
    model, batch, _ = model_and_batch
    lengths = [int(n) for n in batch["attention_mask"].sum(1)]
    packed = pack_batch(batch, max_length=200, pad_id=PAD_TOKEN_ID)
    assert any(len(row) > 1 for row in packed["rows"])  # really packed
    with torch.no_grad():
        plain = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            use_cache=False,
        ).logits
        dense = _packed_logits(model, packed)
    for r, at, i, n in _places(packed, lengths):
        torch.testing.assert_close(dense[r, at : at + n], plain[i, :n], rtol=1e-4, atol=1e-4)

    def loss_and_grad(b):
        model.zero_grad()
        loss, n = labelled_loss(
            model,
            input_ids=b["input_ids"],
            labels=b["labels"],
            pixel_values=b["pixel_values"],
            attention_mask=b["attention_mask"],
            position_ids=b.get("position_ids"),
        )
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), n, grads

    loss_u, n_u, grads_u = loss_and_grad(batch)
    loss_p, n_p, grads_p = loss_and_grad(packed)
    model.zero_grad()
    assert n_u == n_p > 10
    torch.testing.assert_close(loss_p, loss_u, rtol=1e-5, atol=1e-5)
    assert grads_u.keys() == grads_p.keys()
    for name in (
        "model.multi_modal_projector.linear_2.weight",
        "model.language_model.layers.0.self_attn.q_proj.weight",
        "model.vision_tower.embeddings.patch_embedding.weight",
    ):
        torch.testing.assert_close(grads_p[name], grads_u[name], rtol=1e-4, atol=1e-6)


def test_a_changed_sample_leaves_its_row_neighbours_alone(model_and_batch):
    model, batch, _ = model_and_batch
    packed = pack_batch(batch, max_length=2048, pad_id=PAD_TOKEN_ID)
    assert len(packed["rows"]) == 1  # everything in one row
    first = int(batch["attention_mask"][packed["rows"][0][0]].sum())
    other = dict(packed)
    other["input_ids"] = packed["input_ids"].clone()
    other["input_ids"][0, 1:5] = torch.tensor([450, 451, 452, 453])  # edit the first sample's text
    with torch.no_grad():
        a = _packed_logits(model, packed)
        b = _packed_logits(model, other)
    assert not torch.allclose(a[0, :first], b[0, :first])
    torch.testing.assert_close(a[0, first:], b[0, first:], rtol=0, atol=0)
