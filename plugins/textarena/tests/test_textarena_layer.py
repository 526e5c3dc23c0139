"""The layer's own pieces: its public names, a light import, seats and seeds."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cookbook_textarena.seats import ENV_SEATS, EVAL_SEATS, eval_seats, policy_seat
from cookbook_textarena.seeding import derive_seed


def test_importing_the_package_stays_light() -> None:
    """A game module imports `cookbook_textarena` at its top; textarena, torch and tinker wait
    until a config is called."""
    code = (
        "import sys, cookbook_textarena\n"
        "heavy = {'torch', 'tinker', 'textarena', 'transformers'}\n"
        "print(sorted({k.split('.')[0] for k in sys.modules} & heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_public_names() -> None:
    import cookbook_textarena

    for name in cookbook_textarena.__all__:
        assert getattr(cookbook_textarena, name) is not None


def test_policy_seat_per_group() -> None:
    assert [policy_seat("first", g) for g in range(4)] == [0, 0, 0, 0]
    assert [policy_seat("second", g) for g in range(4)] == [1, 1, 1, 1]
    assert [policy_seat("alternate", g) for g in range(4)] == [0, 1, 0, 1]
    assert [eval_seats(mode) for mode in EVAL_SEATS] == [(0, 1), (0,), (1,)]
    assert set(ENV_SEATS) == {"first", "second", "alternate"}
    with pytest.raises(ValueError, match="unknown seat mode 'middle'"):
        policy_seat("middle", 0)


def test_derived_seeds_are_stable_and_distinct() -> None:
    # a fixed value: seeds must not change between processes or Python versions
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, b, g) for b in range(20) for g in range(20)}) == 400
    assert 0 <= derive_seed("epoch", 3) < 2**63


def test_fork_copy_keeps_sharing_and_is_independent_as_deepcopy_is() -> None:
    from cookbook_textarena.game import _deepcopy

    row = ["", "X", ""]
    cells = ((0, 0), (0, 1))
    odd = {1, 2}  # not a plain container: copied by copy.deepcopy
    state = {"board": [row, row], "also": row, "cells": cells, "odd": odd, "nest": ([1], 2)}
    twin = _deepcopy(state, {})
    assert twin == state
    assert isinstance(twin, dict)
    assert twin["board"][0] is twin["board"][1] is twin["also"]  # one object met twice: one copy
    assert twin["also"] is not row and twin["odd"] is not odd
    assert twin["cells"] is cells  # immutable all through: shared, as deepcopy does
    assert twin["nest"][0] is not state["nest"][0]
    twin["also"][0] = "O"
    twin["odd"].add(3)
    assert row == ["", "X", ""] and odd == {1, 2}
