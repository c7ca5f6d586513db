"""The one tokenizer loader of the project: `datamix build --tokenizer` and the trainer both call it.

Responsible for: turning what a user passes as a tokenizer (a `.gguf` vocabulary, a folder as
`lmsys/vicuna-7b-v1.5` publishes it: `tokenizer.model` + `tokenizer_config.json` +
`special_tokens_map.json` and no `tokenizer.json`, or any other Hugging Face tokenizer folder / hub
id) into one `transformers` fast tokenizer; reading its `legacy` flag; and encoding text chunks the
way LLaVA-1.5's tokenizer did (`encode_chunks`).

Why here: datamix never imports the trainer, and `import datamix` never imports torch; this module
imports `transformers` / `tokenizers` / `sentencepiece` (the [train] extra, no torch needed) only
inside its functions, so both `datamix.shards` and `trainer.templates` can use it.

LLaMA SentencePiece vocabularies (`.gguf`, `tokenizer.model`) get one backend, built here from the
pieces and their scores: BPE with merges ranked by the merged piece's score (what SentencePiece's
BPE does), byte fallback, and SentencePiece's dummy prefix as a `Prepend("▁")` normalizer (every
text span starts with "▁"). A `.gguf` file and a `tokenizer.model` of the same vocabulary give the
same tokenizer. Not transformers' own conversion of `tokenizer.model`: under transformers 5 it splits
runs of spaces differently from SentencePiece ("who  this" -> "▁▁", "this" where SentencePiece, and
so LLaVA's slow tokenizer, gives "▁", "▁this"; measured on tests/fixtures/llava_golden).

`legacy` (the flag in `tokenizer_config.json`): LLaVA-1.5 loaded the slow `LlamaTokenizer` of
transformers 4.31.0 (`use_fast=False`, llava/train/train.py). There the flag is read from the
folder's `tokenizer_config.json`, absent means True (the argument's default), and it changes one
thing for LLaMA text: with `legacy: false`, a text chunk that follows a special token (`</s>`) and
does not start with a space loses the "▁" of its first piece (`LlamaTokenizer._tokenize`:
"▁US" -> "US", a lone "▁" is dropped, a piece missing from the vocabulary becomes `<unk>`), and
"▁" characters in the text are read as spaces. `encode_chunks` reproduces that; the flag travels in
`tokenizer.init_kwargs["legacy"]`, so `save_pretrained` writes it back to `tokenizer_config.json`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPIECE_UNDERLINE = "\u2581"
TOKENIZER_MODEL = "tokenizer.model"
MODEL_MAX_LENGTH = 2048  # LLaVA-1.5's --model_max_length

__all__ = [
    "encode_chunks",
    "is_legacy",
    "load_tokenizer",
    "make_spm_legacy",
    "read_gguf_metadata",
    "read_legacy_flag",
]


# --------------------------------------------------------------------------------------------
# vocabulary files

_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file (v2/v3), e.g. `tokenizer.ggml.tokens`.

    A small reader of the documented layout (github.com/ggml-org/ggml docs/gguf.md), ~100x faster
    than `gguf.GGUFReader` on a vocabulary file because arrays of scalars are unpacked in one call.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    (version,) = struct.unpack_from("<I", data, 4)
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} not supported")
    _, n_kv = struct.unpack_from("<QQ", data, 8)
    off = 24

    def read_str(off: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", data, off)
        return data[off + 8 : off + 8 + n].decode("utf-8"), off + 8 + n

    def read_value(kind: int, off: int) -> tuple[Any, int]:
        if kind == 8:
            return read_str(off)
        if kind == 9:
            sub, n = struct.unpack_from("<IQ", data, off)
            off += 12
            if sub in _GGUF_SCALARS:
                fmt = f"<{n}{_GGUF_SCALARS[sub]}"
                return list(struct.unpack_from(fmt, data, off)), off + struct.calcsize(fmt)
            items = []
            for _ in range(n):
                item, off = read_value(sub, off)
                items.append(item)
            return items, off
        fmt = "<" + _GGUF_SCALARS[kind]
        return struct.unpack_from(fmt, data, off)[0], off + struct.calcsize(fmt)

    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key, off = read_str(off)
        (kind,) = struct.unpack_from("<I", data, off)
        meta[key], off = read_value(kind, off + 4)
    return meta


def _gguf_pieces(path: Path) -> tuple[list[str], list[float], int, int]:
    meta = read_gguf_metadata(path)
    if meta.get("tokenizer.ggml.model") != "llama":
        raise ValueError(
            f"{path}: tokenizer model {meta.get('tokenizer.ggml.model')!r}; only 'llama' (SentencePiece) is supported"
        )
    return (
        meta["tokenizer.ggml.tokens"],
        meta["tokenizer.ggml.scores"],
        meta.get("tokenizer.ggml.unknown_token_id", 0),
        meta.get("tokenizer.ggml.bos_token_id", 1),
    )


def _spm_pieces(path: Path) -> tuple[list[str], list[float], int, int]:
    try:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            f"{path}: reading tokenizer.model needs `sentencepiece` and `protobuf` (the [train] extra)"
        ) from e
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(path.read_bytes())
    if proto.trainer_spec.model_type != sentencepiece_model_pb2.TrainerSpec.BPE:  # type: ignore[attr-defined]
        raise ValueError(
            f"{path}: SentencePiece model type {proto.trainer_spec.model_type}; only BPE (LLaMA) is supported"
        )
    if not proto.normalizer_spec.add_dummy_prefix or proto.normalizer_spec.remove_extra_whitespaces:
        raise ValueError(f"{path}: not a LLaMA-style SentencePiece model (dummy prefix, whitespace kept)")
    sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    n = sp.get_piece_size()
    return (
        [sp.id_to_piece(i) for i in range(n)],
        [sp.get_score(i) for i in range(n)],
        sp.unk_id(),
        sp.bos_id(),
    )


def _bpe_merges(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece-BPE vocabulary: every split of a piece into two pieces of
    the vocabulary, best piece score first (as transformers' `generate_merges` does for GGUF files)."""
    merges = []
    for piece, score in scores.items():
        local = [
            (piece[:i], piece[i:], score)
            for i in range(1, len(piece))
            if piece[:i] in vocab and piece[i:] in vocab
        ]
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


