"""Templates on the real LLaMA vocabulary: masks exact by construction, whole-string equality, failures
counted, and the same ids as LLaVA-1.5's own code for both `legacy` values (tests/fixtures/llava_golden)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from trainer.templates import (  # noqa: E402
    BUNDLED_TOKENIZER_MODEL,
    BUNDLED_VOCAB,
    EOS_TOKEN_ID,
    IGNORE_INDEX,
    IMAGE_TOKEN_ID,
    PLAIN,
    VICUNA_V1,
    EncodeError,
    EncodeFailure,
    EncodeStats,
    encode,
    get_template,
    is_legacy,
    load_tokenizer,
    read_gguf_metadata,
    render,
)

REF_DIR = BUNDLED_VOCAB.parent


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(add_llava_tokens=True)


def conv(*values: str) -> list[dict]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


MULTI_TURN = conv(
    "<image>\nWhat is in the picture?",
    "A red circle on a white background.",
    "What colour is it?",
    "Red.",
    "Is it big?\nAnswer briefly.",
    "No, it is small; about 20 px.",
)
TEXT_ONLY = conv(
    "Write a haiku about the sea.",
    "Waves fold into foam\nthe tide keeps its old promise\nsalt on the cold wind",
)
UNICODE = conv(
    "<image>\nКакого цвета круг? 🦙",
    "Красный. Äpfel, 我想在apple工作, Cửa Việt, ✅ 😶‍🌫️",
)
INSTRUCT_IMAGE_LAST = conv("Describe the image in detail. <image>", "It shows a circle.")
SPACES = conv("  leading and trailing spaces  ", "   three spaces first", "tabs\tand\nnewlines\n\n", "x\t\n ")
RECORDS = {
    "multi_turn": (MULTI_TURN, True),
    "text_only": (TEXT_ONLY, False),
    "unicode": (UNICODE, True),
    "image_elsewhere": (INSTRUCT_IMAGE_LAST, True),
    "spaces": (SPACES, False),
}
SPECIAL_IN_TEXT = conv(
    "Say </s> and <s> and <image> and <pad> please",
    "Sure: </s> <s> <image> <pad></s>end",
    "again</s>",
    "</s>",
)


def answers(c):
    return [t["value"] for t in c if t["from"] == "gpt"]


def trained_spans(enc):
    """Contiguous runs of trained tokens."""
    spans, cur = [], []
    for tid, lab in zip(enc.input_ids, enc.labels, strict=True):
        if lab != IGNORE_INDEX:
            assert lab == tid
            cur.append(tid)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return spans


def test_bundled_vocab_matches_llama_cpp_reference(tok):
    meta = read_gguf_metadata(BUNDLED_VOCAB)
    assert len(meta["tokenizer.ggml.tokens"]) == 32000
    inputs = (
        (REF_DIR / "ggml-vocab-llama-spm.gguf.inp")
        .read_text(encoding="utf-8")
        .split("\n__ggml_vocab_test__\n")
    )
    outputs = (REF_DIR / "ggml-vocab-llama-spm.gguf.out").read_text(encoding="utf-8").split("\n")
    assert len(inputs) >= 40
    for text, ref in zip(inputs, outputs, strict=True):
        assert tok(text, add_special_tokens=False).input_ids == [int(x) for x in ref.split()], repr(text)


def test_tokenizer_ids(tok):
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (1, 2, 0)
    assert tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]
    assert tok.pad_token_id == 32001 and len(tok) == 32002
    assert tok("Hello world").input_ids == [1, 15043, 3186]
    # special-token strings are text when split_special_tokens=True
    ids = tok("a</s><image><s><pad>", add_special_tokens=False, split_special_tokens=True).input_ids
    assert not set(ids) & {0, 1, 2, 32000, 32001}
    assert tok.decode(ids) == "a</s><image><s><pad>"
    assert tok("a</s>", add_special_tokens=False).input_ids == [263, 2]  # as control when not split


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_vicuna_equals_whole_string_tokenization(tok, name):
    c, has_image = RECORDS[name]
    enc = encode(c, tok, VICUNA_V1, has_image=has_image, max_length=4096, image_seq_length=576)
    whole = tok(render(c, VICUNA_V1, has_image=has_image)).input_ids  # <image>, </s> as control tokens
    assert list(enc.input_ids) == whole
    assert enc.input_ids[0] == 1
    assert (IMAGE_TOKEN_ID in enc.input_ids) == has_image
    assert enc.input_ids.count(IMAGE_TOKEN_ID) == int(has_image)
    assert not enc.truncated


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_vicuna_trained_tokens_are_exactly_answers_plus_eos(tok, name):
    c, has_image = RECORDS[name]
    enc = encode(c, tok, VICUNA_V1, has_image=has_image, max_length=4096)
    spans = trained_spans(enc)
    assert len(spans) == len(answers(c))
    for span, answer in zip(spans, answers(c), strict=True):
        assert span[-1] == EOS_TOKEN_ID
        assert tok.decode(span[:-1]) == answer
        assert tok.decode(span, skip_special_tokens=False) == answer + "</s>"


def test_special_strings_in_data_are_text(tok):
    enc = encode(SPECIAL_IN_TEXT, tok, VICUNA_V1, has_image=False, max_length=4096)
    ids = list(enc.input_ids)
    assert ids.count(IMAGE_TOKEN_ID) == 0 and ids.count(32001) == 0
    assert ids.count(1) == 1  # only the real BOS
    assert ids.count(EOS_TOKEN_ID) == 2  # only the two turn-closing </s>
    for span, answer in zip(trained_spans(enc), answers(SPECIAL_IN_TEXT), strict=True):
        assert span.count(EOS_TOKEN_ID) == 1 and span[-1] == EOS_TOKEN_ID
        assert tok.decode(span, skip_special_tokens=False) == answer + "</s>"
    # whole-span tokenization (data's special strings as text), split only at the template's own </s>
    rendered = render(SPECIAL_IN_TEXT, VICUNA_V1, has_image=False)
    spans_text = []
    rest = rendered
    for a in answers(SPECIAL_IN_TEXT):
        cut = rest.index(" ASSISTANT: " + a + "</s>") + len(" ASSISTANT: " + a)
        spans_text.append(rest[:cut])
        rest = rest[cut + len("</s>") :]
    ref = [1]
    for s in spans_text:
        ref += tok(s, add_special_tokens=False, split_special_tokens=True).input_ids + [EOS_TOKEN_ID]
    assert ids == ref


def test_image_placement_like_llava(tok):
    enc = encode(INSTRUCT_IMAGE_LAST, tok, VICUNA_V1, has_image=True, max_length=4096)
    assert render(INSTRUCT_IMAGE_LAST, VICUNA_V1).endswith(
        "USER: <image>\nDescribe the image in detail. ASSISTANT: It shows a circle.</s>"
    )
    pos = enc.input_ids.index(IMAGE_TOKEN_ID)
    # "USER: " then the image then "\n" (the original LLaVA tokenization: '▁' <image> '▁' '<0x0A>')
    assert tok.convert_ids_to_tokens(list(enc.input_ids[pos - 2 : pos + 3])) == [
        ":",
        "▁",
        "<image>",
        "▁",
        "<0x0A>",
    ]
    # text-only: <image> inside the text is text
    t = encode(conv("what is <image>?", "a tag"), tok, VICUNA_V1, has_image=False, max_length=4096)
    assert IMAGE_TOKEN_ID not in t.input_ids


def test_plain_template(tok):
    c = conv("<image>\nignored prompt", "A red circle </s> on white.")
    enc = encode(c, tok, PLAIN, has_image=True, max_length=2048, image_seq_length=576)
    assert enc.input_ids[:2] == (1, IMAGE_TOKEN_ID)
    assert enc.labels[:2] == (IGNORE_INDEX, IGNORE_INDEX)
    assert all(lab != IGNORE_INDEX for lab in enc.labels[2:])
    assert tok.decode(list(enc.input_ids[2:])) == "A red circle </s> on white.\n"
    assert render(c, PLAIN) == "<image>A red circle </s> on white.\n"
    whole = [1, IMAGE_TOKEN_ID] + tok(
        "A red circle </s> on white.\n", add_special_tokens=False, split_special_tokens=True
    ).input_ids
    assert list(enc.input_ids) == whole
    with pytest.raises(EncodeError) as err:
        encode(MULTI_TURN, tok, PLAIN, has_image=True, max_length=2048)
    assert err.value.reason is EncodeFailure.BAD_ROLES


def test_truncation_counts_image_tokens(tok):
    full = encode(MULTI_TURN, tok, VICUNA_V1, has_image=True, max_length=4096, image_seq_length=64)
    n = len(full.input_ids)
    assert full.num_tokens == n + 63
    same = encode(MULTI_TURN, tok, VICUNA_V1, has_image=True, max_length=n + 63, image_seq_length=64)
    assert not same.truncated and same.input_ids == full.input_ids
    cut = encode(MULTI_TURN, tok, VICUNA_V1, has_image=True, max_length=n + 60, image_seq_length=64)
    assert cut.truncated and cut.num_tokens == n + 60
    assert cut.input_ids == full.input_ids[: n - 3] and cut.labels == full.labels[: n - 3]
    ids, labels = cut.expanded()
    assert len(ids) == len(labels) == n + 60 and ids.count(IMAGE_TOKEN_ID) == 64
    assert all(lab == IGNORE_INDEX for tid, lab in zip(ids, labels, strict=True) if tid == IMAGE_TOKEN_ID)
    # cutting inside the image, or leaving nothing to train on, raises (never a silent all-masked sample)
    with pytest.raises(EncodeError) as err:
        encode(MULTI_TURN, tok, VICUNA_V1, has_image=True, max_length=40, image_seq_length=64)
    assert err.value.reason is EncodeFailure.IMAGE_TRUNCATED
    with pytest.raises(EncodeError) as err:
        encode(MULTI_TURN, tok, VICUNA_V1, has_image=True, max_length=110, image_seq_length=64)
    assert err.value.reason is EncodeFailure.NO_LABELS


@pytest.mark.parametrize(
    ("c", "has_image", "reason"),
    [
        (conv("q", ""), False, EncodeFailure.EMPTY_ANSWER),
        (conv("q", "a", "q2"), False, EncodeFailure.BAD_ROLES),
        ([{"from": "gpt", "value": "a"}], False, EncodeFailure.BAD_ROLES),
        ([{"from": "system", "value": "a"}], False, EncodeFailure.BAD_ROLES),
        (conv("<image>\nq", "a", "<image> again", "b"), True, EncodeFailure.IMAGE_PLACEMENT),
        (conv("<image>\nq", "<image> in the answer"), True, EncodeFailure.IMAGE_PLACEMENT),
        ([], False, EncodeFailure.BAD_ROLES),
    ],
)
def test_failures_raise_with_reason(tok, c, has_image, reason):
    stats = EncodeStats()
    with pytest.raises(EncodeError) as err:
        encode(c, tok, VICUNA_V1, has_image=has_image, max_length=2048)
    assert err.value.reason is reason
    stats.fail(err.value)
    assert stats.as_dict()["failed"] == {reason.value: 1}


def test_render_generation_prompt_and_templates():
    assert get_template("vicuna_v1") is VICUNA_V1 and get_template(PLAIN) is PLAIN
    with pytest.raises(ValueError, match="unknown template"):
        get_template("chatml")
    s = render(conv("<image>\nWhat color is the circle?"), VICUNA_V1)
    assert s == VICUNA_V1.system + " USER: <image>\nWhat color is the circle? ASSISTANT:"
    assert (
        render(conv("q1", "a1", "q2", "a2"), "vicuna_v1")
        == VICUNA_V1.system + " USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>"
    )


def test_stats(tok):
    stats = EncodeStats()
    for name in sorted(RECORDS):
        c, has_image = RECORDS[name]
        stats.add(encode(c, tok, VICUNA_V1, has_image=has_image, max_length=4096, image_seq_length=64))
    d = stats.as_dict()
    assert d["encoded"] == 5 and d["truncated"] == 0 and d["failed"] == {}
    assert 0 < d["trained_tokens"] < d["tokens"]


def _tokens_cli(tokenizer: Path, src: Path, out: Path, *extra: str) -> int:
    """`python -m trainer tokens` with the vicuna_v1 template, in this process."""
    from trainer.__main__ import main

    return main(
        [
            "tokens",
            "--template",
            "vicuna_v1",
            "--tokenizer",
            str(tokenizer),
            "--input",
            str(src),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_tokens_cli(tmp_path: Path, tok, capsys):
    records = [
        {"id": "a", "image": "x.jpg", "conversations": MULTI_TURN},
        {"id": "b", "conversations": TEXT_ONLY},
        {"id": "bad", "conversations": conv("q", "")},
    ]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "out.jsonl"
    rc = _tokens_cli(BUNDLED_VOCAB, src, out, "--show", "1")
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    enc = encode(MULTI_TURN, tok, VICUNA_V1, has_image=True, max_length=2048)
    assert rows[0]["input_ids"] == list(enc.input_ids) and rows[0]["labels"] == list(enc.labels)
    captured = capsys.readouterr()
    assert "empty_answer" in captured.out + captured.err


# --------------------------------------------------------------------------------------------
# LLaVA's load-time <image> normalisation (issue 16): preprocess_multimodal, llava/train/train.py


@pytest.mark.parametrize(
    ("question", "normalized"),
    [
        (
            "What are the colors of the bus in the image?\n<image>",
            "<image>\nWhat are the colors of the bus in the image?",
        ),
        (
            "<image>\nWhat are the colors of the bus in the image?",
            "<image>\nWhat are the colors of the bus in the image?",
        ),
        ("Describe the image in detail. <image>", "<image>\nDescribe the image in detail."),
        ("  Who wrote <image> this book?  ", "<image>\nWho wrote  this book?"),  # inner spaces kept, as LLaVA
        ("<image>", "<image>"),  # LLaVA strips the whole turn: no "\n" when nothing follows
        ("<image><image>\nq", "<image>\nq"),  # every placeholder of the turn removed, one put in front
        ("no placeholder", "<image>\nno placeholder"),  # LLaVA would train without the image; we keep it
    ],
)
def test_image_normalised_as_llava(tok, question, normalized):
    c = conv(question, "An answer.")
    expected = conv(normalized, "An answer.")
    assert render(c, VICUNA_V1, has_image=True) == render(expected, VICUNA_V1, has_image=True)
    assert f"USER: {normalized} ASSISTANT:" in render(c, VICUNA_V1, has_image=True)
    got = encode(c, tok, VICUNA_V1, has_image=True, max_length=4096)
    assert got == encode(expected, tok, VICUNA_V1, has_image=True, max_length=4096)
    assert got.input_ids.count(IMAGE_TOKEN_ID) == 1
    # text-only samples: untouched, <image> is text
    t = encode(c, tok, VICUNA_V1, has_image=False, max_length=4096)
    assert IMAGE_TOKEN_ID not in t.input_ids
    assert (
        render(c, VICUNA_V1, has_image=False)
        == VICUNA_V1.system + f" USER: {question} ASSISTANT: An answer.</s>"
    )


def test_image_at_end_and_at_front_train_the_same_tokens(tok):
    """A mix that kept `<image>` where llava_instruct_150k.json has it and one that moved it to the
    front give the model the same sequence (issue 16)."""
    end = conv(
        "What is unusual about this image?\n<image>",
        "A man irons clothes on the back of a taxi.",
        "Why?",
        "For fun.",
    )
    front = conv(
        "<image>\nWhat is unusual about this image?",
        "A man irons clothes on the back of a taxi.",
        "Why?",
        "For fun.",
    )
    a = encode(end, tok, VICUNA_V1, has_image=True, max_length=4096)
    b = encode(front, tok, VICUNA_V1, has_image=True, max_length=4096)
    assert a.input_ids == b.input_ids and a.labels == b.labels
    p = encode(conv("Describe.\n<image>", "A taxi."), tok, PLAIN, has_image=True, max_length=2048)
    assert p == encode(conv("<image>\nDescribe.", "A taxi."), tok, PLAIN, has_image=True, max_length=2048)


# --------------------------------------------------------------------------------------------
# golden: LLaVA-1.5's own preprocess_v1 / preprocess_plain (transformers 4.31.0), both `legacy` values

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "llava_golden"
LLAVA_RECORDS = {r["id"]: r for r in json.loads((GOLDEN / "records.json").read_text(encoding="utf-8"))}
LLAVA_IMAGE_TOKEN_INDEX = -200  # llava/constants.py IMAGE_TOKEN_INDEX; ours is the token id 32000
SPECIAL_STRINGS = ("</s>", "<s>", "<unk>")  # control tokens to LLaVA's tokenizer, text to ours


def has_special_strings(rec: dict) -> bool:
    return any(s in t["value"] for t in rec["conversations"] for s in SPECIAL_STRINGS)


def vicuna_tokenizer_folder(dest: Path, legacy: bool) -> Path:
    """A tokenizer folder shaped as lmsys/vicuna-7b-v1.5 publishes it (no tokenizer.json): the one
    make_golden.py builds (that script is not a package, so it is loaded from its path)."""
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)
    return make_golden.make_tokenizer_folder(dest, BUNDLED_TOKENIZER_MODEL, legacy)


@pytest.fixture(scope="module", params=[True, False], ids=["legacy_true", "legacy_false"])
def golden(request, tmp_path_factory):
    legacy = request.param
    folder = vicuna_tokenizer_folder(tmp_path_factory.mktemp(f"vicuna_legacy_{legacy}"), legacy)
    doc = json.loads((GOLDEN / f"golden_legacy_{str(legacy).lower()}.json").read_text(encoding="utf-8"))
    assert doc["meta"]["legacy"] is legacy and doc["meta"]["transformers"] == "4.31.0"
    return legacy, folder, load_tokenizer(folder, add_llava_tokens=True), doc


def comparable(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(golden row, LLaVA record) for the rows whose record has no special strings."""
    return [
        (row, LLAVA_RECORDS[row["id"]]) for row in rows if not has_special_strings(LLAVA_RECORDS[row["id"]])
    ]


