"""Benchmarks for msklite (never run by the tests): `python -m benchmarks --help`."""
