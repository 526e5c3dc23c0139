"""cookbook: post-train language models with RL and SFT; envs, datasets and evals are plugins."""

__version__ = "0.2.0"
"""The version of the `cookbook-core` distribution (pyproject.toml reads it from here)."""
