"""Say why a stream did not open, in words an installer can act on.

OpenCV only reports "not opened"; FFmpeg's reason goes to stderr, not to us.
So after a failed open we ask the camera ourselves: one TCP connect and, for
RTSP, one DESCRIBE (with the URL's credentials, Basic or Digest as the camera
asks). Only runs after a failure, bounded by a timeout; never raises. Messages
never contain the password.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from urllib.parse import SplitResult, urlsplit

from anjeon.protocol.secrets import split_userinfo

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}
_MAX_HEAD = 64 * 1024


def diagnose(url: str, timeout: float = 5.0) -> str:
    clean, user, password = split_userinfo(url)  # from here on nothing holds the password but these two
    try:
        parts = urlsplit(clean)
        host, port = parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError as exc:
        return f"the URL is not valid ({exc})"
    if not host or not port:
        return "the URL names no host or port"
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror:
        return f"unknown host '{host}'"
    except ConnectionRefusedError:
        return f"nothing listens at {where} (camera off, or wrong port)"
    except OSError as exc:
        return f"no connection to {where} ({exc.strerror or 'timed out'})"
    if parts.scheme.lower() != "rtsp":
        return f"{where} accepts connections but delivered no video"
    try:
        return _describe_verdict(clean, user, password, parts, timeout)
    except OSError as exc:
        return f"{where} accepts connections but did not answer RTSP ({exc.strerror or 'timed out'})"


def _describe_verdict(clean: str, user: str, password: str, parts: SplitResult, timeout: float) -> str:
    code, reason, headers = _describe(parts, clean, timeout, authorization="")
    if code == 401:
        if not user:
            return (
                "the camera requires a user name and password (401 Unauthorized): put them in the URL as "
                "user:password@ before the host"
            )
        challenge = headers.get("www-authenticate", "")
        code, reason, _ = _describe(parts, clean, timeout, _authorization(challenge, user, password, clean))
        if code == 401:
            return "the camera refused the user name or password (401 Unauthorized)"
    if code == 404:
        return f"the camera has no stream at '{parts.path or '/'}' (404 Not Found)"
    if 200 <= code < 300:
        return "the camera answers but its stream could not be opened (codec or transport?)"
    return f"the camera answered {code} {reason}"


def _describe(
    parts: SplitResult, clean_url: str, timeout: float, authorization: str
) -> tuple[int, str, dict[str, str]]:
    request = f"DESCRIBE {clean_url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nUser-Agent: anjeon\r\n"
    if authorization:
        request += f"Authorization: {authorization}\r\n"
    with socket.create_connection((parts.hostname, parts.port or 554), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall((request + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head and len(head) < _MAX_HEAD:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3}) ?(.*)", lines[0])
    if not match:
        raise OSError(0, "not an RTSP answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        # Prefer a Digest challenge when a camera offers several schemes.
        if key not in headers or value.strip().lower().startswith("digest"):
            headers[key] = value.strip()
    return int(match[1]), match[2], headers


def _authorization(challenge: str, user: str, password: str, uri: str) -> str:
    if not challenge.lower().startswith("digest"):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge[6:]))
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # RTSP digest auth is MD5 by definition (RFC 2069)

    response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'DESCRIBE:{uri}')}")
    return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}"'
