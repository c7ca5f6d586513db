"""Export: a Hugging Face folder loadable with plain transformers, same logits, same prompt tokens."""

from __future__ import annotations

import json
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
    [
        {"from": "human", "value": "<image>\nWhat color is the circle?"},
        {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "And the background?"},
        {"from": "gpt", "value": "White, with a 🦙."},
    ],
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
    assert tok(" Hello", add_special_tokens=False).input_ids == [
        29871,
        15043,
    ]  # SentencePiece whitespace rule kept
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
    assert (
        main(["export", "--checkpoint", str(run / "weights.safetensors"), "--out", str(tmp_path / "hf")]) == 0
    )
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


# --------------------------------------------------------------------------------------------
# the llava-hf layout (tests/compat/llava_hf_layout.json: what transformers' conversion wrote)

LAYOUT = json.loads((Path(__file__).resolve().parents[1] / "compat" / "llava_hf_layout.json").read_text())


def _weight_names(folder: Path) -> set[str]:
    from safetensors import safe_open

    names: set[str] = set()
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            assert fh.metadata() == {"format": "pt"}  # transformers 4.x refuses other formats
            names |= set(fh.keys())
    return names


def _expected_names(config: dict) -> set[str]:
    out = set()
    for pattern in LAYOUT["weights"]:
        if "{i}" in pattern:
            out |= {pattern.format(i=i) for i in range(config["text_config"]["num_hidden_layers"])}
        elif "{j}" in pattern:
            out |= {pattern.format(j=j) for j in range(config["vision_config"]["num_hidden_layers"])}
        else:
            out.add(pattern)
    return out


@pytest.fixture(scope="module")
def sharded(exported, tmp_path_factory):
    """The same model exported in shards of at most 10 MB (as the 7B export splits at 5 GB)."""
    model, tok, _ = exported
    return save_hf_folder(
        model, tok, tmp_path_factory.mktemp("sharded") / "export", max_shard_bytes=10 * 2**20
    )


def test_layout_is_llava_hf(sharded):
    """Weight names, config keys and file set of transformers' conversion (llava-hf/llava-1.5-7b-hf)."""
    from trainer.export import EXPORT_RECORD, exported_files

    files = list(exported_files(sharded))
    assert sorted(set(files)) == sorted({*LAYOUT["files"], EXPORT_RECORD})
    n = files.count("model-*.safetensors")
    assert n > 1  # 25 MB in shards of <= 10 MB (one tensor larger than that gets its own)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [
        f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)
    ]
    config = json.loads((sharded / "config.json").read_text())
    assert set(index["weight_map"]) == _weight_names(sharded) == _expected_names(config)
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in _all_tensors(sharded).values()
    )
    for section, keys in LAYOUT["config_keys"].items():
        have = set(config[section] if section else config)
        skipped = {
            k.split(".")[-1] for k in LAYOUT["config_keys_not_written"] if (k.rpartition(".")[0] == section)
        }
        assert set(keys) - skipped <= have, (section, set(keys) - skipped - have)
    assert config["text_config"]["rope_theta"] == 10000.0 and config["text_config"]["rope_scaling"] is None
    assert config["torch_dtype"] == config["dtype"] == "float32"
    tok_cfg = json.loads((sharded / "tokenizer_config.json").read_text())
    assert (
        tok_cfg["tokenizer_class"] == LAYOUT["tokenizer_config"]["tokenizer_class"]
        and tok_cfg["legacy"] is True
    )
    for i, content in LAYOUT["tokenizer_config"]["added_tokens_decoder"].items():
        assert (
            tok_cfg["added_tokens_decoder"][i]["content"] == content
            and tok_cfg["added_tokens_decoder"][i]["special"]
        )
    special = json.loads((sharded / "special_tokens_map.json").read_text())
    assert sorted(special) == LAYOUT["tokenizer_config"]["special_tokens_map"]
    assert json.loads((sharded / "added_tokens.json").read_text()) == {"<image>": 32000, "<pad>": 32001}
    processor = json.loads((sharded / "processor_config.json").read_text())
    assert processor == {
        "image_token": "<image>",
        "num_additional_image_tokens": 1,
        "patch_size": 14,
        "processor_class": "LlavaProcessor",
        "vision_feature_select_strategy": "default",
    }
    image = json.loads((sharded / "preprocessor_config.json").read_text())
    assert (
        image["do_pad"] is True and "image_processor_type" not in image
    )  # chosen by model type (module docstring)


