"""One small reader per benchmark, of its real public file format.

Each reader takes the benchmark's folder (`ROOT/benchmarks/<name>/`) and returns `BenchItem`s: the
question id, the question, the answer where public, the image (a path relative to that folder, or
`tsv:<index>` for images embedded in MMBench's TSV) and the image's identity in a shared pool
(`coco:<id>`, `vg:<id>`, `gqa:<id>`, `openimages:<id>`) where the benchmark names it.

Formats (as distributed; field names from the upstream files and the evaluation code that reads them):
- VQAv2 test-dev: `v2_OpenEnded_mscoco_test-dev2015_questions.json` (in `v2_Questions_Test_mscoco.zip`):
  `{"questions": [{"image_id", "question", "question_id"}], "data_subtype": "test-dev2015", ...}`;
  images `test2015/COCO_test2015_<12-digit>.jpg`; no answers public.
- GQA test-dev: `testdev_balanced_questions.json` (in `questions1.2.zip`): `{qid: {"imageId",
  "question", "answer", "fullAnswer", ...}}`; images `images/<imageId>.jpg` (digits: a VG id).
- VizWiz: `val.json` / `test.json` (in `Annotations.zip`): `[{"image": "VizWiz_test_<8-digit>.jpg",
  "question", "answers"?: [{"answer", "answer_confidence"}], ...}]`; images `val/`, `test/`.
- ScienceQA: `problems.json` `{pid: {"question", "choices", "answer": index, "hint", "image":
  "image.png" | null, "split", ...}}` + `pid_splits.json` `{"test": [pid, ...], ...}`; the test split's
  image questions (ScienceQA-IMG); images `test/<pid>/image.png`.
- TextVQA val: `TextVQA_0.5.1_val.json` `{"data": [{"question", "image_id", "question_id", "answers",
  ...}]}`; images `train_images/<image_id>.jpg` (OpenImages ids).
- POPE: `coco_pope_{random,popular,adversarial}.json`, JSON lines `{"question_id", "image":
  "COCO_val2014_<12-digit>.jpg", "text", "label"}`; images `val2014/`.
- MME: `MME_Benchmark_release_version/<category>/` holding either `images/` + `questions_answers_YN/`
  or the images and `.txt` files side by side; each `.txt` has lines `question<TAB>answer` for the image
  of the same stem.
- MMBench / MMBench-CN: `mmbench_dev_20230712.tsv` / `mmbench_dev_cn_20231003.tsv`, columns `index,
  question, hint, A, B, C, D, answer, category, image (base64), ...`.
- SEED-Bench: `SEED-Bench.json` `{"questions": [{"question_id", "question", "choice_a".."choice_d",
  "answer", "data_id", "data_type": "image"|"video", ...}]}`; images `SEED-Bench-image/<data_id>`.
- LLaVA-Bench (in the wild): `questions.jsonl` `{"question_id", "image", "text", "category"}`,
  `answers_gpt4.jsonl` `{"question_id", "text", ...}`; images `images/<image>`.
- MM-Vet: `mm-vet/mm-vet.json` `{"v1_0": {"imagename", "question", "answer", "capability"}}`; images
  `mm-vet/images/`.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamix.errors import DataError, UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchItem:
    """One benchmark question: `image` relative to the benchmark folder (or `tsv:<index>`), `idents`
    the image's pool identities."""

    benchmark: str
    qid: str
    question: str
    answer: str | None
    image: str | None
    idents: tuple[str, ...] = ()


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise UsageError("benchmark file missing (run `datamix download --benchmarks`)", path=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: line {e.lineno} column {e.colno}: {e.msg}", path=path) from None


def _jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    if not path.is_file():
        raise UsageError("benchmark file missing (run `datamix download --benchmarks`)", path=path)
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"not a JSON line: {e.msg}", path=path, record=i + 1) from None


