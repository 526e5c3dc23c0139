"""cookbook: post-train language models with RL and SFT; envs, datasets and evals are plugins."""

__version__ = "0.1.0"
