"""Logins for a console bound beyond loopback: a users file of PBKDF2 hashes, sessions, slowed failures.

Users file, one per line (``#`` comments allowed)::

    NAME:pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX

written by ``anjeon viewer --users FILE --add-user NAME``. Standard library
only (hashlib, hmac, secrets): no extra dependency for the one thing that must
not be wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

ITERATIONS = 310_000  # OWASP's figure for PBKDF2-SHA256; ~0.3 s per check on a slow core, which is fine for logins
SESSION_SECONDS = 12 * 3600  # one shift
COOKIE = "anjeon_session"
# Each failure from one client address doubles its wait before the next attempt is even looked at.
FAIL_BASE_DELAY = 0.5
FAIL_MAX_DELAY = 30.0
FAIL_FORGET = 900.0  # seconds after which an address's failures are forgotten


class UsersFileError(ValueError):
    """A users file that cannot be used; the message is one sentence naming file and line."""


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def load_users(path: Path) -> dict[str, str]:
    if not path.exists():
        raise UsersFileError(f"users file {path} does not exist; create it with "
                             f"`anjeon viewer --users {path} --add-user NAME`")
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not name or stored.count("$") != 3:
            raise UsersFileError(f"{path}:{number}: expected NAME:pbkdf2_sha256$ITERATIONS$SALT$HASH")
        users[name] = stored
    if not users:
        raise UsersFileError(f"users file {path} has no users; add one with `anjeon viewer --users {path} --add-user NAME`")
    return users


def add_user(path: Path, name: str, password: str) -> None:
    if not name or ":" in name or len(password) < 8:
        raise UsersFileError("a user name without ':' and a password of at least 8 characters are needed")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [ln for ln in lines if ln.partition(":")[0] != name]  # a new password replaces the old one
    lines.append(f"{name}:{hash_password(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class Auth:
    """Sessions and failure throttling for one viewer process (in memory: a restart logs everyone out)."""

    users: dict[str, str]
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (user, expiry)
    failures: dict[str, _Failures] = field(default_factory=dict)  # client address -> failures

    def delay_for(self, client: str, now: float | None = None) -> float:
        """Seconds this address must wait before its attempt is checked."""
        now = time.monotonic() if now is None else now
        f = self.failures.get(client)
        if f is None or f.count == 0:
            return 0.0
        if now - f.last > FAIL_FORGET:
            self.failures.pop(client, None)
            return 0.0
        return min(FAIL_MAX_DELAY, FAIL_BASE_DELAY * 2 ** (f.count - 1))

    def login(self, client: str, user: str, password: str) -> str | None:
        """A session token, or None; a failure is remembered against the client address."""
        stored = self.users.get(user)
        # A missing user costs the same hash as a wrong password, so names cannot be probed by timing.
        ok = verify_password(password, stored if stored else hash_password("x", ITERATIONS))
        if not (stored and ok):
            f = self.failures.setdefault(client, _Failures())
            f.count, f.last = f.count + 1, time.monotonic()
            return None
        self.failures.pop(client, None)
        token = secrets.token_urlsafe(32)
        self.sessions[token] = (user, time.time() + SESSION_SECONDS)
        return token

    def user_of(self, token: str | None) -> str | None:
        if not token:
            return None
        entry = self.sessions.get(token)
        if entry is None or entry[1] < time.time():
            self.sessions.pop(token or "", None)
            return None
        return entry[0]

    def logout(self, token: str | None) -> None:
        self.sessions.pop(token or "", None)


def is_loopback(bind: str) -> bool:
    return bind in ("127.0.0.1", "::1", "localhost") or bind.startswith("127.")