def llava_ids(row: dict) -> list[int]:
    return [IMAGE_TOKEN_ID if x == LLAVA_IMAGE_TOKEN_INDEX else x for x in row["input_ids"]]


def test_golden_folder_reads_legacy_flag(golden):
    legacy, _, tok_, _ = golden
    assert is_legacy(tok_) is legacy
    assert (tok_.bos_token_id, tok_.eos_token_id, tok_.unk_token_id, tok_.pad_token_id) == (1, 2, 0, 32001)


def test_golden_vicuna_v1_equals_llava(golden):
    _, _, tok_, doc = golden
    compared = comparable(doc["records"])
    for row, rec in compared:
        assert row["llava_printed"] is None, row["id"]
        enc = encode(rec["conversations"], tok_, VICUNA_V1, has_image=row["has_image"], max_length=4096)
        assert list(enc.input_ids) == llava_ids(row), row["id"]
        assert list(enc.labels) == row["labels"], row["id"]
        assert render(rec["conversations"], VICUNA_V1, has_image=row["has_image"]) == row["prompt"], row["id"]
    assert len(compared) == 8


def test_golden_plain_equals_llava(golden):
    _, _, tok_, doc = golden
    compared = comparable(doc["plain_records"])
    for row, rec in compared:
        enc = encode(rec["conversations"], tok_, PLAIN, has_image=True, max_length=2048)
        assert list(enc.input_ids) == llava_ids(row) and list(enc.labels) == row["labels"], row["id"]
    assert len(compared) == 3


