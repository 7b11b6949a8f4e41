"""Prometheus metrics: every process serves /metrics, a real Prometheus scrapes them (docs/metrics.md).

The pipeline runs with a `null:300` worker (300 ms per frame, no model): two
cameras at 10 fps overload it several times over, so the broker must drop
frames, and the metric that says so must reach Prometheus. Every wait is
bounded; nothing depends on how fast this machine is.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import zmq
from conftest import ROOT, free_base_port, wait_for
from prometheus_server import Prometheus, free_port, metric_names, samples, scrape, wait_scrapeable
from safety_fixtures import write_config

from anjeon.config import CameraConfig, SiteConfig
from anjeon.protocol import metrics, wire
from anjeon.upspec import assign_metrics_ports, build_specs

DASHBOARD = ROOT / "deploy" / "grafana" / "anjeon.json"
RULES = """
zones:
  yard: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
rules:
  - {type: intrusion, zone: yard, min_duration: 1.0, end_after: 3.0}
"""
ROLES = ("broker", "edge", "worker", "safety", "viewer")


def start_everything(system, tmp_path: Path, bus_jpg: str) -> dict[str, int]:
    """Broker, a slow null worker, an edge with two cameras, safety and the console, each with --metrics-port."""
    ports = {role: free_port() for role in ROLES}
    flag = lambda role: ("--metrics-port", str(ports[role]))  # noqa: E731
    system.broker(*flag("broker"))
    system.worker("w1", "null:300", *flag("worker"))
    history = free_base_port()
    config = write_config(tmp_path / "site.yaml", "c1", RULES, tmp_path / "events.db")
    system.start(
        "safety",
        "safety",
        "--broker",
        system.broker_url,
        "--config",
        str(config),
        "--history-bind",
        f"tcp://127.0.0.1:{history}",
        *flag("safety"),
    )
    system.start(
        "viewer",
        "viewer",
        "--broker",
        system.broker_url,
        "--port",
        str(free_port()),
        "--history",
        f"tcp://127.0.0.1:{history}",
        "--acks",
        str(tmp_path / "acks.jsonl"),
        *flag("viewer"),
    )
    system.edge("edge", f"c1={bus_jpg}", f"c2={bus_jpg}", fps=10, extra=flag("edge"))
    for role, port in ports.items():
        wait_scrapeable(port, 90, role)
    return ports


def dashboard_queries() -> list[str]:
    """Every PromQL of the dashboard, with Grafana's variables expanded as Grafana would (camera: All)."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [
        v["definition"].replace("label_values(", "group by (camera) (").replace(", camera)", ")")
        for v in board["templating"]["list"]
        if v["type"] == "query"
    ]
    assert len(exprs) >= 20 and all(
        p["datasource"]["uid"] == "${datasource}" for p in board["panels"] if "targets" in p
    )
    return [e.replace("$__rate_interval", "1m").replace("$camera", ".*") for e in exprs]


