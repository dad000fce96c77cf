"""Benchmarks behind ``reel benchmark …``: each runs every engine of a stage on a dataset in
one process run and writes ``<name>.csv``, ``summary.md`` and an MLflow run (see common.py)."""
