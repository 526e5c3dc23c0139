"""The core's own envs, datasets and evals, registered through the same hooks as any plugin."""

from __future__ import annotations
