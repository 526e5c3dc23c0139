"""The `cookbook` command against really installed plugins: run in this process through its
`main(argv)` (what the console script calls), and as a real subprocess where a fresh process is
the point: the console script and `python -m cookbook` work and exit with the status, and
listing imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cookbook.cli import main

HEAVY = ("torch", "tinker", "transformers", "textarena")
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Done:
    """What one `cookbook` command did: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


Cookbook = Callable[..., Done]


@pytest.fixture
def cookbook(
    plugins_on_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cookbook:
    """`cookbook ARGS...` in this process, seeing the fixture distributions of tests/fixtures
    (a fresh catalog), in a wide terminal and an empty working directory."""
    monkeypatch.setenv("COLUMNS", "200")  # tables unwrapped, whatever the terminal
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Done:
        capsys.readouterr()
        status = main(list(args))
        out, err = capsys.readouterr()
        return Done(status, out, err)

    return run


def cookbook_process(
    env: dict[str, str], *args: str, module: str = "cookbook.cli"
) -> subprocess.CompletedProcess[str]:
    """Run `python -m <module> args...` in a fresh process (the console script runs the same
    `main`)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO.parent,  # not the repo root, so nothing is imported from the working directory
    )


def assert_one_line_error(done: Done | subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ----- help and dispatch -----


def test_help_lists_only_commands_that_exist(cookbook: Cookbook) -> None:
    done = cookbook("--help")
    assert done.returncode == 0, done.stderr
    commands = [
        line.split()[0]
        for line in done.stdout.split("commands:\n")[1].split("\n\n")[0].splitlines()
    ]
    # Every command's module ships with the core, so all of them are installed here.
    builtin = ["list", "plugins", "describe"]
    assert commands == [
        *builtin,
        "rl",
        "sft",
        "eval",
        "check",
        "new",
        "play",
        "serve",
        "sweep",
        "report",
    ]
    assert cookbook().stdout == done.stdout  # no arguments: the same help


def test_python_dash_m_cookbook_and_version(plugins_env: dict[str, str]) -> None:
    """A fresh process: `python -m cookbook` runs, and its exit status is `main`'s."""
    done = cookbook_process(plugins_env, "--version", module="cookbook")
    assert done.returncode == 0 and done.stdout.startswith("cookbook ")
    assert_one_line_error(cookbook_process(plugins_env, "lsit", module="cookbook"), "'list'")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "cookbook"
    assert script.is_file(), "the console script is missing: pip install -e ."
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: cookbook")


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("rl", "run options (KEY=VALUE)"),
        ("sft", "run options (KEY=VALUE)"),
        ("eval", "options (KEY=VALUE)"),
        ("check", "assert_env_contract"),
        ("list", "envs, datasets, evals or preference-models"),
        ("describe", "env, dataset, eval or preference-model"),
    ],
)
def test_every_command_has_help_from_the_one_parser(
    cookbook: Cookbook, command: str, says: str
) -> None:
    """Each command's --help starts with the shared parser's usage line and adds its own."""
    done = cookbook(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: cookbook {command}")
    assert says in done.stdout


def test_unknown_command_suggests(cookbook: Cookbook) -> None:
    assert_one_line_error(cookbook("lsit"), "unknown command 'lsit'", "'list'")
    assert_one_line_error(cookbook("--frobnicate"), "unknown option '--frobnicate'")


# ----- list / plugins -----


def test_list_shows_every_kind_and_marks_clashes(cookbook: Cookbook) -> None:
    done = cookbook("list")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index("envs:") < out.index("datasets:") < out.index("evals:")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "cookbook-fixture-good" in rows["fixture-coin"]
    assert "fixture-arithmetic" in rows and "fixture-exact" in rows
    assert "cookbook-fixture-clash-a:fixture-dup" in rows
    assert "cookbook-fixture-clash-b:fixture-dup" in rows
    assert "fixture-halfway" not in rows  # its plugin is broken
    assert "cookbook-fixture-broken" in done.stderr and "cookbook plugins" in done.stderr


def test_list_one_kind_as_json(cookbook: Cookbook) -> None:
    done = cookbook("list", "datasets", "--json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert {r["kind"] for r in records} == {"dataset"}
    (arith,) = [r for r in records if r["name"] == "fixture-arithmetic"]
    assert arith["distribution"] == "cookbook-fixture-good"
    assert arith["builder"] == "cbfix_good.builders:ArithmeticDatasetBuilder"
    assert arith["qualified_name"] == "cookbook-fixture-good:fixture-arithmetic"
    assert arith["clash"] is False


def test_list_bad_kind(cookbook: Cookbook) -> None:
    assert_one_line_error(cookbook("list", "envz"), "unknown kind 'envz'", "'envs'")


def test_plugins_json_reports_status_and_errors(cookbook: Cookbook) -> None:
    done = cookbook("plugins", "--json")
    assert done.returncode == 0, done.stderr
    by_name = {p["distribution"]: p for p in json.loads(done.stdout)}
    assert by_name["cookbook-fixture-good"]["status"] == "ok"
    assert by_name["cookbook-fixture-good"]["version"] == "1.2.3"
    assert by_name["cookbook-fixture-good"]["provides"]["evals"] == ["fixture-exact"]
    assert by_name["cookbook-fixture-broken"]["status"] == "broken"
    assert "fixture plugin is broken on purpose" in by_name["cookbook-fixture-broken"]["error"]
    assert by_name["cookbook-fixture-badhook"]["provides"]["envs"] == ["fixture-halfway"]


def test_plugins_table(cookbook: Cookbook) -> None:
    done = cookbook("plugins")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()}
    assert rows["cookbook-fixture-good"][1:3] == ["1.2.3", "ok"]
    assert rows["cookbook-fixture-broken"][1:3] == ["0.0.1", "broken"]
    assert "cookbook-fixture-badhook: ValueError: fixture hook fails on purpose" in done.stdout


# ----- describe -----


def test_describe_shows_fields_types_defaults_docs(cookbook: Cookbook) -> None:
    done = cookbook("describe", "env", "fixture-coin")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("env fixture-coin  (from cookbook-fixture-good 1.2.3)")
    assert "warm-start dataset: fixture-arithmetic" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    assert rows["flips"] == ["flips", "int", "4", "Flips", "per", "episode."]
    assert rows["side"][:3] == ["side", "heads|tails", "heads"]
    assert rows["reward.loss"][:3] == ["reward.loss", "float", "-1.0"]
    assert "Probability of heads." in out


def test_describe_json_and_qualified_name(cookbook: Cookbook) -> None:
    done = cookbook("describe", "datasets", "cookbook-fixture-good:fixture-arithmetic", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["kind"] == "dataset" and record["version"] == "1.2.3"
    fields = {f["name"]: f for f in record["fields"]}
    assert fields["path"]["default"] == "required"
    assert fields["path"]["doc"] == "JSONL file with the problems."


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ("describe", "env", "fixture-arithmetic"),
            ("'fixture-arithmetic' is a dataset, not an env",),
        ),
        (
            ("describe", "env", "fixture-coni"),
            ("unknown env 'fixture-coni'", "did you mean 'fixture-coin'"),
        ),
        (
            ("describe", "env", "fixture-dup"),
            (
                "cookbook-fixture-clash-a",
                "cookbook-fixture-clash-b",
                "cookbook-fixture-clash-a:fixture-dup",
            ),
        ),
        (
            ("describe", "env", "fixture-halfway"),
            ("cookbook-fixture-badhook", "fixture hook fails on purpose"),
        ),
        (("describe", "env", "fixture-broken"), ("cookbook-fixture-broken", "broken on purpose")),
        (
            ("describe", "env", "fixture-needs-missing"),
            ("no module named 'cookbook_fixture_package_that_is_not_installed'",),
        ),
        (("describe", "thing", "x"), ("unknown kind 'thing'",)),
        (("describe", "env"), ("cookbook describe", "name a KIND and a NAME")),
        (("list", "--jsn"), ("cookbook list", "unknown option '--jsn'")),
        (("plugins", "extra"), ("cookbook plugins", "unexpected argument 'extra'")),
    ],
)
def test_bad_input_is_one_line_exit_2(
    cookbook: Cookbook, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    assert_one_line_error(cookbook(*args), *fragments)


def test_debug_anywhere_shows_the_traceback(cookbook: Cookbook) -> None:
    done = cookbook("describe", "--debug", "env", "fixture-halfway")
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert "ValueError: fixture hook fails on purpose" in done.stderr  # the plugin's own frame
    assert done.stderr.strip().splitlines()[-1].startswith("error: env 'fixture-halfway'")


# ----- laziness -----


_PROBE = """
import contextlib, io, json, sys
from cookbook.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["plugins"],
        ["list", "envs", "--json"],
        ["sft", "--dataset", "jsonl", "-h"],
        ["new", "--help"],
        ["play", "--help"],
    ],
)
def test_listing_imports_nothing_heavy(
    all_plugins_env: dict[str, str], repo_plugin_names: list[str], args: list[str]
) -> None:
    env = all_plugins_env
    if args == ["plugins"]:  # every repo plugin really is loaded (and works) in this check
        infos = json.loads(cookbook_process(env, "plugins", "--json").stdout)
        status = {p["distribution"]: (p["status"], p["error"]) for p in infos}
        for name in repo_plugin_names:
            assert status.get(name, ("missing", None))[0] == "ok", f"{name}: {status.get(name)}"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rc"] == 0
    modules = set(result["modules"])
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert "cbfix_good.builders" not in modules  # builders load only when asked for
    if args[0] in ("list", "plugins", "sft"):
        assert "cbfix_good.plugin" in modules  # the plugins really were discovered
