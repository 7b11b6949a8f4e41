"""Make empty stand-ins for the folders of the packages pyproject.toml lists (and its readme), under the
folder given.

The images install anjeon's dependencies from pyproject.toml alone, in a layer of their own, before the
sources are copied: a change to the code then rebuilds only the small layer that installs anjeon itself,
not the hundreds of megabytes below it. pip needs the package's folders to exist for that first install.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def package_folder(root: Path, package: str, package_dirs: dict[str, str]) -> Path:
    """Where setuptools looks for ``package``: under the longest package-dir prefix that maps it."""
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in package_dirs:
            return root / package_dirs[prefix] / Path(*parts[i:])
    return root / Path(*parts)


def main(root: Path) -> None:
    project = tomllib.loads((root / "pyproject.toml").read_text())
    readme = project["project"].get("readme")
    if isinstance(readme, str) and not (root / readme).exists():  # so that README edits rebuild nothing
        (root / readme).write_text("")
    config = project["tool"]["setuptools"]
    for package in config["packages"]:
        folder = package_folder(root, package, config.get("package-dir", {}))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").touch()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
