"""Import cost of a plugin: which heavy libraries its modules pull in, and how long they take.

`cookbook list` imports every plugin's hook module, and `describe`/`--help` import the builder
module; both must stay cheap, so neither may import torch, tinker, transformers or textarena at
module level. The check imports the modules in a fresh interpreter (this process has most of
them loaded already) and names the import statement that brought each heavy library in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

HEAVY_MODULES: tuple[str, ...] = ("torch", "tinker", "transformers", "textarena")
"""Libraries a module imported while plugins are listed must not import at module level."""

# Runs in the fresh interpreter. A meta-path finder sees the first import of each heavy library
# and keeps the innermost frame outside importlib: the line that asked for it.
_PROBE = r"""
import importlib, json, sys, time, traceback

modules = json.loads(sys.argv[1])
heavy = set(json.loads(sys.argv[2]))
culprit = {}

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name in heavy and name not in culprit:
            frames = [f for f in traceback.extract_stack()[:-1]
                      if "importlib" not in f.filename and not f.filename.startswith("<")]
            where = frames[-1] if frames else None
            culprit[name] = f"{where.filename}:{where.lineno}" if where else "?"
        return None

sys.meta_path.insert(0, Spy())
out = []
for role, name in modules:
    before = set(culprit)
    t0 = time.perf_counter()
    error = None
    try:
        importlib.import_module(name)
    except BaseException as e:
        missing = getattr(e, "name", None) if isinstance(e, ModuleNotFoundError) else None
        error = {"type": type(e).__name__, "message": str(e).splitlines()[0] if str(e) else "",
                 "missing_self": missing is not None and (name == missing or name.startswith(missing + "."))}
    out.append({"role": role, "module": name, "time_s": time.perf_counter() - t0,
                "heavy": {h: culprit[h] for h in sorted(set(culprit) - before)}, "error": error})
print(json.dumps(out))
"""


@dataclass(frozen=True)
class ImportProbe:
    """What importing one module in a fresh interpreter did."""

    role: str
    """Why it is checked: `hook module` (imported by `cookbook list`) or `builder module`."""
    module: str
    """The dotted module name."""
    time_s: float
    """Import time, dependencies included (those not already imported by earlier modules)."""
    heavy: dict[str, str]
    """Heavy library -> `file:line` of the import that loaded it."""
    error: str | None
    """`Type: message` when the import failed."""
    not_found: bool
    """The module itself could not be found (defined in `__main__`, or not on the path)."""


def hook_modules(distribution: str) -> list[str]:
    """The modules `distribution` publishes in the `cookbook` entry-point group."""
    from cookbook.registry.discovery import ENTRY_POINT_GROUP
    from cookbook.registry.specs import normalize_distribution

    wanted = normalize_distribution(distribution)
    found: list[str] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None and normalize_distribution(ep.dist.name) == wanted:
            found.append(ep.value.partition(":")[0].strip())
    return sorted(set(found))


def probe_imports(
    modules: Sequence[tuple[str, str]],
    heavy: Sequence[str] = HEAVY_MODULES,
    timeout_s: float = 120.0,
) -> list[ImportProbe]:
    """Import `(role, module)` pairs in order in a fresh interpreter that sees this process's
    `sys.path`; report the heavy libraries each one brought in."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            json.dumps([list(m) for m in modules]),
            json.dumps(list(heavy)),
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the import probe crashed (exit {done.returncode}): {tail}")
    # The last line: a plugin printing on import must not confuse the parse.
    records = json.loads(done.stdout.strip().splitlines()[-1])
    probes: list[ImportProbe] = []
    for r in records:
        error = r["error"]
        probes.append(
            ImportProbe(
                role=str(r["role"]),
                module=str(r["module"]),
                time_s=float(r["time_s"]),
                heavy={str(k): str(v) for k, v in r["heavy"].items()},
                error=None if error is None else f"{error['type']}: {error['message']}",
                not_found=bool(error and error["missing_self"]),
            )
        )
    return probes
