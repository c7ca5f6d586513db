"""The evaluation benchmarks of LLaVA-1.5, as data: where their files come from, where they land, how
to read them (`readers.py`) and how their evaluation normalises text (`textnorm.py`).

Not to be confused with the repository's top-level `benchmarks/` (speed figures). Files land under
`ROOT/benchmarks/<name>/` (`folder`); `datamix download --benchmarks [NAME...]` fetches the public
ones through the same verified, resumable machinery as the sources (`datamix.fetch`). No benchmark
publishes checksums for these files: the first-seen sha256 of each is recorded in
`downloads/provenance.json`, as for the sources. Files behind a form or a drive link carry `manual`
instructions, printed with the exact target path.

Image archives are listed as `images` entries (skipped by `--annotations-only`): they are needed for
the content-hash and near-duplicate checks of `datamix contamination`; the id checks need only the
annotation files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamix.evalsets import readers
from datamix.evalsets.readers import BenchItem
from datamix.evalsets.textnorm import NORMALIZERS
from datamix.sources.base import RemoteFile

__all__ = ["BENCHMARKS", "CATALOG", "NAMES", "BenchItem", "Benchmark", "folder", "get", "select"]

ROOT_DIR = "benchmarks"  # ROOT/benchmarks/<name>/


def folder(root: Path, name: str) -> Path:
    return Path(root) / ROOT_DIR / name


@dataclass(frozen=True, slots=True, kw_only=True)
class Benchmark:
    name: str
    title: str
    homepage: str
    reader: Callable[[Path, str], list[BenchItem]]
    files: tuple[RemoteFile, ...] = ()
    normalize: str = "vqa"  # textnorm.NORMALIZERS key
    manual: str | None = None  # where to put files that cannot be fetched
    image_reader: Callable[[Path, str], Iterator[tuple[str, bytes]]] | None = None
    notes: str = field(default="")

    def read(self, root: Path) -> list[BenchItem]:
        return self.reader(folder(root, self.name), self.name)

    def normalizer(self) -> Callable[[str], str]:
        return NORMALIZERS[self.normalize]

    def images(self, root: Path, items: Sequence[BenchItem]) -> Iterator[tuple[str, bytes]]:
        """(image key, bytes) of every distinct image of `items` present on disk."""
        base = folder(root, self.name)
        if self.image_reader is not None:
            wanted = {it.image for it in items if it.image}
            for key, data in self.image_reader(base, self.name):
                if key in wanted:
                    yield key, data
            return
        seen: set[str] = set()
        for it in items:
            if it.image and it.image not in seen:
                seen.add(it.image)
                p = base / it.image
                if p.is_file():
                    yield it.image, p.read_bytes()


def _f(
    name: str,
    url: str,
    *,
    archive: bool = False,
    images: bool = False,
    file: str | None = None,
    manual: str | None = None,
) -> RemoteFile:
    base = f"{ROOT_DIR}/{name}"
    fname = file or url.rsplit("/", 1)[-1]
    if archive:
        return RemoteFile(
            source=name,
            url=url,
            path=f"downloads/{base}/{fname}",
            extract_to=base,
            kind="images" if images else "annotation",
            manual=manual,
        )
    return RemoteFile(
        source=name, url=url, path=f"{base}/{fname}", kind="images" if images else "annotation", manual=manual
    )


_VQA = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa"
_GQA = "https://downloads.cs.stanford.edu/nlp/data/gqa"
_VIZWIZ = "https://vizwiz.cs.colorado.edu/VizWiz_final"
_SQA = "https://raw.githubusercontent.com/lupantech/ScienceQA/main/data/scienceqa"
_POPE = "https://raw.githubusercontent.com/AoiDragon/POPE/main/output/coco"
_MMB = "https://download.openmmlab.com/mmclassification/datasets/mmbench"
_SEED = "https://huggingface.co/datasets/AILab-CVC/SEED-Bench/resolve/main"
_LB = "https://huggingface.co/datasets/liuhaotian/llava-bench-in-the-wild/resolve/main"
_COCO = "http://images.cocodataset.org/zips"

_A, _AI = "archive", "archive images"  # file flags: an archive (of images)


def _bench(
    name: str,
    title: str,
    homepage: str,
    reader: Callable[[Path, str], list[BenchItem]],
    files: Sequence[tuple[str, str]] = (),
    **extra: Any,
) -> Benchmark:
    """One table row: `files` are (url, flags) pairs, flags naming `archive` and/or `images`."""
    entries = tuple(_f(name, url, archive="archive" in fl, images="images" in fl) for url, fl in files)
    return Benchmark(name=name, title=title, homepage=homepage, reader=reader, files=entries, **extra)


_BASIC: dict[str, Any] = {"normalize": "basic"}
_MMB_EXTRA: dict[str, Any] = {**_BASIC, "image_reader": readers.mmbench_images}
_MME_MANUAL = (
    "MME is distributed on request (a form on its homepage) or as the HF dataset lmms-lab/MME; "
    f"put the folder {readers.MME_DIR}/ (one sub-folder per category) under {{target}}"
)
_SQA_MANUAL = (
    "the test images (test.zip of the ScienceQA Google Drive, or the HF dataset "
    "derek-thomas/ScienceQA) unpacked as {target}/test/<pid>/image.png"
)
_LB_MANUAL = "the 24 pictures of the HF dataset's images/ folder, as {target}/images/<name>.jpg"
_MMB_HOME = "https://github.com/open-compass/MMBench"

# name, title, homepage, reader, files as (url, flags), extra Benchmark fields
_TABLE: tuple[tuple[Any, ...], ...] = (
    ("vqav2_testdev", "VQAv2 test-dev", "https://visualqa.org/download.html", readers.vqav2_testdev,
     [(f"{_VQA}/v2_Questions_Test_mscoco.zip", _A), (f"{_COCO}/test2015.zip", _AI)], {}),
    ("gqa_testdev", "GQA test-dev (balanced)", "https://cs.stanford.edu/people/dorarad/gqa/",
     readers.gqa_testdev, [(f"{_GQA}/questions1.2.zip", _A), (f"{_GQA}/images.zip", _AI)], {}),
    ("vizwiz", "VizWiz-VQA (val + test)", "https://vizwiz.org/tasks-and-datasets/vqa/", readers.vizwiz,
     [(f"{_VIZWIZ}/vqa_data/Annotations.zip", _A), *((f"{_VIZWIZ}/images/{s}.zip", _AI)
      for s in ("val", "test"))], {}),
    ("scienceqa", "ScienceQA-IMG (test)", "https://scienceqa.github.io/", readers.scienceqa,
     [(f"{_SQA}/problems.json", ""), (f"{_SQA}/pid_splits.json", "")], {**_BASIC, "manual": _SQA_MANUAL}),
    ("textvqa", "TextVQA (val)", "https://textvqa.org/dataset/", readers.textvqa,
     [("https://dl.fbaipublicfiles.com/textvqa/data/TextVQA_0.5.1_val.json", ""),
      ("https://dl.fbaipublicfiles.com/textvqa/images/train_val_images.zip", _AI)], {}),
    ("pope", "POPE (COCO random / popular / adversarial)", "https://github.com/AoiDragon/POPE", readers.pope,
     [*((f"{_POPE}/{f}", "") for f in readers.POPE_FILES), (f"{_COCO}/val2014.zip", _AI)], {}),
    ("mme", "MME", "https://github.com/BradyFU/Awesome-Multimodal-Large-Language-Models/tree/Evaluation",
     readers.mme, [], {**_BASIC, "manual": _MME_MANUAL}),
    ("mmbench", "MMBench (dev, en)", _MMB_HOME, readers.mmbench,
     [(f"{_MMB}/{readers.MMBENCH_FILES['mmbench']}", "")], _MMB_EXTRA),
    ("mmbench_cn", "MMBench-CN (dev)", _MMB_HOME, readers.mmbench,
     [(f"{_MMB}/{readers.MMBENCH_FILES['mmbench_cn']}", "")], _MMB_EXTRA),
    ("seed", "SEED-Bench (image questions)", "https://github.com/AILab-CVC/SEED-Bench", readers.seed,
     [(f"{_SEED}/{readers.SEED_FILE}", ""), (f"{_SEED}/SEED-Bench-image.zip", _AI)], _BASIC),
    ("llava_bench", "LLaVA-Bench (in the wild)",
     "https://huggingface.co/datasets/liuhaotian/llava-bench-in-the-wild", readers.llava_bench,
     [(f"{_LB}/{f}", "") for f in readers.LLAVA_BENCH_FILES], {**_BASIC, "manual": _LB_MANUAL}),
    ("mmvet", "MM-Vet", "https://github.com/yuweihao/MM-Vet", readers.mmvet,
     [("https://github.com/yuweihao/MM-Vet/releases/download/v1/mm-vet.zip", _A)], _BASIC),
)  # fmt: skip

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (_bench(*row[:5], **row[5]) for row in _TABLE)}
NAMES: tuple[str, ...] = tuple(BENCHMARKS)
CATALOG: tuple[RemoteFile, ...] = tuple(f for b in BENCHMARKS.values() for f in b.files)


def get(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(NAMES)}") from None


def parse_names(values: Sequence[str] | None) -> list[str]:
    """Comma- or space-separated names (`all` or none: every benchmark), validated, in registry order."""
    names = [n.strip() for v in values or () for n in v.split(",") if n.strip()]
    if not names or "all" in names:
        return list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [n for n in NAMES if n in names]


def select(names: Sequence[str] | None, annotations_only: bool = False) -> tuple[RemoteFile, ...]:
    wanted = set(parse_names(names))
    return tuple(e for e in CATALOG if e.source in wanted and not (annotations_only and e.kind == "images"))
