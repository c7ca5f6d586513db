"""datamix.lint: every rule on planted records, clean release examples, selection, outputs, exit codes,
mix folders (tar shards + manifest) with missing samples and hash mismatches."""

from __future__ import annotations

import copy
import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pytest
import typer
from llava_records import MC, REC, REG, SA, exchange, g, h
from mix_helpers import add_member, write_mix
from typer.testing import CliRunner

from datamix.cli import lint_command, run_lint
from datamix.lint import (
    RULES,
    UNREADABLE,
    LintInputError,
    LintReport,
    Violation,
    exit_code,
    format_github,
    format_json,
    format_text,
    lint_path,
    lint_records,
    resolve_rules,
)

# One record per source, built exactly like the release examples of docs/sources.md (the `#<source>-release` sections).
RELEASE = {
    "llava_instruct": {
        "id": "000000123456",
        "image": "coco/train2017/000000123456.jpg",
        "conversations": [
            h("What is the dog holding?\n<image>"),
            g("The dog is holding a red frisbee in its mouth."),
            h("Where is it?"),
            g("It is standing on a grassy lawn."),
        ],
    },
    "sharegpt": {
        "id": "wgByO4Y_0",
        "model": "",
        "conversations": [h("Write a haiku about rain."), g("Soft rain on the roof...")],
    },
    "vqav2": {
        "id": "000000123456",
        "image": "coco/train2017/000000123456.jpg",
        "conversations": [
            h("<image>\nWhat color is the bus?" + SA),
            g("Red"),
            h("How many people are visible?"),
            g("3"),
            h("Is it raining?"),
            g("No"),
        ],
    },
    "gqa": {
        "id": 2354786,
        "image": "gqa/images/2354786.jpg",
        "conversations": [
            h("<image>\nIs the sky dark?" + SA),
            g("Yes"),
            h("What is on the table?"),
            g("Cup"),
        ],
    },
    "okvqa": {
        "id": "000000000517",
        "image": "coco/train2017/000000000517.jpg",
        "conversations": [h("<image>\nWhat sport can you use this for?" + SA), g("Racing")],
    },
    "aokvqa": {
        "id": "000000299207",
        "image": "coco/train2017/000000299207.jpg",
        "conversations": [
            h(
                "<image>\nWhat is the man by the bags awaiting?\nA. train\nB. delivery\nC. cab\nD. skateboarder"
                + MC
            ),
            g("C"),
        ],
    },
    "ocrvqa": {
        "id": "140031996X",
        "image": "ocr_vqa/images/140031996X.jpg",
        "conversations": [
            h("<image>\nWho is the author of this book?" + SA),
            g("H. Jackson Brown"),
            h("What is the title of this book?"),
            g("Life's Little Instruction Book: ..."),
        ],
    },
    "textcaps": {
        "id": "011e7e629fb9ae7b",
        "image": "textvqa/train_images/011e7e629fb9ae7b.jpg",
        "conversations": [
            h(
                "<image>\nProvide a one-sentence caption for the provided image."
                "\nReference OCR token: LISTERINE, COOL, MINT"
            ),
            g("A bottle of Listerine on a shelf."),
        ],
    },
    "vg": {
        "id": "2345678",
        "image": "vg/VG_100K/2345678.jpg",
        "conversations": [
            h("<image>\n" + REG + "[0.47, 0.15, 0.52, 0.19]."),
            g("Basket is on the bike."),
            h(REC + "food in the container."),
            g("[0.28, 0.8, 0.48, 0.98]"),
        ],
    },
    "refcoco": {
        "id": "000000581857",
        "image": "coco/train2017/000000581857.jpg",
        "conversations": [
            h("<image>\n" + REC + "lady with back to us."),
            g("[0.24, 0.47, 0.56, 0.75]"),
            h(REG + "[0.24, 0.47, 0.56, 0.75]."),
            g("The lady with the blue shirt."),
        ],
    },
    "llava_pretrain": {
        "id": "004539375",
        "image": "00453/004539375.jpg",
        "conversations": [
            h("Render a clear and concise summary of the photo.\n<image>"),
            g("select luxury furniture 3 - inch gel memory foam mattress topper"),
        ],
    },
}


def found(report: LintReport) -> list[tuple[int | None, str | None, str]]:
    return [(v.index, v.id, v.rule) for v in report.violations]


