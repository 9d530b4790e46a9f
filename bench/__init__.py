"""Benchmarks: run with `make bench` (never part of `make test`). Each prints the figures it measured."""
