"""Kuhn poker on textarena's `KuhnPoker` envs (`KuhnPoker-v0`: 3 hands, `-short`: 5, ...): the
smallest poker, a game of hidden information and chance.

A three-card deck (J < Q < K); each hand both players ante one chip and get one card, which the
other does not see. The first to act checks or bets one chip; facing a check the other checks
(showdown) or bets; facing a bet a player folds (the bettor takes the pot) or calls (showdown:
the higher card takes it). The first to act alternates from hand to hand; after the last hand
the player with more chips wins.

textarena 0.7.4 states these rules in its prompt, but its `KuhnPokerEnv` never moves a bet into
the pot (the winner of a hand always takes the two antes), which makes folding pointless. The
module plays textarena's env with the bets counted (`KuhnPokerWithBets`, a subclass changing
nothing else); textarena still deals, validates every move and decides the outcome.

- compact prompt: the player's own card, then this hand's actions so far: `K` (to act first),
  `Qk` (the other checked), `Jkb` (it checked, the other bet). The opponent's card never shows.
- compact reply: one letter, `k` check, `b` bet, `c` call, `f` fold; textarena's `[check]`,
  `[bet]`, ... in the text style.
- score: chips won over the game, scaled to [-1, 1] (a hand wins or loses 1 or 2 chips); it is
  the reward of every game without an illegal move.
- optimal policy: the Nash equilibrium of one hand (Kuhn, 1950) with alpha = 1/3, for the first
  to act: J bets 1/3, Q checks and then calls a bet 2/3, K bets; for the second: facing a bet
  K calls, Q calls 1/3, J folds; facing a check K bets, Q checks, J bets 1/3. Its expected
  result is -1/18 of a chip per hand for the player acting first, +1/18 for the other.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from cookbook_textarena import ParsedReply, PromptStyle
from cookbook_textarena.catalog import RegisteredGame, registered_arguments

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv

CARDS = "JQK"
"""Card letters by rank (textarena's 0, 1, 2)."""

LETTERS = {"check": "k", "bet": "b", "call": "c", "fold": "f"}
"""The compact reply for each action."""

_WORDS = {**{v: k for k, v in LETTERS.items()}, **{k: k for k in LETTERS}}
_BRACKETED = re.compile(r"\[\s*(check|bet|call|fold)\s*\]", re.IGNORECASE)

# The equilibrium as an action multiset per (card, history): a mixed strategy for
# TwoPlayerGame.optimal_actions (an action listed twice is twice as likely).
_NASH: dict[tuple[str, str], tuple[str, ...]] = {
    ("J", ""): ("check", "check", "bet"),
    ("Q", ""): ("check",),
    ("K", ""): ("bet",),
    ("J", "k"): ("check", "check", "bet"),
    ("Q", "k"): ("check",),
    ("K", "k"): ("bet",),
    ("J", "b"): ("fold",),
    ("Q", "b"): ("call", "fold", "fold"),
    ("K", "b"): ("call",),
    ("J", "kb"): ("fold",),
    ("Q", "kb"): ("call", "call", "fold"),
    ("K", "kb"): ("call",),
}


def make_kuhn_env(max_rounds: int) -> TextarenaEnv:
    """textarena's Kuhn poker with bets and calls paying one chip into the pot."""
    env: TextarenaEnv = _kuhn_with_bets()(max_rounds=max_rounds)
    return env


@functools.cache
def _kuhn_with_bets() -> type[TextarenaEnv]:
    """`KuhnPokerWithBets`, made on first use (textarena is imported only then)."""
    from textarena.envs.KuhnPoker.env import KuhnPokerEnv

    class KuhnPokerWithBets(KuhnPokerEnv):
        """`KuhnPokerEnv` whose bets and calls move one chip from the player into the pot."""

        def step(self, action: str) -> tuple[bool, dict[str, object]]:
            state = self.state.game_state
            match = re.search(r"\[(check|bet|fold|call)\]", action.strip(), re.IGNORECASE)
            move = match[1].lower() if match else ""
            if move in ("bet", "call") and move in state["current_legal_action_tree"]:
                state["pot"] += 1
                state["player_chips"][self.state.current_player_id] -= 1
            result: tuple[bool, dict[str, object]] = super().step(action)
            return result

    return KuhnPokerWithBets


def history_of(env: TextarenaEnv) -> str:
    """This hand's actions so far, as compact letters (`""`, `k`, `b` or `kb`): where the hand's
    betting tree stands (textarena keeps the subtree of the actions taken)."""
    root = env.legal_action_tree
    tree = env.state.game_state["current_legal_action_tree"]
    for history, node in (("k", root["check"]), ("b", root["bet"]), ("kb", root["check"]["bet"])):
        if tree is node:
            return history
    return ""


def card_of(env: TextarenaEnv, player: int) -> str:
    """`player`'s card this hand."""
    return CARDS[env.state.game_state["player_cards"][player]]


class KuhnPoker(RegisteredGame):
    """textarena's Kuhn poker, bets counted, scored in chips."""

    name = "kuhn_poker"
    chance = True  # textarena shuffles the deck with Python's global random

    def make_textarena_env(self) -> TextarenaEnv:
        """A fresh `KuhnPokerWithBets` with the id's number of hands."""
        max_rounds = registered_arguments(self.env_id).get("max_rounds", 1)
        return make_kuhn_env(int(str(max_rounds)))

    def compact_prompt(self, env: TextarenaEnv, player: int) -> str:
        """Own card and this hand's actions: `Qk`."""
        return card_of(env, player) + history_of(env)

    def render_board(self, env: TextarenaEnv) -> str:
        """Hand, both cards, this hand's actions, pot and chips (after the game: chips only)."""
        state = env.state.game_state
        chips = state["player_chips"]
        if env.state.done:
            return f"over chips {chips[0]}/{chips[1]}"
        cards = f"{card_of(env, 0)}{card_of(env, 1)}"
        return (
            f"hand {state['current_round']}/{env.max_rounds} cards {cards} "
            f"actions {history_of(env) or '-'} pot {state['pot']} chips {chips[0]}/{chips[1]}"
        )

    def parse_reply(self, text: str) -> ParsedReply:
        """A letter (`k b c f`) or a word (`check`, `[bet]`) as the whole reply, or one
        bracketed action anywhere in it."""
        stripped = text.strip().lower()
        word = _WORDS.get(stripped.strip("[]").strip())
        if word is not None:
            return ParsedReply(f"[{word}]")
        found = {m.lower() for m in _BRACKETED.findall(stripped)}
        if len(found) == 1:
            return ParsedReply(f"[{found.pop()}]")
        if found:
            return ParsedReply(None, "several different actions in reply")
        return ParsedReply(
            None, "no action in reply (expected k, b, c or f: check, bet, call, fold)"
        )

    def format_reply(self, action: str, style: PromptStyle) -> str:
        """`b` in the compact style, `[bet]` in textarena's."""
        return LETTERS[action.strip("[]")] if style == "compact" else action

    def legal_actions(self, env: TextarenaEnv) -> list[str]:
        """`[check]` and `[bet]`, or `[fold]` and `[call]` facing a bet."""
        tree = env.state.game_state["current_legal_action_tree"]
        return [f"[{move}]" for move in tree]

    def optimal_actions(self, env: TextarenaEnv) -> list[str]:
        """The equilibrium's actions for the player to move, repeated by weight."""
        player = env.state.current_player_id
        moves = _NASH[(card_of(env, player), history_of(env))]
        return [f"[{move}]" for move in moves]

    def score(self, env: TextarenaEnv, player: int) -> float:
        """Chips won over the game, divided by the most a game can win (2 per hand)."""
        chips = env.state.game_state["player_chips"]
        won = (chips[player] - chips[1 - player]) / 2  # both paid the same antes
        return won / (2 * env.max_rounds)
