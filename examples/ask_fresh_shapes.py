"""Ask an exported model about freshly drawn shapes, with plain transformers only (no trainer code).

    python examples/ask_fresh_shapes.py EXPORT_DIR [--n 60] [--seed 0]

Renders new scenes (never in the training data) with `datamix.synth.render_scene`, asks "What color
is the <shape>?" through the exported processor's chat template, greedy-decodes, and prints the
exact-match accuracy and a few answers. Proof that the exported folder is a standalone model.
"""

from __future__ import annotations

import argparse
import json

import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from datamix.synth import color_question, render_scene

SUFFIX = "\nAnswer the question using a single word or phrase."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", help="an exported Hugging Face folder")
    ap.add_argument("--n", type=int, default=60, help="fresh scenes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    processor = AutoProcessor.from_pretrained(args.export)
    model = LlavaForConditionalGeneration.from_pretrained(args.export).eval()
    right, shown = 0, []
    for i in range(args.n):
        image, shapes = render_scene(args.seed * 100_000 + i)
        question, answer = color_question(shapes[i % len(shapes)])
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question + SUFFIX}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(images=image, text=prompt, return_tensors="pt")
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