def _all_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_sharded_export_loads_with_the_same_weights(exported, sharded):
    from transformers import LlavaForConditionalGeneration

    model, _, _ = exported
    loaded, info = LlavaForConditionalGeneration.from_pretrained(sharded, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    own = loaded.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(own[k], v), k


def test_tokenizer_model_is_the_llama_sentencepiece_model(exported):
    import sentencepiece as spm

    from trainer.export import BUNDLED_SPM_MODEL

    _, tok, out = exported
    assert (out / "tokenizer.model").read_bytes() == BUNDLED_SPM_MODEL.read_bytes()
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    for text in ("What color is the circle?", "White, with a 🦙.", "USER: hi ASSISTANT:"):
        assert [1, *sp.encode(text)] == tok(text)["input_ids"]


def test_generation_markers_cover_the_trained_tokens(exported):
    """`{% generation %}` encloses exactly what training computes the loss on (answer + </s>)."""
    from transformers import AutoTokenizer

    _, tok, out = exported
    hf_tok = AutoTokenizer.from_pretrained(out)
    for index in (0, 1):
        conv, has_image = CONVS[index], index == 0
        enc = encode(conv, tok, VICUNA_V1, has_image=has_image, max_length=2048, image_seq_length=64)
        got = hf_tok.apply_chat_template(
            to_chat_messages(conv, has_image=has_image),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        assert list(got["input_ids"]) == list(enc.input_ids[1:])  # the template has no BOS
        assert list(got["assistant_masks"]) == [int(x != -100) for x in enc.labels[1:]]


def test_refuses_to_replace_a_folder_that_is_not_an_export(exported, tmp_path):
    model, tok, _ = exported
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        save_hf_folder(model, tok, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert not list(tmp_path.glob("*.tmp-*"))


def test_export_of_a_vicuna_run(published_models, tmp_path):
    """A run on a folder as Vicuna v1.5 publishes it (`legacy: false`): its own tokenizer.model is
    copied, `legacy: true` is written (what tokenizer.json does) and the run's flag recorded; a
    single-turn image prompt gives training's ids; after a `</s>` the documented difference."""
    from transformers import AutoProcessor

    from trainer.config import ModelConfig

    llm = published_models["llm"]
    model, tok = build_model(
        ModelConfig(llm=str(llm), vision_tower=str(published_models["vision_tower"]), image_size=56)
    )
    out = save_hf_folder(model, tok, tmp_path / "export", tokenizer_source=llm)
    assert (out / "tokenizer.model").read_bytes() == (llm / "tokenizer.model").read_bytes()
    assert json.loads((out / "tokenizer_config.json").read_text())["legacy"] is True
    assert json.loads((out / "datamix_export.json").read_text())["training_tokenizer_legacy"] is False
    proc = AutoProcessor.from_pretrained(out)
    seq = model.config.image_seq_length
    conv = CONVS[0][:2]
    ids, labels = encode(
        conv, tok, VICUNA_V1, has_image=True, max_length=2048, image_seq_length=seq
    ).expanded()
    prompt_ids = ids[: next(i for i, lab in enumerate(labels) if lab != -100)]
    got = proc(text=render(conv[:1], VICUNA_V1, has_image=True), images=[_image()], return_tensors="pt")
    assert got["input_ids"][0].tolist() == prompt_ids
    full, _ = encode(
        CONVS[0], tok, VICUNA_V1, has_image=True, max_length=2048, image_seq_length=seq
    ).expanded()
    two_turns = proc(text=render(CONVS[0], VICUNA_V1, has_image=True), images=[_image()])["input_ids"][0]
    after = list(two_turns).index(2) + 1  # the token after the first </s>
    assert (two_turns[after], full[after]) == (3148, 3308)  # "▁US" here, "US" in a legacy: false run
    assert list(two_turns[:after]) == full[:after]