def test_golden_token_after_eos_follows_legacy(golden):
    """The measured difference (docs/trainer.md#legacy): after each `</s>` LLaVA has "▁US" (3148) with
    legacy: true and "US" (3308) with legacy: false; the masks are the same."""
    legacy, _, tok_, doc = golden
    row = next(r for r in doc["records"] if r["id"] == "text_only_multi_round")
    ids = llava_ids(row)
    after = [ids[i + 1] for i, x in enumerate(ids[:-1]) if x == EOS_TOKEN_ID]
    assert after == [3148 if legacy else 3308]
    enc = encode(
        LLAVA_RECORDS["text_only_multi_round"]["conversations"],
        tok_,
        VICUNA_V1,
        has_image=False,
        max_length=4096,
    )
    assert [enc.input_ids[i + 1] for i, x in enumerate(enc.input_ids[:-1]) if x == EOS_TOKEN_ID] == after


def test_golden_special_strings_llava_drops_we_train(golden):
    """`</s>` / `<s>` in the data: LLaVA read them as control tokens, its mask count failed and the
    whole sample was masked ("tokenization mismatch ... (ignored)"). Ours: text, every answer trained."""
    _, _, tok_, doc = golden
    rows = [r for r in doc["records"] if has_special_strings(LLAVA_RECORDS[r["id"]])]
    assert len(rows) == 3
    for row in rows:
        rec = LLAVA_RECORDS[row["id"]]
        assert all(x == IGNORE_INDEX for x in row["labels"]), row["id"]
        assert "tokenization mismatch" in row["llava_printed"], row["id"]
        enc = encode(rec["conversations"], tok_, VICUNA_V1, has_image=row["has_image"], max_length=4096)
        n_answers = len(answers(rec["conversations"]))
        assert enc.input_ids.count(EOS_TOKEN_ID) == n_answers and enc.input_ids.count(1) == 1
        spans = trained_spans(enc)
        assert [tok_.decode(s, skip_special_tokens=False) for s in spans] == [
            a + "</s>" for a in answers(rec["conversations"])
        ]


