"""Secrets: one masking function (a table of URL forms), secrets to children by environment and never argv
(checked in /proc of a real `anjeon up`), webhook URLs masked in logs and heartbeats of a real safety
service, MQTT login and TLS against a real mosquitto that the test configures."""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
from conftest import ROOT, free_base_port, wait_for
from safety_fixtures import write_config

from anjeon.protocol import secrets, wire
from anjeon.protocol.secrets import mask, redact_url

WAIT = 60.0

MASK = [
    # user info: the password runs to the last '@' before the host, whatever it holds
    ("rtsp://admin:secret@10.0.0.7/stream", "rtsp://admin:***@10.0.0.7/stream"),
    ("rtsp://admin:p@ss@10.0.0.7:554/s", "rtsp://admin:***@10.0.0.7:554/s"),
    ("rtsp://admin:pa/ss@10.0.0.7/s", "rtsp://admin:***@10.0.0.7/s"),
    ("rtsp://admin:p@s/s w:rd@cam.local:8554/live", "rtsp://admin:***@cam.local:8554/live"),
    ("rtsp://admin:two words@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://admin:pa%40ss@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://admin:@cam/x", "rtsp://admin:***@cam/x"),
    ("rtsp://me@corp.example:pw@cam/x", "rtsp://me@corp.example:***@cam/x"),
    ("https://ghp_T0KEN@github.com/x.git", "https://***@github.com/x.git"),  # a lone token is all secret
    ("http://user@host/mjpg", "http://***@host/mjpg"),
    ("rtsp://a:b@[fe80::1]:554/s", "rtsp://a:***@[fe80::1]:554/s"),
    ("RTSPS://A:B@H/x", "RTSPS://A:***@H/x"),
    # several URLs in one text: each masked, none eats the next
    ("failed: 'rtsps://u:pw@cam/x' and http://a:b@c", "failed: 'rtsps://u:***@cam/x' and http://a:***@c"),
    ("camera rtsp://u:p@h/x failed", "camera rtsp://u:***@h/x failed"),
    # credentials in the query or fragment
    ("http://cam/snap.cgi?user=a&pwd=hunter2&x=1", "http://cam/snap.cgi?user=a&pwd=***&x=1"),
    ("http://cam/?password=a&passwd=b&pass=c", "http://cam/?password=***&passwd=***&pass=***"),
    ("https://h/hook?token=abc", "https://h/hook?token=***"),
    (
        "https://h/x?api_key=abc&access_token=def&auth=g&secret=h&key=i",
        "https://h/x?api_key=***&access_token=***&auth=***&secret=***&key=***",
    ),
    ("https://h/x?Signature=abc&X-Amz-Credential=k", "https://h/x?Signature=***&X-Amz-Credential=***"),
    ("https://h/cb#access_token=abc&state=1", "https://h/cb#access_token=***&state=1"),
    ("http://cam/a?PWD=X Y", "http://cam/a?PWD=*** Y"),
    ("rtsp://u:p@cam/s?token=t", "rtsp://u:***@cam/s?token=***"),
    # nothing to hide stays as it is
    ("rtsp://10.0.0.7/stream", "rtsp://10.0.0.7/stream"),
    ("http://cam/snap.cgi?user=a&x=1", "http://cam/snap.cgi?user=a&x=1"),
    ("stream @ 10 fps from rtsp://cam/x", "stream @ 10 fps from rtsp://cam/x"),
    ("no url here: a=b, token", "no url here: a=b, token"),
    ("", ""),
]


