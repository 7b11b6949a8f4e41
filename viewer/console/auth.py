"""Logins for a console bound beyond loopback: a users file of PBKDF2 hashes, sessions, slowed failures.

Users file, one per line (``#`` comments allowed)::

    NAME:pbkdf2_sha256$ITERATIONS$SALT_HEX$HASH_HEX

written by ``anjeon viewer --users FILE --add-user NAME``. Standard library
only (hashlib, hmac, secrets): no extra dependency for the one thing that must
not be wrong.

- **Same cost for every name.** An unknown user is checked against a dummy
  hash made once at load with the users' own iteration count, so a wrong name
  and a wrong password cost one hash each: names cannot be probed by timing.
- **Throttle recorded before answering.** Every attempt is counted against its
  user name and its client address *before* the password is checked, so
  parallel guesses see each other; the wait before the next check doubles per
  failure. Per user it reaches 30 s (one account cannot be guessed, from any
  number of addresses); per address it starts only after 10 failures and stops
  at 5 s, so a crowd behind one proxy address is slowed, never locked out, and
  a right password always gets in after that wait. Unknown names are counted
  like known ones (the throttle tells nothing either), in bounded tables.
- **The file is re-read when it changes** (checked at most once a second): a
  removed user cannot log in and loses their sessions; a changed password ends
  the old sessions. A file that becomes unreadable or invalid lets nobody in
  until it is fixed (logged), rather than keeping old rights.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("anjeon.viewer")

ITERATIONS = (
    310_000  # OWASP's figure for PBKDF2-SHA256; ~0.3 s per check on a slow core, which is fine for logins
)
SESSION_SECONDS = 12 * 3600  # one shift
COOKIE = "anjeon_session"
RELOAD_CHECK = 1.0  # seconds between looks at the users file's modification time
MAX_SESSIONS = 10_000


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


def _iterations(stored: str) -> int:
    try:
        return int(stored.split("$")[1])
    except (IndexError, ValueError):
        return ITERATIONS


def load_users(path: Path) -> dict[str, str]:
    if not path.exists():
        raise UsersFileError(
            f"users file {path} does not exist; create it with `anjeon viewer --users {path} --add-user NAME`"
        )
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
        raise UsersFileError(
            f"users file {path} has no users; add one with `anjeon viewer --users {path} --add-user NAME`"
        )
    return users


def add_user(path: Path, name: str, password: str) -> None:
    if not name or ":" in name or len(password) < 8:
        raise UsersFileError("a user name without ':' and a password of at least 8 characters are needed")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [ln for ln in lines if ln.partition(":")[0] != name]  # a new password replaces the old one
    lines.append(f"{name}:{hash_password(password)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
    )  # never readable by others, not even briefly
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


@dataclass(frozen=True)
class ThrottlePolicy:
    free: int  # failures before any wait
    base: float  # seconds of the first wait
    cap: float  # longest wait
    forget: float = 900.0  # seconds after the last failure when the count starts over

    def delay(self, failures: int) -> float:
        over = failures - self.free
        return 0.0 if over <= 0 else min(self.cap, self.base * 2 ** (over - 1))


PER_USER = ThrottlePolicy(free=0, base=0.5, cap=30.0)
PER_ADDRESS = ThrottlePolicy(free=10, base=0.5, cap=5.0)


@dataclass
class _Count:
    n: int = 0
    last: float = 0.0


class Throttle:
    """Failures per key (a user name or an address) in a bounded table; the oldest key leaves first."""

    def __init__(self, policy: ThrottlePolicy, max_keys: int = 10_000) -> None:
        self.policy, self.max_keys = policy, max_keys
        self._counts: OrderedDict[str, _Count] = OrderedDict()

    def attempt(self, key: str, now: float) -> float:
        """Count an attempt (as a failure until told otherwise); the wait it must serve first."""
        c = self._counts.get(key)
        if c is None or now - c.last > self.policy.forget:
            c = self._counts[key] = _Count()
        wait = self.policy.delay(c.n)
        c.n, c.last = c.n + 1, now
        self._counts.move_to_end(key)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        return wait

    def next_wait(self, key: str) -> float:
        c = self._counts.get(key)
        return self.policy.delay(c.n) if c else 0.0

    def succeeded(self, key: str, clear: bool) -> None:
        """The attempt was right: forget the key's failures (clear) or take this attempt back."""
        c = self._counts.get(key)
        if c is None:
            return
        if clear or c.n <= 1:
            self._counts.pop(key, None)
        else:
            c.n -= 1


