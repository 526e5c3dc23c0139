"""Small data files shipped with the core (used by the quick demo and the tests)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent

CHAT_DEMO_PATH = DATA_DIR / "chat_demo.jsonl"
"""320 short chat conversations written for this repo (reverse, upper-case, spell, one-digit
sums, colours, a system-prompted echo, two-turn chats): the default file of the `jsonl` dataset."""
