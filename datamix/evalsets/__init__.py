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

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            name="vqav2_testdev",
            title="VQAv2 test-dev",
            homepage="https://visualqa.org/download.html",
            reader=readers.vqav2_testdev,
            files=(
                _f("vqav2_testdev", f"{_VQA}/v2_Questions_Test_mscoco.zip", archive=True),
                _f(
                    "vqav2_testdev",
                    "http://images.cocodataset.org/zips/test2015.zip",
                    archive=True,
                    images=True,
                ),
            ),
        ),
        Benchmark(
            name="gqa_testdev",
            title="GQA test-dev (balanced)",
            homepage="https://cs.stanford.edu/people/dorarad/gqa/",
            reader=readers.gqa_testdev,
            files=(
                _f("gqa_testdev", f"{_GQA}/questions1.2.zip", archive=True),
                _f("gqa_testdev", f"{_GQA}/images.zip", archive=True, images=True),
            ),
        ),
        Benchmark(
            name="vizwiz",
            title="VizWiz-VQA (val + test)",
            homepage="https://vizwiz.org/tasks-and-datasets/vqa/",
            reader=readers.vizwiz,
            files=(
                _f("vizwiz", f"{_VIZWIZ}/vqa_data/Annotations.zip", archive=True),
                _f("vizwiz", f"{_VIZWIZ}/images/val.zip", archive=True, images=True),
                _f("vizwiz", f"{_VIZWIZ}/images/test.zip", archive=True, images=True),
            ),
        ),
        Benchmark(
            name="scienceqa",
            title="ScienceQA-IMG (test)",
            homepage="https://scienceqa.github.io/",
            reader=readers.scienceqa,
            normalize="basic",
            files=(_f("scienceqa", f"{_SQA}/problems.json"), _f("scienceqa", f"{_SQA}/pid_splits.json")),
            manual="the test images (test.zip of the ScienceQA Google Drive, or the HF dataset "
            "derek-thomas/ScienceQA) unpacked as {target}/test/<pid>/image.png",
        ),
        Benchmark(
            name="textvqa",
            title="TextVQA (val)",
            homepage="https://textvqa.org/dataset/",
            reader=readers.textvqa,
            files=(
                _f("textvqa", "https://dl.fbaipublicfiles.com/textvqa/data/TextVQA_0.5.1_val.json"),
                _f(
                    "textvqa",
                    "https://dl.fbaipublicfiles.com/textvqa/images/train_val_images.zip",
                    archive=True,
                    images=True,
                ),
            ),
        ),
        Benchmark(
            name="pope",
            title="POPE (COCO random / popular / adversarial)",
            homepage="https://github.com/AoiDragon/POPE",
            reader=readers.pope,
            files=(
                *(_f("pope", f"{_POPE}/{f}") for f in readers.POPE_FILES),
                _f("pope", "http://images.cocodataset.org/zips/val2014.zip", archive=True, images=True),
            ),
        ),
        Benchmark(
            name="mme",
            title="MME",
            homepage="https://github.com/BradyFU/Awesome-Multimodal-Large-Language-Models/tree/Evaluation",
            reader=readers.mme,
            normalize="basic",
            manual="MME is distributed on request (a form on its homepage) or as the HF dataset lmms-lab/MME; "
            f"put the folder {readers.MME_DIR}/ (one sub-folder per category) under {{target}}",
        ),
        Benchmark(
            name="mmbench",
            title="MMBench (dev, en)",
            homepage="https://github.com/open-compass/MMBench",
            reader=readers.mmbench,
            normalize="basic",
            image_reader=readers.mmbench_images,
            files=(_f("mmbench", f"{_MMB}/{readers.MMBENCH_FILES['mmbench']}"),),
        ),
        Benchmark(
            name="mmbench_cn",
            title="MMBench-CN (dev)",
            homepage="https://github.com/open-compass/MMBench",
            reader=readers.mmbench,
            normalize="basic",
            image_reader=readers.mmbench_images,
            files=(_f("mmbench_cn", f"{_MMB}/{readers.MMBENCH_FILES['mmbench_cn']}"),),
        ),
        Benchmark(
            name="seed",
            title="SEED-Bench (image questions)",
            homepage="https://github.com/AILab-CVC/SEED-Bench",
            reader=readers.seed,
            normalize="basic",
            files=(
                _f("seed", f"{_SEED}/{readers.SEED_FILE}"),
                _f("seed", f"{_SEED}/SEED-Bench-image.zip", archive=True, images=True),
            ),
        ),
        Benchmark(
            name="llava_bench",
            title="LLaVA-Bench (in the wild)",
            homepage="https://huggingface.co/datasets/liuhaotian/llava-bench-in-the-wild",
            reader=readers.llava_bench,
            normalize="basic",
            files=tuple(_f("llava_bench", f"{_LB}/{f}") for f in readers.LLAVA_BENCH_FILES),
            manual="the 24 pictures of the HF dataset's images/ folder, as {target}/images/<name>.jpg",
        ),
        Benchmark(
            name="mmvet",
            title="MM-Vet",
            homepage="https://github.com/yuweihao/MM-Vet",
            reader=readers.mmvet,
            normalize="basic",
            files=(
                _f(
                    "mmvet",
                    "https://github.com/yuweihao/MM-Vet/releases/download/v1/mm-vet.zip",
                    archive=True,
                ),
            ),
        ),
    )
}
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
