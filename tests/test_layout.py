"""The shape of the code holds: roles import only the shared packages and themselves.

A role (edge, broker, inference, safety, viewer, loadtest) may import `anjeon.protocol`,
`anjeon.config` (the site's settings) and `anjeon.runtime` (how a process runs), and its
own package; the shared packages import only `protocol` (and, for `runtime`, `config`);
nothing but the CLI imports `anjeon.cli*`. Read from the source with `ast`, so a lazy
import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

ROLES = ("edge", "broker", "inference", "safety", "viewer", "loadtest")
SHARED = {
    "protocol": {"protocol"},
    "config": {"protocol", "config"},
    "runtime": {"protocol", "config", "runtime"},
}
ALLOWED = {role: {"protocol", "config", "runtime", role} for role in ROLES} | SHARED


def anjeon_imports(path: Path, package: str, root: Path = ROOT) -> set[str]:
    """The top-level anjeon sub-packages a module imports (absolute or relative; `<above>` for a
    relative import that climbs out of its package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: within its own package unless it climbs above it
                depth = len(path.relative_to(root / package).parts) - 1
                names = [f"anjeon.{package}"] if node.level <= depth + 1 else ["anjeon.<above>"]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "anjeon":
                found.add(parts[1] if len(parts) > 1 else "anjeon")
    return found


def test_roles_import_only_the_shared_packages_and_themselves():
    wrong = {}
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            extra = anjeon_imports(path, package) - allowed
            if extra:
                wrong[str(path.relative_to(ROOT))] = sorted(extra)
    assert not wrong, wrong


def test_the_check_sees_a_role_importing_another(tmp_path):
    # The rule above must be able to fail: a lazy import of another role inside a function is found,
    # and so is a relative import that climbs out of the package; one within it is the package's own.
    probe = tmp_path / "viewer" / "console" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from .state import x\nfrom ..watch import y\n"
        "def f():\n    from anjeon.safety import store\n    from ...protocol import wire\n"
    )
    assert anjeon_imports(probe, "viewer", tmp_path) == {"viewer", "safety", "<above>"}
