"""make_config / split_overrides / describe_fields / format_config_help on real chz classes."""

from __future__ import annotations

import enum
from typing import Literal

import chz
import pytest
from chz.blueprint import Castable

from cookbook.configs import (
    COMMAND_LINE,
    FieldInfo,
    Layer,
    blueprint_values,
    build_config,
    describe_fields,
    format_config_help,
    make_config,
    merge_layers,
    split_overrides,
)
from cookbook.errors import UserError


class Opponent(enum.Enum):
    RANDOM = "random"
    GREEDY = "greedy"


@chz.chz
class Rewards:
    """End-of-game rewards."""

    win: float = 1.0
    """Reward for a win."""
    loss: float = -1.0
    """Reward for a loss."""


@chz.chz
class GameConfig:
    """A game to train on.

    Second paragraph, not shown in help."""

    name: str
    """The run's name."""
    learning_rate: float = 1e-3
    """Adam step size."""
    opponent: Opponent = Opponent.RANDOM
    """Who plays the other side."""
    side: Literal["first", "second"] = "first"
    seats: int = chz.field(default=2, doc="Players per game.")
    tags: list[str] = chz.field(default_factory=list)
    max_turns: int | None = None
    rewards: Rewards = chz.field(default_factory=lambda: Rewards(win=2.0))


def test_overrides_and_defaults_build_the_config() -> None:
    cfg = make_config(
        GameConfig,
        ["name=run1", "learning_rate=3e-4", "rewards.loss=-2", "tags=a,b", "opponent=greedy"],
        defaults={"learning_rate": "1e-2", "seats": "3"},
    )
    assert cfg.name == "run1"
    assert cfg.learning_rate == pytest.approx(3e-4)  # the user wins over the defaults
    assert cfg.seats == 3  # a default the user did not touch
    assert cfg.rewards.loss == -2.0
    assert cfg.tags == ["a", "b"]
    assert cfg.opponent is Opponent.GREEDY
    assert make_config(GameConfig, ["name=x", "max_turns=None"]).max_turns is None


def test_defaults_can_supply_a_required_field() -> None:
    assert make_config(GameConfig, [], defaults={"name": "preset"}).name == "preset"


