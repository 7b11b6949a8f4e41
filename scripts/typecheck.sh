#!/usr/bin/env bash
# mypy over every package as it installs: anjeon.protocol is protocol/, anjeon.broker is broker/, ...
# setuptools maps these with package-dir, which mypy cannot read, so a symlinked view of the tree is
# checked instead (in .cache, rebuilt each run). Usage: scripts/typecheck.sh [extra mypy args]
set -euo pipefail
cd "$(dirname "$0")/.."
view=.cache/typecheck
rm -rf "$view" && mkdir -p "$view/anjeon"
for f in anjeon/*.py; do ln -s "../../../$f" "$view/anjeon/"; done
for d in protocol edge broker inference viewer safety loadtest config runtime; do ln -s "../../../$d" "$view/anjeon/$d"; done
exec "${MYPY:-.venv/bin/mypy}" --config-file pyproject.toml --cache-dir .cache/mypy "$@" "$view/anjeon"
