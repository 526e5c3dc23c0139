"""`cookbook check NAME`: run the contract checks of an installed env, dataset, eval or
preference model.

    cookbook check tictactoe                      # every kind registered under the name
    cookbook check arithmetic --kind eval         # only the eval
    cookbook check tictactoe env.self_play=true   # the env's own options, as for `cookbook rl`
    cookbook check judge preference_model.model=tiny
    cookbook check trained:runs/judge,mode=sample  # a preference model as named elsewhere

Prints a table per checked item and exits 1 when a check failed (2 for a usage mistake). The
command line is read by the parser of every `cookbook` subcommand (`cookbook.cli`). Imported for
`--help`: nothing heavy at module level.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.cli import CommandLine
    from cookbook.registry.catalog import Catalog
    from cookbook.registry.specs import Kind, Spec
    from cookbook.testing.report import ContractReport

DESCRIPTION = """\
Check that an installed env, dataset, eval or preference model keeps the contract the runners
rely on.

env:     its modules import nothing heavy; it builds for the tiny model; batches hold group
         builders that pickle; a few groups roll out with a seeded scripted policy; training
         groups hold group_size envs (or seats_per_game x group_size, when the builder declares
         seats_per_game); group rewards, rewards (finite, inside the builder's reward_range if
         it declares one), observations and metrics are well formed; a second build replays the
         same episodes.
dataset: it builds; batch 0 holds cross_entropy datums (targets = inputs shifted by one,
         aligned weights, some weight, ids inside the vocabulary); a second build matches.
eval:    its builder's small() version (by default: the size fields num_games,
         num_problems, max_examples, ... lowered) builds and returns finite metrics against an
         untrained tiny model; eval.KEY=VALUE settings apply on top of it.
preference model: it builds; seeded comparisons (both orders) get verdicts in [0, 1], each
         within a time limit; p(a, b) + p(b, a) = 1 (symmetry); a second build agrees.

