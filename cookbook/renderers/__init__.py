"""Renderers: chat messages to tokens and per-token weights, shared by RL and SFT."""
