"""Benchmarks: each runs its baseline beside Tailor in the same run and prints the ratio."""
