"""Comparisons of model families on one split at one budget (the ladder)."""