def test_golden_tokens_cli_on_vicuna_folder(golden, tmp_path):
    """`python -m trainer tokens --tokenizer <tokenizer.model folder>` (issue 15 acceptance) gives LLaVA's ids."""

    _, folder, _, doc = golden
    out = tmp_path / "out.jsonl"
    rc = _tokens_cli(folder, GOLDEN / "records.json", out, "--max-length", "4096")
    assert rc == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == set(LLAVA_RECORDS)
    for g in doc["records"]:
        if not has_special_strings(LLAVA_RECORDS[g["id"]]):
            assert rows[g["id"]]["input_ids"] == llava_ids(g) and rows[g["id"]]["labels"] == g["labels"], g[
                "id"
            ]


def test_golden_default_tokenizer_is_legacy(tok):
    """The bundled `.gguf` vocabulary (no tokenizer_config.json) behaves as legacy: true."""
    assert is_legacy(tok)
    doc = json.loads((GOLDEN / "golden_legacy_true.json").read_text(encoding="utf-8"))
    for row in doc["records"]:
        rec = LLAVA_RECORDS[row["id"]]
        if not has_special_strings(rec):
            enc = encode(rec["conversations"], tok, VICUNA_V1, has_image=row["has_image"], max_length=4096)
            assert list(enc.input_ids) == llava_ids(row) and list(enc.labels) == row["labels"], row["id"]


def test_tokenizer_model_folder_matches_llama_cpp_reference(golden):
    _, _, tok_, _ = golden
    inputs = (
        (REF_DIR / "ggml-vocab-llama-spm.gguf.inp")
        .read_text(encoding="utf-8")
        .split("\n__ggml_vocab_test__\n")
    )
    outputs = (REF_DIR / "ggml-vocab-llama-spm.gguf.out").read_text(encoding="utf-8").split("\n")
    for text, ref in zip(inputs, outputs, strict=True):
        assert tok_(text, add_special_tokens=False).input_ids == [int(x) for x in ref.split()], repr(text)
