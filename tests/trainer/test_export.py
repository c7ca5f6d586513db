"""Export: a Hugging Face folder loadable with plain transformers, same logits, same prompt tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from trainer.config import load_config  # noqa: E402
from trainer.export import save_hf_folder, to_chat_messages  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.templates import IMAGE_TOKEN_ID, VICUNA_V1, encode, render  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "train"
SMALL = ["pretrained_projector=null", "model.tiny.llm_layers=1", "model.tiny.vision_layers=1"]

CONVS = [
    [{"from": "human", "value": "<image>\nWhat color is the circle?"}, {"from": "gpt", "value": "Red."},
     {"from": "human", "value": "And the background?"}, {"from": "gpt", "value": "White, with a 🦙."}],
    [{"from": "human", "value": "Name three colours."}, {"from": "gpt", "value": "Red, green and blue."}],
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = load_config(RECIPES / "tiny_stage2.yaml", SMALL)
    model, tok = build_model(cfg)
    model.eval()
    out = save_hf_folder(model, tok, tmp_path_factory.mktemp("hf") / "export")
    return model, tok, out


def _image(w=150, h=90):
    img = Image.new("RGB", (w, h), (255, 255, 255))
    for x in range(30, 70):
        for y in range(20, 60):
            img.putpixel((x, y), (220, 20, 30))
    return img


def test_loads_with_plain_transformers(exported):
    from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

    model, _, out = exported
    assert (out / "model.safetensors").exists()
    loaded = LlavaForConditionalGeneration.from_pretrained(out)
    proc = AutoProcessor.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(proc).__name__ == "LlavaProcessor"
    assert tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001] and tok.pad_token_id == 32001
    assert tok(" Hello", add_special_tokens=False).input_ids == [29871, 15043]  # SentencePiece whitespace rule kept
    assert loaded.config.image_token_index == 32000 and loaded.config.image_seq_length == 64
    assert loaded.get_input_embeddings().weight.shape[0] == 32064


@pytest.mark.parametrize("index", [0, 1])
def test_chat_template_renders_training_tokens(exported, index):
    from transformers import AutoProcessor

    _, tok, out = exported
    proc = AutoProcessor.from_pretrained(out)
    conv = CONVS[index]
    has_image = index == 0
    messages = to_chat_messages(conv, has_image=has_image)
    prompt = proc.apply_chat_template(messages, tokenize=False)
    assert prompt == render(conv, VICUNA_V1, has_image=has_image)
    enc = encode(conv, tok, VICUNA_V1, has_image=has_image, max_length=2048, image_seq_length=64)
    ids, _ = enc.expanded()
    got = proc(text=prompt, images=[_image()] if has_image else None, return_tensors="pt")
    assert got["input_ids"][0].tolist() == ids
    assert ids.count(IMAGE_TOKEN_ID) == (64 if has_image else 0)
    kwargs = {"images": [_image()]} if has_image else {}
    templated = proc.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    assert list(templated["input_ids"][0]) == ids
    # generation prompt: everything up to the last answer
    gen = proc.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert gen == render(conv[:-1], VICUNA_V1, has_image=has_image)


def test_image_processor_pads_to_square_with_clip_mean(exported):
    from transformers import AutoProcessor

    _, _, out = exported
    proc = AutoProcessor.from_pretrained(out)
    img = _image(150, 90)
    padded = Image.new("RGB", (150, 150), (122, 116, 104))
    padded.paste(img, (0, (150 - 90) // 2))
    a = proc.image_processor(img, return_tensors="pt")["pixel_values"]
    b = proc.image_processor(padded, return_tensors="pt")["pixel_values"]
    assert a.shape == (1, 3, 112, 112)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_exported_logits_equal_training_model(exported):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model, _, out = exported
    loaded = LlavaForConditionalGeneration.from_pretrained(out).eval()
    proc = AutoProcessor.from_pretrained(out)
    messages = to_chat_messages(CONVS[0][:1], has_image=True)
    prompt = proc.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = proc(text=prompt, images=[_image()], return_tensors="pt")
    with torch.no_grad():
        a = model(**inputs).logits
        b = loaded(**inputs).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_export_command_from_state_dict(exported, tmp_path):
    from safetensors.torch import save_file
    from transformers import LlavaForConditionalGeneration

    from trainer.__main__ import main
    from trainer.config import dump_config

    model, _, _ = exported
    cfg = load_config(RECIPES / "tiny_stage2.yaml", SMALL)
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text(dump_config(cfg))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run / "weights.safetensors"))
    assert main(["export", "--checkpoint", str(run / "weights.safetensors"), "--out", str(tmp_path / "hf")]) == 0
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # an exported (HF) folder re-exports as is
    assert main(["export", "--checkpoint", str(tmp_path / "hf"), "--out", str(tmp_path / "hf2")]) == 0
    assert (tmp_path / "hf2" / "model.safetensors").exists()


def test_where_it_looks_reads_an_export(exported, monkeypatch):
    """examples/where_it_looks.py: accuracy by shape count and attention shares of the answer position."""
    import importlib.util

    examples = Path(__file__).resolve().parents[2] / "examples"
    monkeypatch.syspath_prepend(str(examples))  # as when run as a script: it imports ask_fresh_shapes
    path = examples / "where_it_looks.py"
    spec = importlib.util.spec_from_file_location("where_it_looks", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, tok, out = exported
    for kind in ("circle", "square", "triangle"):
        ids = tok(f"What color is the {kind}?", add_special_tokens=False)["input_ids"]
        word = mod._word_ids(tok, kind)
        assert tok.decode(word).strip() == kind and mod._positions(ids, word)[-1] == len(ids) - 2
    res = mod.look(str(out), n=6)
    assert res["n"] == 6 and set(res["accuracy_by_shapes"]) <= {1, 2, 3}
    for k, acc in res["accuracy_by_shapes"].items():
        assert 0 <= acc <= res["present_by_shapes"][k] <= 1
    image, word = res["attention"]["image"], res["attention"]["shape_word"]
    assert len(image) == len(word) == 1 and len(image[0]) == 4  # SMALL: 1 LLM layer of 4 heads
    assert all(0 <= a <= 1 and 0 <= b <= 1 and a + b <= 1.001 for a, b in zip(image[0], word[0], strict=True))
