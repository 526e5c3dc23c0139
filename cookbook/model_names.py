"""What a model name means. `tiny` and `tiny-DxL` (for example `tiny-128x4`) are the built-in
byte-level model, trained from scratch; any other name is a local Hugging Face directory (or, on
the `tinker` backend, a model the service hosts).

This is the one place that decides "is this the tiny model": builders read it as
`BuildContext.is_tiny`, the runner picks its thread count and warm start with it, and the local
backend builds the model it names. Importing it costs nothing.
"""

from __future__ import annotations


def is_tiny_model(name: str) -> bool:
    """Whether `name` asks for the built-in tiny model rather than a model directory."""
    return name == "tiny" or name.startswith("tiny-")
