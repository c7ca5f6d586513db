"""`python -m trainer <command>`: a thin shell over the trainer library (docs/architecture.md#commands).

Commands live in `COMMANDS` (name -> (module, help)); each module exposes `add_arguments(parser)`
and `run(args) -> int`. `train` and `eval` are imported lazily from `trainer.loop` /
`trainer.evaluate`, which add themselves by providing those two functions.

Every command runs inside `datamix.errors.cli_errors` (docs/trainer.md#errors): a bad input is one
line on stderr and exit 2 (bad arguments, config, missing files) or 1 (the data has problems), a bug
exit 3; the traceback only with `-v` (before or after the command name).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from datamix.errors import DataError, UsageError, cli_errors

log = logging.getLogger("trainer")
PROG = "python -m trainer"


def _resolve(target: object):
    return importlib.import_module(target) if isinstance(target, str) else target


class Init:
    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", required=True, type=Path, help="recipes/train/<run>.yaml")
        p.add_argument("--out", required=True, type=Path, help="output folder")
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from trainer.config import dump_config, load_config
        from trainer.export import save_hf_folder
        from trainer.model import build_model

        cfg = load_config(args.config, args.set)
        model, tokenizer = build_model(cfg)
        save_hf_folder(model, tokenizer, args.out)
        (args.out / "train_config.json").write_text(dump_config(cfg))
        n = sum(p.numel() for p in model.parameters())
        print(f"init: {cfg.name}: {n:,} parameters -> {args.out}")
        return 0


class Export:
    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--checkpoint", required=True, type=Path)
        p.add_argument("--out", required=True, type=Path)
        p.add_argument(
            "--config", type=Path, default=None, help="the run's train config (if not beside the checkpoint)"
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from trainer.export import export_checkpoint

        if not args.checkpoint.exists():
            raise UsageError(
                "--checkpoint: no such checkpoint (a run's final/, a checkpoint folder or a state dict file)",
                path=args.checkpoint,
            )
        if args.config is not None and not args.config.is_file():
            raise UsageError("--config: no such train config", path=args.config)
        if args.out.exists() and not args.out.is_dir():
            raise UsageError("--out: exists and is not a folder", path=args.out)
        out = export_checkpoint(args.checkpoint, args.out, config=args.config)
        print(f"export: {args.checkpoint} -> {out}")
        return 0


class Tokens:
    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--template", required=True, choices=["plain", "vicuna_v1"])
        p.add_argument(
            "--tokenizer",
            default=None,
            help="tokenizer folder (e.g. lmsys/vicuna-7b-v1.5's: tokenizer.model + tokenizer_config.json, whose "
            "`legacy` flag is honoured as LLaVA-1.5 did), tokenizer.model or .gguf file (default: bundled LLaMA vocabulary)",
        )
        p.add_argument("--input", required=True, type=Path, help="LLaVA-format JSON (list of records)")
        p.add_argument("--out", required=True, type=Path, help="JSONL: {id, input_ids, labels} per record")
        p.add_argument("--max-length", type=int, default=2048)
        p.add_argument(
            "--image-seq-length",
            type=int,
            default=576,
            help="tokens one image counts for (576: CLIP-L/14-336)",
        )
        p.add_argument(
            "--show",
            type=int,
            default=0,
            metavar="N",
            help="print the first N samples, trained spans highlighted",
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from trainer import templates as tpl
        from trainer.config import MissingInput, looks_local

        if args.tokenizer and looks_local(args.tokenizer) and not Path(args.tokenizer).expanduser().exists():
            raise MissingInput("--tokenizer: no such file or folder", path=args.tokenizer)
        if not args.input.is_file():
            raise MissingInput("--input: no such file", path=args.input)
        try:
            records = json.loads(args.input.read_bytes())
        except UnicodeDecodeError as e:
            raise DataError(f"not UTF-8 text (byte {e.start})", path=args.input) from None
        except json.JSONDecodeError as e:
            raise DataError(
                f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", path=args.input
            ) from None
        except RecursionError:
            raise DataError("not readable JSON: nested too deeply", path=args.input) from None
        if not isinstance(records, list):
            raise DataError(
                f"expected a JSON list of LLaVA records, got a {type(records).__name__}", path=args.input
            )
        tokenizer = tpl.load_tokenizer(args.tokenizer, add_llava_tokens=True)
        print(
            f"tokenizer: {args.tokenizer or 'bundled LLaMA vocabulary'} (legacy: {str(tpl.is_legacy(tokenizer)).lower()})"
        )
        template = tpl.get_template(args.template)
        stats = tpl.EncodeStats()
        shown = 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        with tmp.open("w") as f:
            for i, rec in enumerate(records):
                rid = str(rec.get("id", i)) if isinstance(rec, dict) else str(i)
                try:
                    if not isinstance(rec, dict) or not isinstance(rec.get("conversations"), list):
                        raise tpl.EncodeError(
                            tpl.EncodeFailure.BAD_ROLES, "not a record with a `conversations` list"
                        )
                    enc = tpl.encode(
                        rec["conversations"],
                        tokenizer,
                        template,
                        has_image=bool(rec.get("image")),
                        max_length=args.max_length,
                        image_seq_length=args.image_seq_length,
                    )
                except tpl.EncodeError as err:
                    stats.fail(err)
                    print(f"skipped {rid}: {err}")
                    continue
                stats.add(enc)
                f.write(
                    json.dumps({"id": rid, "input_ids": list(enc.input_ids), "labels": list(enc.labels)})
                    + "\n"
                )
                if shown < args.show:
                    show_sample(rid, enc, tokenizer)
                    shown += 1
        tmp.replace(args.out)
        print(f"tokens: {json.dumps(stats.as_dict(), sort_keys=True)} -> {args.out}")
        return 0


def show_sample(rid: str, enc, tokenizer) -> None:
    """Print a sample with the trained tokens highlighted (green) and the image placeholder marked."""
    from rich.console import Console
    from rich.text import Text

    from trainer.templates import IGNORE_INDEX, IMAGE_TOKEN_ID

    # decode prefixes so that each piece keeps its leading space (a decoder strips it at the start)
    ids = list(enc.input_ids)

    def piece(start: int, end: int) -> str:
        full = tokenizer.decode(ids[:end], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        head = tokenizer.decode(ids[:start], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return (
            full[len(head) :]
            if full.startswith(head)
            else tokenizer.decode(ids[start:end], skip_special_tokens=False)
        )

    text = Text()
    start = 0
    for i in range(1, len(ids) + 1):
        if (
            i < len(ids)
            and ids[i] != IMAGE_TOKEN_ID
            and ids[i - 1] != IMAGE_TOKEN_ID
            and ((enc.labels[i] != IGNORE_INDEX) == (enc.labels[i - 1] != IGNORE_INDEX))
        ):
            continue
        if ids[start] == IMAGE_TOKEN_ID:
            text.append(f"<image x{enc.image_seq_length}>", style="bold magenta")
        else:
            text.append(piece(start, i), style="bold green" if enc.labels[start] != IGNORE_INDEX else "dim")
        start = i
    console = Console(highlight=False)
    console.rule(
        f"{rid}: {len(enc.input_ids)} ids, {enc.num_tokens} tokens, {enc.num_trained} trained"
        + (", TRUNCATED" if enc.truncated else "")
    )
    console.print(text)


# name -> (object or "module" providing add_arguments/run, one-line help). `train` and `eval` are
# imported lazily so that `tokens`/`export` work before (and without) the training loop.
COMMANDS: dict[str, tuple[object, str]] = {
    "init": (Init, "assemble the model of a train config and save it (model + tokenizer + processor)"),
    "train": ("trainer.loop", "train one stage (launch with deepspeed or torchrun)"),
    "tokens": (Tokens, "tokenize a LLaVA-format JSON file: input_ids + labels per record"),
    "eval": ("trainer.evaluate", "exact-match accuracy on a held-out mix, with and without the image"),
    "export": (Export, "export a checkpoint to a Hugging Face folder"),
    "clip": (
        "trainer.clip",
        "tiny preset: CLIP-pretrain the vision tower on a caption mix (the stage-1 mix)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="datamix LLaVA-1.5 trainer")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and the traceback of an error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # two-pass: the command's own arguments are added only once it is known (lazy imports)
    known, rest = parser.parse_known_args(argv)
    verbose = known.verbose or any(a in ("-v", "--verbose") for a in rest)
    with cli_errors(f"{PROG} {known.command}", verbose=verbose):
        target, help_ = COMMANDS[known.command]
        try:
            impl = _resolve(target)
        except ModuleNotFoundError as err:
            parser.error(f"command {known.command!r} is not available ({err}; install the [train] extra)")
        sub = argparse.ArgumentParser(prog=f"{PROG} {known.command}", description=help_)
        sub.add_argument(
            "-v", "--verbose", action="store_true", help="debug logging, and the traceback of an error"
        )
        impl.add_arguments(sub)
        args = sub.parse_args(rest)
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        return int(impl.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