def _json_object(path: Path, what: str) -> dict[Any, Any]:
    """The JSON object `{<what>: question}` at `path`."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"expected an object {{{what}: question}}", path=path)
    return data


def _keyed_item(
    name: str, qid: Any, rec: dict[str, Any], question: str, image: str, idents: tuple[str, ...] = ()
) -> BenchItem:
    """The item of record `rec` of a `{id: question}` object; its `answer`, where it has one."""
    return BenchItem(
        benchmark=name, qid=str(qid), question=question, answer=rec.get("answer"), image=image, idents=idents
    )


def _get(rec: Any, field: str, path: Path, where: Any, typ: type | tuple[type, ...] = str) -> Any:
    if not isinstance(rec, dict) or field not in rec:
        raise DataError("missing field", path=path, record=where, field=field)
    v = rec[field]
    if not isinstance(v, typ) or isinstance(v, bool):
        raise DataError(
            f"expected {getattr(typ, '__name__', typ)}, got {type(v).__name__}",
            path=path,
            record=where,
            field=field,
        )
    return v


VQAV2_FILE = "v2_OpenEnded_mscoco_test-dev2015_questions.json"


def vqav2_testdev(folder: Path, name: str) -> list[BenchItem]:
    path = folder / VQAV2_FILE
    data = _load_json(path)
    out = []
    for i, q in enumerate(_get(data, "questions", path, None, list)):
        image_id = _get(q, "image_id", path, i, int)
        out.append(
            BenchItem(
                benchmark=name,
                qid=str(_get(q, "question_id", path, i, int)),
                question=_get(q, "question", path, i),
                answer=None,
                image=f"test2015/COCO_test2015_{image_id:012d}.jpg",
                idents=(f"coco:{image_id}",),
            )
        )
    return out


GQA_FILE = "testdev_balanced_questions.json"


def gqa_ident(image_id: str) -> str:
    """GQA image ids: digits are Visual Genome ids; test-dev's `n<digits>` are GQA's own."""
    return f"vg:{int(image_id)}" if image_id.isdigit() else f"gqa:{image_id}"


def gqa_testdev(folder: Path, name: str) -> list[BenchItem]:
    path = folder / GQA_FILE
    out = []
    for qid, q in _json_object(path, "question_id").items():
        image_id = _get(q, "imageId", path, qid)
        question = _get(q, "question", path, qid)
        out.append(_keyed_item(name, qid, q, question, f"images/{image_id}.jpg", (gqa_ident(image_id),)))
    return out


VIZWIZ_FILES = ("val.json", "test.json")


def vizwiz(folder: Path, name: str) -> list[BenchItem]:
    out = []
    for fname in VIZWIZ_FILES:
        path = folder / fname
        split = fname.removesuffix(".json")
        for i, rec in enumerate(_load_json(path)):
            image = _get(rec, "image", path, i)
            answers = rec.get("answers") or []
            answer = answers[0].get("answer") if answers and isinstance(answers[0], dict) else None
            out.append(
                BenchItem(
                    benchmark=name,
                    qid=image.removesuffix(".jpg"),
                    question=_get(rec, "question", path, i),
                    answer=answer,
                    image=f"{split}/{image}",
                )
            )
    return out


SCIENCEQA_FILES = ("problems.json", "pid_splits.json")


def scienceqa(folder: Path, name: str) -> list[BenchItem]:
    problems = _load_json(folder / "problems.json")
    splits = _load_json(folder / "pid_splits.json")
    out = []
    for pid in splits.get("test", []):
        p = problems.get(str(pid))
        if not isinstance(p, dict) or not p.get("image"):
            continue  # ScienceQA-IMG: the test questions with an image
        choices = p.get("choices") or []
        ans = p.get("answer")
        out.append(
            BenchItem(
                benchmark=name,
                qid=str(pid),
                question=_get(p, "question", folder / "problems.json", pid),
                answer=choices[ans] if isinstance(ans, int) and 0 <= ans < len(choices) else None,
                image=f"test/{pid}/{p['image']}",
            )
        )
    return out


TEXTVQA_FILE = "TextVQA_0.5.1_val.json"


def textvqa(folder: Path, name: str) -> list[BenchItem]:
    path = folder / TEXTVQA_FILE
    out = []
    for i, rec in enumerate(_get(_load_json(path), "data", path, None, list)):
        image_id = _get(rec, "image_id", path, i)
        answers = rec.get("answers") or []
        out.append(
            BenchItem(
                benchmark=name,
                qid=str(_get(rec, "question_id", path, i, int)),
                question=_get(rec, "question", path, i),
                answer=answers[0] if answers else None,
                image=f"train_images/{image_id}.jpg",
                idents=(f"openimages:{image_id}",),
            )
        )
    return out


POPE_FILES = ("coco_pope_random.json", "coco_pope_popular.json", "coco_pope_adversarial.json")
_COCO_NAME = re.compile(r"COCO_(?:val|train|test)20(?:14|15)_(\d{12})\.jpg$")


def pope(folder: Path, name: str) -> list[BenchItem]:
    out = []
    for fname in POPE_FILES:
        path = folder / fname
        split = fname.removeprefix("coco_pope_").removesuffix(".json")
        for i, rec in _jsonl(path):
            image = _get(rec, "image", path, i + 1)
            m = _COCO_NAME.search(image)
            out.append(
                BenchItem(
                    benchmark=name,
                    qid=f"{split}-{_get(rec, 'question_id', path, i + 1, int)}",
                    question=_get(rec, "text", path, i + 1),
                    answer=rec.get("label"),
                    image=f"val2014/{image}",
                    idents=(f"coco:{int(m.group(1))}",) if m else (),
                )
            )
    return out


MME_DIR = "MME_Benchmark_release_version"
_IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG")


def mme(folder: Path, name: str) -> list[BenchItem]:
    base = folder / MME_DIR
    if not base.is_dir():
        raise UsageError("benchmark folder missing (see `datamix download --benchmarks mme`)", path=base)
    out = []
    for cat in sorted(p for p in base.iterdir() if p.is_dir()):
        qa_dir = cat / "questions_answers_YN" if (cat / "questions_answers_YN").is_dir() else cat
        img_dir = cat / "images" if (cat / "images").is_dir() else cat
        for txt in sorted(qa_dir.glob("*.txt")):
            image = next(
                (img_dir / (txt.stem + s) for s in _IMAGE_SUFFIXES if (img_dir / (txt.stem + s)).is_file()),
                None,
            )
            for j, line in enumerate(txt.read_text(encoding="utf-8").splitlines()):
                if not line.strip():
                    continue
                q, _, a = line.partition("\t")
                out.append(
                    BenchItem(
                        benchmark=name,
                        qid=f"{cat.name}/{txt.stem}/{j}",
                        question=q.strip(),
                        answer=a.strip() or None,
                        image=None if image is None else image.relative_to(folder).as_posix(),
                    )
                )
    return out


MMBENCH_FILES = {"mmbench": "mmbench_dev_20230712.tsv", "mmbench_cn": "mmbench_dev_cn_20231003.tsv"}


def _tsv_rows(path: Path) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise UsageError("benchmark file missing (run `datamix download --benchmarks`)", path=path)
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t")


def mmbench(folder: Path, name: str) -> list[BenchItem]:
    path = folder / MMBENCH_FILES[name]
    out = []
    for i, row in enumerate(_tsv_rows(path)):
        index = row.get("index")
        if index is None or row.get("question") is None:
            raise DataError("missing column index or question", path=path, record=i + 2)
        out.append(
            BenchItem(
                benchmark=name,
                qid=str(index),
                question=row["question"],
                answer=row.get("answer"),
                image=f"tsv:{index}" if row.get("image") else None,
            )
        )
    return out


def mmbench_images(folder: Path, name: str) -> Iterator[tuple[str, bytes]]:
    """(image key, bytes) of the base64 images of the TSV (rows without one are skipped)."""
    import base64

    for row in _tsv_rows(folder / MMBENCH_FILES[name]):
        if row.get("image"):
            yield f"tsv:{row['index']}", base64.b64decode(row["image"])


SEED_FILE = "SEED-Bench.json"


def seed(folder: Path, name: str) -> list[BenchItem]:
    path = folder / SEED_FILE
    out = []
    for i, q in enumerate(_get(_load_json(path), "questions", path, None, list)):
        if q.get("data_type", "image") != "image":
            continue  # the video questions
        ans = q.get("answer")
        out.append(
            BenchItem(
                benchmark=name,
                qid=str(_get(q, "question_id", path, i, (str, int))),
                question=_get(q, "question", path, i),
                answer=q.get(f"choice_{ans.lower()}") if isinstance(ans, str) else None,
                image=f"SEED-Bench-image/{_get(q, 'data_id', path, i)}",
            )
        )
    return out


LLAVA_BENCH_FILES = ("questions.jsonl", "answers_gpt4.jsonl")


def llava_bench(folder: Path, name: str) -> list[BenchItem]:
    answers = {}
    if (folder / "answers_gpt4.jsonl").is_file():
        answers = {str(r.get("question_id")): r.get("text") for _, r in _jsonl(folder / "answers_gpt4.jsonl")}
    path = folder / "questions.jsonl"
    out = []
    for i, rec in _jsonl(path):
        qid = str(_get(rec, "question_id", path, i + 1, (int, str)))
        out.append(
            BenchItem(
                benchmark=name,
                qid=qid,
                question=_get(rec, "text", path, i + 1),
                answer=answers.get(qid),
                image=f"images/{_get(rec, 'image', path, i + 1)}",
            )
        )
    return out


MMVET_FILE = "mm-vet/mm-vet.json"


def mmvet(folder: Path, name: str) -> list[BenchItem]:
    path = folder / MMVET_FILE
    data = _json_object(path, "id")
    out = []
    for qid, q in data.items():
        question = _get(q, "question", path, qid)
        out.append(_keyed_item(name, qid, q, question, f"mm-vet/images/{_get(q, 'imagename', path, qid)}"))
    return out