@dataclass
class Attempt:
    wait: float  # seconds to wait before the password is checked
    user: str
    client: str


@dataclass
class Auth:
    """Sessions and failure throttling for one viewer process (in memory: a restart logs everyone out)."""

    users: dict[str, str]
    path: Path | None = None  # the users file, re-read when it changes
    sessions: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (user, expiry)
    per_user: Throttle = field(default_factory=lambda: Throttle(PER_USER))
    per_address: Throttle = field(default_factory=lambda: Throttle(PER_ADDRESS))

    def __post_init__(self) -> None:
        self._dummy = self._make_dummy()
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    @classmethod
    def from_file(cls, path: Path) -> Auth:
        return cls(load_users(path), path)

    def _make_dummy(self) -> str:
        """A hash of a random password at the iteration count most users have: an unknown name costs that."""
        counts = [_iterations(s) for s in self.users.values()] or [ITERATIONS]
        return hash_password(secrets.token_urlsafe(16), max(set(counts), key=counts.count))

    # ---- the users file -------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
            return st.st_mtime_ns, st.st_size, st.st_ino
        except OSError:
            return (0, 0, 0)

    def refresh(self, force: bool = False) -> None:
        """Re-read the users file if it changed; sessions of removed or re-passworded users end."""
        now = time.monotonic()
        if self.path is None or (not force and now - self._checked < RELOAD_CHECK):
            return
        self._checked = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            users = load_users(self.path)
        except (UsersFileError, OSError, UnicodeDecodeError) as exc:
            log.error("users file unusable, nobody can log in until it is fixed: %s", exc)
            users = {}
        changed = {u for u in set(self.users) | set(users) if self.users.get(u) != users.get(u)}
        self.users = users
        self._dummy = self._make_dummy()
        self.sessions = {t: s for t, s in self.sessions.items() if s[0] not in changed}
        log.info(
            "users file %s re-read: %d user(s)%s",
            self.path,
            len(users),
            f"; sessions ended for {', '.join(sorted(changed)[:10])}" if changed else "",
        )

    # ---- logins ----------------------------------------------------------------------------
    def begin(self, client: str, user: str) -> Attempt:
        """Record an attempt before anything is checked; the caller waits Attempt.wait, then calls check."""
        self.refresh()
        now = time.monotonic()
        wait = max(self.per_user.attempt("u:" + user, now), self.per_address.attempt(client, now))
        return Attempt(wait, user, client)

    def check(self, attempt: Attempt, password: str) -> str | None:
        """A session token, or None. Exactly one hash whether or not the user exists."""
        stored = self.users.get(attempt.user)
        ok = verify_password(password, stored if stored is not None else self._dummy)
        if not (stored is not None and ok):
            return None
        self.per_user.succeeded("u:" + attempt.user, clear=True)
        self.per_address.succeeded(attempt.client, clear=False)
        token = secrets.token_urlsafe(32)
        self.sessions[token] = (attempt.user, time.time() + SESSION_SECONDS)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        return token

    def next_wait(self, attempt: Attempt) -> float:
        """The wait the next attempt of this user or address will serve (the Retry-After of a failure)."""
        return max(self.per_user.next_wait("u:" + attempt.user), self.per_address.next_wait(attempt.client))

    def user_of(self, token: str | None) -> str | None:
        if not token:
            return None
        self.refresh()
        entry = self.sessions.get(token)
        if entry is None or entry[1] < time.time():
            self.sessions.pop(token or "", None)
            return None
        return entry[0]

    def logout(self, token: str | None) -> None:
        self.sessions.pop(token or "", None)


def is_loopback(bind: str) -> bool:
    return bind in ("127.0.0.1", "::1", "localhost") or bind.startswith("127.")
