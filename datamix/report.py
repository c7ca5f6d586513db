"""`datamix report`: one self-contained HTML file that shows what is in a built mix.

Input: a mix folder as written by `datamix build` or `datamix import-llava` (`manifest.parquet`,
`summary.json`, `shards/*.tar`; docs/architecture.md 4.3), read through `datamix.mixio.MixReader`.
Output: one HTML file that opens offline in any browser: plots and thumbnails are `data:` URIs, CSS and JavaScript are inline, and a
Content-Security-Policy forbids the page any fetch at all. Sections (element ids in brackets):

- Composition (`composition`): samples per source against the recipe's expected counts, image vs
  text-only, held-out eval counts, turns per conversation and, when the manifest has `n_tokens`, the
  sequence lengths per source with the `max_tokens` limit (2048) marked and the samples over it counted
  (characters instead, and said so, when it has none).
- Prompt formats (`prompts`): every known format prompt (`datamix.formats.KNOWN_PROMPTS`) and how many
  samples and human turns of each source use it; the samples with none.
- Lint (`lint`): `datamix.lint.lint_path` over the mix, counted per rule, with the offending samples
  rendered in the browser and linked from the table.
- Samples (`samples`): a seeded random sample per source: the image as the model sees it (padded to a
  square with LLaVA's background colour, `datamix.imaging.PAD_COLOR`, downscaled) with the boxes of region prompts drawn
  on it, and the conversation with the assistant turns highlighted; a text filter (plain JavaScript; it
  also reads `?q=` and `?source=` from the page address).
- Provenance (`provenance`): recipe, seed, hashes, versions and raw inputs from `summary.json`.

Determinism: the same mix with the same `seed` and `per_source` gives byte-identical HTML (no clock;
samples drawn with `datamix.formats.derive_seed(seed, source, "report")`; PNGs written without
software metadata). Plots need matplotlib (the `report` extra); without it `ReportError` says so.
"""

from __future__ import annotations

import base64
import functools
import html
import importlib.util
import io
import json
import logging
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import typer
from PIL import Image, ImageDraw

from datamix import __version__
from datamix.errors import UsageError
from datamix.fileio import atomic_path
from datamix.formats import IMAGE_TOKEN, KNOWN_PROMPTS, derive_seed
from datamix.imaging import PAD_COLOR, ImageError, decode, expand2square
from datamix.inspect import manifest_frame
from datamix.lint import UNREADABLE, LintInputError, lint_path
from datamix.llava_json import REGION_REC, REGION_REG, SOURCES
from datamix.mixio import MixIOError, MixReader
from datamix.schema import IMAGE_EXT, JSON_EXT, SHORT_ANSWER_PROMPT, member_name

log = logging.getLogger(__name__)

#: LLaVA-1.5's `model_max_length`.
MAX_TOKENS = 2048
THUMB_SIDE = 256
BOX_WIDTH = 3
#: Box outline colours, in order of first appearance in a conversation (saturated, tell apart on photos).
BOX_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (0, 130, 200),
    (60, 180, 75),
    (245, 130, 48),
    (145, 30, 180),
    (240, 50, 230),
    (0, 128, 128),
    (170, 110, 40),
    (128, 0, 0),
    (0, 0, 128),
)
#: Above this the report is unwieldy to share; a warning suggests a smaller --per-source.
SIZE_WARNING_BYTES = 20 * 1024 * 1024
#: At most this many lint violations listed, and this many flagged samples rendered.
MAX_LINT_ROWS = 500
MAX_LINT_SAMPLES = 48

_PROMPT_LABELS = {
    SHORT_ANSWER_PROMPT: "short answer (VQAv2, GQA, OK-VQA, OCR-VQA)",
    "Answer with the option's letter from the given choices directly.": "option letter (A-OKVQA)",
    "Provide a one-sentence caption for the provided image.": "caption (TextCaps)",
    "Reference OCR token:": "OCR tokens (TextCaps)",
    REGION_REG: "region description, REG (VG, RefCOCO)",
    REGION_REC: "bounding box, REC (VG, RefCOCO)",
}

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX_RE = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")


class ReportError(UsageError):
    """The report cannot be made (not a mix folder, unreadable manifest, matplotlib missing)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """A box of a region prompt: the REG prompt's box (on a human turn) or a REC answer (gpt turn)."""

    turn: int
    task: str  # "reg" | "rec"
    text: str  # as written in the turn, e.g. "[0.1, 0.2, 0.5, 0.6]"
    coords: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportResult:
    out: Path
    bytes: int
    samples: int
    sources: tuple[str, ...]
    shown: int
    violations: int
    tokens: bool


@dataclass(slots=True)
class _PromptStats:
    """Samples and human turns per (prompt, source); samples with no known prompt per source."""

    samples: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    turns: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    none: Counter[str] = field(default_factory=Counter)
    records: int = 0
    unreadable: list[str] = field(default_factory=list)


# --- boxes and thumbnails -------------------------------------------------------------------------------


def region_boxes(conversations: Sequence[Any]) -> list[Box]:
    """The boxes of a conversation's region prompts, in turn order: the box of every REG prompt
    (`Please provide a short description for this region: [x1, y1, x2, y2].`) and every REC answer (the
    gpt turn after `Please provide the bounding box coordinate ...`). Malformed turns are skipped."""
    out: list[Box] = []
    turns = [t if isinstance(t, dict) else {} for t in conversations]
    for i, t in enumerate(turns):
        value = t.get("value")
        if t.get("from") != "human" or not isinstance(value, str):
            continue
        start = value.find(REGION_REG)
        while start >= 0:
            m = _BOX_RE.match(value, start + len(REGION_REG) + 1)  # one space after the colon
            if m:
                out.append(Box(turn=i, task="reg", text=m.group(0), coords=_coords(m)))
            start = value.find(REGION_REG, start + 1)
        if REGION_REC in value and i + 1 < len(turns) and turns[i + 1].get("from") == "gpt":
            answer = turns[i + 1].get("value")
            m = _BOX_RE.fullmatch(answer.strip()) if isinstance(answer, str) else None
            if m:
                out.append(Box(turn=i + 1, task="rec", text=m.group(0), coords=_coords(m)))
    return out