def test_release_examples_are_clean():
    report = lint_records(RELEASE.values())
    assert report.checked == 11
    assert report.violations == ()
    assert exit_code(report) == 0


def test_a_multi_region_vg_record_with_edge_boxes_is_clean():
    convs = []
    for i in range(10):
        if i % 2:
            convs += [h(REC + f"thing {i}."), g("[0.0, 0.64, 0.3, 1.0]")]
        else:
            convs += [h(REG + "[0.64, 0.41, 0.86, 1.0]."), g(f"Thing {i}.")]
    convs[0] = h("<image>\n" + convs[0]["value"])
    assert lint_records([{"id": "1", "image": "vg/VG_100K_2/1.jpg", "conversations": convs}]).violations == ()


def _vqa(*turns: str, answers: tuple[str, ...] | None = None) -> dict:
    answers = answers or tuple("Yes" for _ in turns)
    convs = []
    for q, a in zip(turns, answers, strict=True):
        convs += [h(q), g(a)]
    return {"id": "x", "image": "coco/train2017/000000000001.jpg", "conversations": convs}


def _text(*convs: dict) -> dict:
    return {"id": "x", "conversations": list(convs)}


def _mc(question: str, answer: str) -> dict:
    return exchange("x", "coco/train2017/000000000001.jpg", question, answer)


