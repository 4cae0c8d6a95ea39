"""Steward's Hydra launcher over Ray: ``-m hydra/launcher=steward_ray``."""
