"""Corpora in, token shards out: reading, built-in corpora, downloads, splits and batches."""
