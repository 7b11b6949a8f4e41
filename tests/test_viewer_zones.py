"""The zone editor keeps what it does not edit: through the real `anjeon viewer`, over HTTP, as the page does.

The page reads GET /api/zones, changes what the operator drew, and PUTs the camera back. Before, the
save dropped every rule key the editor did not show (a `critical`, `07:00-19:00` intrusion came back
plain), refused a camera with a crowding rule (422: `max_people` was dropped), and rewrote a 0600 site
file (it holds RTSP passwords) as 0644 owned by whoever ran the console.
"""

from __future__ import annotations

import json
import os
import stat

from conftest import System, wait_for
from test_viewer_hostile import Viewer, get

SITE = """\
# site of the zone test: RTSP passwords live here, so the file is 0600
cameras:
  gate: {source: "rtsp://admin:secret@10.0.0.7/stream"}  # the gate camera
safety:
  store: STORE
  cameras:  # one entry per camera
    gate:
      zones:
        crane: [[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]]  # under the crane
        walkway: [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4]]
      lines:
        fence: {points: [[0, 0.6], [1, 0.6]], restricted: left}
      rules:
        - {type: intrusion, zone: crane, min_duration: 2, hours: "07:00-19:00", severity: critical, cooldown: 30}  # main
        - {type: crowding, zone: walkway, max_people: 3, end_after: 5}
        - {type: line_crossing, line: fence, severity: info}
        - {type: dwell, zone: walkway, min_duration: 60, name: loiter}
"""


def put(viewer: Viewer, camera: str, edit: dict) -> tuple[int, dict]:
    status, _, body = get(
        f"{viewer.url}/api/zones/{camera}",
        {"Content-Type": "application/json"},
        "PUT",
        json.dumps(edit).encode(),
    )
    return status, json.loads(body)


def test_saving_keeps_every_rule_key_comment_mode_and_owner(tmp_path):
    system = System(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(SITE.replace("STORE", str(tmp_path / "events.db")), encoding="utf-8")
    site.chmod(0o600)
    os.chown(site, 4321, 4321)  # the site's service user, not whoever runs the console
    try:
        system.broker()
        viewer = Viewer(system, "viewer-zones", "--config", str(site))
        edit = viewer.json("/api/zones")["cameras"]["gate"]
        assert edit["rules"][0]["severity"] == "critical" and edit["rules"][0]["hours"] == "07:00-19:00"
        # What the page does: move one corner, change one rule's duration, add a rule; keep the rest.
        edit["zones"]["crane"][0] = [0.12, 0.5]
        edit["rules"][0]["min_duration"] = 3
        edit["rules"].append({"type": "fall", "min_duration": 2})
        status, body = put(viewer, "gate", edit)
        assert status == 200, body  # before: 422 (the crowding rule lost max_people)
        text = site.read_text(encoding="utf-8")
        for kept in (
            "severity: critical",
            'hours: "07:00-19:00"',
            "cooldown: 30",
            "max_people: 3",
            "end_after: 5",
            "severity: info",
            "name: loiter",
            "restricted: left",
            "# main",
            "# under the crane",
            "# one entry per camera",
            "# the gate camera",
            "rtsp://admin:secret@10.0.0.7/stream",
        ):
            assert kept in text, (kept, text)
        assert "min_duration: 3" in text and "[0.12, 0.5]" in text and "type: fall" in text
        assert (
            text.index("intrusion")
            < text.index("crowding")
            < text.index("line_crossing")
            < text.index("fall")
        )
        st = site.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (4321, 4321)
        backup = (tmp_path / "site.yaml.bak").stat()
        assert stat.S_IMODE(backup.st_mode) == 0o600 and backup.st_uid == 4321
        # Clearing a field the editor shows removes that key only.
        edit = viewer.json("/api/zones")["cameras"]["gate"]
        edit["rules"][1]["max_people"] = 5
        edit["rules"][0]["min_duration"] = None
        assert put(viewer, "gate", edit)[0] == 200
        text = site.read_text(encoding="utf-8")
        assert "max_people: 5" in text and "severity: critical" in text and "min_duration: 3" not in text
        # A new camera with a crowding rule drawn in the editor saves too.
        new = {
            "zones": {"pit": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]},
            "lines": {},
            "rules": [{"type": "crowding", "zone": "pit", "max_people": 2, "severity": "critical"}],
        }
        assert put(viewer, "yard", new)[0] == 200
        assert viewer.json("/api/zones")["cameras"]["yard"]["rules"][0]["max_people"] == 2
        # Invalid edits change nothing.
        before = site.read_text(encoding="utf-8")
        assert put(viewer, "yard", {"zones": {}, "rules": [{"type": "crowding", "zone": "pit"}]})[0] == 422
        assert site.read_text(encoding="utf-8") == before
        wait_for(lambda: viewer.proc.alive, 1, "the viewer alive")
    finally:
        system.close()
