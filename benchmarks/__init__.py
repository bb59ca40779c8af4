"""Benchmark scripts: each prints its figures as a table (see BENCHMARKS.md for results and commands)."""
