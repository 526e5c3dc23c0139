"""Evaluators: score a sampling client, return metrics."""
