"""Zones, lines and rules of the site YAML: read for the overlays, written back by the zone editor.

Reading goes through anjeon.config (the same validation `anjeon config
validate` and the safety service use). Writing edits one camera's section in
place with ruamel.yaml's round-trip mode, so comments and key order survive;
the new text is validated before anything is written, the old file is kept as
``FILE.bak``, and the new one replaces it atomically (the safety service
re-reads the file when it changes).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anjeon.config import ConfigError, load_site_config, parse_site_config

log = logging.getLogger("anjeon.viewer")


class ZoneError(ValueError):
    """A zone edit that cannot be saved; the message says why (file:line: field: ...)."""


def _raw_rules(path: Path) -> dict[str, list[Any]]:
    """Each camera's rules as written in the file (every key, the file's own values), for the editor."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    cams = ((data.get("safety") or {}).get("cameras") or {}) if isinstance(data, dict) else {}
    return {str(cam): list(body.get("rules") or []) for cam, body in cams.items() if isinstance(body, dict)}


def _plain(value: Any) -> Any:
    """A YAML scalar as JSON can carry it (a date or time a user wrote unquoted becomes its text)."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def read_zones(path: Path | None) -> dict[str, Any]:
    """{camera: {"zones": {name: [[x, y], ...]}, "lines": {name: {...}}, "rules": [...]}} (normalized 0..1).

    Each rule is the map as written in the file (so the editor sends back every key it does not edit),
    plus ``_index`` (its place in the file, which PUT uses to keep the original entry and its comments)
    and ``_name`` (the effective name, for display).
    """
    if path is None:
        return {}
    site = load_site_config(path)
    if site.safety is None:
        return {}
    raw = _raw_rules(path)
    out: dict[str, Any] = {}
    for cam, rules in site.safety.cameras.items():
        written = raw.get(cam, [])
        out[cam] = {
            "zones": {name: [list(p) for p in poly] for name, poly in rules.zones.items()},
            "lines": {
                name: {"points": [list(p) for p in ln.points], "restricted": ln.restricted}
                for name, ln in rules.lines.items()
            },
            "rules": [
                {
                    **{str(k): _plain(v) for k, v in (written[i] if i < len(written) else {}).items()},
                    "_index": i,
                    "_name": r.name,
                }
                for i, r in enumerate(rules.rules)
            ],
        }
    return out


def _round(points: Sequence[Sequence[float]]) -> list[list[float]]:
    return [[round(float(x), 4), round(float(y), 4)] for x, y in points]


def _flow(seq: list[Any]) -> Any:
    """A list written on one line ([[0.1, 0.2], ...]), as people write zones by hand."""
    from ruamel.yaml.comments import CommentedSeq

    out = CommentedSeq(seq)
    out.fa.set_flow_style()
    return out


def _points(points: Sequence[Sequence[float]]) -> Any:
    return _flow([_flow(p) for p in _round(points)])


def _update(target: Any, values: dict[str, Any]) -> None:
    """Set what changed in a YAML map in place (its comments and key order stay); null or "" removes a key."""
    for key, value in values.items():
        if key.startswith("_"):
            continue  # the editor's bookkeeping (_index, _name), never written
        if value is None or value == "":
            target.pop(key, None)
        elif target.get(key) != value:
            target[key] = value


def _section(cam: Any, key: str, keep: dict[str, Any]) -> Any:
    """cam[key] as a YAML map (made if missing) holding only the names in ``keep``."""
    from ruamel.yaml.comments import CommentedMap

    target = cam.get(key)
    if not isinstance(target, dict):
        target = cam[key] = CommentedMap()
    for name in [n for n in target if n not in keep]:
        del target[name]
    return target


def _merge_zones(cam: Any, zones: dict[str, Any]) -> None:
    target = _section(cam, "zones", zones)
    for name, pts in zones.items():
        if target.get(name) != _round(pts):
            target[str(name)] = _points(pts)


def _merge_lines(cam: Any, lines: dict[str, Any]) -> None:
    from ruamel.yaml.comments import CommentedMap

    target = _section(cam, "lines", lines)
    for name, ln in lines.items():
        entry = target.get(name)
        if not isinstance(entry, dict):
            entry = target[str(name)] = CommentedMap()
            entry.fa.set_flow_style()
        if entry.get("points") != _round(ln["points"]):
            entry["points"] = _points(ln["points"])
        _update(entry, {"restricted": str(ln.get("restricted") or "right")})


def _merge_rules(cam: Any, rules: list[dict[str, Any]]) -> None:
    """Rules in the edit's order; one that names its ``_index`` updates that entry of the file in place."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    old = cam.get("rules") if isinstance(cam.get("rules"), list) else []
    items = []
    for rule in rules:
        index = rule.get("_index")
        if (
            isinstance(index, int)
            and not isinstance(index, bool)
            and 0 <= index < len(old)
            and isinstance(old[index], dict)
        ):
            item = old[index]
        else:
            item = CommentedMap()
            item.fa.set_flow_style()
        _update(item, {str(k): v for k, v in rule.items()})
        items.append(item)
    seq = cam.get("rules")
    if not isinstance(seq, CommentedSeq):
        cam["rules"] = items
        return
    places = [next((i for i, o in enumerate(old) if o is item), None) for item in items]
    kept = [p for p in places if p is not None]
    if kept == sorted(kept) and all(p is not None for p in places[: len(kept)]):
        # Rules removed and new ones appended, the rest in their order: edit the sequence in place, so
        # each remaining entry keeps its own comment.
        for i in reversed(range(len(old))):
            if i not in kept:
                del seq[i]
        for item in items[len(kept) :]:
            seq.append(item)
    else:
        seq[:] = items  # reordered: the sequence and the comments around it stay, item comments may move


def _write_like(path: Path, text: str) -> None:
    """Replace the file atomically with the same mode and owner (a 0600 site file with passwords stays 0600)."""
    real = path.resolve()  # a symlinked config: write the file it points at, keep the link
    st = real.stat()
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(st.st_mode))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode))  # the umask narrowed os.open's mode
        _chown_like(tmp, st)
        os.replace(tmp, real)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _chown_like(target: Path, st: os.stat_result) -> None:
    if (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.chown(target, st.st_uid, st.st_gid)
    except PermissionError:
        log.warning("%s: cannot keep its owner %d:%d (not running as root)", target, st.st_uid, st.st_gid)


def save_camera(path: Path, camera: str, edit: dict[str, Any]) -> None:
    """Apply one camera's zones, lines and rules to the site YAML; raise ZoneError if invalid.

    Everything the edit does not name is kept: other cameras and sections, every
    rule key the editor does not show (severity, hours, cooldown, end_after ...),
    comments, key order, the file's mode and owner.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()  # round-trip: comments, order and quoting are kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a rule's line
    yaml.indent(mapping=2, sequence=4, offset=2)  # "  - {...}" under "rules:", as docs/safety.md writes it
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
        _merge_zones(cam, edit.get("zones") or {})
        _merge_lines(cam, edit.get("lines") or {})
        _merge_rules(cam, [r for r in edit.get("rules") or [] if isinstance(r, dict)])
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
    backup = path.resolve().with_name(path.resolve().name + ".bak")
    shutil.copy2(path.resolve(), backup)  # mode kept by copy2; owner below
    _chown_like(backup, path.resolve().stat())
    _write_like(path, text)
