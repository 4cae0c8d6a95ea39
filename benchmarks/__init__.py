"""Benchmarks: world and env speed, and the shield audit (run as ``python -m benchmarks.NAME``)."""
