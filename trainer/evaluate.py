"""`python -m trainer eval`: exact-match accuracy of short answers on a held-out mix, with and without
the image.

Every human/gpt pair of the held-out samples whose bare question matches `--match` (a regular
expression; default: every pair of an image sample) becomes one single-turn question in the
short-answer format the model was trained with (`<image>\\n{question}\\nAnswer the question using a
single word or phrase.`), answered by greedy decoding. The same question without the image (no
`<image>`, no pixels) gives the text-only score: how much the model answers from language priors
alone. A prediction is right when it equals the reference answer after lower-casing, trimming and
dropping a final period (LLaVA's own short-answer normalisation in its GQA/VQA evaluation scripts).

The model is read from a Hugging Face folder (an `export` or a run's `final/`) with plain
transformers classes, so the score is the exported model's score.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from datamix.schema import IMAGE_TOKEN, SHORT_ANSWER_PROMPT
from trainer.data import iter_tar, list_shards
from trainer.images import ImageProcessor
from trainer.templates import IGNORE_INDEX, PAD_TOKEN_ID, encode, get_template, load_tokenizer

log = logging.getLogger(__name__)

SHORT_ANSWER = (
    SHORT_ANSWER_PROMPT  # the format the model was trained with (datamix.formats.SHORT_ANSWER_SUFFIX)
)


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    question: str
    answer: str
    image: bytes | None


def _image_bytes(image: bytes | None) -> bytes:
    if image is None:  # questions are asked with the image only where they have one (load_questions)
        raise ValueError("an image question without an image")
    return image


def normalize_answer(text: str) -> str:
    text = " ".join(text.strip().lower().split())
    return text[:-1].rstrip() if text.endswith(".") else text


def bare_question(text: str) -> str:
    text = text.replace(IMAGE_TOKEN, "")
    text = text.replace(SHORT_ANSWER, "")
    return text.strip()


def load_questions(mix_dir: Path | str, match: str | None = None, limit: int | None = None) -> list[Question]:
    """The (question, answer) pairs of a mix folder's image samples, in shard order."""
    pattern = re.compile(match) if match else None
    out: list[Question] = []
    for shard in list_shards(mix_dir):
        for raw in iter_tar(shard):
            if raw.json is None or raw.image is None:
                continue
            try:
                record = json.loads(raw.json)
            except ValueError:
                log.warning("%s: sample %s: not valid JSON; skipped", shard, raw.key)
                continue
            turns = record.get("conversations", []) if isinstance(record, dict) else []
            for h, g in zip(turns[0::2], turns[1::2], strict=False):
                q = bare_question(h.get("value", ""))
                if pattern is None or pattern.search(q):
                    out.append(Question(raw.key, q, g.get("value", ""), raw.image))
                    if limit and len(out) >= limit:
                        return out
    return out


class Evaluator:
    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_new_tokens: int = 8,
    ):
        from transformers import LlavaForConditionalGeneration

        self.model = cast(Any, LlavaForConditionalGeneration.from_pretrained(str(model_dir)))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()
        self.tokenizer = load_tokenizer(model_dir, add_llava_tokens=True)
        vcfg = self.model.config.vision_config
        self.image_seq_length = (vcfg.image_size // vcfg.patch_size) ** 2
        self.images = ImageProcessor(size=vcfg.image_size)
        self.template = get_template("vicuna_v1")
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def prompt_ids(self, question: str, answer: str, with_image: bool) -> list[int]:
        """The prompt up to `ASSISTANT:` (exactly the tokens before the first trained label)."""
        human = (f"{IMAGE_TOKEN}\n" if with_image else "") + f"{question}\n{SHORT_ANSWER}"
        enc = encode(
            [{"from": "human", "value": human}, {"from": "gpt", "value": answer or "x"}],
            self.tokenizer,
            self.template,
            has_image=with_image,
            max_length=10**6,
            image_seq_length=self.image_seq_length,
        )
        ids, labels = enc.expanded()
        first = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX)
        return ids[:first]

    @torch.no_grad()
    def answer(self, questions: list[Question], with_image: bool) -> list[str]:
        preds: list[str] = []
        for start in range(0, len(questions), self.batch_size):
            chunk = questions[start : start + self.batch_size]
            prompts = [self.prompt_ids(q.question, q.answer, with_image) for q in chunk]
            longest = max(map(len, prompts))
            ids = torch.full((len(chunk), longest), PAD_TOKEN_ID, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, p in enumerate(prompts):  # left padding for generation
                ids[i, longest - len(p) :] = torch.tensor(p)
                mask[i, longest - len(p) :] = 1
            kwargs: dict[str, Any] = {}
            if with_image:
                kwargs["pixel_values"] = torch.stack(
                    [torch.from_numpy(self.images(_image_bytes(q.image))) for q in chunk]
                ).to(self.device, self.model.dtype)
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=PAD_TOKEN_ID,
                eos_token_id=2,
                **kwargs,
            )
            for row in out[:, longest:]:
                preds.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return preds

    def score(self, questions: list[Question]) -> dict[str, Any]:
        with_image = self.answer(questions, True)
        text_only = self.answer(questions, False)
        right = [
            normalize_answer(p) == normalize_answer(q.answer)
            for p, q in zip(with_image, questions, strict=True)
        ]
        right_text = [
            normalize_answer(p) == normalize_answer(q.answer)
            for p, q in zip(text_only, questions, strict=True)
        ]
        n = len(questions)
        return {
            "n": n,
            "accuracy": round(sum(right) / n, 4) if n else None,
            "text_only_accuracy": round(sum(right_text) / n, 4) if n else None,
            "examples": [
                {"question": q.question, "answer": q.answer, "predicted": p, "predicted_text_only": t}
                for q, p, t in list(zip(questions, with_image, text_only, strict=True))[:5]
            ],
        }


def evaluate(
    model_dir: Path | str,
    mix_dir: Path | str,
    *,
    match: str | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, Any]:
    questions = load_questions(mix_dir, match, limit)
    if not questions:
        raise ValueError(f"{mix_dir}: no question matches {match!r}")
    result = Evaluator(model_dir, device=device, batch_size=batch_size).score(questions)
    result.update(model=str(model_dir), mix=str(mix_dir), match=match)
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, type=Path, help="Hugging Face folder (an export or a run's final/)"
    )
    p.add_argument("--mix", required=True, type=Path, help="held-out mix folder (e.g. MIX/eval)")
    p.add_argument(
        "--match", default=None, help="regular expression on the bare question (e.g. '^What colou?r is')"
    )
    p.add_argument("--limit", type=int, default=None, help="at most this many questions")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--export", type=Path, default=None, help="recorded as `export` in the JSON line (make demo)"
    )
    p.add_argument("--out", type=Path, default=None, help="also write the result JSON here")


def run(args: argparse.Namespace) -> int:
    from datamix.errors import UsageError

    if not (args.model / "config.json").is_file():
        raise UsageError(
            "--model: no such model folder (an export or a run's final/, with config.json)"
            if not args.model.exists()
            else "--model: not a model folder (no config.json)",
            path=args.model,
        )
    list_shards(args.mix)  # a missing or empty mix folder: one line, before the model loads
    result = evaluate(args.model, args.mix, match=args.match, limit=args.limit, batch_size=args.batch_size)
    if args.export is not None:
        result = {"export": str(args.export), **result}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    line = {k: v for k, v in result.items() if k != "examples"}
    print(json.dumps(line))
    return 0