def _coords(m: re.Match[str]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(g) for g in m.groups())
    return (x1, y1, x2, y2)


def box_colors(boxes: Iterable[Box]) -> dict[str, tuple[int, int, int]]:
    """A colour per distinct box text, in order of first appearance (cycling through `BOX_COLORS`)."""
    colors: dict[str, tuple[int, int, int]] = {}
    for b in boxes:
        if b.text not in colors:
            colors[b.text] = BOX_COLORS[len(colors) % len(BOX_COLORS)]
    return colors


def padded_square_thumbnail(
    image: Image.Image,
    boxes: Sequence[tuple[tuple[float, float, float, float], tuple[int, int, int]]] = (),
    *,
    side: int = THUMB_SIDE,
    frame: str = "padded_square",
) -> Image.Image:
    """The image as LLaVA feeds it to the model (pasted centred on a max(w, h) square of `PAD_COLOR`,
    offset `(max - min) // 2` on the short axis: `expand2square` in llava/train/train.py), resized to
    `side` x `side`, with each `(coords, colour)` box outlined.

    `coords` are `[x1, y1, x2, y2]` in [0, 1] of the frame named by `frame`: `padded_square` (the
    release's, `datamix.formats.box_text`) or `original` (x / width, y / height), mapped onto the square.
    """
    rgb = image.convert("RGB")
    w, h = rgb.size
    big = max(w, h)
    dx, dy = (big - w) // 2, (big - h) // 2
    canvas = expand2square(rgb, PAD_COLOR)
    thumb = canvas.resize((side, side), Image.Resampling.LANCZOS) if big != side else canvas
    draw = ImageDraw.Draw(thumb)
    for (x1, y1, x2, y2), color in boxes:
        if frame == "original":
            x1, x2 = (x1 * w + dx) / big, (x2 * w + dx) / big
            y1, y2 = (y1 * h + dy) / big, (y2 * h + dy) / big
        elif frame != "padded_square":
            raise ValueError(f"unknown box frame {frame!r}")
        px = [min(side - 1, max(0, round(v * side))) for v in (x1, y1, x2, y2)]
        if px[0] > px[2] or px[1] > px[3]:
            continue  # lint reports boxes out of order; nothing sensible to draw
        draw.rectangle(px, outline=color, width=BOX_WIDTH)
    return thumb


