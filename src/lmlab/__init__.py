"""lmlab: a workbench for language models, from n-grams to Transformers, on your own text."""

__version__ = "0.1.0"
