"""The tiny model on a CUDA device (marked `gpu`: deselected by default; `pytest -m gpu` where one is).

A forward pass on the device gives the CPU's loss to float tolerance, and one backward step there
gives finite gradients to the projector that stage 1 trains."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer.config import load_config  # noqa: E402
from trainer.model import build_model  # noqa: E402

pytestmark = pytest.mark.gpu

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "train"
SMALL = ["model.tiny.llm_layers=1", "model.tiny.vision_layers=1"]


def _batch(model):
    """One sample: 12 text tokens around the image's placeholder tokens, labels on the text only."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    text = torch.randint(3, 1000, (1, 12), generator=g)
    image = torch.full((1, c.image_seq_length), c.image_token_index)
    ids = torch.cat([text[:, :2], image, text[:, 2:]], dim=1)
    labels = ids.masked_fill(ids == c.image_token_index, -100)
    size = c.vision_config.image_size
    pixels = torch.randn(1, 3, size, size, generator=g)
    return {"input_ids": ids, "pixel_values": pixels, "labels": labels}


def _loss(model, batch, device: str):
    return model.to(device)(**{k: v.to(device) for k, v in batch.items()}).loss


def test_tiny_model_loss_and_step_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cfg = load_config(RECIPES / "tiny_stage2.yaml", ["pretrained_projector=null", *SMALL])
    model, _ = build_model(cfg)
    model.eval()
    batch = _batch(model)
    with torch.no_grad():
        cpu = _loss(model, batch, "cpu").item()
        cuda = _loss(copy.deepcopy(model), batch, "cuda").item()
    assert abs(cpu - cuda) <= 1e-3 * max(1.0, abs(cpu)), (cpu, cuda)

    gpu_model = copy.deepcopy(model).to("cuda").train()
    _loss(gpu_model, batch, "cuda").backward()
    grads = [p.grad for p in gpu_model.model.multi_modal_projector.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)
