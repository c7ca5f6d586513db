"""datamix's bundled LLaVA-1.5 trainer: templates, model assembly, data, DeepSpeed loop, export.

`python -m trainer <command>` (init, train, tokens, eval, export). Importing the package is cheap:
torch/transformers are imported by the submodules that need them. From datamix, only
`datamix.schema` may be imported (docs/architecture.md#import-rule).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
