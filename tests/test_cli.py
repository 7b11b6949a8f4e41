"""The command line: wrong flags and unreachable brokers get one clear sentence, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires

import pytest
from conftest import ROOT, free_base_port


def anjeon(*args: str, timeout: float = 60, pre: str = "") -> subprocess.CompletedProcess:
    code = f"{pre}; from anjeon.cli import main; main()" if pre else "from anjeon.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["worker", "--batch", "0"], 2, "Invalid value for '--batch'"),
        (["edge", "--camera", "nonsense"], 2, "should be NAME=SOURCE"),
        (["edge", "--camera", "a/b=0"], 2, "camera id 'a/b'"),
        (["edge", "--camera", "a=0", "--camera", "a=1"], 2, "camera 'a' is given twice"),
        (["edge", "--broker", "http://host", "--camera", "a=0"], 2, "is not a broker address"),
        (["broker", "--base-port", "70000"], 2, "base port 70000 is out of range"),
        (["worker", "--model", "/nope/model.pt"], 1, "is neither a built-in"),
        (["worker", "--device", "cuda:3"], 1, "torch sees no CUDA device"),
        (["watch", "--camera", "x y"], 2, "camera id 'x y'"),
    ],
)
def test_wrong_flags_get_one_clear_sentence(args, code, message):
    done = anjeon(*args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_without_the_model_stack_says_how_to_install_it():
    # Hide ultralytics as if only the base package were installed.
    done = anjeon("worker", pre="import sys; sys.modules['ultralytics'] = None")
    assert done.returncode == 1
    assert "pip install 'anjeon[worker]'" in done.stderr and "Traceback" not in done.stderr


def test_a_second_broker_on_the_same_ports_says_so(system):
    first = system.broker()
    import time

    time.sleep(1.0)
    done = anjeon("broker", "--bind", "127.0.0.1", "--base-port", str(system.base))
    assert done.returncode == 1
    assert "cannot bind" in done.stderr and "another broker" in done.stderr
    assert first.alive


def test_unreachable_broker_is_reported_once_and_the_client_keeps_trying():
    port = free_base_port()
    done = anjeon("watch", "--broker", f"tcp://127.0.0.1:{port}", "--duration", "6", "--json")
    assert done.returncode == 0
    assert done.stderr.count("cannot reach the broker") == 1, done.stderr


def test_config_validate(tmp_path):
    good = tmp_path / "site.yaml"
    good.write_text("cameras:\n  gate: rtsp://u:p@10.0.0.1/s\n")
    done = anjeon("config", "validate", str(good))
    assert done.returncode == 0 and "OK (1 camera(s)" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers:\n  count: 1\n  modle: person\n")
    done = anjeon("config", "validate", str(bad))
    assert done.returncode == 1 and f"{bad}:3: workers.modle: unknown setting" in done.stderr
    done = anjeon("up", "--config", str(bad))
    assert done.returncode == 1 and "workers.modle" in done.stderr


def test_base_install_needs_no_torch():
    reqs = requires("anjeon")  # the installed package's metadata, as pip sees it
    base = {r.split(">")[0].split("=")[0].split("[")[0] for r in reqs if "extra ==" not in r}
    # prometheus_client: every process serves --metrics-port (pure Python, no dependencies).
    assert base == {"pyzmq", "msgpack", "numpy", "opencv-python-headless", "click", "prometheus_client"}
    assert any(r.startswith("ultralytics-opencv-headless") and 'extra == "worker"' in r for r in reqs)
    # Edge, broker and watch never import the model stack.
    code = (
        "import sys; import anjeon.cli, anjeon.edge.service, anjeon.broker.server, anjeon.viewer.watch, "
        "anjeon.inference.worker, anjeon.inference.models; "
        "bad = [m for m in ('torch', 'ultralytics') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_help_explains_every_command():
    for cmd in ("broker", "edge", "worker", "watch", "up"):
        done = anjeon(cmd, "--help")
        assert done.returncode == 0 and "--" in done.stdout and "Usage" in done.stdout
