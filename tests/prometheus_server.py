"""A real Prometheus server (Debian's `prometheus`) for the tests, scraping anjeon processes on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import wait_for

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int, timeout: float = 5.0) -> str:
    """The text of GET /metrics of one process."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return r.read().decode()


def try_scrape(port: int) -> str:
    try:
        return scrape(port, timeout=2.0)
    except OSError:
        return ""


def samples(text: str, name: str) -> dict[str, float]:
    """Samples of one metric in exposition text: {'{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            rest = key[len(name) :]
            if rest == "" or rest.startswith("{"):
                out[rest] = float(value)
    return out


def metric_names(text: str) -> set[str]:
    """Every metric family named by a # TYPE line, with the sample suffixes of its type."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter" and not name.endswith("_total"):
                names.add(f"{name}_total")
    return names


class Prometheus:
    """prometheus on 127.0.0.1 with a generated config: one job per anjeon process, scraped every second."""

    def __init__(self, tmp: Path, targets: dict[str, int]) -> None:
        if PROMETHEUS is None:
            pytest.skip(
                "Debian's prometheus is not installed (deploy/test-packages.txt; scripts/test-deps.sh)"
            )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jobs = "\n".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']"
            for job, port in targets.items()
        )
        config = tmp / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n{jobs}\n"
        )
        self.log = tmp / "prometheus.log"
        self._log = open(self.log, "wb")
        self.popen = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        wait_for(self._ready, 60, "prometheus to be ready", interval=0.2)

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict]:
        """The instant vector of a PromQL query: [{'metric': {...}, 'value': float}]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return [{"metric": s["metric"], "value": float(s["value"][1])} for s in body["data"]["result"]]

    def value(self, promql: str) -> float | None:
        """The single value of a query, or None while it has no result."""
        result = self.query(promql)
        return result[0]["value"] if len(result) == 1 else None

    def wait_value(self, promql: str, check, timeout: float, what: str) -> float:
        def ok():
            v = self.value(promql)
            return (v,) if v is not None and check(v) else None

        return wait_for(ok, timeout, f"{what} ({promql})", interval=0.5)[0]

    def label_names(self) -> set[str]:
        with urllib.request.urlopen(f"{self.url}/api/v1/label/__name__/values", timeout=10) as r:
            return set(json.load(r)["data"])

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def wait_scrapeable(port: int, timeout: float, what: str) -> str:
    return wait_for(lambda: try_scrape(port), timeout, f"{what} to serve /metrics on {port}")
