"""Benchmarks against llama-cpp-python; run them as `python -m bench.NAME`."""
