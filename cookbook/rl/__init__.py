"""Reinforcement learning: env contracts, rollouts, and the rl loop."""
