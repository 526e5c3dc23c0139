"""Check the built distributions in a folder for what an index and a user need, beyond what
`twine check` covers (it renders the README only):

    python scripts/check_dists.py dist PROJECT_DIR...   (scripts/build.sh runs it)

For every project given, its wheel and its sdist must both be there with the same name and
version and metadata that validates (`packaging.metadata`), and carry: a summary and a Markdown
description, the MIT license expression and the LICENSE file itself, classifiers,
`Requires-Python`, project URLs, and `py.typed`. A dependency on another distribution of this
repository must have a version range that the version built here satisfies (a bare name would
let an index substitute any project of that name), and nothing may depend on `cookbook`, the
unrelated project that owns that name on the public index. Prints one line per distribution;
exits 1 with every problem listed.
"""

from __future__ import annotations

import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LICENSE = "MIT"
REQUIRES_PYTHON = ">=3.11"
FOREIGN = "cookbook"
"""The unrelated public project whose name the core must never resolve to."""


@dataclass
class Built:
    """One distribution as built: its metadata and file names, from the wheel and the sdist."""

    name: str
    wheel: Metadata
    sdist: Metadata
    wheel_files: list[str]
    sdist_files: list[str]


def _wheel(path: Path) -> tuple[Metadata, list[str]]:
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = wheel.read(meta).decode("utf-8")
    return Metadata.from_email(text, validate=True), names


def _sdist(path: Path) -> tuple[Metadata, list[str]]:
    with tarfile.open(path) as sdist:
        names = [m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name]
        root = sdist.getnames()[0].split("/")[0]
        member = sdist.extractfile(f"{root}/PKG-INFO")
        assert member is not None, f"{path.name} has no PKG-INFO"
        text = member.read().decode("utf-8")
    return Metadata.from_email(text, validate=True), names


def load(dist_dir: Path, projects: list[Path]) -> tuple[list[Built], list[str]]:
    """The built distributions of `projects`, and the problems found reading them."""
    problems: list[str] = []
    built: list[Built] = []
    for project in projects:
        name = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
        stem = canonicalize_name(name).replace("-", "_")
        wheels = sorted(dist_dir.glob(f"{stem}-*.whl"))
        sdists = sorted(dist_dir.glob(f"{stem}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(
                f"{name}: want one wheel and one sdist in {dist_dir}, found "
                f"{[p.name for p in wheels + sdists]}"
            )
            continue
        try:
            wheel, wheel_files = _wheel(wheels[0])
            sdist, sdist_files = _sdist(sdists[0])
        except Exception as e:  # an invalid metadata field, a broken archive
            problems.append(f"{name}: {type(e).__name__}: {e}")
            continue
        built.append(Built(name, wheel, sdist, wheel_files, sdist_files))
    return built, problems


def check(dist: Built, versions: dict[str, str]) -> list[str]:
    """Every problem of one distribution (empty when it is fine); `versions` maps each
    distribution built here to its version."""
    out: list[str] = []
    w, s = dist.wheel, dist.sdist

    def need(ok: object, what: str) -> None:
        if not ok:
            out.append(f"{dist.name}: {what}")

    need(canonicalize_name(w.name) == canonicalize_name(dist.name), f"wheel is named {w.name}")
    need((w.name, w.version) == (s.name, s.version), "wheel and sdist differ in name or version")
    need(w.summary, "no summary")
    need(w.description and len(w.description) > 200, "no README as the description")
    need(w.description_content_type == "text/markdown", "description is not text/markdown")
    need(w.license_expression == LICENSE, f"license expression is not {LICENSE}")
    need(w.license_files and "LICENSE" in w.license_files, "no License-File: LICENSE")
    need(
        any(f.endswith(".dist-info/licenses/LICENSE") for f in dist.wheel_files),
        "LICENSE missing from the wheel",
    )
    need("LICENSE" in dist.sdist_files, "LICENSE missing from the sdist")
    need("README.md" in dist.sdist_files, "README.md missing from the sdist")
    need(w.classifiers and "Programming Language :: Python :: 3" in w.classifiers, "no classifiers")
    need(str(w.requires_python) == REQUIRES_PYTHON, f"Requires-Python is not {REQUIRES_PYTHON}")
    need(w.project_urls, "no project URLs")
    need(any(f.endswith("/py.typed") for f in dist.wheel_files), "py.typed missing")
    for requirement in w.requires_dist or []:
        out += [f"{dist.name}: {p}" for p in dependency_problems(requirement, versions)]
    return out


def dependency_problems(requirement: Requirement, versions: dict[str, str]) -> list[str]:
    """A dependency on a distribution built here needs a range the built version satisfies;
    none may name the foreign `cookbook`."""
    name = canonicalize_name(requirement.name)
    if name == FOREIGN:
        return [f"depends on '{FOREIGN}', an unrelated project on the public index"]
    if name not in versions:
        return []
    if not str(requirement.specifier):
        return [f"depends on {name} with no version range"]
    if not requirement.specifier.contains(versions[name]):
        return [f"depends on {requirement}, which excludes the {name} {versions[name]} built here"]
    return []


def main(argv: list[str]) -> int:
    """Check `argv[0]` (the dist folder) for the projects `argv[1:]`."""
    dist_dir, projects = Path(argv[0]), [Path(p) for p in argv[1:]]
    built, problems = load(dist_dir, projects)
    versions = {str(canonicalize_name(b.name)): str(b.wheel.version) for b in built}
    for dist in built:
        found = check(dist, versions)
        problems += found
        print(f"{'FAILED' if found else 'PASSED'}  {dist.name} {dist.wheel.version}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
