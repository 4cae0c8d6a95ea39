"""Hydra configs, shipped as package data (``pkg://steward.configs``): one folder per group."""