@pytest.mark.parametrize(
    ("overrides", "defaults", "message"),
    [
        (
            ["name=x", "learning_rat=1"],
            None,
            "game: unknown key 'learning_rat' (did you mean 'learning_rate'?)",
        ),
        (
            ["name=x", "rewards.wn=1"],
            None,
            "game: unknown key 'rewards.wn' (did you mean 'rewards.win'?)",
        ),
        (
            ["name=x", "qqqqqq=1"],
            None,
            "game: unknown key 'qqqqqq'; valid keys: name, learning_rate",
        ),
        (
            ["name=x", "learning_rate=fast"],
            None,
            "game: bad value 'fast' for learning_rate (expected float)",
        ),
        (
            ["name=x", "opponent=smart"],
            None,
            "game: bad value 'smart' for opponent (expected random|greedy)",
        ),
        (
            ["name=x", "side=third"],
            None,
            "game: bad value 'third' for side (expected first|second)",
        ),
        ([], None, "game: missing required field name; add name=VALUE"),
        (["name"], None, "game: 'name' is not a key=value override"),
        (["=3"], None, "game: '=3' is not a key=value override"),
        (["--name=x"], None, "game: unknown option '--name=x' (write name=x, without dashes)"),
        (
            ["name=x"],
            {"seets": "3"},
            "game: unknown key 'seets' in the defaults (did you mean 'seats'?)",
        ),
        (
            ["name=x"],
            {"seats": "many"},
            "game: bad value 'many' for seats in the defaults (expected int)",
        ),
    ],
)
def test_every_mistake_is_one_line(
    overrides: list[str], defaults: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(UserError) as err:
        make_config(GameConfig, overrides, defaults=defaults, label="game")
    text = str(err.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_split_overrides_takes_the_prefixed_ones() -> None:
    args = ["env.opponent=x", "learning_rate=1", "env=tictactoe", "env.board.size=3", "environ=2"]
    mine, rest = split_overrides(args, "env")
    assert mine == ["opponent=x", "board.size=3"]
    assert rest == ["learning_rate=1", "env=tictactoe", "environ=2"]


def test_describe_fields_flattens_nested_configs_with_docs() -> None:
    fields = {f.name: f for f in describe_fields(GameConfig)}
    assert list(fields) == [
        "name",
        "learning_rate",
        "opponent",
        "side",
        "seats",
        "tags",
        "max_turns",
        "rewards.win",
        "rewards.loss",
    ]
    assert fields["name"] == FieldInfo("name", "str", "required", "The run's name.")
    assert fields["learning_rate"] == FieldInfo(
        "learning_rate", "float", "0.001", "Adam step size."
    )
    assert fields["opponent"].type == "random|greedy" and fields["opponent"].default == "random"
    assert fields["side"].type == "first|second"
    assert fields["seats"].doc == "Players per game."  # chz.field(doc=...)
    assert fields["tags"].default == "[]"
    assert fields["max_turns"].type == "int | None"
    assert fields["rewards.win"].default == "2.0"  # from the parent's default instance
    assert fields["rewards.loss"].doc == "Reward for a loss."


def test_describe_fields_rejects_a_non_config() -> None:
    with pytest.raises(UserError, match="is not a chz config class"):
        describe_fields(int)


def test_format_config_help_is_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    text = format_config_help(GameConfig, "Game options:")
    lines = text.splitlines()
    assert lines[0] == "Game options:"
    assert "A game to train on." in lines[1] and "Second paragraph" not in text
    header = next(line for line in lines if line.strip().startswith("KEY"))
    assert header.split() == ["KEY", "TYPE", "DEFAULT", "DESCRIPTION"]
    row = next(line for line in lines if line.strip().startswith("learning_rate"))
    assert row.split()[:4] == ["learning_rate", "float", "0.001", "Adam"]
    assert any(line.split()[:3] == ["name", "str", "required"] for line in lines)


@chz.chz
class Run:
    """A run holding a game and named extra games."""

    game: GameConfig
    extras: dict[str, GameConfig] = chz.field(default_factory=dict)
    steps: int = 10


def test_layers_later_wins_and_a_node_replaces_what_is_below_it() -> None:
    layers = [
        Layer("the defaults", {"steps": Castable("1"), "extras.a.name": Castable("x")}),
        Layer("a preset", {"steps": Castable("2"), "game.name": "g"}, replaces=("extras",)),
        Layer(COMMAND_LINE, {"game.rewards.win": Castable("5")}),
    ]
    values, origins = merge_layers(layers)
    assert set(values) == {"steps", "game.name", "game.rewards.win"}
    assert origins["steps"] == "a preset" and origins["game.rewards.win"] == COMMAND_LINE
    run = build_config(Run, [Layer("base", {"game": GameConfig}), *layers], label="run")
    assert (run.steps, run.game.name, run.game.rewards.win, run.extras) == (2, "g", 5.0, {})


def test_errors_name_the_layer_a_setting_came_from() -> None:
    with pytest.raises(UserError, match=r"^run: bad value 'x' for steps in a preset"):
        build_config(
            Run,
            [Layer("a preset", {"steps": Castable("x")}), Layer(COMMAND_LINE, {"game.name": "g"})],
            label="run",
        )


def test_blueprint_values_rebuild_a_config_and_take_changes() -> None:
    run = Run(
        game=GameConfig(name="a", opponent=Opponent.GREEDY, rewards=Rewards(loss=-3.0)),
        extras={"b": GameConfig(name="b", tags=["x"])},
        steps=4,
    )
    values = blueprint_values(run)
    assert values["game"] is GameConfig and values["extras.b"] is GameConfig
    assert values["game.rewards.loss"] == -3.0
    assert build_config(Run, [Layer("saved", values)], label="run") == run
    changed = build_config(
        Run,
        [Layer("saved", values), Layer(COMMAND_LINE, {"extras.b.seats": Castable("4")})],
        label="run",
    )
    assert changed == chz.replace(run, extras={"b": chz.replace(run.extras["b"], seats=4)})


def test_describe_fields_of_an_object_shows_its_values_and_nested_dicts() -> None:
    run = Run(game=GameConfig(name="a"), extras={"b": GameConfig(name="b", seats=5)})
    fields = {f.name: f for f in describe_fields(run, prefix="run.")}
    assert fields["run.game.name"].default == "a"
    assert fields["run.extras.b"].default == "GameConfig"
    assert fields["run.extras.b.seats"].default == "5"
    assert fields["run.steps"].default == "10"
