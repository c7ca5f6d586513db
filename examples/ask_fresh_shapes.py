"""Ask an exported model about freshly drawn shapes, with plain transformers only (no trainer code).

    python examples/ask_fresh_shapes.py EXPORT_DIR [--n 60] [--seed 0]

Renders new scenes (never in the training data) with `datamix.synth.render_scene`, asks "What color
is the <shape>?" through the exported processor's chat template, greedy-decodes, and prints the
exact-match accuracy and a few answers. Proof that the exported folder is a standalone model.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from datamix.formats import SHORT_ANSWER_SUFFIX
from datamix.synth import Shape, color_question, render_scene

SUFFIX = "\n" + SHORT_ANSWER_SUFFIX


def fresh_question(processor: Any, i: int, seed: int = 0) -> tuple[Any, list[Shape], Shape, str, str]:
    """Scene i of `seed`, the demo question about one of its shapes, and the processor's inputs for it:
    `(inputs, shapes, shape, question, answer)`."""
    image, shapes = render_scene(seed * 100_000 + i)
    shape = shapes[i % len(shapes)]
    question, answer = color_question(shape)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question + SUFFIX}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=image, text=prompt, return_tensors="pt"), shapes, shape, question, answer


def parse_args(doc: str | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", help="an exported Hugging Face folder")
    ap.add_argument("--n", type=int, default=60, help="fresh scenes")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def main() -> None:
    args = parse_args(__doc__)
    processor = AutoProcessor.from_pretrained(args.export)
    model = LlavaForConditionalGeneration.from_pretrained(args.export).eval()
    right, shown = 0, []
    for i in range(args.n):
        inputs, _, _, question, answer = fresh_question(processor, i, args.seed)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        said = processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        ok = said.lower().rstrip(".") == answer
        right += ok
        if len(shown) < 6:
            shown.append(f"{question} -> {said!r} (truth {answer})")
    for line in shown:
        print("  " + line)
    print(json.dumps({"fresh_images": args.n, "fresh_accuracy": round(right / args.n, 4)}))


if __name__ == "__main__":
    main()
