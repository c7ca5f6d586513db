"""Import directions (docs/architecture.md 3.1, 5.13): datamix never imports the trainer; the trainer
imports from datamix only the torch-free modules it shares (`schema`, `imaging`, `tokenizer`,
`yamlio`, `errors`); `import datamix` (every module of it) never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAINER_MAY_IMPORT = {
    "datamix.schema",
    "datamix.imaging",
    "datamix.tokenizer",
    "datamix.yamlio",
    "datamix.errors",
}


def _imports(path: Path) -> list[tuple[int, str]]:
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    return _imports_of(path.read_text(encoding="utf-8"), package)


def _imports_of(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement of a module, at any depth (also those
    inside functions: a lazy import is still an import). `from a import b` also gives `a.b` for the
    two project packages (b may be a module)."""
    tree = ast.parse(source)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.append((node.lineno, base))
            out += [
                (node.lineno, f"{base}.{alias.name}")
                for alias in node.names
                if base in ("datamix", "trainer")
            ]
    return out


def _files(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no python files under {package}/"
    return files


def test_datamix_never_imports_the_trainer():
    found = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in _files("datamix")
        for line, name in _imports(path)
        if name == "trainer" or name.startswith("trainer.")
    ]
    assert found == []


def test_the_trainer_imports_only_the_shared_datamix_modules():
    found = []
    for path in _files("trainer"):
        for line, name in _imports(path):
            if name == "datamix" or not name.startswith("datamix."):
                continue  # `from datamix import x` is checked as datamix.x
            module = ".".join(name.split(".")[:2])
            if module not in TRAINER_MAY_IMPORT:
                found.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert found == []


def test_the_import_checker_sees_every_form():
    """The parser above is what the two tests trust: plain, from, lazy and relative imports."""
    source = "import trainer.data\nfrom datamix import mix\n\ndef f():\n    from .schema import Sample\n    from trainer import images\n"
    names = sorted(name for _, name in _imports_of(source, "datamix"))
    assert names == sorted(
        ["trainer.data", "datamix", "datamix.mix", "datamix.schema", "trainer", "trainer.images"]
    )


@pytest.mark.parametrize("statement", ["import datamix", "import datamix.cli", "EVERY"])
def test_importing_datamix_does_not_import_torch(statement):
    # EVERY: every module of the package, as `datamix --help` and the library's users meet them
    if statement == "EVERY":
        statement = (
            "import importlib, pkgutil, datamix\n"
            "for m in pkgutil.walk_packages(datamix.__path__, 'datamix.'):\n"
            "    importlib.import_module(m.name)\n"
        )
    check = (
        statement
        + "\nimport sys\nbad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trainer'))\nprint(bad)\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


HEAVY = ("pyarrow", "polars", "numpy")


@pytest.mark.parametrize(
    "statement",
    [
        "import datamix.cli",  # every command, --help and --version (issue 18)
        # `datamix build` reads the recipe before it needs the tables: a bad recipe fails light
        "import datamix.build, datamix.recipe, datamix.yamlio",
        "import datamix.commands_download",
    ],
)
def test_the_cli_does_not_import_the_heavy_libraries(statement):
    check = (
        statement
        + f"\nimport sys\nbad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\nprint(bad)\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_a_yaml_bomb_recipe_fails_without_the_heavy_libraries(tmp_path):
    """Issue 18: a 9-level alias bomb through the CLI is refused before pyarrow/polars/numpy load."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_yamlio import laughs
    finally:
        sys.path.remove(str(REPO / "tests"))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(9, top="name: bomb"), encoding="utf-8")
    check = (
        "import sys\nfrom datamix.cli import app\n"
        f"try:\n    app(['build', '--recipe', {str(bomb)!r}, '--root', {str(tmp_path / 'r')!r}])\n"
        "except SystemExit as e:\n    code = e.code\n"
        f"print(code, sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert "not valid YAML" in run.stderr, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "2 []"
