"""Thin Hydra entry points: simulate, train, evaluate, ope; and benchmarks."""
