"""Edge settings around real cameras: per-camera settings from a site config, --fast files
(password masking is tested in test_secrets.py)."""

from __future__ import annotations

import pytest
from conftest import SAMPLE
from rtsp_helpers import make_clip

from anjeon.cli import broker as broker_command
from anjeon.cli import edge as edge_command
from anjeon.cli import worker as worker_command
from anjeon.cli_options import BROKER_FLAGS, CAMERA_FLAGS, WORKER_DEVICE_FLAGS, WORKER_RUN_FLAGS, flag_values
from anjeon.config import CameraConfig, ConfigError, SiteConfig, parse_site_config
from anjeon.config.schema import yaml_fields
from anjeon.config.site import BrokerSection
from anjeon.upspec import build_specs

SITE = """
cameras:
  gate:
    source: rtsp://admin:pw@10.0.0.7/stream
    transport: udp
    stall_timeout: 4
  yard:
    source: clip.mp4
    realtime: false
"""


def test_site_config_carries_camera_transport_watchdog_and_pacing():
    site = parse_site_config(SITE, "site.yaml")
    assert site.cameras["gate"].transport == "udp" and site.cameras["gate"].stall_timeout == 4.0
    assert site.cameras["yard"].realtime is False and site.cameras["yard"].transport == "tcp"
    edges = {s.name: s.argv for s in build_specs(site, 2, False) if s.name.startswith("edge-")}
    assert edges["edge-gate"][edges["edge-gate"].index("--transport") + 1] == "udp"
    assert "--fast" in edges["edge-yard"] and "--fast" not in edges["edge-gate"]
    assert not any("pw@" in arg for arg in edges["edge-gate"])  # the URL goes by environment, not argv


@pytest.mark.parametrize(
    "settings, words",
    [
        ("{source: x, transport: http}", "cameras.gate.transport: 'http' is not one of tcp, udp"),
        ("{source: x, stall_timeout: 0}", "cameras.gate.stall_timeout: 0.0 is out of range"),
    ],
)
def test_bad_camera_settings_are_named(settings, words):
    with pytest.raises(ConfigError, match=words):
        parse_site_config(f"cameras:\n  gate: {settings}\n", "site.yaml")


def test_every_setting_reaches_the_process_anjeon_up_starts():
    """The argv `anjeon up` builds, read back by the child's own options, gives the settings of the file."""
    camera = CameraConfig(
        "gate",
        "x.mp4",
        fps=3.5,
        width=320,
        quality=40,
        loop=True,
        realtime=False,
        transport="udp",
        stall_timeout=7.0,
    )
    assert {f.field for f in CAMERA_FLAGS} == set(yaml_fields(CameraConfig)) - {"source"}  # none forgotten
    site = SiteConfig(cameras={"gate": camera})
    site.broker.bind, site.broker.base_port, site.broker.max_age = "127.0.0.1", 6100, 2.5
    site.broker.max_credit, site.broker.max_cameras, site.broker.unclaimed_fps = 64, 5000, 20.0
    site.workers.device, site.workers.batch, site.workers.max_age, site.workers.render = "cpu", 4, 0.5, True
    specs = {s.name: s.argv for s in build_specs(site, cores=6, with_watch=False)}

    def read_back(command, argv, flags):
        return flag_values(flags, command.make_context(command.name, list(argv[1:])).params)

    edge = read_back(edge_command, specs["edge-gate"], CAMERA_FLAGS)
    assert edge == {f.field: getattr(camera, f.field) for f in CAMERA_FLAGS}
    assert {f.field for f in BROKER_FLAGS} == set(yaml_fields(BrokerSection))  # none forgotten
    assert read_back(broker_command, specs["broker"], BROKER_FLAGS) == {
        "bind": "127.0.0.1",
        "base_port": 6100,
        "max_age": 2.5,
        "max_frame_bytes": BrokerSection().max_frame_bytes,
        "max_credit": 64,
        "max_cameras": 5000,
        "max_peers": BrokerSection().max_peers,
        "unclaimed_fps": 20.0,
    }
    worker = read_back(worker_command, specs["worker-1"], WORKER_DEVICE_FLAGS + WORKER_RUN_FLAGS)
    assert worker == {"device": "cpu", "batch": 4, "max_age": 0.5, "threads": 6, "render": True}


def test_edge_takes_per_camera_settings_from_a_site_config(system, bus_jpg, tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(
        f"cameras:\n  scene: {{source: synthetic, width: 320, fps: 3}}\n"
        f"  bus: {{source: '{bus_jpg}', width: 200, quality: 40, fps: 2}}\n"
    )
    system.broker()
    system.worker("w1", "null")
    edge = system.start("edge", "edge", "--broker", system.broker_url, "--config", str(config))
    sub = system.subscriber()
    widths = {}
    for result in sub.results(6, timeout=60):
        widths[result["camera"]] = result["width"]
    assert widths == {"scene": 320, "bus": 200}, widths
    assert edge.alive


def test_fast_reads_a_file_to_its_end_without_real_time_pacing(system, tmp_path):
    # The sample is 795 frames at 10 fps (the stand-in 1200): over 60 s in real time. --fast reads it as
    # fast as it decodes, so it ends within the wait below even on a slow machine (no duration is asserted).
    clip = SAMPLE if SAMPLE.exists() else make_clip(tmp_path / "clip.avi", frames=1200)
    system.broker()
    edge = system.edge("edge1", f"clip={clip}", fps=120, extra=("--fast",))
    sub = system.subscriber()
    sub.status_where(lambda s: s.get("cameras", {}).get("clip", {}).get("state") == "ended", 60, "clip ended")
    assert "ended" in edge.output()
