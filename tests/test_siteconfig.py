"""The site config: good files load, hostile ones are rejected naming line and field."""

import pytest

from anjeon.config import ConfigError, parse_site_config
from anjeon.upspec import build_specs

GOOD = """\
# a site
broker:
  base_port: 6000
workers:
  count: 2
  model: person
cameras:
  gate:
    source: rtsp://admin:pw@10.0.0.7/stream
    fps: 5
  yard: clip.mp4
"""


def test_good_config_loads_and_becomes_processes():
    site = parse_site_config(GOOD, "site.yaml")
    assert site.broker.base_port == 6000
    assert site.workers.count == 2
    assert site.cameras["gate"].fps == 5.0
    assert site.cameras["yard"].source == "clip.mp4"
    specs = build_specs(site, cores=2, with_watch=True)
    names = [s.name for s in specs]
    assert names == ["broker", "worker-1", "worker-2", "edge-gate", "edge-yard", "watch"]
    worker = specs[1].argv
    assert worker[worker.index("--threads") + 1] == "1"  # two workers split two cores
    assert specs[-1].foreground


@pytest.mark.parametrize(
    "text, expected",
    [
        ("broker:\n  base_prot: 6000\n", "site.yaml:2: broker.base_prot: unknown setting"),
        ("workers:\n  count: many\n", "site.yaml:2: workers.count: must be int"),
        ("workers:\n  batch: 0\n", "site.yaml:2: workers.batch: 0 is out of range"),
        ("cameras:\n  gate:\n    fps: 5\n", "site.yaml:2: cameras.gate: needs a source"),
        ("cameras:\n  bad/id: x.mp4\n", "site.yaml:2: cameras.bad/id: a camera id"),
        (
            "cameras:\n  gate:\n    source: x\n    zoom: 2\n",
            "site.yaml:4: cameras.gate.zoom: unknown setting",
        ),
        ("alerts: {}\n", "site.yaml:1: alerts: unknown section"),
        ("broker: [1, 2]\n", "site.yaml:1: broker: must be a mapping"),
        ("workers:\n  count: 1\n   model: x\n", "site.yaml:3: not valid YAML"),
        ("- just\n- a list\n", "site.yaml: (top level): the file must be a mapping"),
    ],
)
def test_hostile_config_names_line_and_field(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_site_config(text, "site.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def _anjeon_imports(path):
    """The anjeon.X packages a module imports (relative imports resolved against its own package)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            # `from .cli import x` in anjeon/ is anjeon.cli; other relative imports stay in their own package
            names = [
                node.module
                if node.level == 0
                else f"anjeon.{node.module}"
                if path.parent.name == "anjeon"
                else ""
            ]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("anjeon.")}
    return found


def test_the_shared_settings_and_runtime_import_no_role():
    """Any role may import anjeon.config and anjeon.runtime because they import only the protocol."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for folder in ("config", "runtime"):
        for path in sorted((root / folder).glob("*.py")):
            assert _anjeon_imports(path) <= {"protocol", "config", "runtime"}, path
    for path in sorted((root / "anjeon").glob("cli_*.py")):  # the command modules never import cli.py back
        assert "cli" not in _anjeon_imports(path), path
