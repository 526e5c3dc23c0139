"""Supervised fine-tuning: datasets of token sequences with per-token weights, and the sft loop."""
