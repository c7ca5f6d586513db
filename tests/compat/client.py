"""Runs INSIDE a client's throwaway venv (tests/compat/test_clients.py): loads an export with that
client's transformers only (no project code) and writes what it saw as JSON.

    python client.py CASE_JSON OUT_JSON

CASE_JSON (written by the test): `export` (folder), `tensors` (safetensors: `input_ids`, `pixel_values`,
`logits` of the training model), `image` / `image_padded` (PNG, the latter padded to a square by the
trainer), `messages` (chat messages, generation prompt), `prompt` (the prompt training renders),
`text_ids` ({text: ids} the tokenizer must give), `parts`: which of "model", "tokenizer", "processor"
to run. Every step records its error instead of stopping, so one run reports everything.
"""

from __future__ import annotations

import json
import sys
import traceback


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def _collapse(ids: list[int], image_id: int) -> list[int]:
    """Runs of the image token -> one (the input format of older transformers, e.g. 4.37)."""
    return [x for i, x in enumerate(ids) if not (x == image_id and i and ids[i - 1] == image_id)]


def _expands_in_model(model) -> bool:
    """Older transformers (e.g. 4.37): `_merge_input_ids_with_image_features` expands one <image> token itself."""
    return hasattr(model, "_merge_input_ids_with_image_features")


def run_model(case: dict, res: dict) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    t = load_file(case["tensors"])
    model, info = LlavaForConditionalGeneration.from_pretrained(
        case["export"], output_loading_info=True, torch_dtype=torch.float32
    )
    model.eval()
    res["loading"] = {
        k: sorted(map(str, v))
        for k, v in info.items()
        if k in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    res["missing"] = len(res["loading"]["missing_keys"])
    res["unexpected"] = len(res["loading"]["unexpected_keys"])
    res["mismatched"] = len(res["loading"]["mismatched_keys"])
    ids = t["input_ids"]
    if _expands_in_model(model):  # one <image> token, the model expands it
        ids = torch.tensor([_collapse(ids[0].tolist(), model.config.image_token_index)])
        res["image_tokens"] = "collapsed (the model expands them)"
    with torch.no_grad():
        logits = model(
            input_ids=ids, pixel_values=t["pixel_values"], attention_mask=torch.ones_like(ids)
        ).logits
    res["logits_shape"] = list(logits.shape)
    res["max_abs_diff"] = float((logits.float() - t["logits"]).abs().max())
    # the names this client's own LlavaForConditionalGeneration.save_pretrained writes (under 4.x: what
    # convert_llava_weights_to_hf.py wrote) against the export's
    import os

    from safetensors import safe_open

    names = set()
    for f in sorted(os.listdir(case["export"])):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(case["export"], f), framework="pt") as fh:
                names |= set(fh.keys())
    import tempfile

    fresh = LlavaForConditionalGeneration(LlavaConfig.from_pretrained(case["export"]))
    with tempfile.TemporaryDirectory() as tmp:
        fresh.save_pretrained(tmp, safe_serialization=True)
        own = set()
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".safetensors"):
                with safe_open(os.path.join(tmp, f), framework="pt") as fh:
                    own |= set(fh.keys())
    res["saved_names_not_in_export"] = sorted(own - names)
    res["export_names_not_saved"] = sorted(names - own)
    res["n_names"] = len(names)
    res["_model"] = model


def run_tokenizer(case: dict, res: dict) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(case["export"])
    res["tokenizer_class"] = type(tok).__name__
    res["text_ids_equal"] = {}
    for text, ids in case["text_ids"].items():
        got = tok(text)["input_ids"]
        res["text_ids_equal"][text] = got == ids or {"got": got, "want": ids}
    res["special_ids"] = tok.convert_tokens_to_ids(["<image>", "<pad>", "<s>", "</s>"]) + [tok.pad_token_id]
    if getattr(tok, "chat_template", None):
        try:
            res["tokenizer_prompt_equal"] = (
                tok.apply_chat_template(case["messages"], tokenize=False, add_generation_prompt=True)
                == case["prompt"]
            )
        except Exception as exc:  # noqa: BLE001
            res["tokenizer_prompt_equal"] = _error(exc)


def run_processor(case: dict, res: dict) -> None:
    import numpy as np
    from PIL import Image
    from transformers import AutoProcessor

    try:
        proc = AutoProcessor.from_pretrained(case["export"])
    except Exception as exc:  # noqa: BLE001
        # older transformers (4.37): LlavaProcessor takes no image_token / patch_size; built by hand
        from transformers import AutoTokenizer, CLIPImageProcessor, LlavaProcessor

        res["auto_processor_error"] = _error(exc)
        proc = LlavaProcessor(
            image_processor=CLIPImageProcessor.from_pretrained(case["export"]),
            tokenizer=AutoTokenizer.from_pretrained(case["export"]),
        )
    res["processor_class"] = type(proc).__name__
    res["image_processor_class"] = type(proc.image_processor).__name__
    prompt = case["prompt"]
    if getattr(proc, "chat_template", None):
        try:
            rendered = proc.apply_chat_template(case["messages"], tokenize=False, add_generation_prompt=True)
            res["chat_template_prompt_equal"] = rendered == prompt or {"got": rendered, "want": prompt}
        except Exception as exc:  # noqa: BLE001
            res["chat_template_prompt_equal"] = _error(exc)
    else:
        res["chat_template_prompt_equal"] = "no chat template support"
    from safetensors.numpy import load_file

    want = load_file(case["tensors"])
    model = res.pop("_model", None)
    for key, path in (("image", case["image"]), ("image_padded", case["image_padded"])):
        got = proc(text=prompt, images=[Image.open(path)], return_tensors="pt")
        ids = got["input_ids"][0].tolist()
        px = got["pixel_values"].numpy()
        expanded = want["input_ids"][0].tolist()
        out = {
            # an old processor leaves one <image> token for the model to expand
            "input_ids_equal": ids in (expanded, _collapse(expanded, 32000)),
            "pixel_max_abs_diff": float(np.abs(px - want["pixel_values"]).max())
            if px.shape == want["pixel_values"].shape
            else f"shape {px.shape}",
        }
        if model is not None and out["input_ids_equal"]:
            import torch

            kwargs = {"attention_mask": got.get("attention_mask", torch.ones_like(got["input_ids"]))}
            with torch.no_grad():
                logits = model(
                    input_ids=got["input_ids"], pixel_values=got["pixel_values"].float(), **kwargs
                ).logits
            out["max_abs_diff"] = float(np.abs(logits.float().numpy() - want["logits"]).max())
        res[key] = out


def main() -> int:
    case = json.load(open(sys.argv[1]))
    res: dict = {"python": sys.version.split()[0]}
    try:
        import transformers

        res["transformers"] = transformers.__version__
        try:
            import torch

            res["torch"] = torch.__version__
        except ImportError:
            res["torch"] = None
    except Exception as exc:  # noqa: BLE001
        res["import_error"] = _error(exc)
    for part, fn in (("model", run_model), ("tokenizer", run_tokenizer), ("processor", run_processor)):
        if part in case["parts"] and "import_error" not in res:
            try:
                fn(case, res)
            except Exception as exc:  # noqa: BLE001
                res[f"{part}_error"] = _error(exc)
                res[f"{part}_traceback"] = traceback.format_exc()[-3000:]
    res.pop("_model", None)
    json.dump(res, open(sys.argv[2], "w"), indent=2, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
