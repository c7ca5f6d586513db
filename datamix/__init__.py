"""datamix: the LLaVA-1.5 training mixture rebuilt from its public raw datasets.

download -> normalize -> build (recipes, format prompts, WebDataset shards + Parquet manifests) ->
lint / inspect / export; the bundled `trainer` package trains LLaVA-1.5 on the shards.
Importing datamix never imports torch.
"""

__version__ = "0.1.0"
