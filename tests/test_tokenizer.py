"""datamix.tokenizer: one loader for `datamix build --tokenizer` and the trainer; folders as Vicuna
v1.5 publishes them; SentencePiece's own ids; the `legacy` flag read as transformers 4.31 did."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from datamix.shards import make_token_counter, text_token_counter  # noqa: E402
from datamix.tokenizer import encode_chunks, is_legacy, load_tokenizer, read_legacy_flag  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "trainer" / "assets"
TOKENIZER_MODEL = ASSETS / "llama-spm-tokenizer" / "tokenizer.model"
GGUF = ASSETS / "llama-spm-vocab" / "ggml-vocab-llama-spm.gguf"
VICUNA_JSON = REPO / "tests" / "fixtures" / "llava_golden" / "vicuna_tokenizer"

TEXTS = [
    "Hello world",
    " Hello world",
    "Who wrote  this book?",  # a run of spaces: SentencePiece gives "▁", "▁this"
    "   three spaces first",
    "tabs\tand\nnewlines\n\n",
    "Красный. Äpfel, 我想在apple工作, Cửa Việt, ✅ 😶‍🌫️",
    "```py\nx = 1\n```\n",
    "a</s><image><s><pad>",
]


def vicuna_folder(dest: Path, legacy: bool | None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TOKENIZER_MODEL, dest / "tokenizer.model")
    cfg = json.loads((VICUNA_JSON / "tokenizer_config.json").read_text(encoding="utf-8"))
    if legacy is None:
        del cfg["legacy"]
    else:
        cfg["legacy"] = legacy
    (dest / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    shutil.copyfile(VICUNA_JSON / "special_tokens_map.json", dest / "special_tokens_map.json")
    return dest


def test_tokenizer_model_folder_equals_sentencepiece_and_gguf(tmp_path):
    folder = vicuna_folder(tmp_path / "vicuna", legacy=False)
    assert not (folder / "tokenizer.json").exists()
    tok = load_tokenizer(folder)
    gguf = load_tokenizer(GGUF)
    sp = spm.SentencePieceProcessor(model_file=str(TOKENIZER_MODEL))
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False, split_special_tokens=True).input_ids
        assert ids == sp.encode(text), repr(text)  # SentencePiece itself, what LLaVA's slow tokenizer ran
        assert ids == gguf(text, add_special_tokens=False, split_special_tokens=True).input_ids, repr(text)
    assert tok("Hello world").input_ids == [1, 15043, 3186]
    assert load_tokenizer(folder / "tokenizer.model")("Hello world").input_ids == [1, 15043, 3186]


def test_legacy_flag_as_transformers_4_31(tmp_path):
    assert read_legacy_flag(tmp_path) is True  # no tokenizer_config.json
    for value, expected in ((True, True), (False, False), (None, False)):  # null is falsy in 4.31
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"legacy": value}))
        assert read_legacy_flag(tmp_path) is expected
    (tmp_path / "tokenizer_config.json").write_text("{}")
    assert read_legacy_flag(tmp_path) is True  # absent: the argument's default, True
    assert is_legacy(load_tokenizer(vicuna_folder(tmp_path / "absent", legacy=None)))
    assert is_legacy(load_tokenizer(GGUF))


def test_legacy_false_survives_save_pretrained(tmp_path):
    tok = load_tokenizer(vicuna_folder(tmp_path / "vicuna", legacy=False))
    assert not is_legacy(tok)
    tok.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())["legacy"] is False
    assert not is_legacy(load_tokenizer(tmp_path / "saved"))


def test_encode_chunks_after_special_token(tmp_path):
    """transformers 4.31 LlamaTokenizer(legacy=False)._tokenize on a chunk after a special token:
    the first piece loses its "▁" (a lone "▁" is dropped); a chunk starting with a space keeps it."""
    new = load_tokenizer(vicuna_folder(tmp_path / "new", legacy=False))
    old = load_tokenizer(vicuna_folder(tmp_path / "old", legacy=True))
    texts = ["USER: hi", "\nx", " USER", "USER: hi"]
    after = [True, True, True, False]
    assert encode_chunks(old, texts, after) == encode_chunks(old, texts)
    got = encode_chunks(new, texts, after)
    ref = encode_chunks(old, texts)
    assert ref[0][0] == 3148 and got[0] == [3308, *ref[0][1:]]  # "▁US" -> "US"
    assert ref[1][0] == 29871 and got[1] == ref[1][1:]  # lone "▁" dropped
    assert got[2] == ref[2] and got[3] == ref[3]


def test_token_counter_loads_vicuna_folder(tmp_path):
    """`datamix build --tokenizer <folder as Vicuna publishes it>`: the counter loads it."""
    folder = vicuna_folder(tmp_path / "vicuna", legacy=False)
    count = text_token_counter(str(folder))
    assert count("Hello world") == 2
    assert count("a</s>") == 4  # "▁a", "</", "s", ">": text, as the trainer encodes it
    assert text_token_counter(str(GGUF))("Hello world") == 2
    assert callable(make_token_counter(str(folder)))


def test_import_is_torch_free():
    code = "import sys, datamix.tokenizer, datamix.shards; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