PLANTED = {
    "structure/record": {"id": "x", "conversations": "hello"},
    "structure/record:turn": _text(h("hi"), {"from": "gpt"}),
    "structure/record:id": {"conversations": [h("hi"), g("hello")]},
    "structure/alternation": _text(g("Hello!"), h("Hi")),
    "structure/alternation:role": _text(h("Hi"), {"from": "assistant", "value": "Hello"}),
    "structure/odd-turns": _text(h("Hi"), g("Hello"), h("Bye")),
    "structure/empty-turn": _text(h("Hi"), g("  ")),
    "structure/image-token": _vqa("What is this?"),
    "structure/image-token:two": _vqa("<image>\nWhat is this?", "<image>\nAnd this?"),
    "structure/text-only-image-token": _text(h("<image>\nWhat is this?"), g("A dog.")),
    "structure/image-null": {"id": "x", "image": None, "conversations": [h("Hi"), g("Hello")]},
    "prompt/suffix-missing": _vqa("<image>\nWhat color is the bus?", "Is it raining?" + SA),
    "prompt/suffix-missing:mc": _vqa(
        "<image>\nWhat is it?\nA. cat\nB. dog", "Where is it?\nA. home\nB. park" + MC, answers=("A", "B")
    ),
    "prompt/suffix-repeated": _vqa("<image>\nWhat color is the bus?" + SA, "Is it raining?" + SA),
    "prompt/suffix-doubled": _vqa("<image>\nWhat color is the bus?" + SA + SA),
    "prompt/suffix-position": _vqa("<image>\nWhat color is the big bus standing by the road? " + SA.strip()),
    "prompt/suffix-position:middle": _vqa("<image>" + SA + "\nWhat color is the bus?"),
    "prompt/near-miss:no-period": _vqa("<image>\nWhat color is the bus?" + SA[:-1]),
    "prompt/near-miss:hyphen": _vqa(
        "<image>\nWhat color is the bus?\nAnswer the question using a single-word or phrase."
    ),
    "prompt/near-miss:curly": _mc("<image>\nWhat is it?\nA. cat\nB. dog" + MC.replace("'", "\u2019"), "A"),
    "prompt/near-miss:case": _vqa("<image>\nWhat color is the bus?" + SA.lower()),
    "prompt/near-miss:space": _vqa("<image>\nWhat color is the bus?" + SA + " "),
    "prompt/near-miss:region": {
        "id": "x",
        "image": "vg/VG_100K/1.jpg",
        "conversations": [
            h("<image>\nPlease provide a short descripton for this region: [0.1, 0.2, 0.3, 0.4]."),
            g("A."),
        ],
    },
    "mc/answer": _mc("<image>\nWhat is it?\nA. cat\nB. dog\nC. cow\nD. pig" + MC, "E"),
    "mc/answer:not-letter": _mc("<image>\nWhat is it?\nA. cat\nB. dog\nC. cow\nD. pig" + MC, "cow"),
    "mc/options": _mc("<image>\nWhat is it?\nA. cat\nB. dog\nD. pig" + MC, "A"),
    "box/format": exchange("x", "vg/VG_100K/1.jpg", "<image>\n" + REC + "a dog.", "[0.1, 0.2, 0.3]"),
    "box/format:word": exchange(
        "x", "vg/VG_100K/1.jpg", "<image>\n" + REC + "a dog.", "The dog is on the left."
    ),
    "box/range": exchange("x", "vg/VG_100K/1.jpg", "<image>\n" + REG + "[0.1, 0.2, 1.2, 0.4].", "A dog."),
    "box/order": exchange("x", "vg/VG_100K/1.jpg", "<image>\n" + REG + "[0.5, 0.2, 0.3, 0.4].", "A dog."),
    "box/precision": exchange(
        "x", "coco/train2017/000000000001.jpg", "<image>\n" + REC + "a dog.", "[0.123, 0.2, 0.3, 0.4]"
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_rule_catches_its_planted_record(case):
    rule = case.split(":")[0]
    assert rule in RULES
    clean = RELEASE["vqav2"]
    report = lint_records([clean, PLANTED[case], clean])
    assert report.checked == 3
    rid = None if "id" not in PLANTED[case] else str(PLANTED[case]["id"])
    assert found(report) == [(1, rid, rule)], format_text(report)


def test_every_record_rule_has_a_planted_case():
    planted = {case.split(":")[0] for case in PLANTED} | {"image/missing", "image/outside-root"}
    record_rules = {r for r in RULES if not r.startswith("mix/")}
    assert planted == record_rules


@pytest.mark.parametrize(
    "line, prompt, difference",
    [
        (
            "Answer the question using a single word or phrase",
            "Answer the question using a single word or phrase.",
            "punctuation, hyphenation or spacing",
        ),
        (
            "Answer the question using a single-word or phrase.",
            "Answer the question using a single word or phrase.",
            "punctuation, hyphenation or spacing",
        ),
        (
            "Answer with the option\u2019s letter from the given choices directly.",
            "Answer with the option's letter from the given choices directly.",
            "curly quote or apostrophe",
        ),
        (
            "answer the question using a single word or phrase.",
            "Answer the question using a single word or phrase.",
            "letter case",
        ),
        (
            "Answer the question using a single word or phrase. ",
            "Answer the question using a single word or phrase.",
            "whitespace",
        ),
        (
            "Provide a one sentence caption for the provided image.",
            "Provide a one-sentence caption for the provided image.",
            "punctuation, hyphenation or spacing",
        ),
    ],
)
def test_near_miss_messages(line, prompt, difference):
    record = _vqa("<image>\nWhat is it?\n" + line)
    [v] = lint_records([record]).violations
    assert v.rule == "prompt/near-miss"
    assert v.message == f"turn 0: {line!r} nearly equals the prompt {prompt!r} ({difference})"


def test_near_miss_ignores_ordinary_text_and_answers():
    records = [
        _vqa("<image>\nWhat is the answer to this question?", "Which phrase is written on the sign?"),
        _text(h("Explain a single word."), g("Answer the question using a single word or phrase")),
    ]
    assert lint_records(records).violations == ()


def test_later_aokvqa_turns_carry_options_only():
    record = _vqa(
        "<image>\nWhat is it?\nA. cat\nB. dog\nC. cow\nD. pig" + MC,
        "Where is it?\nA. home\nB. park\nC. zoo\nD. farm",
        answers=("B", "E"),
    )
    assert found(lint_records([record])) == [(0, "x", "mc/answer")]


def test_image_missing_under_images_root(tmp_path):
    (tmp_path / "coco/train2017").mkdir(parents=True)
    (tmp_path / "coco/train2017/000000123456.jpg").write_bytes(b"jpg")
    records = [RELEASE["vqav2"], RELEASE["okvqa"], RELEASE["sharegpt"]]
    report = lint_records(records, images_root=tmp_path)
    assert found(report) == [(1, "000000000517", "image/missing")]
    assert report.violations[0].message == f"image coco/train2017/000000000517.jpg not found under {tmp_path}"
    assert lint_records(records).violations == ()  # without a root the rule does not run


# --- selection ------------------------------------------------------------------------------------------

TWO_PROBLEMS = _text(h("Hi"), g(""), h("Bye"))  # empty turn + odd turns


def test_select_and_ignore():
    assert found(lint_records([TWO_PROBLEMS])) == [
        (0, "x", "structure/odd-turns"),
        (0, "x", "structure/empty-turn"),
    ]
    assert found(lint_records([TWO_PROBLEMS], select=["structure/odd-turns"])) == [
        (0, "x", "structure/odd-turns")
    ]
    assert found(lint_records([TWO_PROBLEMS], ignore=["structure/odd-turns"])) == [
        (0, "x", "structure/empty-turn")
    ]
    assert found(lint_records([TWO_PROBLEMS], select=["box", "mc"])) == []
    assert found(lint_records([TWO_PROBLEMS], select=["structure"], ignore=["structure/empty-turn"])) == [
        (0, "x", "structure/odd-turns")
    ]


def test_rule_selectors_accept_categories_and_commas():
    assert resolve_rules(["box"]) == {"box/format", "box/range", "box/order", "box/precision"}
    assert resolve_rules(["box/range,mc/answer"]) == {"box/range", "mc/answer"}
    assert resolve_rules(None, ["mix", "structure", "prompt", "box", "image"]) == {"mc/answer", "mc/options"}
    with pytest.raises(LintInputError, match="unknown rule or category 'box/size'"):
        resolve_rules(["box/size"])


# --- outputs --------------------------------------------------------------------------------------------

REPORT = LintReport(
    violations=(
        Violation(
            index=3, id="000000000001", rule="mc/answer", message="turn 1: answer 'E' is not among A, B"
        ),
        Violation(
            index=None, id=None, rule="mix/extra-sample", message="a.tar: sample k9 has no manifest row"
        ),
    ),
    checked=7,
)


def test_format_json_exact():
    assert format_json(REPORT) == (
        '{"violations": [{"index": 3, "id": "000000000001", "rule": "mc/answer", '
        '"message": "turn 1: answer \'E\' is not among A, B"}, '
        '{"index": null, "id": null, "rule": "mix/extra-sample", "message": "a.tar: sample k9 has no manifest row"}], '
        '"checked": 7}\n'
    )
    assert json.loads(format_json(LintReport(violations=(), checked=2))) == {"violations": [], "checked": 2}


def test_format_text_exact():
    assert format_text(REPORT) == (
        "record 3 (id 000000000001): mc/answer: turn 1: answer 'E' is not among A, B\n"
        "record - (id -): mix/extra-sample: a.tar: sample k9 has no manifest row\n"
        "datamix lint: 2 violations in 7 records (mc/answer 1, mix/extra-sample 1)\n"
    )
    assert (
        format_text(LintReport(violations=(), checked=2))
        == "datamix lint: 2 records checked, no violations\n"
    )


def test_format_github_exact():
    report = LintReport(
        violations=(Violation(index=0, id="7", rule="structure/empty-turn", message="50% empty\nturn"),),
        checked=1,
    )
    assert format_github(report) == (
        "::error title=datamix lint structure/empty-turn::record 0 (id 7): 50%25 empty%0Aturn\n"
    )
    assert format_github(REPORT).splitlines()[0] == (
        "::error title=datamix lint mc/answer::record 3 (id 000000000001): turn 1: answer 'E' is not among A, B"
    )
    assert format_github(LintReport(violations=(), checked=1)) == ""


# --- inputs and exit codes ------------------------------------------------------------------------------


def test_lint_path_json_array_and_json_lines(tmp_path):
    records = [RELEASE["gqa"], PLANTED["structure/odd-turns"], RELEASE["sharegpt"]]
    array = tmp_path / "mix.json"
    array.write_text(json.dumps(records, indent=1))
    lines = tmp_path / "mix.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for path in (array, lines):
        report = lint_path(path)
        assert report.checked == 3
        assert found(report) == [(1, "x", "structure/odd-turns")]
    [v] = lint_path(array, select=["structure/odd-turns"]).violations
    assert v.message == "3 turns; the last human turn has no answer"


@pytest.mark.parametrize(
    "content, error",
    [
        (None, "no such file"),
        ("", "empty file"),
        ("[{]", "not valid JSON"),
        ('"text"', "expected a JSON array"),
    ],
)
def test_unreadable_inputs_raise(tmp_path, content, error):
    path = tmp_path / "in.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LintInputError, match=error):
        lint_path(path)
    assert run_lint(path) == 2


def test_exit_codes_through_the_command(tmp_path):
    app = typer.Typer()
    app.command("lint")(lint_command)
    app.command("noop")(lambda: None)  # more than one command: `lint` stays a subcommand
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(list(RELEASE.values())))
    dirty = tmp_path / "dirty.json"
    dirty.write_text(json.dumps([RELEASE["vqav2"], PLANTED["mc/answer"]]))
    runner = CliRunner()

    result = runner.invoke(app, ["lint", str(clean)])
    assert result.exit_code == 0
    assert result.stdout == "datamix lint: 11 records checked, no violations\n"

    result = runner.invoke(app, ["lint", str(dirty), "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "violations": [
            {
                "index": 1,
                "id": "x",
                "rule": "mc/answer",
                "message": "turn 1: answer 'E' is not among the offered options A, B, C, D",
            }
        ],
        "checked": 2,
    }
    assert runner.invoke(app, ["lint", str(dirty), "--ignore", "mc"]).exit_code == 0
    result = runner.invoke(app, ["lint", str(dirty), "--format", "github", "--select", "mc/answer"])
    assert result.exit_code == 1
    assert result.stdout.startswith("::error title=datamix lint mc/answer::record 1 (id x): ")

    assert runner.invoke(app, ["lint", str(tmp_path / "absent.json")]).exit_code == 2
    assert runner.invoke(app, ["lint", str(dirty), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["lint", str(dirty), "--select", "nope"]).exit_code == 2
    assert runner.invoke(app, ["lint", str(tmp_path)]).exit_code == 2  # a folder without manifest.parquet


def test_command_checks_images(tmp_path):
    app = typer.Typer()
    app.command("lint")(lint_command)
    app.command("noop")(lambda: None)
    path = tmp_path / "one.json"
    path.write_text(json.dumps([RELEASE["okvqa"]]))
    (tmp_path / "images").mkdir()
    result = CliRunner().invoke(app, ["lint", str(path), "--images", str(tmp_path / "images")])
    assert result.exit_code == 1
    assert "image/missing" in result.stdout


# --- mix folders ----------------------------------------------------------------------------------------

MANIFEST_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("image", pa.string()),
        ("image_sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("n_turns", pa.int32()),
        ("n_text_chars", pa.int64()),
        ("shard", pa.string()),
    ]
)


def build_mix(root: Path, samples: list[tuple[str, str, dict]], *, shard_size: int = 2) -> Path:
    """A mix folder: samples (key, source, LLaVA record) in `shard_size` tars + manifest.parquet."""
    return write_mix(
        root,
        [samples[start : start + shard_size] for start in range(0, len(samples), shard_size)],
        image=lambda key, record: f"jpeg bytes of {record['image']}".encode(),
        size=(640, 480),
        shard_dir="",
        schema=MANIFEST_SCHEMA,
        tar_format=tarfile.USTAR_FORMAT,
    )


SAMPLES = [
    ("vqav2-0", "vqav2", RELEASE["vqav2"]),
    ("sharegpt-0", "sharegpt", RELEASE["sharegpt"]),
    ("gqa-0", "gqa", RELEASE["gqa"]),
    ("aokvqa-0", "aokvqa", RELEASE["aokvqa"]),
    ("vg-0", "vg", RELEASE["vg"]),
]


def _rewrite_shard(
    path: Path, drop: set[str] = frozenset(), replace: dict[str, bytes] | None = None, add=()
) -> None:
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [*members, *add]:
            if name not in drop:
                add_member(tar, name, (replace or {}).get(name, data))


def test_clean_mix_folder_and_its_manifest(tmp_path):
    mix = build_mix(tmp_path / "mix", SAMPLES)
    for path in (mix, mix / "manifest.parquet"):
        report = lint_path(path)
        assert report.checked == 5
        assert report.violations == ()


def test_mix_folder_missing_sample_and_hash_mismatch(tmp_path):
    mix = build_mix(tmp_path / "mix", SAMPLES)
    _rewrite_shard(
        mix / "shards/test-000001.tar", drop={"gqa-0.json", "gqa-0.jpg"}, replace={"aokvqa-0.jpg": b"other"}
    )
    _rewrite_shard(mix / "shards/test-000002.tar", drop={"vg-0.jpg"}, add=[("stray-0.json", b'{"id": "s"}')])
    report = lint_path(mix)
    assert report.checked == 5
    assert found(report) == [
        (2, "2354786", "mix/missing-sample"),
        (3, "000000299207", "mix/image-hash"),
        (4, "2345678", "mix/image-missing"),
        (None, None, "mix/extra-sample"),
    ]
    messages = [v.message for v in report.violations]
    assert messages[0] == "no gqa-0.json in test-000001.tar"
    assert messages[1] == (
        f"test-000001.tar: sha256 of aokvqa-0.jpg is {hashlib.sha256(b'other').hexdigest()}, "
        f"manifest says {hashlib.sha256(b'jpeg bytes of coco/train2017/000000299207.jpg').hexdigest()}"
    )
    assert messages[2] == "no vg-0.jpg in test-000002.tar for image vg/VG_100K/2345678.jpg"
    assert messages[3] == "test-000002.tar: sample stray-0 has no manifest row"
    assert found(lint_path(mix / "manifest.parquet", select=["mix/image-hash"])) == [
        (3, "000000299207", "mix/image-hash")
    ]


def test_mix_folder_missing_shard_and_record_rules(tmp_path):
    bad = copy.deepcopy(RELEASE["aokvqa"])
    bad["conversations"][1]["value"] = "E"
    mix = build_mix(tmp_path / "mix", [*SAMPLES[:3], ("aokvqa-0", "aokvqa", bad), SAMPLES[4]])
    (mix / "shards/test-000000.tar").unlink()
    report = lint_path(mix)
    assert found(report) == [
        (0, "000000123456", "mix/missing-sample"),
        (1, "wgByO4Y_0", "mix/missing-sample"),
        (3, "000000299207", "mc/answer"),
    ]
    assert report.violations[0].message == "no vqav2-0.json in test-000000.tar (shard file not found)"


def test_mix_folder_sample_disagreeing_with_manifest(tmp_path):
    mix = build_mix(tmp_path / "mix", SAMPLES[:2])
    sample = {**RELEASE["vqav2"], "id": "999", "source": "vqav2", "key": "vqav2-0"}
    _rewrite_shard(mix / "shards/test-000000.tar", replace={"vqav2-0.json": json.dumps(sample).encode()})
    [v] = lint_path(mix).violations
    assert (v.index, v.rule) == (0, "mix/manifest-mismatch")
    assert v.message == "vqav2-0: id '999' != manifest '000000123456'"


def test_on_record_sees_each_manifest_record_once(tmp_path):
    mix = build_mix(tmp_path / "mix", SAMPLES)
    _rewrite_shard(
        mix / "shards/test-000001.tar", replace={"gqa-0.json": b"{"}, add=[("stray-0.json", b'{"id": "s"}')]
    )
    seen: list[tuple[str, object]] = []
    report = lint_path(mix, on_record=lambda where, record: seen.append((where, record)))
    assert [where for where, _ in seen] == [
        "test-000000.tar:vqav2-0.json",
        "test-000000.tar:sharegpt-0.json",
        "test-000001.tar:gqa-0.json",
        "test-000001.tar:aokvqa-0.json",
        "test-000002.tar:vg-0.json",
    ]  # the stray sample has no manifest row: linted as extra, not visited
    assert seen[2][1] is UNREADABLE
    assert seen[0][1]["id"] == "000000123456" and seen[4][1]["id"] == "2345678"
    assert [v.rule for v in report.violations] == ["structure/record", "mix/extra-sample"]
    records = [dict(r) for r in RELEASE.values()][:2]
    json_file = tmp_path / "two.json"
    json_file.write_text(json.dumps(records))
    seen.clear()
    lint_path(json_file, on_record=lambda where, record: seen.append((where, record)))
    assert seen == [("two.json:0", records[0]), ("two.json:1", records[1])]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_shard_cannot_run(tmp_path, damage):
    mix = build_mix(tmp_path / "mix", SAMPLES[:2])
    shard = mix / "shards/test-000000.tar"
    if damage == "garbage":
        shard.write_bytes(b"not a tar" * 100)
    else:
        shard.write_bytes(shard.read_bytes()[:1500])  # cut inside the first sample's json
    with pytest.raises(LintInputError, match="unreadable tar shard"):
        lint_path(mix)
    assert run_lint(mix, format="json") == 2
