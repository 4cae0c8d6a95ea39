"""Evaluation on held-out seeds: the agent against tuned baselines, in every scenario."""