_BACKENDS: dict[tuple[str, str], str] = {}  # (kind, sha256 of the file) -> serialized backend


def _llama_backend_json(kind: str, path: Path) -> str:
    """The serialized `tokenizers` backend of a LLaMA SentencePiece vocabulary (see the module
    docstring), built once per process for each distinct file content (building takes seconds)."""
    key = (kind, hashlib.sha256(path.read_bytes()).hexdigest())
    if key not in _BACKENDS:
        _BACKENDS[key] = _build_backend_json(kind, path)
    return _BACKENDS[key]


def _build_backend_json(kind: str, path: Path) -> str:
    from tokenizers import Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    tokens, score_list, unk_id, bos_id = (_gguf_pieces if kind == "gguf" else _spm_pieces)(path)
    vocab = {t: i for i, t in enumerate(tokens)}
    scores = dict(zip(tokens, score_list, strict=True))
    backend = Tokenizer(
        BPE(
            vocab=vocab,
            merges=_bpe_merges(vocab, scores),
            unk_token=tokens[unk_id],
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    backend.normalizer = normalizers.Sequence(
        [
            normalizers.Prepend(prepend=SPIECE_UNDERLINE),
            normalizers.Replace(pattern=" ", content=SPIECE_UNDERLINE),
        ]
    )
    backend.pre_tokenizer = None
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace(SPIECE_UNDERLINE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1),
        ]
    )
    bos = tokens[bos_id]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)]
    )
    return backend.to_str()


# --------------------------------------------------------------------------------------------
# loading


def read_legacy_flag(folder: str | Path) -> bool:
    """`legacy` as transformers 4.31's `LlamaTokenizer.from_pretrained(folder)` took it: the value in
    `tokenizer_config.json` (`null` is falsy there, so it means the new behaviour), True when absent."""
    cfg_path = Path(folder) / "tokenizer_config.json"
    if not cfg_path.is_file():
        return True
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
    return bool(cfg.get("legacy", True))


def make_spm_legacy(tokenizer: Any) -> Any:
    """Give a LLaMA SentencePiece tokenizer SentencePiece's own whitespace rule: "▁" is prepended to
    every text span (`Prepend` normalizer) instead of transformers' `Metaspace(prepend_scheme="first")`,
    which drops it when the text already starts with a space (" Hello" -> [15043] instead of
    SentencePiece's [29871, 15043]). Changes the tokenizer in place; returns it. No-op for others."""
    from tokenizers import normalizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer
    pre = backend.pre_tokenizer
    if pre is not None and type(pre).__name__ == "Metaspace":
        backend.normalizer = normalizers.Sequence(
            [
                normalizers.Prepend(prepend=SPIECE_UNDERLINE),
                normalizers.Replace(pattern=" ", content=SPIECE_UNDERLINE),
            ]
        )
        backend.pre_tokenizer = None
    return tokenizer


