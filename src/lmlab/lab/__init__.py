"""Emergence lab: synthetic tasks, metrics, sweeps, scaling fits, reproductions, report."""
