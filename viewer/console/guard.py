"""Who may talk to the console at all: Host and Origin checks, and the security headers of every answer.

- **Host** (DNS rebinding): a page on an attacker's site can make its own name
  resolve to the console's address; the browser then sends that name in
  ``Host``. Accepted: IP literals (a rebinding attack cannot make a browser
  send one for its own page), ``localhost``, this machine's names, and the
  names given with ``--allowed-host`` (the name operators type, a reverse
  proxy's public name). Anything else: 421.
- **Origin** (cross-site requests and WebSockets): a browser names the page
  that makes a request. A request carrying an Origin must come from the
  console's own origin (the same host and port as ``Host``) or from an allowed
  host; otherwise 403, and a WebSocket is refused before it opens. Clients
  that are not browsers send no Origin and are judged by login alone.
- **Headers**: a Content-Security-Policy without inline script (every script
  is a file under /static/, no handler attributes in the HTML), no framing, no
  MIME sniffing, no referrer; HSTS when served over TLS.
- **The client's address** for the login throttle (:class:`Proxies`): the TCP
  peer, unless that peer is a reverse proxy named with ``--trusted-proxy``;
  then the address that proxy put in ``X-Forwarded-For``. Off by default: a
  header anyone can send never picks the throttle's key.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("anjeon.viewer")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


def _host_name(host: str) -> str:
    """The name in a Host header or URL netloc, lower case, without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def machine_names() -> set[str]:
    names = {"localhost"}
    for get in (socket.gethostname, socket.getfqdn):
        try:
            names.add(get().lower())
        except OSError:
            pass
    return names


@dataclass
class Guard:
    """The checks, apart from ASGI so they read plainly."""

    allowed_hosts: set[str] = field(default_factory=set)  # from --allowed-host
    tls: bool = False

    def __post_init__(self) -> None:
        self.allowed_hosts = {h.strip().lower() for h in self.allowed_hosts if h.strip()}
        self._hosts = self.allowed_hosts | machine_names()

    def host_ok(self, host: str) -> bool:
        name = _host_name(host)
        return bool(name) and (_is_ip(name) or name in self._hosts)

    def origin_ok(self, origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (a sandboxed or file page) and anything odd
        if parts.netloc.lower() == host.strip().lower():
            return True  # the console's own pages
        # A page of a proxy's public name (the proxy may pass another Host on); never just any local port.
        return _host_name(parts.netloc) in self.allowed_hosts


MAX_FORWARDED = 16  # X-Forwarded-For entries looked at, from the right (a chain of proxies is short)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


@dataclass
class Proxies:
    """Reverse proxies trusted to say who their client is (``--trusted-proxy ADDRESS|NETWORK``, repeatable)."""

    trusted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._nets: list[Network] = []
        for entry in self.trusted:
            try:
                self._nets.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"--trusted-proxy {entry!r} is not an IP address or network") from None

    def is_trusted(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self._nets)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: ``peer``, or, when ``peer`` is a trusted proxy, the nearest address in
        ``X-Forwarded-For`` that is not one (read from the right: each proxy appends the peer it saw, so
        only the entries a trusted proxy wrote are believed). An entry that is not an IP address ends
        the walk at the last trusted address: a client's own header never chooses the key."""
        if not self._nets or not forwarded_for or not self.is_trusted(peer):
            return peer
        nearest = peer
        for entry in reversed(forwarded_for.split(",")[-MAX_FORWARDED:]):
            ip = _ip(entry)
            if ip is None:
                return nearest
            nearest = str(ip)
            if not any(ip in net for net in self._nets):
                return nearest
        return nearest


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class GuardMiddleware:
    """ASGI middleware applying Guard to HTTP requests and WebSocket handshakes alike."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = _header(scope, b"host") or ""
        origin = _header(scope, b"origin")
        refusal = None
        if not self.guard.host_ok(host):
            refusal = (421, f"host {host[:80]!r} is not one this console answers to (--allowed-host)")
        elif origin is not None and not self.guard.origin_ok(origin, host):
            refusal = (403, f"requests from {origin[:80]!r} are not allowed (--allowed-host)")
        if refusal is not None:
            log.warning("refused %s %s: %s", scope["type"], scope.get("path", "")[:80], refusal[1])
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4403})
                return
            return await self._refuse(send, *refusal)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = (
                    list(message.get("headers", [])) + HEADERS + ([HSTS] if self.guard.tls else [])
                )
            await send(message)

        await self.app(scope, receive, with_headers)

    @staticmethod
    async def _refuse(send: Send, status: int, text: str) -> None:
        body = json.dumps({"detail": text}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                + HEADERS,
            }
        )
        await send({"type": "http.response.body", "body": body})
