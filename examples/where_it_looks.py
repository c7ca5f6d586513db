"""Where an exported model looks when it answers "What color is the <shape>?", and how its accuracy
splits by the number of shapes in the picture. Plain transformers only (no trainer code).

    python examples/where_it_looks.py EXPORT_DIR [--n 60] [--seed 0]

For fresh scenes (`datamix.synth.render_scene`) it asks the demo question through the exported
processor's chat template and prints one JSON line:

- `accuracy_by_shapes`: greedy exact-match accuracy on pictures with 1, 2 and 3 shapes. A model that
  names a colour present in the picture without knowing which shape has it scores 1, 1/2 and 1/3
  (about 0.61 over this script's questions, one per picture; 0.5 over `trainer eval`'s, which asks
  about every shape); more than that on 2 and 3 shapes is shape-colour binding.
- `present_by_shapes`: how often the answer is a colour that is in the picture (whatever the shape).
- `attention`: per layer and head, the share of the answer position's attention that goes to the
  image tokens and to the question's shape word. Binding needs the shape word to reach the answer
  position: a head that gives it a visible share, or none.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import torch
from ask_fresh_shapes import fresh_question, parse_args  # examples/, beside this script
from transformers import AutoProcessor, LlavaForConditionalGeneration


def _word_ids(tokenizer: Any, word: str) -> list[int]:
    """The tokens of `word` inside a sentence (SentencePiece: "▁circle", no lone "▁")."""
    ids = tokenizer("a " + word, add_special_tokens=False)["input_ids"]
    return ids[len(tokenizer("a", add_special_tokens=False)["input_ids"]) :]


def _positions(ids: list[int], sub: list[int]) -> list[int]:
    """Positions of the last occurrence of `sub` in `ids` (the question's shape word)."""
    for start in range(len(ids) - len(sub), -1, -1):
        if ids[start : start + len(sub)] == sub:
            return list(range(start, start + len(sub)))
    raise ValueError(f"tokens {sub} not in the prompt")


def look(export: str, n: int = 60, seed: int = 0) -> dict[str, Any]:
    processor = AutoProcessor.from_pretrained(export)
    model = LlavaForConditionalGeneration.from_pretrained(export, attn_implementation="eager").eval()
    tokenizer = processor.tokenizer
    image_id = model.config.image_token_id
    right: dict[int, list[int]] = defaultdict(list)
    present: dict[int, list[int]] = defaultdict(list)
    share_image = share_word = None
    for i in range(n):
        inputs, shapes, shape, _, answer = fresh_question(processor, i, seed)
        ids = inputs["input_ids"][0].tolist()
        word_pos = _positions(ids, _word_ids(tokenizer, shape.kind))
        image_pos = [j for j, t in enumerate(ids) if t == image_id]
        with torch.no_grad():
            out = model(**inputs, output_attentions=True)
            pred_ids = model.generate(**inputs, max_new_tokens=6, do_sample=False)[0, len(ids) :]
        pred = tokenizer.decode(pred_ids, skip_special_tokens=True).strip().lower().rstrip(".")
        k = len(shapes)
        right[k].append(int(pred == answer))
        present[k].append(int(pred in {s.color for s in shapes}))
        last = torch.stack([a[0, :, -1] for a in out.attentions])  # layers x heads x keys
        img, wrd = last[:, :, image_pos].sum(-1), last[:, :, word_pos].sum(-1)
        share_image = img if share_image is None else share_image + img
        share_word = wrd if share_word is None else share_word + wrd
    assert share_image is not None and share_word is not None
    return {
        "n": n,
        "accuracy": round(sum(sum(v) for v in right.values()) / n, 4),
        "accuracy_by_shapes": {k: round(sum(v) / len(v), 4) for k, v in sorted(right.items())},
        "present_by_shapes": {k: round(sum(v) / len(v), 4) for k, v in sorted(present.items())},
        "attention": {"image": _rounded(share_image / n), "shape_word": _rounded(share_word / n)},
    }


def _rounded(t: torch.Tensor) -> list[list[float]]:
    return [[round(float(x), 3) for x in row] for row in t]


def main() -> None:
    args = parse_args(__doc__)
    print(json.dumps(look(args.export, args.n, args.seed)))


if __name__ == "__main__":
    main()