From pytest: `from cookbook.testing import assert_env_contract` (also _dataset_, _eval_,
_preference_model_)."""


def run(line: CommandLine) -> int:
    """Run `cookbook check` as `line` asks; return the exit status: 0 when every check passed,
    1 when one failed. Usage mistakes raise `UserError`."""
    if line.help:
        print(line.help_text + "\n\n" + DESCRIPTION)
        return 0
    if line.name is None:
        from cookbook.cli import COMMANDS

        usage = COMMANDS["check"].usage
        raise UserError(f"cookbook check: name what to check; usage: cookbook {usage}")
    from cookbook.registry.catalog import load_catalog

    catalog = load_catalog()
    kind: Kind | None = None if line.kind is None else _KINDS[line.kind]
    name, from_spec = _split_spec(catalog, line.name, kind)
    if from_spec:
        kind = "preference_model"
    specs = _find(catalog, name, kind)
    overrides = _route_overrides([*from_spec, *line.overrides], [spec.kind for spec in specs])
    reports: list[ContractReport] = []
    for spec in specs:
        if not line.json and sys.stderr.isatty():
            print(f"checking {spec.kind} {spec.name} ...", file=sys.stderr)
        reports.append(_check(spec, overrides[spec.kind], line.seed))
    if line.json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        _print_tables(reports, specs)
    return 0 if all(r.passed for r in reports) else 1


_KINDS: dict[str, Kind] = {
    "env": "env",
    "dataset": "dataset",
    "eval": "eval",
    "preference-model": "preference_model",
}


def _split_spec(catalog: Catalog, text: str, kind: Kind | None) -> tuple[str, list[str]]:
    """A preference model named as elsewhere, `NAME:ARG[,KEY=VALUE...]` (`trained:runs/judge`),
    as its name and its `preference_model.KEY=VALUE` options; any other name (a qualified
    `distribution:NAME` included) unchanged, with no options."""
    if ":" not in text and "," not in text:
        return text, []
    from cookbook.preference.spec import builder_settings, parse_spec
    from cookbook.preference.types import PreferenceModelBuilder
    from cookbook.registry.specs import normalize_distribution

    dists = frozenset(normalize_distribution(p.distribution) for p in catalog.plugins())
    parsed = parse_spec(text, dists)
    if parsed.arg is None and not parsed.options:
        return text, []
    if kind not in (None, "preference_model"):
        raise UserError(
            f"cookbook check: '{text}' is the NAME:ARG form that names a preference model; "
            f"name the {kind} alone and set its options as {kind}.KEY=VALUE"
        )
    try:
        spec = catalog.get_preference_model(parsed.name)
    except UserError as e:
        raise UserError(
            f"cookbook check: '{text}' names a preference model as NAME:ARG, but {e}; an env, "
            "dataset or eval is checked by its NAME alone, with KIND.KEY=VALUE options"
        ) from None
    builder = spec.load()
    if not (isinstance(builder, type) and issubclass(builder, PreferenceModelBuilder)):
        return parsed.name, []  # the contract check reports what the builder is
    settings = builder_settings(builder, parsed, text)
    return parsed.name, [f"preference_model.{setting}" for setting in settings]


def _find(catalog: Catalog, name: str, kind: Kind | None) -> list[Spec]:
    """The specs to check: the one of `kind`, or every kind registered under `name`."""
    from cookbook.registry.errors import KINDS, did_you_mean

    if kind is not None:
        return [catalog.get(kind, name)]
    found: list[Spec] = []
    errors: list[UserError] = []
    for k in KINDS:
        try:
            found.append(catalog.get(k, name))
        except UserError as e:
            errors.append(e)
    if found:
        return found
    # A broken plugin or a clash is the real answer; "unknown X" for each kind is not.
    for error in errors:
        if not str(error).startswith(("unknown ", "'")):
            raise error
    known = sorted({spec.name for k in KINDS for spec in catalog.list(k)})
    hint = did_you_mean(name.strip().lower(), known)
    raise UserError(
        f"no env, dataset, eval or preference model is named '{name}'{hint or ''}; "
        "`cookbook list` shows what is installed"
    )


def _route_overrides(args: list[str], kinds: list[Kind]) -> dict[Kind, list[str]]:
    """`env.k=v` to the env's options, and so on; anything else is a usage mistake."""
    from cookbook.configs import split_overrides
    from cookbook.registry.errors import KINDS, label

    routed: dict[Kind, list[str]] = {kind: [] for kind in KINDS}
    rest = list(args)
    for kind in KINDS:
        mine, rest = split_overrides(rest, kind)
        if mine and kind not in kinds:
            checked = " and ".join(label(k) for k in kinds)
            raise UserError(
                f"{kind}.KEY=VALUE given, but this checks the {checked}; set its options as "
                f"{kinds[0]}.KEY=VALUE"
            )
        routed[kind] = mine
    if rest:
        raise UserError(
            f"cookbook check: '{rest[0]}' is not an option of the checked item; write "
            f"{kinds[0]}.KEY=VALUE (`cookbook describe {kinds[0]} NAME` lists the keys)"
        )
    return routed


def _check(spec: Spec, overrides: list[str], seed: int) -> ContractReport:
    from cookbook.testing.dataset_checks import check_dataset
    from cookbook.testing.env_checks import check_env
    from cookbook.testing.eval_checks import check_eval
    from cookbook.testing.preference_checks import check_preference_model

    target = spec.qualified_name
    if spec.kind == "env":
        return check_env(target, overrides, seed=seed)
    if spec.kind == "dataset":
        return check_dataset(target, overrides, seed=seed)
    if spec.kind == "preference_model":
        return check_preference_model(target, overrides, seed=seed)
    return check_eval(target, overrides, seed=seed)


def _print_tables(reports: list[ContractReport], specs: list[Spec]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    styles = {"passed": "green", "failed": "bold red", "skipped": "dim"}
    for report, spec in zip(reports, specs, strict=True):
        origin = f" (from {spec.distribution})" if spec.distribution else ""
        table = Table(title=Text(f"{report.kind} {report.target}{origin}"), title_justify="left")
        table.add_column("check", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for r in report.results:
            shown = "FAILED" if r.failed else r.status
            time_text = f"{r.time_s:.2f} s" if r.status != "skipped" else ""
            # Text, not markup: details quote plugin output, brackets included.
            table.add_row(
                Text(r.name), Text(shown, style=styles[r.status]), time_text, Text(r.detail)
            )
        console.print(table)
        counts = {s: sum(1 for r in report.results if r.status == s) for s in styles}
        verdict = "[green]passed[/]" if report.passed else "[bold red]FAILED[/]"
        console.print(
            f"{report.kind} {report.target}: {verdict} ({counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['skipped']} skipped, {report.time_s:.1f} s)\n"
        )
