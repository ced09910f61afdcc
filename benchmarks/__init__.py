"""Benchmarks of collapse_sim against the baselines users would write (``python -m benchmarks``)."""
