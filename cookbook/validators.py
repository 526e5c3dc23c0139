"""chz field validators for plugin and core configs: a bad value is one `UserError` line naming
the option as the user types it (`env.num_batches must be positive, got 0`)."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.errors import UserError

Validator = Callable[[object, str], None]


def positive(option: str) -> Validator:
    """The value must be > 0 (None, an unset optional field, passes)."""

    def check(obj: object, attr: str) -> None:
        value = getattr(obj, attr)
        if value is not None and value <= 0:
            raise UserError(f"{option} must be positive, got {value}")

    return check


def non_negative(option: str) -> Validator:
    """The value must be >= 0 (None, an unset optional field, passes)."""

    def check(obj: object, attr: str) -> None:
        value = getattr(obj, attr)
        if value is not None and value < 0:
            raise UserError(f"{option} must be >= 0, got {value}")

    return check
