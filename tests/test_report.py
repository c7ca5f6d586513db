"""report: the HTML report of a built mix: sections, sources, thumbnails, boxes in the padded-square
frame, no network reference, size, determinism, the command, and (where Chromium is installed) a
headless browser load with no console message and a non-blank screenshot."""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import datamix.report as report
from datamix.build import build, import_llava
from datamix.formats import KNOWN_PROMPTS, REG_PROMPT, box_text
from datamix.lint import lint_path
from datamix.normalize import normalize
from datamix.report import (
    BOX_COLORS,
    BOX_WIDTH,
    PAD_COLOR,
    THUMB_SIDE,
    ReportError,
    padded_square_thumbnail,
    region_boxes,
    render_report,
    report_command,
    sample_rows,
    write_report,
)
from datamix.schema import Region
from datamix.synth import synth

SECTIONS = ("composition", "prompts", "lint", "samples", "provenance")
CHROMIUM = Path("/usr/bin/chromium")
_DATA_URI = re.compile(r'src="data:(image/(?:jpeg|png));base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def demo_mix(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-root")
    synth(root, scale="tiny", seed=0)
    assert not [r for r in normalize(root=root) if "error" in r]
    recipe = (Path(__file__).resolve().parent / "fixtures" / "recipes" / "every_source.yaml").read_text()
    (root / "demo.yaml").write_text(recipe)
    build(root / "demo.yaml", root, out=root / "mix")
    return root / "mix"


@pytest.fixture(scope="module")
def demo_report(demo_mix, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = write_report(demo_mix, out, per_source=12, seed=0)
    assert result.out == out and result.bytes == out.stat().st_size
    return out


# a 200 x 100 grey image: padded to a 200 x 200 square it sits 50 px down; a box at (50, 20) size 60 x 40
IMG_W, IMG_H, GREY = 200, 100, (200, 200, 200)
REGION = Region(region_id="1", phrase="a box", x=50, y=20, w=60, h=40)


@pytest.fixture(scope="module")
def imported_mix(tmp_path_factory) -> Path:
    """An imported LLaVA JSON: one region record with a known box, one record with a near-miss prompt."""
    base = tmp_path_factory.mktemp("imported")
    images = base / "images"
    rel = "vg/VG_100K/1.jpg"
    (images / rel).parent.mkdir(parents=True)
    Image.new("RGB", (IMG_W, IMG_H), GREY).save(images / rel, quality=95)
    box = box_text(REGION, IMG_W, IMG_H, "padded_square")
    assert box == "[0.25, 0.35, 0.55, 0.55]"
    records = [
        {
            "id": "region-1",
            "image": rel,
            "conversations": [
                {"from": "human", "value": "<image>\n" + REG_PROMPT.format(box=box)},
                {"from": "gpt", "value": "A box."},
            ],
        },
        {
            "id": "text-1",
            "conversations": [
                {
                    "from": "human",
                    "value": "What is two plus two?\nAnswer the question using a single word or phrase",
                },
                {"from": "gpt", "value": "Four"},
            ],
        },
    ]
    path = base / "llava.json"
    path.write_text(json.dumps(records))
    import_llava(path, images, base / "mix")
    return base / "mix"


def _cards(page: str) -> dict[str, str]:
    """Card element id -> its HTML."""
    parts = page.split('<article class="card" id="')[1:]
    return {p.split('"', 1)[0]: p.split("</article>", 1)[0] for p in parts}


def _decode(uri_b64: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(uri_b64, validate=True)))
    im.load()
    return im


def _close(a, b, tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- content --------------------------------------------------------------------------------------------


def test_report_has_every_section_source_and_prompt(demo_mix, demo_report):
    page = demo_report.read_text(encoding="utf-8")
    manifest = pl.read_parquet(demo_mix / "manifest.parquet")
    summary = json.loads((demo_mix / "summary.json").read_text())
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
        assert f'href="#{section}"' in page  # in the navigation
    counts = dict(manifest.group_by("source").len().iter_rows())
    assert len(counts) == 10
    cards = _cards(page)
    for source, n in counts.items():
        assert f'href="#src-{source}"' in page  # composition table row
        assert f'<div class="group" id="src-{source}">' in page
        shown = [c for c in cards.values() if f'data-source="{source}"' in c]
        assert len(shown) == min(12, n)
    assert len(cards) == sum(min(12, n) for n in counts.values())
    for prompt in KNOWN_PROMPTS:
        assert html.escape(prompt) in page
    assert summary["recipe_hash"] in page and f"{manifest.height:,} samples" in page
    assert "Clean: " in page  # the demo mix lints clean
    assert "no token counts" in page  # built without a tokenizer
    # assistant turns are marked for highlighting, human turns apart
    assert '<div class="turn gpt">' in page and '<div class="turn human">' in page


def test_thumbnails_and_plots_decode(demo_report):
    page = demo_report.read_text(encoding="utf-8")
    found = _DATA_URI.findall(page)
    jpegs = [b for mime, b in found if mime == "image/jpeg"]
    pngs = [b for mime, b in found if mime == "image/png"]
    assert len(pngs) == 3  # counts, turns, lengths
    assert len(jpegs) == page.count('<div class="thumb"><img')  # every image sample has its thumbnail
    assert len(jpegs) > 50
    for b in jpegs:
        im = _decode(b)
        assert im.format == "JPEG" and im.size == (THUMB_SIDE, THUMB_SIDE)
    for b in pngs:
        assert _decode(b).format == "PNG"


def test_no_network_reference_and_size(demo_report):
    page = demo_report.read_text(encoding="utf-8")
    assert demo_report.stat().st_size < 20 * 1024 * 1024
    refs = re.findall(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)""", page, re.I)
    assert refs
    for ref in refs:
        assert ref.startswith(("data:", "#")), ref
    assert not re.search(r"https?://", page)  # not even in text: the demo's recipe holds no URL
    assert not re.search(r"url\(|@import|<link\b|<iframe\b", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_is_deterministic(demo_mix, demo_report):
    again, _ = render_report(demo_mix, per_source=12, seed=0)
    assert again == demo_report.read_text(encoding="utf-8")
    manifest = pl.read_parquet(demo_mix / "manifest.parquet")
    sources = sorted(set(manifest["source"]))
    a = sample_rows(manifest, sources, 3, seed=0)
    assert a == sample_rows(manifest, sources, 3, seed=0)
    assert a != sample_rows(manifest, sources, 3, seed=1)
    available = manifest.group_by("source").len()
    for source, rows in a.items():
        n = available.filter(pl.col("source") == source)["len"].item()
        assert rows == sorted(rows) and len(rows) == min(3, n)
        assert set(manifest[rows]["source"]) == {source}


def test_token_lengths_and_truncation(demo_mix, tmp_path):
    mix = tmp_path / "mix"
    shutil.copytree(demo_mix, mix)
    manifest = pl.read_parquet(mix / "manifest.parquet")
    manifest = manifest.with_columns((pl.col("n_text_chars") * 2).cast(pl.Int32).alias("n_tokens"))
    manifest.write_parquet(mix / "manifest.parquet")
    over = int((manifest["n_tokens"] > 2048).sum())
    assert over > 0
    page, info = render_report(mix, per_source=2)
    assert info["tokens"] is True
    assert f"{over:,} samples are longer and would be truncated" in page
    assert "&gt; 2048 tokens" in page  # the table column


# --- boxes ----------------------------------------------------------------------------------------------


def test_boxes_are_drawn_in_the_padded_square_frame():
    box = box_text(REGION, IMG_W, IMG_H, "padded_square")
    conv = [
        {"from": "human", "value": "<image>\n" + REG_PROMPT.format(box=box)},
        {"from": "gpt", "value": "A box."},
        {
            "from": "human",
            "value": "Please provide the bounding box coordinate of the region this sentence describes: x.",
        },
        {"from": "gpt", "value": "[0.1, 0.3, 0.2, 0.4]"},
    ]
    boxes = region_boxes(conv)
    assert [(b.turn, b.task, b.text) for b in boxes] == [(0, "reg", box), (3, "rec", "[0.1, 0.3, 0.2, 0.4]")]
    red = BOX_COLORS[0]
    thumb = padded_square_thumbnail(Image.new("RGB", (IMG_W, IMG_H), GREY), [(boxes[0].coords, red)])
    assert thumb.size == (THUMB_SIDE, THUMB_SIDE)
    s = THUMB_SIDE / max(IMG_W, IMG_H)
    # padded frame: x 50..110, y 20 + 50 .. 60 + 50 in the 200 x 200 square
    x1, y1, x2, y2 = round(50 * s), round(70 * s), round(110 * s), round(110 * s)
    mid_x, mid_y = (x1 + x2) // 2, (y1 + y2) // 2
    assert thumb.getpixel((x1 + 1, mid_y)) == red  # left edge
    assert thumb.getpixel((x2 - 1, mid_y)) == red  # right edge
    assert thumb.getpixel((mid_x, y1 + 1)) == red  # top edge
    assert thumb.getpixel((mid_x, y2 - 1)) == red  # bottom edge
    assert thumb.getpixel((mid_x, mid_y)) == GREY  # inside
    assert thumb.getpixel((mid_x, y1 - BOX_WIDTH - 2)) == GREY  # just above the box: image, not box
    # where the box would be without padding (y 20..60 of 100, stretched): no outline there
    assert thumb.getpixel((mid_x, round(20 / 100 * THUMB_SIDE))) != red
    # the padding: above and below the image, LLaVA's background colour
    assert thumb.getpixel((mid_x, 5)) == PAD_COLOR and thumb.getpixel((mid_x, THUMB_SIDE - 5)) == PAD_COLOR
    # the same box given in the `original` frame lands on the same pixels
    orig = box_text(REGION, IMG_W, IMG_H, "original")
    ox = [float(v) for v in orig.strip("[]").split(",")]
    same = padded_square_thumbnail(
        Image.new("RGB", (IMG_W, IMG_H), GREY), [(tuple(ox), red)], frame="original"
    )
    assert same.getpixel((x1 + 1, mid_y)) == red and same.getpixel((mid_x, y1 + 1)) == red


def test_report_draws_the_known_box_on_the_thumbnail(imported_mix, tmp_path):
    out = tmp_path / "r.html"
    result = write_report(imported_mix, out, per_source=12)
    page = out.read_text(encoding="utf-8")
    cards = _cards(page)
    region = next(c for c in cards.values() if "region-1" in c)
    ((mime, b64),) = _DATA_URI.findall(region)
    thumb = _decode(b64).convert("RGB")
    s = THUMB_SIDE / max(IMG_W, IMG_H)
    x1, y1, x2, y2 = round(50 * s), round(70 * s), round(110 * s), round(110 * s)
    mid_x, mid_y = (x1 + x2) // 2, (y1 + y2) // 2
    red = BOX_COLORS[0]
    for xy in ((x1 + 1, mid_y), (x2 - 1, mid_y), (mid_x, y1 + 1), (mid_x, y2 - 1)):
        assert _close(thumb.getpixel(xy), red), (xy, thumb.getpixel(xy))
    assert _close(thumb.getpixel((mid_x, mid_y)), GREY, 12)
    assert _close(thumb.getpixel((mid_x, 5)), PAD_COLOR, 12)
    # the box text is marked in the colour of its outline
    assert f'<mark class="box" style="border-color:rgb{red}">[0.25, 0.35, 0.55, 0.55]</mark>' in region
    assert result.samples == 2 and result.violations >= 1


def test_lint_violations_link_to_their_samples(imported_mix, tmp_path):
    page, info = render_report(imported_mix, per_source=0)
    assert info["violations"] >= 1
    lint = page.split('<section id="lint">', 1)[1].split("</section>", 1)[0]
    assert "prompt/near-miss" in lint
    assert 'href="#lint-import-1"' in lint  # key of the second record
    cards = _cards(page)
    assert set(cards) == {"lint-import-1"}  # per_source 0: only the flagged sample
    assert "prompt/near-miss" in cards["lint-import-1"]
    assert "1 samples hold a near-miss" in page


def test_provenance_of_an_import(imported_mix):
    page, _ = render_report(imported_mix, per_source=1)
    prov = page.split('<section id="provenance">', 1)[1]
    summary = json.loads((imported_mix / "summary.json").read_text())
    assert summary["input_sha256"] in prov and "imported from" in prov


# --- errors and the command -----------------------------------------------------------------------------


def test_not_a_mix_and_missing_matplotlib(tmp_path, demo_mix, monkeypatch):
    with pytest.raises(ReportError, match="no manifest.parquet"):
        render_report(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportError, match=r"datamix\[report\]"):
        render_report(demo_mix)


def test_command(imported_mix, tmp_path):
    app = typer.Typer()
    app.command()(report_command)
    out = tmp_path / "sub" / "report.html"
    res = CliRunner().invoke(app, [str(imported_mix), "--out", str(out), "--per-source", "3", "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and res.output.count("\n") == 1 and res.output.startswith("report: 2 samples")
    bad = CliRunner().invoke(app, [str(tmp_path / "nope"), "--out", str(tmp_path / "x.html")])
    assert bad.exit_code == 2 and not (tmp_path / "x.html").exists()


# --- headless browser -----------------------------------------------------------------------------------

_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def _chromium(tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console(stderr: str) -> list[str]:
    return [m.group(1) for line in stderr.splitlines() if (m := _CONSOLE.search(line))]


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Chromium (Debian: apt-get install chromium chromium-driver)"
)
def test_headless_chromium_loads_the_report(demo_report, tmp_path):
    # the harness sees console messages: a page that logs one, and throws, is caught
    probe = tmp_path / "probe.html"
    probe.write_text("<!DOCTYPE html><script>console.error('probe-error'); nope();</script>")
    seen = _console(_chromium(tmp_path, probe.as_uri(), "--dump-dom").stderr)
    assert any("probe-error" in m for m in seen) and any("nope" in m for m in seen), seen

    page = demo_report.read_text(encoding="utf-8")
    word = "triangle"
    expected = sum(word in html.unescape(re.sub(r"<[^>]+>", "", c)).lower() for c in _cards(page).values())
    assert 0 < expected < len(_cards(page))
    run = _chromium(tmp_path, demo_report.as_uri() + f"?q={word}", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console(run.stderr) == []
    body = re.search(r"<body([^>]*)>", run.stdout).group(1)
    assert 'data-ready="1"' in body  # the script ran to its end
    assert f'data-shown="{expected}"' in body  # the ?q= filter applied
    assert f"{expected} of {len(_cards(page))} samples" in run.stdout

    shot = tmp_path / "shot.png"
    run = _chromium(
        tmp_path, demo_report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars"
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert _console(run.stderr) == []
    im = Image.open(shot).convert("RGB")
    assert im.size == (1280, 2000)
    colors = im.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100  # text, tables and plots, not a blank page
    white = max(colors)[0] / (im.width * im.height)
    assert white < 0.97


def test_prompt_counts_come_from_the_lint_pass(demo_mix, monkeypatch):
    shards = sorted(set(pl.read_parquet(demo_mix / "manifest.parquet")["shard"].to_list()))
    alone = report.scan_prompts(demo_mix, shards)
    via_lint = report._PromptStats()
    lint_path(demo_mix, on_record=functools.partial(report._visit, via_lint))
    assert via_lint == alone and alone.records == pl.read_parquet(demo_mix / "manifest.parquet").height
    assert sum(alone.samples[KNOWN_PROMPTS[0]].values()) > 0

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the shards were read a second time")

    monkeypatch.setattr(report, "scan_prompts", no_second_pass)
    page, info = render_report(demo_mix, per_source=1)
    assert info["samples"] == alone.records and "Clean: " in page


def test_prompts_still_counted_when_lint_cannot_read_a_shard(demo_mix, tmp_path):
    mix = tmp_path / "mix"
    shutil.copytree(demo_mix, mix)
    shards = sorted((mix / "shards").glob("*.tar"))
    shards[-1].write_bytes(b"not a tar" * 100)
    page, info = render_report(mix, per_source=1)
    assert "lint: n/a" in page and "unreadable tar shard" in page
    assert (
        '<p class="note bad">1 shard members could not be read' in page
    )  # the fallback pass counted the rest