def _data_uri(image: Image.Image, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    if fmt == "JPEG":
        # full-resolution chroma keeps the thin box outlines their colour
        image.save(buf, format="JPEG", quality=85, subsampling=0, optimize=True)
        mime = "image/jpeg"
    else:
        image.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- reading the mix ------------------------------------------------------------------------------------


def _load(mix_dir: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    if not mix_dir.is_dir():
        raise ReportError(f"{mix_dir}: no such folder (expected a built mix: manifest.parquet + shards/)")
    manifest = mix_dir / "manifest.parquet"
    if not manifest.is_file():
        raise ReportError(f"{mix_dir}: no manifest.parquet (is it a built mix?)")
    df = manifest_frame(mix_dir, ReportError)
    missing = {"key", "source", "image", "n_turns", "shard"} - set(df.columns)
    if missing:
        raise ReportError(f"{manifest}: manifest lacks column(s) {sorted(missing)}")
    for col, dtype in (("n_tokens", pl.Int64), ("n_text_chars", pl.Int64), ("id", pl.Utf8)):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
    df = df.with_row_index("row")
    summary: dict[str, Any] = {}
    path = mix_dir / "summary.json"
    if path.is_file():
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable summary (%s); provenance left empty", path, e)
    else:
        log.warning("%s: no summary.json; provenance and expected counts left empty", mix_dir)
    return df, summary


def _source_order(names: Iterable[str]) -> list[str]:
    """Registry order (docs/architecture.md#source-names), then any other name (e.g. `unknown`) alphabetically."""
    names = set(names)
    return [s for s in SOURCES if s in names] + sorted(names - set(SOURCES))


def _human_values(record: dict[str, Any]) -> list[str]:
    convs = record.get("conversations")
    if not isinstance(convs, list):
        return []
    return [
        t["value"]
        for t in convs
        if isinstance(t, dict) and t.get("from") == "human" and isinstance(t.get("value"), str)
    ]


def _prompt_uses(value: str, prompt: str) -> bool:
    if prompt.endswith(":"):  # starts a line and takes an argument
        return any(line.replace(IMAGE_TOKEN, "").lstrip().startswith(prompt) for line in value.split("\n"))
    return prompt in value


def scan_prompts(mix_dir: Path, shards: Iterable[str]) -> _PromptStats:
    """Count the known format prompts over every sample of the mix (one pass over the shards' json)."""
    stats = _PromptStats()
    decoder = msgspec.json.Decoder()
    with MixReader(mix_dir) as reader:
        for shard in shards:
            try:
                path = reader.shard_path(shard)
                for member in reader.members(path):
                    if member.ext != JSON_EXT:
                        continue
                    try:
                        record = decoder.decode(member.data)
                    except msgspec.DecodeError:
                        record = UNREADABLE
                    _visit(stats, f"{shard}:{member.name}", record)
            except MixIOError as e:
                log.warning("%s: cannot read shard (%s); its prompts are not counted", shard, e.message)
                stats.unreadable.append(shard)
            log.debug("prompts: %s scanned, %d records so far", shard, stats.records)
    return stats


def _visit(stats: _PromptStats, where: str, record: Any) -> None:
    """Count one sample record's prompts (a `lint_path` record visitor); note it when unreadable."""
    if record is UNREADABLE or not isinstance(record, dict):
        stats.unreadable.append(where)
    else:
        _count(stats, record)


def _count(stats: _PromptStats, record: dict[str, Any]) -> None:
    source = str(record.get("source") or "unknown")
    values = _human_values(record)
    stats.records += 1
    used = False
    for prompt in KNOWN_PROMPTS:
        n = sum(_prompt_uses(v, prompt) for v in values)
        if n:
            stats.samples[prompt][source] += 1
            stats.turns[prompt][source] += n
            used = True
    if not used:
        stats.none[source] += 1


def sample_rows(df: pl.DataFrame, sources: Sequence[str], per_source: int, seed: int) -> dict[str, list[int]]:
    """Manifest row numbers shown per source: `per_source` drawn without replacement by a generator
    seeded from (seed, source) (`derive_seed(seed, source, "report")`), kept in manifest order."""
    if "row" not in df.columns:
        df = df.with_row_index("row")
    out = {}
    for source in sources:
        rows = df.filter(pl.col("source") == source)["row"].to_list()
        rng = random.Random(derive_seed(seed, source, "report"))
        k = min(per_source, len(rows))
        out[source] = sorted(rng.sample(rows, k)) if k else []
    return out


# --- plots ----------------------------------------------------------------------------------------------


def _require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise ReportError(
            "the report draws its plots with matplotlib, which is not installed: "
            "pip install 'datamix[report]' (or pip install matplotlib)"
        )


def _figure(width: float, height: float, *, left: float = 1.3, bottom: float = 0.6, top: float = 0.2) -> Any:
    """A figure with fixed margins in inches (a layout engine costs more than the drawing here)."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(
        left=left / width, right=1 - 0.25 / width, bottom=bottom / height, top=1 - top / height
    )
    return fig


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plot_counts(rows: list[dict[str, Any]]) -> str:
    names = [r["source"] for r in rows][::-1]
    image = [r["samples"] - r["text_only"] for r in rows][::-1]
    text = [r["text_only"] for r in rows][::-1]
    expected = [r["expected"] for r in rows][::-1]
    fig = _figure(8.5, 0.42 * len(names) + 1.3)
    ax = fig.subplots()
    y = list(range(len(names)))
    ax.barh(y, image, color="#4C72B0", label="image samples")
    ax.barh(y, text, left=image, color="#DD8452", label="text-only samples")
    have = [(yy, e) for yy, e in zip(y, expected, strict=True) if e is not None]
    if have:
        ax.scatter(
            [e for _, e in have],
            [yy for yy, _ in have],
            marker="|",
            s=400,
            linewidths=2.5,
            color="black",
            zorder=3,
            label="expected (recipe)",
        )
    top = max([i + t for i, t in zip(image, text, strict=True)] + [e for _, e in have] + [1])
    for yy, i, t in zip(y, image, text, strict=True):
        ax.text(i + t + top * 0.01, yy, f"{i + t:,}", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("samples")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _plot_ranges(stats: list[dict[str, Any]], xlabel: str) -> str:
    """Per source: min-max line, 25-75% bar, median tick (quantiles precomputed with polars)."""
    stats = stats[::-1]
    fig = _figure(8.5, 0.42 * len(stats) + 1.3)
    ax = fig.subplots()
    for y, s in enumerate(stats):
        if s["min"] is None:
            continue
        ax.hlines(y, s["min"], s["max"], color="#888888", linewidth=1)
        ax.barh(y, max(s["p75"] - s["p25"], 0.05), left=s["p25"], height=0.5, color="#4C72B0")
        ax.vlines(s["median"], y - 0.3, y + 0.3, color="black", linewidth=2)
    ax.set_yticks(range(len(stats)), [s["source"] for s in stats])
    ax.set_xlabel(xlabel)
    ax.set_xlim(left=0)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _plot_lengths(
    df: pl.DataFrame, sources: Sequence[str], column: str, limit: int | None, label: str
) -> str:
    """Small multiples: one histogram per source (its own range, the limit always in it); the limit as a
    red dashed line with the count beyond it in the title."""
    values = {
        s: [v for v in df.filter(pl.col("source") == s)[column].to_list() if v is not None] for s in sources
    }
    ncols = 3
    nrows = max(1, math.ceil(len(sources) / ncols))
    fig = _figure(10, 1.9 * nrows + 0.5, left=0.5, bottom=0.55, top=0.3)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"hspace": 0.55, "wspace": 0.25})
    for i, ax in enumerate(axes.flat):
        if i >= len(sources):
            ax.set_visible(False)
            continue
        s = sources[i]
        v = values[s]
        hi = max([*v, 1]) * 1.05
        if limit is not None:
            hi = max(hi, limit * 1.1)  # the limit always in view
        if v:
            ax.hist(v, bins=[hi * i / 40 for i in range(41)], color="#4C72B0")
        ax.set_xlim(0, hi)
        title = f"{s} (n={len(v):,})"
        if limit is not None:
            ax.axvline(limit, color="#C44E52", linestyle="--", linewidth=1.5)
            over = sum(x > limit for x in v)
            title += f", {over:,} > {limit}"
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.supxlabel(label, fontsize=9, y=0.01, va="bottom")
    return _png(fig)


# --- statistics -----------------------------------------------------------------------------------------


def _per_source(
    df: pl.DataFrame, summary: dict[str, Any], sources: Sequence[str], max_tokens: int
) -> list[dict[str, Any]]:
    info = summary.get("sources") or {}
    agg = {
        r["source"]: r
        for r in df.group_by("source")
        .agg(
            pl.len().alias("samples"),
            pl.col("image").is_null().sum().alias("text_only"),
            pl.col("n_turns").mean().alias("turns_mean"),
            pl.col("n_turns").median().alias("turns_median"),
            pl.col("n_turns").max().alias("turns_max"),
            pl.col("n_text_chars").median().alias("chars_median"),
            pl.col("n_tokens").median().alias("tokens_median"),
            pl.col("n_tokens").quantile(0.95, "nearest").alias("tokens_p95"),
            pl.col("n_tokens").max().alias("tokens_max"),
            (pl.col("n_tokens") > max_tokens).sum().alias("over"),
        )
        .to_dicts()
    }
    rows = []
    for s in sources:
        r = dict(agg.get(s) or {"samples": 0, "text_only": 0})
        r["source"] = s
        s_info = info.get(s)
        meta = s_info if isinstance(s_info, dict) else {}
        r["expected"] = meta.get("expected")
        r["eval"] = meta.get("eval")
        rows.append(r)
    return rows


def _num(stat: Any) -> float:
    """`float(stat)` for a statistic (min, max, median, quantile) of a non-empty, null-free numeric
    column: a number, though polars types it as any Python literal or None."""
    return float(stat)


def _quantiles(df: pl.DataFrame, sources: Sequence[str], column: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in sources:
        col = df.filter(pl.col("source") == s)[column].drop_nulls()
        if col.len() == 0:
            out.append({"source": s, "min": None})
            continue
        out.append(
            {
                "source": s,
                "min": _num(col.min()),
                "max": _num(col.max()),
                "median": _num(col.median()),
                "p25": _num(col.quantile(0.25, "linear")),
                "p75": _num(col.quantile(0.75, "linear")),
            }
        )
    return out


# --- HTML -----------------------------------------------------------------------------------------------

_e = html.escape


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v.is_integer():
            return f"{int(v):,}"
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _e(str(v))


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table; cells are HTML already (escape them before)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def _img(uri: str, alt: str) -> str:
    return f'<img class="plot" alt="{_e(alt)}" src="{uri}">'


def _composition(
    df: pl.DataFrame, rows: list[dict[str, Any]], sources: Sequence[str], max_tokens: int
) -> tuple[str, bool]:
    total = df.height
    text_only = int(df["image"].is_null().sum())
    has_tokens = df["n_tokens"].null_count() < total if total else False
    has_expected = any(r["expected"] is not None for r in rows)
    has_eval = any(r["eval"] for r in rows)
    headers = ["source", "samples"]
    headers += ["expected", "Δ"] if has_expected else []
    headers += ["eval held out"] if has_eval else []
    headers += ["text-only", "turns mean", "turns median", "turns max", "chars median"]
    headers += (
        ["tokens median", "tokens p95", "tokens max", f"&gt; {max_tokens} tokens"] if has_tokens else []
    )
    body = []
    for r in rows:
        n = r["samples"]
        cells = [f'<a href="#src-{_e(r["source"])}">{_e(r["source"])}</a>', _fmt(n)]
        if has_expected:
            e = r["expected"]
            delta = "" if e is None else (f'<span class="{"bad" if n != e else "ok"}">{n - e:+,}</span>')
            cells += [_fmt(e), delta]
        if has_eval:
            cells.append(_fmt(r["eval"]))
        share = f"{r['text_only'] / n:.1%}" if n else "–"
        cells += [
            f"{_fmt(r['text_only'])} ({share})",
            _fmt(r.get("turns_mean"), 2),
            _fmt(r.get("turns_median")),
            _fmt(r.get("turns_max")),
            _fmt(r.get("chars_median")),
        ]
        if has_tokens:
            over = r.get("over") or 0
            cells += [
                _fmt(r.get("tokens_median")),
                _fmt(r.get("tokens_p95")),
                _fmt(r.get("tokens_max")),
                f'<span class="{"bad" if over else "ok"}">{over:,}</span>',
            ]
        body.append(cells)
    share_all = f"{text_only / total:.1%}" if total else "–"
    parts = [
        '<section id="composition"><h2>Composition</h2>',
        f'<p class="lead">{total:,} samples from {len(sources)} sources; {text_only:,} text-only ({share_all}).</p>',
        _table(headers, body, "num"),
        "<h3>Samples per source</h3>",
        _img(
            _plot_counts(rows),
            "samples per source, image and text-only, against the recipe's expected counts",
        ),
    ]
    if not has_expected:
        parts.append(
            '<p class="note">The summary gives no expected counts (no <code>expect</code> block in the '
            "recipe, or an imported file).</p>"
        )
    parts += [
        "<h3>Turns per conversation</h3>",
        '<p class="note">Turns counted human and gpt alike; line: min to max, bar: 25–75%, tick: median.</p>',
        _img(
            _plot_ranges(_quantiles(df, sources, "n_turns"), "turns per conversation"),
            "turns per conversation",
        ),
        "<h3>Sequence lengths</h3>",
    ]
    if has_tokens:
        over = int((df["n_tokens"] > max_tokens).sum())
        parts += [
            f'<p class="note">Text tokens per sample as recorded in the manifest (<code>n_tokens</code>); the '
            f"dashed line is the {max_tokens}-token limit: {over:,} samples are longer and would be truncated.</p>",
            _img(
                _plot_lengths(df, sources, "n_tokens", max_tokens, "tokens per sample"),
                "tokens per sample, per source",
            ),
        ]
    else:
        parts += [
            '<p class="note">The manifest has no token counts (build with <code>--tokenizer</code> to get them), '
            f"so the {max_tokens}-token limit cannot be checked; characters per sample shown instead.</p>",
            _img(
                _plot_lengths(df, sources, "n_text_chars", None, "characters per sample"),
                "characters per sample, per source",
            ),
        ]
    parts.append("</section>")
    return "\n".join(parts), bool(has_tokens)


def _prompts(stats: _PromptStats, sources: Sequence[str], near_miss_samples: int) -> str:
    seen = _source_order({s for c in stats.samples.values() for s in c} | set(stats.none))
    cols = [s for s in sources if s in seen] + [s for s in seen if s not in sources]
    headers = ["prompt", "samples", "turns"] + [_e(s) for s in cols]
    body = []
    for prompt in KNOWN_PROMPTS:
        samples, turns = stats.samples.get(prompt, Counter()), stats.turns.get(prompt, Counter())
        label = _PROMPT_LABELS.get(prompt, "")
        cell = f"<code>{_e(prompt)}</code>" + (f'<div class="sub">{_e(label)}</div>' if label else "")
        body.append(
            [cell, _fmt(sum(samples.values())), _fmt(sum(turns.values()))]
            + [_fmt(samples[s]) if samples[s] else "" for s in cols]
        )
    body.append(
        [
            '<i>no known format prompt</i><div class="sub">free-form conversations</div>',
            _fmt(sum(stats.none.values())),
            "",
        ]
        + [_fmt(stats.none[s]) if stats.none[s] else "" for s in cols]
    )
    parts = [
        '<section id="prompts"><h2>Prompt formats</h2>',
        f'<p class="lead">Every known format prompt (<code>datamix.formats.KNOWN_PROMPTS</code>) found in the human '
        f"turns of the {stats.records:,} samples: samples using it, turns holding it, and samples per source. "
        f'{near_miss_samples:,} samples hold a near-miss of a prompt (see <a href="#lint">Lint</a>).</p>',
        _table(headers, body, "num prompts"),
    ]
    if stats.unreadable:
        parts.append(
            f'<p class="note bad">{len(stats.unreadable):,} shard members could not be read: '
            f"{_e(', '.join(stats.unreadable[:10]))}</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _lint_section(lint: Any, keys: list[str], flagged: dict[str, str]) -> str:
    from datamix.lint import RULES

    parts = ['<section id="lint"><h2>Lint</h2>']
    if isinstance(lint, str):
        parts += [f'<p class="bad">Lint could not run: {_e(lint)}</p>', "</section>"]
        return "\n".join(parts)
    n = len(lint.violations)
    if not n:
        parts += [
            f'<p class="lead ok">Clean: {lint.checked:,} samples checked, no violation of the '
            f"{len(RULES)} rules (<code>datamix lint</code>).</p>",
            "</section>",
        ]
        return "\n".join(parts)
    counts = lint.counts()
    samples = len({v.index for v in lint.violations})
    parts.append(
        f'<p class="lead bad">{n:,} violations in {samples:,} of {lint.checked:,} samples '
        f"(<code>datamix lint</code>).</p>"
    )
    parts.append(
        _table(
            ["rule", "what it checks", "violations"],
            [[f"<code>{_e(r)}</code>", _e(RULES[r]), _fmt(c)] for r, c in counts.items()],
            "num",
        )
    )
    rows = []
    for v in lint.violations[:MAX_LINT_ROWS]:
        key = keys[v.index] if v.index is not None and 0 <= v.index < len(keys) else None
        where = f'<a href="#{flagged[key]}">{_e(key)}</a>' if key in flagged else _e(key or "–")
        rows.append([where, _e(v.id or "–"), f"<code>{_e(v.rule)}</code>", _e(v.message)])
    parts.append("<h3>Violations</h3>")
    if n > MAX_LINT_ROWS:
        parts.append(
            f'<p class="note">The first {MAX_LINT_ROWS:,} of {n:,}; run <code>datamix lint</code> for all.</p>'
        )
    parts.append(_table(["sample", "id", "rule", "message"], rows, "violations"))
    parts.append("</section>")
    return "\n".join(parts)


_BOX_TEXT_RE = re.compile(r"\[[-\d., ]+\]")


def _turn_html(value: str, colors: dict[str, tuple[int, int, int]]) -> str:
    """Escaped turn text with the drawn boxes marked in their colour."""
    out, pos = [], 0
    for m in _BOX_TEXT_RE.finditer(value):
        color = colors.get(m.group(0))
        if color is None:
            continue
        out.append(_e(value[pos : m.start()]))
        out.append(f'<mark class="box" style="border-color:rgb{color}">{_e(m.group(0))}</mark>')
        pos = m.end()
    out.append(_e(value[pos:]))
    return "".join(out)


def _card(
    anchor: str,
    row: dict[str, Any],
    record: dict[str, Any] | None,
    image: bytes | None,
    frame: str,
    note: str = "",
) -> str:
    key = row["key"]
    convs = record.get("conversations") if isinstance(record, dict) else None
    convs = convs if isinstance(convs, list) else []
    boxes = region_boxes(convs)
    colors = box_colors(boxes)
    if row.get("image") is None:
        thumb = '<div class="thumb none">text-only</div>'
    elif image is None:
        thumb = '<div class="thumb none bad">image missing from the shard</div>'
    else:
        try:
            im = decode(image, alpha="drop")  # the decompression-bomb guard; LLaVA's convert("RGB")
            size = im.size
            pic = padded_square_thumbnail(im, [(b.coords, colors[b.text]) for b in boxes], frame=frame)
            thumb = (
                f'<div class="thumb"><img alt="{_e(row["image"])}" width="{THUMB_SIDE}" height="{THUMB_SIDE}" '
                f'src="{_data_uri(pic)}"><div class="sub">{size[0]}×{size[1]} → padded square'
                f"{f', {len(colors)} box(es)' if colors else ''}</div></div>"
            )
        except (ImageError, OSError, ValueError) as e:
            thumb = f'<div class="thumb none bad">image does not decode: {_e(str(e))}</div>'
    turns = []
    for t in convs:
        t = t if isinstance(t, dict) else {}
        role = str(t.get("from", "?"))
        value = t.get("value")
        value = value if isinstance(value, str) else repr(value)
        cls = "gpt" if role == "gpt" else "human" if role == "human" else "other"
        turns.append(
            f'<div class="turn {cls}"><span class="role">{_e(role)}</span>'
            f'<div class="text">{_turn_html(value, colors)}</div></div>'
        )
    if record is None:
        turns.append('<div class="turn other bad">sample json missing from the shard</div>')
    meta = (
        f"<b>{_e(row['source'])}</b> <code>{_e(key)}</code> id <code>{_e(str(row.get('id')))}</code> · "
        f"{_fmt(row.get('n_turns'))} turns · {_e(row.get('image') or 'no image')} · {_e(row['shard'])}"
    )
    if row.get("n_tokens") is not None:
        meta += f" · {_fmt(row['n_tokens'])} tokens"
    note_html = f'<div class="flag">{note}</div>' if note else ""
    return (
        f'<article class="card" id="{_e(anchor)}" data-source="{_e(row["source"])}">{thumb}'
        f'<div class="body"><div class="meta">{meta}</div>{note_html}<div class="conv">{"".join(turns)}</div>'
        "</div></article>"
    )


def _read_samples(
    mix_dir: Path, rows: list[dict[str, Any]]
) -> dict[str, tuple[dict[str, Any] | None, bytes | None]]:
    out: dict[str, tuple[dict[str, Any] | None, bytes | None]] = {}
    with MixReader(mix_dir) as reader:
        for row in sorted(rows, key=lambda r: (r["shard"], r["row"])):
            key = row["key"]
            try:
                raw = reader.read(row["shard"], member_name(key, JSON_EXT))
                record = json.loads(raw) if raw is not None else None
                image = (
                    reader.read(row["shard"], member_name(key, IMAGE_EXT))
                    if row.get("image") is not None
                    else None
                )
            except Exception as e:  # a damaged shard shows as a missing sample, lint says why
                log.warning("%s: cannot read sample %s (%s)", row["shard"], key, e)
                record, image = None, None
            out[key] = (record if isinstance(record, dict) else None, image)
    return out


def _frames(summary: dict[str, Any]) -> dict[str, str]:
    specs = (summary.get("recipe_resolved") or {}).get("sources") or {}
    return {
        s: str(spec.get("box_frame", "padded_square")) for s, spec in specs.items() if isinstance(spec, dict)
    }


def _samples_section(
    mix_dir: Path,
    df: pl.DataFrame,
    shown: dict[str, list[int]],
    flagged_rows: list[int],
    lint_notes: dict[int, str],
    frames: dict[str, str],
    seed: int,
    per_source: int,
) -> str:
    wanted = sorted({r for rows in shown.values() for r in rows} | set(flagged_rows))
    rows = {r["row"]: r for r in df.filter(pl.col("row").is_in(wanted)).to_dicts()}
    data = _read_samples(mix_dir, list(rows.values()))
    total = sum(len(v) for v in shown.values()) + len(flagged_rows)
    options = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in shown)
    parts = [
        '<section id="samples"><h2>Samples</h2>',
        f'<p class="lead">A random sample of up to {per_source} per source (seed {seed}); images shown as the model '
        "sees them (padded to a square, boxes of region prompts drawn in the colour of their text); assistant "
        "turns highlighted.</p>",
        '<div class="filter"><input id="filter" type="search" placeholder="filter: words that must all occur" '
        'aria-label="filter samples"> <select id="filter-source" aria-label="source"><option value="">all sources'
        f'</option>{options}</select> <span id="filter-count">{total} samples</span></div>',
    ]
    for source, picked in shown.items():
        cards = []
        for r in picked:
            row = rows[r]
            record, image = data.get(row["key"], (None, None))
            cards.append(_card(f"s-{row['key']}", row, record, image, frames.get(source, "padded_square")))
        parts.append(
            f'<div class="group" id="src-{_e(source)}"><h3>{_e(source)} '
            f'<span class="sub">{len(picked)} of {int((df["source"] == source).sum()):,}</span></h3>'
            f'<div class="cards">{"".join(cards)}</div></div>'
        )
    if flagged_rows:
        cards = []
        for r in flagged_rows:
            row = rows[r]
            record, image = data.get(row["key"], (None, None))
            cards.append(
                _card(
                    f"lint-{row['key']}",
                    row,
                    record,
                    image,
                    frames.get(row["source"], "padded_square"),
                    lint_notes.get(r, ""),
                )
            )
        parts.append(
            f'<div class="group" id="src-lint"><h3>Flagged by lint <span class="sub">{len(flagged_rows)} '
            f'samples</span></h3><div class="cards">{"".join(cards)}</div></div>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def _provenance(summary: dict[str, Any], mix_dir: Path, seed: int, per_source: int) -> str:
    keys = [
        ("recipe", "recipe"),
        ("recipe file", "recipe_file"),
        ("recipe hash", "recipe_hash"),
        ("seed", "seed"),
        ("datamix version", "datamix_version"),
        ("git commit", "git_commit"),
        ("schema version", "schema_version"),
        ("tokenizer", "tokenizer"),
        ("shards", "shards"),
        ("shard bytes", "shard_bytes"),
        ("imported from", "imported_from"),
        ("input sha256", "input_sha256"),
        ("held out from", "held_out_from"),
    ]
    rows = [
        [_e(label), f"<code>{_e(str(summary[k]))}</code>"] for label, k in keys if summary.get(k) is not None
    ]
    rows.append(
        [
            "report",
            f"<code>datamix {_e(__version__)} report {_e(mix_dir.name)} --per-source {per_source} "
            f"--seed {seed}</code>",
        ]
    )
    parts = ['<section id="provenance"><h2>Provenance</h2>']
    if not summary:
        parts.append('<p class="bad">No summary.json in the mix folder.</p>')
    parts.append(_table(["", ""], rows, "kv"))
    raw = summary.get("raw_inputs") or {}
    if raw:
        body = []
        for s in _source_order(raw):
            for f in raw[s] or []:
                if isinstance(f, dict):
                    body.append(
                        [
                            _e(s),
                            f"<code>{_e(str(f.get('file')))}</code>",
                            _fmt(f.get("size")),
                            f"<code>{_e(str(f.get('sha256')))}</code>",
                        ]
                    )
        parts += ["<h3>Raw inputs</h3>", _table(["source", "file", "bytes", "sha256"], body, "num")]
    if summary.get("recipe_resolved") is not None:
        text = json.dumps(summary["recipe_resolved"], indent=2, sort_keys=True, ensure_ascii=False)
        parts.append(f"<details><summary>Resolved recipe</summary><pre>{_e(text)}</pre></details>")
    other = {
        k: v
        for k, v in summary.items()
        if k not in {k2 for _, k2 in keys} | {"raw_inputs", "recipe_resolved", "sources"}
    }
    if other:
        text = json.dumps(other, indent=2, sort_keys=True, ensure_ascii=False)
        parts.append(f"<details><summary>Rest of summary.json</summary><pre>{_e(text)}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

_CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#fff; --soft:#f6f8fa; --gpt:#fff8c5; --gptline:#d4a72c; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
header.top { padding:16px 24px; border-bottom:1px solid var(--line); background:var(--soft); }
header.top h1 { margin:0 0 4px; font-size:22px; }
nav { position:sticky; top:0; z-index:2; background:#24292f; padding:6px 24px; }
nav a { color:#fff; margin-right:18px; text-decoration:none; font-weight:600; }
main { padding:0 24px 48px; max-width:1500px; }
h2 { margin-top:32px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { margin:22px 0 8px; }
.lead { font-size:15px; } .note, .sub { color:var(--muted); font-size:12px; }
.ok { color:#1a7f37; } .bad { color:#cf222e; }
table { border-collapse:collapse; margin:8px 0; }
th, td { border:1px solid var(--line); padding:3px 8px; vertical-align:top; }
th { background:var(--soft); text-align:left; }
table.num td:not(:first-child) { text-align:right; font-variant-numeric:tabular-nums; }
table.prompts td:first-child { max-width:420px; }
table.violations td:last-child { font-family:ui-monospace,monospace; font-size:12px; }
table.kv td:first-child { font-weight:600; }
img.plot { display:block; max-width:100%; height:auto; margin:6px 0 12px; }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
pre { background:var(--soft); padding:8px; overflow:auto; max-height:480px; }
.filter { position:sticky; top:32px; z-index:1; background:var(--bg); padding:8px 0; border-bottom:1px solid var(--line); }
.filter input { width:420px; max-width:60vw; padding:5px 8px; font-size:14px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(640px, 1fr)); gap:10px; }
.card { display:flex; gap:12px; border:1px solid var(--line); border-radius:6px; padding:10px; background:var(--bg); }
.card:target { outline:3px solid #0969da; }
.thumb { flex:0 0 256px; } .thumb img { display:block; width:256px; height:256px; border:1px solid var(--line); }
.thumb.none { height:72px; display:flex; align-items:center; justify-content:center; background:var(--soft); color:var(--muted); border-radius:4px; }
.body { flex:1; min-width:0; }
.meta { font-size:12px; color:var(--muted); margin-bottom:6px; word-break:break-all; }
.meta b { color:var(--fg); }
.flag { font-size:12px; color:#cf222e; margin-bottom:6px; font-family:ui-monospace,monospace; }
.conv { max-height:360px; overflow:auto; }
.turn { display:flex; gap:8px; padding:4px 6px; border-left:3px solid transparent; }
.turn + .turn { margin-top:2px; }
.turn .role { flex:0 0 48px; font-size:11px; font-weight:700; text-transform:uppercase; color:var(--muted); padding-top:1px; }
.turn .text { white-space:pre-wrap; word-break:break-word; }
.turn.gpt { background:var(--gpt); border-left-color:var(--gptline); }
.turn.gpt .role { color:#7d4e00; }
mark.box { background:transparent; border:2px solid; border-radius:3px; padding:0 2px; }
.hidden { display:none !important; }
"""

_JS = """
(function () {
  "use strict";
  var input = document.getElementById("filter");
  var select = document.getElementById("filter-source");
  var count = document.getElementById("filter-count");
  var cards = Array.prototype.slice.call(document.querySelectorAll("#samples .card"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("#samples .group"));
  var texts = cards.map(function (c) { return c.textContent.toLowerCase(); });
  function apply() {
    var terms = input.value.toLowerCase().split(/\\s+/).filter(function (t) { return t.length > 0; });
    var source = select.value;
    var shown = 0;
    cards.forEach(function (card, i) {
      var ok = (!source || card.getAttribute("data-source") === source) &&
        terms.every(function (t) { return texts[i].indexOf(t) >= 0; });
      card.classList.toggle("hidden", !ok);
      if (ok) { shown += 1; }
    });
    groups.forEach(function (g) {
      g.classList.toggle("hidden", g.querySelector(".card:not(.hidden)") === null);
    });
    count.textContent = shown + " of " + cards.length + " samples";
    document.body.setAttribute("data-shown", String(shown));
  }
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.closest(".hidden")) {
      input.value = ""; select.value = ""; apply(); el.scrollIntoView();
    }
  }
  var params = new URLSearchParams(location.search);
  input.value = params.get("q") || "";
  select.value = params.get("source") || "";
  input.addEventListener("input", apply);
  select.addEventListener("change", apply);
  window.addEventListener("hashchange", reveal);
  apply();
  reveal();
  document.body.setAttribute("data-ready", "1");
})();
"""


def render_report(
    mix_dir: Path | str, *, per_source: int = 12, seed: int = 0, max_tokens: int = MAX_TOKENS
) -> tuple[str, dict[str, Any]]:
    """The report of a mix as an HTML string, and a few figures about it (samples, sources, shown,
    violations, tokens). Raises `ReportError` when the folder is not a readable mix or matplotlib is
    missing."""
    _require_matplotlib()
    if per_source < 0:
        raise ReportError(f"--per-source must be >= 0, got {per_source}")
    mix_dir = Path(mix_dir)
    df, summary = _load(mix_dir)
    s_sources = summary.get("sources")
    summary_sources = s_sources if isinstance(s_sources, dict) else {}
    sources = _source_order(set(df["source"].unique().to_list()) | set(summary_sources))
    keys = df["key"].to_list()
    log.info("report: %s, %d samples, %d sources", mix_dir, df.height, len(sources))

    rows = _per_source(df, summary, sources, max_tokens)
    composition, has_tokens = _composition(df, rows, sources, max_tokens)

    stats = _PromptStats()
    try:  # one pass over the shards: lint hands every record it reads to the prompt counts
        lint: Any = lint_path(mix_dir, on_record=functools.partial(_visit, stats))
    except LintInputError as e:
        log.warning("lint could not run: %s", e)
        lint = str(e)
        stats = scan_prompts(mix_dir, sorted(set(df["shard"].to_list())))  # what can still be read
    log.info("report: prompts counted over %d samples", stats.records)
    violations = [] if isinstance(lint, str) else list(lint.violations)
    near_miss = len({v.index for v in violations if v.rule == "prompt/near-miss"})
    notes: dict[int, list[str]] = defaultdict(list)
    for v in violations:
        if v.index is not None and 0 <= v.index < df.height:
            notes[v.index].append(f"{v.rule}: {v.message}")
    flagged_rows = sorted(notes)[:MAX_LINT_SAMPLES]
    flagged = {keys[r]: f"lint-{keys[r]}" for r in flagged_rows}
    lint_notes = {r: "<br>".join(_e(n) for n in notes[r]) for r in flagged_rows}

    shown = sample_rows(df, [s for s in sources if s in set(df["source"].to_list())], per_source, seed)
    body = [
        composition,
        _prompts(stats, sources, near_miss),
        _lint_section(lint, keys, flagged),
        _samples_section(mix_dir, df, shown, flagged_rows, lint_notes, _frames(summary), seed, per_source),
        _provenance(summary, mix_dir, seed, per_source),
    ]
    name = str(summary.get("recipe") or mix_dir.name)
    n_violations = len(violations)
    lint_text = "lint: n/a" if isinstance(lint, str) else f"lint: {n_violations:,} violations"
    headline = (
        f"{df.height:,} samples · {len(sources)} sources · {df['shard'].n_unique():,} shards · "
        f"recipe hash <code>{_e(str(summary.get('recipe_hash', '–'))[:12])}</code> · seed "
        f"{_e(str(summary.get('seed', '–')))} · {lint_text}"
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="datamix {_e(__version__)}">
<title>datamix report: {_e(name)}</title>
<style>{_CSS}</style>
</head>
<body>
<header class="top"><h1>datamix report: {_e(name)}</h1><div class="sub">{headline}</div></header>
<nav><a href="#composition">Composition</a><a href="#prompts">Prompt formats</a><a href="#lint">Lint</a><a href="#samples">Samples</a><a href="#provenance">Provenance</a></nav>
<main>
{chr(10).join(body)}
</main>
<script>{_JS}</script>
</body>
</html>
"""
    info = {
        "samples": df.height,
        "sources": tuple(sources),
        "shown": sum(len(v) for v in shown.values()) + len(flagged_rows),
        "violations": n_violations,
        "tokens": has_tokens,
    }
    return page, info


def write_report(
    mix_dir: Path | str, out: Path | str, *, per_source: int = 12, seed: int = 0, max_tokens: int = MAX_TOKENS
) -> ReportResult:
    """Render the report of `mix_dir` and write it to `out` (atomically; an existing file is replaced)."""
    page, info = render_report(mix_dir, per_source=per_source, seed=seed, max_tokens=max_tokens)
    out = Path(out)
    data = page.encode("utf-8")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    if len(data) > SIZE_WARNING_BYTES:
        log.warning("%s is %.1f MiB; a smaller --per-source makes it lighter", out, len(data) / 2**20)
    log.info("report written to %s (%d bytes)", out, len(data))
    return ReportResult(out=out, bytes=len(data), **info)


def report_command(
    mix_dir: Path = typer.Argument(..., help="A built mix folder (manifest.parquet, summary.json, shards/)."),
    out: Path = typer.Option(
        ..., "--out", help="The HTML file to write (an existing one only with --force)."
    ),
    per_source: int = typer.Option(12, "--per-source", help="Samples shown per source."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample shown."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Write a self-contained offline HTML report and sample browser of a mix."""
    from datamix.ui import console
    from datamix.ui import out as stdout

    if out.exists() and not force:
        raise UsageError("exists; pass --force to overwrite", path=out)
    if out.is_dir():
        raise UsageError("is a folder, expected an HTML file", path=out)
    try:
        result = write_report(mix_dir, out, per_source=per_source, seed=seed)
    except ReportError as e:
        console.print(f"[red]report failed:[/red] {e}", highlight=False)
        raise typer.Exit(2) from None
    stdout.print(
        f"report: {result.samples:,} samples, {len(result.sources)} sources, {result.shown} shown, "
        f"{result.violations:,} lint violations -> {result.out} ({result.bytes / 2**20:.1f} MiB)",
        highlight=False,
    )
