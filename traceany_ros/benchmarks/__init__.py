"""Benchmark targets of ``traceany bench``; one module each (see commands/bench.py)."""
