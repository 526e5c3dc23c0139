"""Registrations only: nothing heavy is imported here."""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EnvSpec, EvalSpec, hookimpl


@hookimpl
def register_envs(register: Callable[[EnvSpec], None]) -> None:
    """The scripted env, bare and with a warm-start dataset."""
    register(
        EnvSpec(
            name="fixture-letters",
            builder="cookbook_rl_fixture.envs:LettersBuilder",
            summary="Scripted test env: reward is the fraction of ASCII bytes in the reply",
            recommended={"max_tokens": "4", "group_size": "4", "groups_per_batch": "4"},
        )
    )
    register(
        EnvSpec(
            name="fixture-warm",
            builder="cookbook_rl_fixture.envs:LettersBuilder",
            summary="fixture-letters with a warm-start dataset",
            warm_start_dataset="fixture-sft",
            recommended={"max_tokens": "4", "group_size": "4", "groups_per_batch": "4"},
        )
    )


@hookimpl
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """A working eval and one that always raises."""
    register(
        EvalSpec(
            name="fixture-echo",
            builder="cookbook_rl_fixture.evals:EchoEvalBuilder",
            summary="Samples a few replies and measures them",
        )
    )
    register(
        EvalSpec(
            name="fixture-broken-eval",
            builder="cookbook_rl_fixture.evals:BrokenEvalBuilder",
            summary="Always raises (tests how failures are reported)",
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Warm-start data for `fixture-warm`."""
    register(
        DatasetSpec(
            name="fixture-sft",
            builder="cookbook_rl_fixture.sft:ReplyDatasetBuilder",
            summary="Conversations whose reply is 'a'",
        )
    )
