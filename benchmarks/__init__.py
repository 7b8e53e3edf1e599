"""signalish's benchmark suite; run ``python -m benchmarks`` (see suite.py)."""
