"""`cookbook new env|dataset|eval NAME [--dir DIR]`: a new plugin distribution, ready to install.

    cookbook new env coin              # writes ./cookbook-env-coin/
    cd cookbook-env-coin && pip install -e . && pytest tests && cookbook check coin

What it writes (for an env; a dataset or an eval has the same shape):

    cookbook-env-coin/
      pyproject.toml            the entry point in group `cookbook`, the core as a dependency
      README.md                 how to install, check, train and evaluate it
      cookbook_env_coin/plugin.py   the hooks (light: `cookbook list` imports it)
      cookbook_env_coin/env.py      an example env builder that passes `cookbook check`
      cookbook_env_coin/evals.py    an eval that plays the env (cookbook.eval.episodes)
      tests/test_cookbook_env_coin.py   the contract checks (cookbook.testing), a unit test

The files are rendered from the templates under `cookbook/scaffold/templates/` (package data):
`common/` for every kind, then the kind's own folder. In a template's path `PACKAGE` becomes the
package name and the `.tmpl` suffix goes; in its text `${name}`-style placeholders
(`string.Template`) take the values of `TemplateValues`.
"""

from __future__ import annotations

import contextlib
import re
import string
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from cookbook.errors import UserError

Kind = Literal["env", "dataset", "eval"]
KINDS: tuple[Kind, ...] = ("env", "dataset", "eval")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_SUMMARIES: dict[Kind, str] = {
    "env": "An RL env for cookbook",
    "dataset": "A supervised dataset for cookbook",
    "eval": "An eval for cookbook",
}


@dataclass(frozen=True)
class TemplateValues:
    """What the templates' placeholders stand for."""

    kind: str
    """`env`, `dataset` or `eval`."""
    name: str
    """The registered name (`coin`, `guess-number`)."""
    package: str
    """The Python package (`cookbook_env_guess_number`)."""
    distribution: str
    """The distribution (`cookbook-env-guess-number`)."""
    class_prefix: str
    """The start of the class names (`GuessNumber`)."""
    summary: str
    """One line for `cookbook list` and the package metadata."""
    core_requirement: str
    """The dependency on the core, as this repo's plugins declare it (`cookbook-core>=0.2,<0.3`)."""
    api_declaration: str
    """The hook module's `COOKBOOK_PLUGIN_API = ...` lines."""


def template_values(kind: Kind, name: str) -> TemplateValues:
    """The values for a plugin of `kind` named `name`; a bad name is a `UserError`."""
    if not _NAME_RE.match(name):
        raise UserError(
            f"'{name}' cannot be a plugin name; use lower-case letters, digits, '-' and '_', "
            "starting with a letter (for example coin or guess-number)"
        )
    words = [w for w in re.split(r"[-_]", name) if w]
    distribution = f"cookbook-{kind}-" + "-".join(words)
    return TemplateValues(
        kind=kind,
        name=name,
        # From the distribution, so an env and an eval of one name can be installed together.
        package=distribution.replace("-", "_"),
        distribution=distribution,
        class_prefix="".join(w[:1].upper() + w[1:] for w in words),
        summary=_SUMMARIES[kind],
        core_requirement=core_requirement(),
        api_declaration=api_declaration(),
    )


def core_requirement() -> str:
    """The installed core's distribution with the range of releases this plugin can expect to
    work with: the same minor series before 1.0 (`cookbook-core>=0.2,<0.3`), the same major one
    after."""
    from cookbook import __version__

    name = _core_distribution()
    parts = [int(p) for p in re.findall(r"\d+", __version__)[:2]] + [0, 0]
    major, minor = parts[0], parts[1]
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"{name}>={major}.{minor},<{upper}"


def _core_distribution() -> str:
    """The distribution that installed the `cookbook` package: the one whose entry point
    registers the core's own plugin (`cookbook.builtin_plugin`)."""
    for ep in metadata.entry_points(group="cookbook"):
        if ep.value.partition(":")[0].strip() == "cookbook.builtin_plugin" and ep.dist:
            return ep.dist.name
    return "cookbook-core"


def api_declaration() -> str:
    """The hook module's plugin-API declaration (`COOKBOOK_PLUGIN_API = ">=1.0,<2"`): this core's
    version and any later one of the same major version (`cookbook/registry/hookspecs.py`)."""
    from cookbook.registry.hookspecs import PLUGIN_API_ATTRIBUTE, PLUGIN_API_VERSION

    major = int(PLUGIN_API_VERSION.split(".")[0])
    return (
        f'\n{PLUGIN_API_ATTRIBUTE} = ">={PLUGIN_API_VERSION},<{major + 1}"\n'
        '"""The cookbook plugin API versions this plugin was written for."""\n'
    )


def write_plugin(kind: Kind, name: str, directory: str | Path | None = None) -> Path:
    """Write the distribution of a new `kind` plugin named `name` into `directory` (default:
    `./<distribution>`), which must not exist or be empty. Returns the directory."""
    if kind not in KINDS:
        raise UserError(f"cookbook new: unknown kind '{kind}'; use env, dataset or eval")
    values = template_values(kind, name)
    target = Path(directory) if directory is not None else Path(values.distribution)
    rendered = _render_all(kind, values)
    created: list[Path] = []  # files and directories this call made, in order
    try:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(
                f"{target} already exists and is not an empty directory; choose another with "
                "--dir DIR (nothing was written)"
            )
        for relative, text in rendered.items():
            path = target / relative
            missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            created += reversed(missing)
            path.write_text(text, encoding="utf-8")
            created.append(path)
    except OSError as e:
        _remove(created)
        raise UserError(
            f"cannot write the plugin into {target} ({e.strerror or e}); choose another "
            "directory with --dir DIR (nothing was written)"
        ) from e
    return target


def _remove(created: list[Path]) -> None:
    """Undo a partial write: `created` (files and directories, parents first), last first."""
    for path in reversed(created):
        with contextlib.suppress(OSError):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()


def _render_all(kind: Kind, values: TemplateValues) -> dict[Path, str]:
    """Every file of the new distribution: its path inside it -> its text (all rendered before
    anything is written, so a template error leaves nothing behind)."""
    root = resources.files("cookbook.scaffold") / "templates"
    mapping = asdict(values)
    out: dict[Path, str] = {}
    for folder in ("common", kind):
        for relative, template in _walk(root / folder, Path()):
            parts = [p.replace("PACKAGE", values.package) for p in relative.parts]
            path = Path(*parts)
            path = path.with_name(path.name.removesuffix(".tmpl"))
            try:
                out[path] = string.Template(template.read_text(encoding="utf-8")).substitute(
                    mapping
                )
            except (KeyError, ValueError) as e:  # a template bug, not the user's
                raise RuntimeError(f"template {folder}/{relative} is broken: {e}") from e
    return out


def _walk(node: Traversable, relative: Path) -> list[tuple[Path, Traversable]]:
    """The template files under `node`, with their paths relative to it."""
    found: list[tuple[Path, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            found += _walk(child, relative / child.name)
        elif child.name.endswith(".tmpl"):
            found.append((relative / child.name, child))
    return found
