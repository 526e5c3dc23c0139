"""Game modules for textarena two-player games, one per family, and the table that finds them
by textarena id (`cookbook_textarena.catalog.load_game`)."""

from __future__ import annotations

FAMILIES: dict[str, str] = {
    "ConnectFour": "cookbook_envs_contrib.games.connect_four:ConnectFour",
    "KuhnPoker": "cookbook_envs_contrib.games.kuhn_poker:KuhnPoker",
    "Nim": "cookbook_envs_contrib.games.nim:Nim",
}
"""textarena family -> its game module's `RegisteredGame` subclass (`module:Class`)."""
