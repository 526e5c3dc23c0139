"""Games by name: a textarena id (`ConnectFour-v0`, `KuhnPoker-v0-short`) played by the game
module of its family, or a game module named directly (`my_games.othello:Othello`).

textarena registers every game under an id made of a family, a version and variants
(`Nim-v0-large` is `NimEnv(piles=[5, 7, 9, 11, 2])`), plus wrapper suffixes (`-train`, `-raw`)
that change only textarena's own observation wrappers, which this layer does not use. A
`RegisteredGame` plays one id: its textarena env is the registered class with the id's
arguments, unwrapped. A game module for a family subclasses it, reads the variant's parameters
from the env it is given, and may refuse a variant it cannot play (`check_variant`).

    FAMILIES = {"Nim": "my_plugin.nim:Nim"}          # family -> "module:Class", loaded lazily
    game = load_game("Nim-v0-large", FAMILIES)       # Nim("Nim-v0-large")
    game = load_game("my_games.othello:Othello", FAMILIES)

textarena is imported only when a game is loaded or made.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.registry.errors import did_you_mean
from cookbook_textarena.game import TwoPlayerGame

if TYPE_CHECKING:
    from textarena.core import Env as TextarenaEnv

WRAPPER_SUFFIXES = ("-train", "-raw")
"""Id suffixes that select textarena's observation wrappers only (the same game)."""


def base_id(env_id: str) -> str:
    """`env_id` without a wrapper suffix (`Nim-v0-train` -> `Nim-v0`)."""
    for suffix in WRAPPER_SUFFIXES:
        if env_id.endswith(suffix):
            return env_id.removesuffix(suffix)
    return env_id


def family_of(env_id: str) -> str:
    """The game family of an id: the part before the version (`KuhnPoker-v0-short` ->
    `KuhnPoker`)."""
    return env_id.split("-v", 1)[0]


def registered_arguments(env_id: str) -> dict[str, object]:
    """The constructor arguments textarena registered for `env_id`; a `UserError` naming the
    closest ids when textarena has no such game."""
    from textarena.envs.registration import ENV_REGISTRY

    spec = ENV_REGISTRY.get(env_id)
    if spec is None:
        raise UserError(f"textarena has no game {env_id!r}{did_you_mean(env_id, ENV_REGISTRY)}")
    return dict(spec.kwargs)


def make_registered_env(env_id: str) -> TextarenaEnv:
    """A fresh, unwrapped textarena env of `env_id` (not reset)."""
    from textarena.envs.registration import ENV_REGISTRY

    arguments = registered_arguments(env_id)
    entry_point = ENV_REGISTRY[env_id].entry_point
    if isinstance(entry_point, str):
        module, _, attr = entry_point.partition(":")
        entry_point = getattr(importlib.import_module(module), attr)
    env: TextarenaEnv = entry_point(**arguments)
    return env


class RegisteredGame(TwoPlayerGame):
    """A game played on one registered textarena id. Subclasses (one per family) implement the
    rest of `TwoPlayerGame` and read the variant's parameters from the env they are given.

    Plain data: the instance holds only the id."""

    def __init__(self, env_id: str) -> None:
        self.env_id = base_id(env_id)
        """The textarena id played (wrapper suffix removed)."""

    def make_textarena_env(self) -> TextarenaEnv:
        """A fresh unwrapped env of `env_id`, with textarena's registered arguments."""
        return make_registered_env(self.env_id)

    def check_variant(self, arguments: Mapping[str, object]) -> None:
        """Raise a one-line `UserError` when this module cannot play the variant registered with
        `arguments` (the default accepts every variant)."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RegisteredGame)
            and type(other) is type(self)
            and other.env_id == self.env_id
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.env_id))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r})"


def load_game(name: str, families: Mapping[str, str]) -> TwoPlayerGame:
    """The game `name` stands for: `module:Class` (a `TwoPlayerGame` subclass, made with no
    arguments), or a textarena id played by its family's module in `families` (family name ->
    `"module:Class"` of a `RegisteredGame` subclass). Every mistake is a one-line `UserError`."""
    if ":" in name:
        game = _load_class(name, name)()
        return game
    env_id = base_id(name.strip())
    family = family_of(env_id)
    reference = families.get(family)
    if reference is None:
        known = ", ".join(sorted(families))
        raise UserError(
            f"no game module for textarena game {name!r}{did_you_mean(family, families)}; games "
            f"with one: {known} (any "
            "of their ids, such as Nim-v0-large), or name your own TwoPlayerGame as module:Class"
        )
    cls = _load_class(reference, name)
    if not issubclass(cls, RegisteredGame):
        raise UserError(f"{reference} (for {family}) is not a RegisteredGame; it cannot play ids")
    game = cls(env_id)
    game.check_variant(registered_arguments(env_id))
    return game


def _load_class(reference: str, name: str) -> type[TwoPlayerGame]:
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"game {name!r}: cannot import {module_name!r} ({e})") from e
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, TwoPlayerGame)):
        raise UserError(
            f"game {name!r}: {reference} is not a TwoPlayerGame subclass (cookbook_textarena.game)"
        )
    return cls