@pytest.mark.parametrize("text, masked", MASK)
def test_mask(text, masked):
    assert mask(text) == masked


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/***"),
        ("http://10.0.0.9:8080/hook?token=abc", "http://10.0.0.9:8080/***"),
        ("https://user:pw@h.example/x", "https://h.example/***"),
        ("https://h.example", "https://h.example"),
        ("https://h.example/", "https://h.example"),
        ("http://[::1]:9/x", "http://[::1]:9/***"),
        ("not a url", "***"),
        ("http://h:notaport/x", "***"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_every_log_record_of_every_process_is_masked():
    """setup_logging (used by every command) installs the filter; tracebacks are masked too."""
    from anjeon.runtime import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        root.handlers = []
        setup_logging("info")
        assert any(isinstance(f, secrets.MaskingFilter) for h in root.handlers for f in h.filters)
    finally:
        root.handlers = saved
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "open %s", ("rtsp://a:top secret@h/",), None
    )
    try:
        raise RuntimeError("cannot open http://h/x?token=topsecret")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    secrets.MaskingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "top secret" not in text and "topsecret" not in text
    assert "rtsp://a:***@h/" in text and "token=***" in text


def test_env_sources():
    assert secrets.resolve_source("env:CAM", {"CAM": "rtsp://a:b@h/"}) == "rtsp://a:b@h/"
    assert secrets.resolve_source("rtsp://h/") == "rtsp://h/"
    with pytest.raises(ValueError, match="CAM is not set"):
        secrets.resolve_source("env:CAM", {})


def cmdline(pid: int) -> str:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def test_up_keeps_camera_passwords_out_of_argv_and_runs_keyed(tmp_path, bus_jpg):
    """`anjeon up` with `security: keys:` and an RTSP camera with a password: no child's argv holds the
    password (it travels by environment), the bus is CURVE (a keyed subscriber sees results, a plain one
    nothing) and the status shows the source masked."""
    keys = tmp_path / "keys"
    assert (
        subprocess.run([sys.executable, "-m", "anjeon", "keys", "init", str(keys)], cwd=ROOT).returncode == 0
    )
    base = free_base_port()
    password = "hunter2/with space@x"
    site = tmp_path / "site.yaml"
    site.write_text(f"""\
broker: {{bind: 127.0.0.1, base_port: {base}}}
workers: {{count: 1, model: "null"}}
security: {{keys: keys}}
cameras:
  door: "rtsp://admin:{password}@127.0.0.1:{free_base_port()}/stream"
  gate: {{source: {bus_jpg}, fps: 5}}
""")
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "anjeon", "up", "--config", str(site), "--viewer-port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    ctx = zmq.Context()
    try:
        public, secret = zmq.auth.load_certificate(keys / "subscriber.key_secret")
        keyed, plain = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
        keyed.curve_publickey, keyed.curve_secretkey = public, secret
        keyed.curve_serverkey = zmq.auth.load_certificate(keys / "broker.key")[0]
        for sock in (plain, keyed):
            sock.linger = 0
            sock.connect(f"tcp://127.0.0.1:{base + 3}")
            sock.subscribe(b"")
        door_source = None
        got_result = False
        deadline = time.monotonic() + 120
        while not (got_result and door_source):
            assert time.monotonic() < deadline and up.poll() is None, (tmp_path / "up.log").read_text()
            if keyed.poll(200):
                frames = keyed.recv_multipart()
                got_result |= frames[0] == b"res/gate/"
                if frames[0] == wire.STATUS_TOPIC:
                    door_source = msgpack.unpackb(frames[1])["cameras"].get("door", {}).get("source")
        assert door_source == f"rtsp://admin:***@127.0.0.1:{door_source.rsplit(':', 1)[1]}"
        assert not plain.poll(0), "a subscriber without a key received data from a keyed site"
        kids = children_of(up.pid)
        assert len(kids) >= 4  # broker, worker, two edges
        for pid in kids + [up.pid]:
            assert "hunter2" not in cmdline(pid), cmdline(pid)
        edge = next(pid for pid in kids if "edge-door" in cmdline(pid))
        assert b"hunter2" in (Path("/proc") / str(edge) / "environ").read_bytes()  # it did go by environment
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
        log.close()
        ctx.destroy(linger=0)
    # Nothing on disk either: `up` and every child log through the masking filter.
    assert "hunter2" not in (tmp_path / "up.log").read_text()


def test_webhook_url_masked_in_logs_and_heartbeats(tmp_path):
    """A real safety service beats to a control socket the test binds; its webhook (answering nothing:
    the port is closed) shows as scheme://host:port/*** in the heartbeat and every log line."""
    base = free_base_port()
    ctx = zmq.Context()
    control = ctx.socket(zmq.ROUTER)
    control.linger = 0
    control.bind(f"tcp://127.0.0.1:{base + 4}")
    hook_port = free_base_port()
    hook = f"http://127.0.0.1:{hook_port}/services/T0/B0/S3CRETPATH?token=S3CRETQUERY"
    config = write_config(
        tmp_path / "site.yaml",
        "yard",
        """
zones:
  pit: [[0.2, 0.1], [0.8, 0.1], [0.8, 0.6], [0.2, 0.6]]
rules:
  - {type: intrusion, zone: pit}
""",
        tmp_path / "events.db",
    )
    with open(config, "a") as f:
        f.write(f'  alerts:\n    - {{type: webhook, url: "{hook}", retries: 0}}\n')
    log = open(tmp_path / "safety.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anjeon",
            "safety",
            "--broker",
            f"tcp://127.0.0.1:{base}",
            "--config",
            str(config),
            "--history-bind",
            f"tcp://127.0.0.1:{free_base_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert control.poll(WAIT * 1000), "no heartbeat from the safety service"
        raw = control.recv_multipart()[-1]
        beat = msgpack.unpackb(raw)
        assert f"webhook http://127.0.0.1:{hook_port}/***" in beat["info"]["alerts"]
        assert b"S3CRET" not in raw
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
        ctx.destroy(linger=0)
    text = (tmp_path / "safety.log").read_text()
    assert "S3CRET" not in text


# ---------------------------------------------------------------- MQTT login and TLS, real mosquitto


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def secured_mosquitto(tmp_path):
    """mosquitto with a password file (anonymous refused), on a plain and a TLS listener (self-signed CA)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    openssl = shutil.which("openssl")
    if not (os.path.exists(binary) and os.path.exists(passwd) and openssl):
        pytest.fail("mosquitto, mosquitto_passwd and openssl are needed (deploy/test-packages.txt)")
    pw_file = tmp_path / "passwd"
    subprocess.run(
        [passwd, "-b", "-c", str(pw_file), "anjeon", "s3cret pass"], check=True, capture_output=True
    )
    os.chmod(pw_file, 0o600)
    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=anjeon test CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    plain_port, tls_port = free_base_port(), free_base_port()
    conf = tmp_path / "mosquitto.conf"
    # `user`: mosquitto started as root would switch to its own user, who cannot read the test's files.
    conf.write_text(f"""user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
password_file {pw_file}
persistence false
listener {plain_port} 127.0.0.1
listener {tls_port} 127.0.0.1
cafile {ca}
certfile {cert}
keyfile {key}
""")
    log = open(tmp_path / "mosquitto.log", "wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: _listening(plain_port) and _listening(tls_port) or proc.poll() is not None,
            20,
            "mosquitto to listen",
        )
        assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
        yield {"plain": plain_port, "tls": tls_port, "ca": str(ca)}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _collector(port: int, ca: str | None):
    import paho.mqtt.client as mqtt

    got: list[bytes] = []
    subscribed = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set("anjeon", "s3cret pass")
    if ca:
        client.tls_set(ca_certs=ca)
    client.on_connect = lambda c, *_: c.subscribe("t/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.append(True)
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_for(lambda: subscribed, 20, "the collector to subscribe")
    return got, client


def _delivery(**spec):
    from anjeon.config.safety import AlertSpec
    from anjeon.safety.alerts import MqttDelivery

    return MqttDelivery(AlertSpec(type="mqtt", host="127.0.0.1", topic="t", timeout=5.0, **spec))


def _deliver_until(delivery, timeout: float = 20.0) -> str:
    """Deliver one alert, retrying while the connection comes up; '' on success, else the last error."""
    alert = {"transition": "start", "event": {"camera": "cam1", "id": "e1"}}
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            delivery.deliver(alert)
            return ""
        except RuntimeError as exc:
            last = str(exc)
            time.sleep(0.2)
    return last


@pytest.mark.parametrize("tls", [False, True])
def test_mqtt_login_and_tls_against_real_mosquitto(secured_mosquitto, tls):
    port = secured_mosquitto["tls" if tls else "plain"]
    ca = secured_mosquitto["ca"] if tls else None
    got, client = _collector(port, ca)
    tls_spec = {"tls": True, "ca_file": ca} if tls else {}
    right = _delivery(port=port, username="anjeon", password="s3cret pass", **tls_spec)
    wrong = _delivery(port=port, username="anjeon", password="guess", **tls_spec)
    anonymous = _delivery(port=port, **tls_spec)
    try:
        assert _deliver_until(right) == ""
        wait_for(lambda: got, 20, "the alert at the collector")
        # Refused logins never deliver, and say why (once the broker has answered them).
        for bad in (wrong, anonymous):
            error = _deliver_until(bad, timeout=5.0)
            assert "not connected" in error and ("authori" in error.lower() or "password" in error.lower()), (
                error
            )
        assert len(got) == 1
        assert right.name == f"mqtt{'s' if tls else ''} 127.0.0.1:{port}"
    finally:
        for d in (right, wrong, anonymous):
            d.close()
        client.loop_stop()
        client.disconnect()
    if tls:  # without the site's CA the self-signed broker is not trusted: nothing is sent
        untrusted = _delivery(port=port, username="anjeon", password="s3cret pass", tls=True)
        try:
            assert "not connected" in _deliver_until(untrusted, timeout=5.0)
        finally:
            untrusted.close()


@pytest.mark.parametrize(
    "url, parts",
    [
        ("rtsp://admin:pa/ss w@rd@10.0.0.7:554/s", ("rtsp://10.0.0.7:554/s", "admin", "pa/ss w@rd")),
        ("rtsp://u:p%40q@h/s?x=1", ("rtsp://h/s?x=1", "u", "p@q")),
        ("rtsp://token@h/s", ("rtsp://h/s", "token", "")),
        ("rtsp://h/s", ("rtsp://h/s", "", "")),
        ("/dev/video0", ("/dev/video0", "", "")),
    ],
)
def test_split_userinfo(url, parts):
    assert secrets.split_userinfo(url) == parts