def _llama_source(path: Path) -> tuple[str, Path, Path | None] | None:
    """(kind, vocabulary file, folder holding tokenizer_config.json) for a LLaMA SentencePiece source."""
    if path.is_file() and path.suffix == ".gguf":
        return "gguf", path, None
    if path.is_file() and path.name == TOKENIZER_MODEL:
        return "spm", path, path.parent
    if path.is_dir():
        if (path / TOKENIZER_MODEL).is_file():
            # preferred over a tokenizer.json beside it: LLaVA-1.5 read tokenizer.model (use_fast=False)
            return "spm", path / TOKENIZER_MODEL, path
        if not (path / "tokenizer.json").exists():
            found = sorted(path.glob("*.gguf"))
            if len(found) == 1:
                return "gguf", found[0], path
    return None


def load_tokenizer(path: str | Path) -> Any:
    """A fast tokenizer from a `.gguf` file, a `tokenizer.model` file or a folder holding one (the
    Vicuna v1.5 layout), a folder holding one `.gguf`, or any Hugging Face tokenizer folder / hub id.

    LLaMA SentencePiece sources get the backend of this module; others go through `AutoTokenizer`
    and `make_spm_legacy`. The `legacy` flag (`read_legacy_flag`; True for a bare `.gguf`) is kept in
    `init_kwargs["legacy"]`.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    local = Path(str(path)).expanduser()
    source = _llama_source(local) if local.exists() else None
    if source is not None:
        kind, vocab_file, folder = source
        legacy = read_legacy_flag(folder) if folder is not None else True
        backend = Tokenizer.from_str(_llama_backend_json(kind, vocab_file))
        tok: Any = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            add_bos_token=True,
            add_eos_token=False,
            clean_up_tokenization_spaces=False,
            model_max_length=MODEL_MAX_LENGTH,
            legacy=legacy,
        )
    else:
        name = str(local) if local.exists() else str(path)
        tok = AutoTokenizer.from_pretrained(name)
        make_spm_legacy(tok)
        legacy = read_legacy_flag(local) if local.is_dir() else bool(tok.init_kwargs.get("legacy", True))
    tok.init_kwargs["legacy"] = legacy
    return tok


def is_legacy(tokenizer: Any) -> bool:
    """The tokenizer's `legacy` flag as `load_tokenizer` recorded it (True when unknown)."""
    return bool(getattr(tokenizer, "init_kwargs", {}).get("legacy", True))


# --------------------------------------------------------------------------------------------
# encoding


def encode_chunks(
    tokenizer: Any, texts: Sequence[str], after_special: Sequence[bool] | None = None
) -> list[list[int]]:
    """Token ids of each text as one chunk of LLaVA-1.5's tokenizer (no BOS/EOS added), every
    special-token string inside the text read as plain text.

    A chunk is a fresh SentencePiece span (dummy prefix "▁"). `after_special[i]` says that text i
    directly follows a special token in the sequence (e.g. the prompt after a `</s>`); with
    `legacy: false` such a chunk is encoded as transformers 4.31's `LlamaTokenizer._tokenize` did
    (see the module docstring). With `legacy: true` (or `after_special` all False) the flag changes nothing.
    """
    if not texts:
        return []
    legacy = is_legacy(tokenizer)
    if not legacy:
        texts = [t.replace(SPIECE_UNDERLINE, " ") for t in texts]
    out = [
        list(x)
        for x in tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)["input_ids"]
    ]
    if legacy or after_special is None:
        return out
    if len(after_special) != len(texts):
        raise ValueError(f"after_special has {len(after_special)} flags for {len(texts)} texts")
    for ids, text, after in zip(out, texts, after_special, strict=True):
        if not after or not ids or text.startswith(" "):
            continue
        first = tokenizer.convert_ids_to_tokens(ids[0])
        if first.startswith(SPIECE_UNDERLINE):
            rest = first[len(SPIECE_UNDERLINE) :]
            if rest:
                rid = tokenizer.convert_tokens_to_ids(rest)
                ids[0] = tokenizer.unk_token_id if rid is None else rid
            else:
                del ids[0]
    return out
