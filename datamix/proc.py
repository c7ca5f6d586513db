"""Worker processes that never outlive their parent, and the build's test-only kill points.

`die_with_parent(parent)` is the initializer step of every process pool (normalize's sources, the
build's shards): on Linux the kernel sends the worker SIGKILL when its parent dies
(`prctl(PR_SET_PDEATHSIG)`, through ctypes); a worker that starts after its parent already died
exits at once. Elsewhere it does nothing (the pool's own shutdown is all there is).

`kill_point(name)`: a TEST HOOK. When the environment variable `DATAMIX_TEST_KILL_AT` equals `name`
(e.g. `shards:2`, `mid-shard`, `before-manifest`, `before-summary`), the process SIGKILLs itself
there, as a power cut or `kill -9` would; `tests/reliability/test_kill_build.py` uses it to check
that a rerun completes the build byte for byte. Never set it outside tests.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

KILL_ENV = "DATAMIX_TEST_KILL_AT"
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies (Linux); exit if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: nothing more to do
            pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before the signal was armed


def kill_point(name: str) -> None:
    """Test hook (module docstring): SIGKILL this process when `DATAMIX_TEST_KILL_AT == name`."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
