"""The interop tests' helpers live in ``tests/tiny_hf.py`` (importable from any test folder)."""

from tiny_hf import CHATML, TEXT, save_tiny, tiny_tokenizer  # noqa: F401
