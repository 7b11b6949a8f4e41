"""Zones, lines and rules of the site YAML: read for the overlays, written back by the zone editor.

Reading goes through anjeon.siteconfig (the same validation `anjeon config
validate` and the safety service use). Writing edits one camera's section in
place with ruamel.yaml's round-trip mode, so comments and key order survive;
the new text is validated before anything is written, the old file is kept as
``FILE.bak``, and the new one replaces it atomically (the safety service
re-reads the file when it changes).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

from anjeon.siteconfig import ConfigError, load_site_config, parse_site_config


class ZoneError(ValueError):
    """A zone edit that cannot be saved; the message says why (file:line: field: ...)."""


def read_zones(path: Path | None) -> dict[str, Any]:
    """{camera: {"zones": {name: [[x, y], ...]}, "lines": {name: {...}}, "rules": [...]}} (normalized 0..1)."""
    if path is None:
        return {}
    site = load_site_config(path)
    if site.safety is None:
        return {}
    out: dict[str, Any] = {}
    for cam, rules in site.safety.cameras.items():
        out[cam] = {
            "zones": {name: [list(p) for p in poly] for name, poly in rules.zones.items()},
            "lines": {name: {"points": [list(p) for p in ln.points], "restricted": ln.restricted}
                      for name, ln in rules.lines.items()},
            "rules": [{"type": r.type, "name": r.name, "zone": r.zone, "line": r.line,
                       "min_duration": r.min_duration} for r in rules.rules],
        }
    return out


def _round(points: list) -> list:
    return [[round(float(x), 4), round(float(y), 4)] for x, y in points]


def _flow(seq: list) -> Any:
    """A list written on one line ([[0.1, 0.2], ...]), as people write zones by hand."""
    from ruamel.yaml.comments import CommentedSeq

    out = CommentedSeq(seq)
    out.fa.set_flow_style()
    return out


def save_camera(path: Path, camera: str, edit: dict[str, Any]) -> None:
    """Replace one camera's zones, lines and rules in the site YAML; raise ZoneError if invalid."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()  # round-trip: comments, order and quoting are kept
    yaml.preserve_quotes = True
    try:
        data = yaml.load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # ruamel raises many types; the message is what matters
        raise ZoneError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ZoneError(f"{path}: the site config is not a mapping")
    safety = data.setdefault("safety", CommentedMap())
    cameras = safety.setdefault("cameras", CommentedMap())
    cam = cameras.get(camera)
    if not isinstance(cam, dict):
        cam = cameras[camera] = CommentedMap()
    try:
        cam["zones"] = CommentedMap((str(n), _flow([_flow(p) for p in _round(pts)]))
                                    for n, pts in edit.get("zones", {}).items())
        lines = CommentedMap()
        for name, ln in edit.get("lines", {}).items():
            entry = CommentedMap(points=_flow([_flow(p) for p in _round(ln["points"])]))
            entry["restricted"] = str(ln.get("restricted", "right"))
            entry.fa.set_flow_style()
            lines[str(name)] = entry
        cam["lines"] = lines
        rules = []
        for rule in edit.get("rules", []):
            item = CommentedMap((str(k), v) for k, v in rule.items() if v not in ("", None))
            item.fa.set_flow_style()
            rules.append(item)
        cam["rules"] = rules
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ZoneError(f"zones of camera {camera}: malformed edit ({exc})") from None
    for key in ("zones", "lines"):
        if not cam[key]:
            del cam[key]
    buf = io.StringIO()
    yaml.dump(data, buf)
    text = buf.getvalue()
    try:
        parse_site_config(text, str(path))
    except ConfigError as exc:
        raise ZoneError(str(exc)) from None
    shutil.copy2(path, path.with_name(path.name + ".bak"))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