def doc_queries() -> list[str]:
    """The PromQL blocks of docs/metrics.md (the autoscaling query H6's KEDA object uses among them)."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    blocks = re.findall(r"```promql\n(.*?)```", text, re.S)
    queries = [q for b in blocks for q in re.split(r"\n(?=#)", b.strip())]
    return [" ".join(line for line in q.splitlines() if not line.startswith("#")) for q in queries]


def names_in(promql: str) -> set[str]:
    return {n for n in re.findall(r"\b(anjeon_[a-z0-9_]+|process_[a-z0-9_]+)\b", promql)}


def test_prometheus_scrapes_every_process_counts_frames_drops_and_sees_a_worker_die(
    system, tmp_path, bus_jpg
):
    ports = start_everything(system, tmp_path, bus_jpg)
    prom = Prometheus(tmp_path, ports)
    try:
        for role in ROLES:
            prom.wait_value(f'up{{job="{role}"}}', lambda v: v == 1, 60, f"{role} scraped")
        prom.wait_value("sum(anjeon_broker_frames_received_total)", lambda v: v >= 10, 60, "frames counted")
        prom.wait_value(
            "sum(anjeon_edge_frames_sent_total)", lambda v: v >= 10, 60, "frames sent by the edge"
        )
        prom.wait_value("anjeon_worker_frames_total", lambda v: v >= 1, 60, "frames inferred")
        prom.wait_value("sum(anjeon_safety_results_total)", lambda v: v >= 1, 60, "results evaluated")
        prom.wait_value(
            'sum(anjeon_latency_seconds_count{stage="safety"})', lambda v: v >= 1, 60, "latency seen"
        )
        # 20 frames/s offered to a worker that takes ~3: the broker keeps only the newest frame and says why.
        prom.wait_value(
            'sum(anjeon_frames_dropped_total{stage="broker",reason=~"superseded|expired"})',
            lambda v: v >= 5,
            60,
            "a drop reason after overload",
        )
        cams = {s["metric"]["camera"] for s in prom.query("anjeon_broker_frames_received_total")}
        assert cams == {"c1", "c2"}, cams
        # Every dashboard query evaluates in this Prometheus and names only metrics these processes export.
        exported = set().union(*(metric_names(scrape(p)) for p in ports.values()))
        for expr in dashboard_queries() + doc_queries():
            assert names_in(expr) <= exported, (expr, names_in(expr) - exported)
            prom.query(expr)  # raises unless Prometheus accepts the PromQL
        prom.wait_value(
            'anjeon_peers{role="worker",state="online"}', lambda v: v == 1, 30, "one worker online"
        )
        worker = next(p for p in system.procs if p.name == "w1")
        worker.kill()  # SIGKILL: no goodbye, only missed heartbeats tell
        prom.wait_value('anjeon_peers{role="worker",state="online"}', lambda v: v == 0, 30, "worker gone")
        prom.wait_value('up{job="worker"}', lambda v: v == 0, 30, "its endpoint gone")
        assert prom.value('anjeon_peer_up{role="worker",peer="w1"}') == 0
    except AssertionError:
        print(prom.output())
        raise
    finally:
        prom.close()


def test_camera_labels_are_capped_and_totals_still_add_up(system, monkeypatch):
    """Camera ids come from the network: only the first N get a label, the rest are summed as "other"."""
    monkeypatch.setenv("ANJEON_METRICS_MAX_CAMERAS", "3")
    port = free_port()
    system.broker("--metrics-port", str(port))
    wait_scrapeable(port, 60, "broker")
    push = system.socket(zmq.PUSH, 0)
    jpeg = b"\xff\xd8" + b"\0" * 100
    sent = 0
    for i in range(40):
        cam = f"cam{i % 8}"
        header = wire.FrameHeader(
            camera=cam, run="r", seq=i + 1, t_capture=time.time(), width=1, height=1, size=len(jpeg)
        )
        push.send_multipart([header.to_wire(), jpeg])
        sent += 1
    received = lambda: samples(scrape(port), "anjeon_broker_frames_received_total")  # noqa: E731
    counts = wait_for(lambda: (c := received()) and sum(c.values()) == sent and c, 30, "every frame counted")
    labels = {re.search(r'camera="([^"]+)"', k).group(1) for k in counts}
    assert len(labels) == 4 and "other" in labels, labels


def test_totals_stay_monotonic_when_sources_reset_or_vanish():
    totals = metrics.Totals()
    one = lambda k: (k,)  # noqa: E731
    assert totals.update({"a": 5, "b": 2}, one) == {("a",): 5, ("b",): 2}
    assert totals.update({"a": 7}, one) == {("a",): 7, ("b",): 2}  # b forgotten: its total stays
    assert totals.update({"a": 3, "b": 1}, one) == {("a",): 10, ("b",): 3}  # a restarted from 0; b came back
    cap = metrics.LabelCap(2)
    assert [cap(c) for c in ("x", "y", "z", "x", "other")] == ["x", "y", "other", "x", "other"]


def test_up_gives_every_service_its_own_metrics_port():
    site = SiteConfig()
    site.cameras = {"a": CameraConfig(source="synthetic"), "b": CameraConfig(source="synthetic")}
    specs = build_specs(site, cores=2, with_watch=True, viewer_port=8080)
    ports = assign_metrics_ports(specs, 9300)
    assert set(ports) == {s.name for s in specs if not s.foreground} and "watch" not in ports
    assert sorted(ports.values()) == list(range(9300, 9300 + len(ports)))
    for spec in specs:
        if spec.name in ports:
            assert spec.argv[-2:] == ["--metrics-port", str(ports[spec.name])]


def test_a_taken_metrics_port_is_a_one_line_error(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "anjeon",
                "broker",
                "--bind",
                "127.0.0.1",
                "--base-port",
                str(free_base_port()),
                "--metrics-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0
    assert f"cannot serve metrics on 127.0.0.1:{port}" in run.stderr and "Traceback" not in run.stderr, (
        run.stderr
    )
