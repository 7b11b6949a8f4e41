"""Scheduled report delivery against real servers started by the test: an SMTP server (aiosmtpd) that
requires STARTTLS and login, and an HTTP receiver; `anjeon report --send daily` as the real command.
"""

from __future__ import annotations

import email
import json
import os
import ssl
import subprocess
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import free_base_port, wait_for
from evidence_fixtures import ended_event
from safety_fixtures import anjeon_cli

from anjeon.config.evidence import ReportSpec
from anjeon.safety.report.deliver import next_due
from anjeon.safety.store import EventStore

aiosmtpd = pytest.importorskip("aiosmtpd")  # the test extra (pip install '.[test]')


def cert(tmp: Path) -> tuple[Path, Path]:
    key, crt = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return key, crt


class Mailbox:
    """aiosmtpd on loopback: STARTTLS required before AUTH, one user and password."""

    def __init__(self, tmp: Path, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        key, crt = cert(tmp)
        self.ca = crt
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(crt, key)
        self.messages: list[email.message.Message] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
                outer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        def auth(server, session, envelope, mechanism, data):
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == user
                and data.password.decode() == password
            )
            return AuthResult(success=ok)

        self.port = free_base_port()
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            authenticator=auth,
            auth_require_tls=True,
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class Hook:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.bodies.append(
                    (self.headers["Content-Type"], self.rfile.read(int(self.headers["Content-Length"])))
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/reports"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def yesterday_store(tmp: Path, n: int) -> Path:
    store = EventStore(tmp / "events.db")
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    start = (midnight - timedelta(days=1)).timestamp()
    for i in range(n):
        t = start + 3600 * (i + 1)
        store.save(ended_event(t, 10, since=t, tracks=[i]))
    store.save(ended_event(midnight.timestamp() + 60, 10, since=0, updated=0))  # today: not in it
    store.close()
    return tmp / "events.db"


def site(tmp: Path, db: Path, mailbox: Mailbox, hook: Hook) -> Path:
    path = tmp / "site.yaml"
    path.write_text(
        f"""safety:
  store: {db}
  reports:
    daily: "07:00"
    attempts: 2  # each failed login waits out the 20 s read timeout against aiosmtpd; one retry shows the retry
    backoff: 0.1
    lang: ko
    folder: {tmp / "reports"}
    webhook: "{hook.url}"
    email: {{host: 127.0.0.1, port: {mailbox.port}, starttls: true, user: anjeon, password_env: TEST_SMTP_PASSWORD,
             sender: anjeon@site.example, to: [safety@site.example, boss@site.example], ca_file: {mailbox.ca},
             timeout: 20}}
""",
        encoding="utf-8",
    )
    return path


def send(config: Path, password: str) -> subprocess.CompletedProcess:
    return anjeon_cli(
        "report",
        "--send",
        "daily",
        "--config",
        str(config),
        timeout=300,
        env={**os.environ, "TEST_SMTP_PASSWORD": password},
    )


def test_daily_report_by_email_with_starttls_and_login_and_by_webhook(tmp_path):
    mailbox, hook = Mailbox(tmp_path, "anjeon", "s3cret pass"), Hook()
    try:
        config = site(tmp_path, yesterday_store(tmp_path, 4), mailbox, hook)
        run = send(config, "s3cret pass")
        assert run.returncode == 0, run.stderr
        wait_for(lambda: mailbox.messages and hook.bodies, 30, "the e-mail and the webhook")
        (msg,) = mailbox.messages
        subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
        assert "안전 사고 보고서" in subject
        assert msg["To"] == "safety@site.example, boss@site.example"
        (pdf,) = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
        assert pdf.get_payload(decode=True).startswith(b"%PDF")
        kind, body = hook.bodies[0]
        assert kind.startswith("multipart/form-data") and b"%PDF" in body
        figures = json.loads(body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
        assert figures["kind"] == "daily" and figures["total"] == 4  # yesterday's events, not today's
        # A wrong password: the delivery fails after its retries and says so; nothing is sent.
        run = send(config, "wrong")
        assert run.returncode == 1 and "e-mail" in run.stderr and len(mailbox.messages) == 1
    finally:
        mailbox.close()
        hook.close()


def test_next_due_daily_and_weekly():
    now = datetime(2026, 11, 4, 8, 30).timestamp()  # a Wednesday, 08:30
    due = next_due(ReportSpec(daily="07:00", weekly="mon 06:30"), now)
    daily = next(d for d in due if d.kind == "daily")
    weekly = next(d for d in due if d.kind == "weekly")
    assert datetime.fromtimestamp(daily.at) == datetime(2026, 11, 5, 7, 0)
    assert datetime.fromtimestamp(daily.since) == datetime(2026, 11, 4) and daily.until - daily.since == 86400
    assert datetime.fromtimestamp(weekly.at) == datetime(2026, 11, 9, 6, 30)
    assert datetime.fromtimestamp(weekly.since) == datetime(2026, 11, 2)
    assert datetime.fromtimestamp(weekly.until) == datetime(2026, 11, 9)
