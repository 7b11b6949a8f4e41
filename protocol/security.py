"""CURVE on the bus: key folders, the allowlist with roles, the ZAP authenticator and the rights per role.

Without keys every socket is plaintext and everything is allowed (a lab on
loopback). With a key folder (``anjeon --keys DIR``, env ANJEON_KEYS, or the
site config's ``security: keys:``) every bound socket is a CURVE server and
every client a CURVE client with its own key pair. A ZAP authenticator, living
in the same ZeroMQ context as the sockets it guards, admits only public keys
listed in DIR/allowlist.txt, and only on the sockets their role may use; the
broker then checks every received message against the role of the key that
sent it (``rights``), so a key revoked in the allowlist stops working at once,
even on a connection made before. docs/security.md is the user's side of this.

The allowlist is a text file, one key per line::

    # public key (z85, 40 chars)              name       role[,role...]
    rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7  gate-edge  edge

It is re-read when it changes. A line that does not parse is refused (that key
is not admitted) and logged as an error; an unreadable or missing file admits
nobody until it is fixed. Nothing ever falls back to "allow any".
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import stat
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from .endpoints import CONTROL, FRAMES_IN, FRAMES_OUT, RESULTS_IN, RESULTS_OUT

log = logging.getLogger("anjeon.security")

ROLES = ("edge", "worker", "subscriber", "safety")
ALLOWLIST = "allowlist.txt"
SERVER_KEY = "broker"  # the broker's key pair in a key folder: broker.key (public), broker.key_secret
HISTORY_KEY = "safety"  # the safety service serves history under its own key pair
HISTORY = "history"  # ZAP domain of the safety service's history socket
KEYS_ENV, KEY_NAME_ENV = "ANJEON_KEYS", "ANJEON_KEY"
RELOAD_INTERVAL = 1.0  # seconds between checks of the allowlist file

# Who may connect to which socket (checked by the ZAP handler at the handshake).
SOCKET_ROLES: dict[str, frozenset[str]] = {
    FRAMES_IN: frozenset({"edge"}),
    FRAMES_OUT: frozenset({"worker"}),
    RESULTS_IN: frozenset({"worker", "safety"}),
    RESULTS_OUT: frozenset({"subscriber", "safety"}),
    CONTROL: frozenset(ROLES),
    HISTORY: frozenset({"subscriber"}),
}
# Who may publish which topic on results-in (checked per message). Not listed: nobody
# (status/ is the broker's own, published straight to results-out).
TOPIC_ROLES: dict[bytes, str] = {
    b"res/": "worker",
    b"img/": "worker",
    b"ann/": "worker",
    b"evt/": "safety",
    b"trk/": "safety",
}
# The role a heartbeat claims -> the key role it needs.
HEARTBEAT_ROLES = {
    "edge": "edge",
    "worker": "worker",
    "safety": "safety",
    "viewer": "subscriber",
    "watch": "subscriber",
    "subscriber": "subscriber",
}
# `anjeon COMMAND` -> the key pair it uses from the folder unless --key names another.
COMMAND_KEYS = {
    "broker": SERVER_KEY,
    "edge": "edge",
    "worker": "worker",
    "safety": "safety",
    "viewer": "subscriber",
    "watch": "subscriber",
    "events": "subscriber",
    "loadtest": "loadtest",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_Z85 = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


class SecurityError(RuntimeError):
    """Keys or an allowlist that cannot be used; the message is one sentence for the user."""


# ---------------------------------------------------------------- keys and the allowlist


@dataclass(frozen=True)
class KeyPair:
    name: str
    public: bytes  # z85, 40 bytes
    secret: bytes


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise SecurityError(f"key name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return name


def load_public(folder: Path, name: str) -> bytes:
    path = folder / f"{name}.key"
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the public key {path}: {exc}") from None
    return public


def load_pair(folder: Path, name: str) -> KeyPair:
    path = folder / f"{check_name(name)}.key_secret"
    if not path.exists():
        raise SecurityError(
            f"{path} does not exist (make it with `anjeon keys add {folder} {name} --role ROLE`)"
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise SecurityError(
            f"cannot read the key pair {path}: {exc} (make one with `anjeon keys add`)"
        ) from None
    if not secret:
        raise SecurityError(f"{path} holds no secret key")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("SECURITY: %s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777)
    return KeyPair(name, public, secret)


@dataclass(frozen=True)
class Entry:
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Allowlist:
    entries: dict[str, Entry] = field(default_factory=dict)  # z85 public key -> who it is
    errors: tuple[str, ...] = ()  # lines that were refused, for the log

    def roles(self, public_z85: str) -> frozenset[str]:
        entry = self.entries.get(public_z85)
        return entry.roles if entry else frozenset()


def parse_allowlist(text: str, source: str = ALLOWLIST) -> Allowlist:
    """Parse the allowlist; a bad line is refused on its own (its key is not admitted), never guessed at."""
    entries: dict[str, Entry] = {}
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            errors.append(
                f"{source}:{number}: expected 'PUBLIC_KEY NAME ROLE[,ROLE]', got {len(parts)} fields"
            )
            continue
        key, name, roles_text = parts
        roles = frozenset(roles_text.split(","))
        if not _Z85.match(key):
            errors.append(f"{source}:{number}: {key[:12]!r}... is not a 40-character z85 public key")
        elif not _NAME.match(name):
            errors.append(f"{source}:{number}: bad name {name!r}")
        elif not roles or not roles <= set(ROLES):
            errors.append(f"{source}:{number}: roles {roles_text!r}: each must be one of {', '.join(ROLES)}")
        elif key in entries:
            errors.append(
                f"{source}:{number}: key listed twice (as {entries[key].name} and {name}); both refused"
            )
            entries[key] = Entry(entries[key].name, frozenset())
        else:
            entries[key] = Entry(name, roles)
    return Allowlist({k: e for k, e in entries.items() if e.roles}, tuple(errors))


def format_allowlist_line(public: bytes, name: str, roles: list[str] | tuple[str, ...]) -> str:
    return f"{public.decode('ascii')}  {name}  {','.join(roles)}"


class AllowlistFile:
    """The allowlist as on disk. Two views, each swapped whole (safe for readers on other threads):

    ``admission`` decides new connections (the ZAP handler); ``current`` decides the messages of
    connections already made. A file that parses replaces both: a removed line revokes at once, a
    broken line refuses its key everywhere. A file that cannot be read (deleted, mid-copy, wrong
    mode) admits nobody new but keeps the running site as it was, since it says nothing about who
    lost their rights. A change is applied once the file has stayed the same for one check, so a
    file being written is not read half-way.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reloads = self.failures = 0
        self.revoked = False  # a reload removed a key or a role: set by the watcher, cleared by the server
        self._stamp = self._pending = self._read_stamp()
        self.current = self.admission = self._parse(self._read_first())

    def _read_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_first(self) -> str:
        """At start an allowlist that cannot be read is an error for the user, not an empty list."""
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityError(f"cannot read the allowlist {self.path}: {exc}") from None

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.failures += 1
            log.error(
                "SECURITY: cannot read the allowlist %s (%s): admitting NOBODY new until it is fixed "
                "(connections made before keep their rights)",
                self.path,
                exc,
            )
            return None

    def _parse(self, text: str) -> Allowlist:
        allowlist = parse_allowlist(text, str(self.path))
        for error in allowlist.errors:
            log.error("SECURITY: allowlist line refused, that key is NOT admitted: %s", error)
        if allowlist.errors:
            self.failures += 1
        return allowlist

    def reload_if_changed(self) -> bool:
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return False
        if stamp != self._pending:  # still changing (or just changed): look again on the next check
            self._pending = stamp
            return False
        self._stamp = stamp
        text = self._read()
        if text is None:
            self.admission = Allowlist()
        else:
            old, self.current = self.current, self._parse(text)
            self.admission = self.current
            if any(not entry.roles <= self.current.roles(key) for key, entry in old.entries.items()):
                self.revoked = True
        self.reloads += 1
        log.info("allowlist %s reloaded: %d key(s)", self.path, len(self.admission.entries))
        return True


# ---------------------------------------------------------------- the process's keys (client side)


@dataclass
class Keyring:
    """A key folder and this process's own key pair in it."""

    folder: Path
    own: KeyPair
    _servers: dict[str, bytes] = field(default_factory=dict)

    def server_public(self, server: str = SERVER_KEY) -> bytes:
        if server not in self._servers:
            self._servers[server] = load_public(self.folder, server)
        return self._servers[server]

    @property
    def allowlist_path(self) -> Path:
        return self.folder / ALLOWLIST


_process_keys: Keyring | None = None


def use_keys(folder: str | Path | None, name: str) -> Keyring | None:
    """Load this process's keys (None: plaintext); every later ``connect`` and ``Guard`` uses them."""
    global _process_keys
    if not folder:
        _process_keys = None
        return None
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise SecurityError(f"key folder {path} does not exist (make one with `anjeon keys init {path}`)")
    _process_keys = Keyring(path, load_pair(path, name))
    return _process_keys


def refusal_hint() -> str:
    """For "cannot reach the broker" messages: with keys, a refused key looks exactly like a dead broker."""
    if _process_keys is None:
        return ""
    return (
        f" With keys: is '{_process_keys.own.name}' in the broker's allowlist with the right role, and is "
        f"{_process_keys.folder}/broker.key the broker's? The broker logs every key it refuses; a service "
        f"refused at the handshake exits (status {REFUSED_EXIT_STATUS}) for its service manager to restart it"
    )


def connect(
    sock: zmq.Socket[Any],
    endpoint: str,
    server: str = SERVER_KEY,
    keys: Keyring | None = None,
    watch: bool | None = None,
) -> None:
    """Connect a client socket, as a CURVE client of ``server``'s public key when this process has keys.

    With keys, a connection to the broker (``watch`` None: ``server`` is the broker) is watched for a
    refusal at the handshake, which libzmq never retries (see ``on_refusal``). Sockets made afresh for
    each request, like the history client's, retry by themselves and need no watch.
    """
    keys = keys or _process_keys
    if keys is not None:
        sock.curve_secretkey = keys.own.secret
        sock.curve_publickey = keys.own.public
        sock.curve_serverkey = keys.server_public(server)
        if watch if watch is not None else server == SERVER_KEY:
            _watch_handshake(sock, endpoint, keys.own.name)
    sock.connect(endpoint)


# ---------------------------------------------------------------- a refusal at the handshake (client side)
#
# A client refused at the CURVE handshake (its key not, or not yet, in the allowlist; a broker without
# keys) is never retried by libzmq: the session ends on a protocol error instead of reconnecting. Listing
# the key afterwards would change nothing for a process already running, so a service exits instead,
# after REFUSED_EXIT_DELAY, and its service manager (systemd, Kubernetes, `anjeon up`) starts it again:
# the new process is admitted once the key is listed. The delay keeps a restart loop from spinning.

REFUSED_EXIT_STATUS = 75  # EX_TEMPFAIL (sysexits.h): "try again later"; also restarted by Restart=on-failure
REFUSED_EXIT_DELAY = 10.0  # seconds between the refusal and the exit; a handshake that succeeds cancels it
REFUSED_DELAY_ENV = "ANJEON_REFUSED_EXIT_DELAY"  # overrides the delay (seconds), e.g. for tests
_REFUSED = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
_WATCHED = _REFUSED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_MONITOR_STOPPED
_PROTOCOL_ERRORS = {
    getattr(zmq, n): n.removeprefix("PROTOCOL_ERROR_").lower()
    for n in dir(zmq)
    if n.startswith("PROTOCOL_ERROR_")
}


def refused_exit_delay() -> float:
    text = os.environ.get(REFUSED_DELAY_ENV, "")
    try:
        return max(0.0, float(text)) if text else REFUSED_EXIT_DELAY
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", REFUSED_DELAY_ENV, text, REFUSED_EXIT_DELAY)
        return REFUSED_EXIT_DELAY


class _Refusals:
    """Process-wide: which watched connections stand refused now, and the one countdown to exit.

    The first refusal starts the countdown; when it runs out and a connection still stands refused,
    ``handler`` (set by whatever runs the process as a service: runtime.run_until_signal) is called
    once with REFUSED_EXIT_STATUS. An admission that leaves none refused cancels it; a refused socket
    that is closed stands refused no more, but its owner may be opening the next one (the heartbeat
    does), so that is judged when the countdown runs out. Without a handler (a library user, a test)
    a refusal is only logged.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused: dict[tuple[int, str], str] = {}  # (watch id, endpoint) -> the key's name
        self._timer: threading.Timer | None = None
        self._why = self._then = ""  # the last refusal, for the log line
        self._told: frozenset[str] = frozenset()  # endpoints whose refusal was logged while not armed
        self.handler: Callable[[int], None] | None = None
        self.fired = False

    def refused(self, watch: int, endpoint: str, key_name: str, why: str, then: str) -> None:
        """``why``: what happened; ``then``: what a restart will need."""
        with self._lock:
            self._refused[watch, endpoint] = key_name
            self._why, self._then = why, then
            if self._timer is not None or self.fired:
                log.debug("SECURITY: %s (already counting down)", why)
            elif self.handler is None:
                told, self._told = endpoint in self._told, self._told | {endpoint}
                log.log(
                    logging.DEBUG if told else logging.ERROR,  # once per address: the heartbeat reopens
                    "SECURITY: %s; libzmq does not retry it: restart this process once the key is admitted",
                    why,
                )
            else:
                self._count_down()

    def admitted(self, watch: int, endpoint: str) -> None:
        with self._lock:
            if self._refused.pop((watch, endpoint), None) is None or self._refused or self._timer is None:
                return
            self._timer.cancel()
            self._timer = None
        log.warning("SECURITY: admitted on %s after all; not exiting", endpoint)

    def closed(self, watch: int) -> None:
        with self._lock:
            for k in [k for k in self._refused if k[0] == watch]:
                del self._refused[k]

    def arm(self, handler: Callable[[int], None] | None) -> None:
        with self._lock:
            self.handler = handler
            self.fired = False  # once per arming (a process runs one service)
            if handler is not None and self._refused and self._timer is None:
                self._count_down()  # refused before the service was armed: count down from now

    def _count_down(self) -> None:
        delay = refused_exit_delay()
        log.error(
            "SECURITY: %s; exiting in %g s so the service manager restarts this process (%s)",
            self._why,
            delay,
            self._then,
        )
        self._timer = threading.Timer(delay, self._expire)
        self._timer.name, self._timer.daemon = "refused-exit", True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._timer is None or threading.current_thread() is not self._timer:
                return  # cancelled (and perhaps started again) meanwhile
            self._timer = None
            handler, still = self.handler, next(iter(self._refused.items()), None)
            if handler is not None and still is not None:
                self.fired = True
        if still is None:
            log.warning("SECURITY: no connection stands refused any more (those were closed); not exiting")
            return
        if handler is None:
            return  # disarmed meanwhile: the service is stopping anyway
        (_, endpoint), key_name = still
        log.error(
            "SECURITY: key '%s' still refused on %s: exiting with status %d",
            key_name,
            endpoint,
            REFUSED_EXIT_STATUS,
        )
        handler(REFUSED_EXIT_STATUS)


_refusals = _Refusals()
_watched: weakref.WeakSet[zmq.Socket[Any]] = weakref.WeakSet()
_watch_ids = itertools.count(1)


def on_refusal(handler: Callable[[int], None] | None) -> None:
    """Who ends this process when a watched connection stays refused (None: nobody, only log it).

    ``handler`` gets the exit status and is called at most once, on another thread: it should ask the
    main loop to stop (set its stop event), not exit there and then.
    """
    _refusals.arm(handler)


class _HandshakeWatch:
    """The monitor of one client socket, read on its own daemon thread.

    The monitor PAIR is created, read and closed on that thread only; the client socket is only
    touched by its owner (this is made there, before the socket connects, and waits until the PAIR is
    connected, so no event is missed). The thread ends when the socket closes (libzmq sends
    MONITOR_STOPPED) or the context terminates.
    """

    def __init__(self, sock: zmq.Socket[Any], endpoint: str, key_name: str) -> None:
        self.id = next(_watch_ids)
        self.key_name = key_name
        self.addr = f"inproc://anjeon-handshake-{os.getpid()}-{self.id}"
        # The PAIR is a plain socket of the same libzmq context, even when ``sock`` is an asyncio one.
        self._ctx: zmq.Context[Any] = zmq.Context.shadow(sock.context.underlying)
        self._ready = threading.Event()
        self._ok = False
        sock.monitor(self.addr, _WATCHED)
        threading.Thread(target=self._run, name=f"handshake-watch-{self.id}", daemon=True).start()
        self._ready.wait()  # set by _run whatever happens
        if not self._ok:
            sock.monitor(None, 0)  # the watch could not start: carry on unwatched, as before
            log.warning("SECURITY: cannot watch the handshake on %s; a refusal will not be noticed", endpoint)

    def _why(self, event: int, value: int, endpoint: str) -> tuple[str, str]:
        """What happened, and what the next start needs to be admitted."""
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (
                f"the broker refused key '{self.key_name}' at the handshake on {endpoint}",
                "it is admitted once the key is in the allowlist",
            )
        error = _PROTOCOL_ERRORS.get(value, hex(value))
        return (
            f"the CURVE handshake with key '{self.key_name}' failed on {endpoint} ({error}: does the "
            "broker run with keys?)",
            "it connects once the broker runs with keys",
        )

    def _run(self) -> None:
        pair: zmq.Socket[Any] | None = None
        try:
            pair = self._ctx.socket(zmq.PAIR)
            pair.linger = 0
            pair.connect(self.addr)
            self._ok = True
            self._ready.set()
            while True:
                message = recv_monitor_message(pair)
                event, endpoint = message["event"], bytes(message["endpoint"]).decode("utf-8", "replace")
                if event & _REFUSED:
                    why, then = self._why(event, message["value"], endpoint)
                    _refusals.refused(self.id, endpoint, self.key_name, why, then)
                elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    _refusals.admitted(self.id, endpoint)
                elif event == zmq.EVENT_MONITOR_STOPPED:
                    return
        except zmq.ZMQError:  # the context is terminating (ETERM): let it
            return
        finally:
            self._ready.set()  # _ok still False if the PAIR never connected: the owner goes on unwatched
            _refusals.closed(self.id)
            if pair is not None:
                pair.close(0)


def _watch_handshake(sock: zmq.Socket[Any], endpoint: str, key_name: str) -> None:
    """One watch per socket: the monitor sees every endpoint the socket connects to."""
    if sock in _watched:
        return
    _watched.add(sock)
    _HandshakeWatch(sock, endpoint, key_name)


# ---------------------------------------------------------------- the server side


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: reachable from elsewhere


def user_id(frame: zmq.Frame) -> str | None:
    """The ZAP User-Id of the peer that sent ``frame`` (received with copy=False), or None."""
    try:
        value = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, TypeError):  # no such property: a plaintext or unauthenticated peer
        return None
    return value if isinstance(value, str) and value else None


class _Admission:
    """The ZAP callback for one socket: admit a key iff the allowlist gives it a role allowed there."""

    def __init__(self, allowlist: AllowlistFile, domain: str) -> None:
        self._allowlist, self._domain = allowlist, domain
        self._refused: set[bytes] = set()

    def callback(self, _domain: str, key: bytes) -> bool:
        roles = self._allowlist.admission.roles(key.decode("ascii", "replace"))
        if roles & SOCKET_ROLES[self._domain]:
            return True
        if key not in self._refused and len(self._refused) < 1000:  # logged once per key, bounded
            self._refused.add(key)
            why = (
                f"its role {','.join(sorted(roles))} may not use it"
                if roles
                else "it is not in the allowlist"
            )
            log.warning(
                "SECURITY: refused a CURVE client on %s: %s (key %s)",
                self._domain,
                why,
                key[:8].decode("ascii", "replace"),
            )
        return False


class RoleAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread whose User-Id is NAME:ROLES:PUBLICKEY from the allowlist."""

    def __init__(self, ctx: zmq.Context[Any], allowlist: AllowlistFile) -> None:
        super().__init__(ctx, log=logging.getLogger("anjeon.security.zap"))
        self.allowlist = allowlist

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = zmq.utils.z85.encode(client_public_key).decode("ascii")
        entry = self.allowlist.admission.entries.get(key)
        name, roles = (entry.name, ",".join(sorted(entry.roles))) if entry else ("?", "")
        return f"{name}:{roles}:{key}"


class Guard:
    """What a process that binds sockets needs: CURVE server options, the ZAP thread, the rights.

    Plaintext (no keys): ``secure`` does nothing and every ``denial`` is None, but binding an
    address other people can reach says loudly that anyone there can watch and inject.
    """

    def __init__(self, ctx: zmq.Context[Any], keys: Keyring | None, bind_host: str, what: str) -> None:
        self.keys, self.what = keys, what
        self.denied = self.cuts = 0
        self._rebind = False  # results-out unbound after a revocation, not yet bound again
        self._rebind_failures = 0
        self._auth: RoleAuthenticator | None = None
        self.allowlist: AllowlistFile | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if keys is None:
            if not is_loopback(bind_host):
                log.warning(
                    "SECURITY WARNING: %s binds %s WITHOUT keys: anyone who can reach these ports can "
                    "watch every camera, inject frames, results and alarms (see docs/security.md; "
                    "`anjeon keys init DIR`, then --keys DIR)",
                    what,
                    bind_host or "*",
                )
            return
        self.allowlist = AllowlistFile(keys.allowlist_path)
        self._auth = RoleAuthenticator(ctx, self.allowlist)
        self._auth.start()
        self._watcher = threading.Thread(target=self._watch, name="allowlist-watch", daemon=True)
        self._watcher.start()
        log.info(
            "%s: CURVE on, %d key(s) in %s", what, len(self.allowlist.current.entries), keys.allowlist_path
        )

    @property
    def enabled(self) -> bool:
        return self._auth is not None

    def secure(self, sock: zmq.Socket[Any], domain: str) -> zmq.Socket[Any]:
        """Make ``sock`` a CURVE server admitting the roles of ``domain``; call before bind."""
        if self._auth is None or self.allowlist is None or self.keys is None:  # plaintext: all three None
            return sock
        self._auth.configure_curve_callback(domain, _Admission(self.allowlist, domain))
        sock.zap_domain = domain.encode()
        sock.curve_secretkey = self.keys.own.secret
        sock.curve_publickey = self.keys.own.public
        sock.curve_server = True
        return sock

    def _watch(self) -> None:
        allowlist = self.allowlist
        if allowlist is None:
            return
        while not self._stop.wait(RELOAD_INTERVAL):
            try:
                allowlist.reload_if_changed()
            except Exception:  # the watcher must survive anything; the old list stays only if reading raised
                log.exception("SECURITY: allowlist reload failed")

    def roles(self, frame: zmq.Frame) -> frozenset[str] | None:
        """Roles of the key that sent ``frame`` as the allowlist says *now*; None in plaintext."""
        if self._auth is None or self.allowlist is None:
            return None
        uid = user_id(frame)
        if uid is None:
            return frozenset()
        parts = uid.split(":", 2)  # NAME:ROLES:KEY; the z85 key itself may contain ':'
        return self.allowlist.current.roles(parts[2]) if len(parts) == 3 else frozenset()

    def denial(self, frame: zmq.Frame, domain: str, topic: bytes | None = None) -> str | None:
        """Why the message whose first frame is ``frame`` may not be taken on ``domain``; None: allowed.

        results-in is judged by topic (TOPIC_ROLES); results-out takes only subscriptions.
        """
        roles = self.roles(frame)
        if roles is None:
            return None
        reason: str | None
        if not roles:
            reason = "a key that is not (or no longer) in the allowlist"
        elif domain == RESULTS_IN:
            need = next((r for p, r in TOPIC_ROLES.items() if (topic or b"").startswith(p)), None)
            reason = None if need in roles else f"topic {(topic or b'')[:24]!r} needs role {need or 'broker'}"
        elif domain == RESULTS_OUT:
            data = frame.bytes
            reason = None if data[:1] in (b"\x00", b"\x01") else "subscribers may only subscribe"
        else:
            reason = (
                None
                if roles & SOCKET_ROLES[domain]
                else f"role {','.join(sorted(roles))} may not use {domain}"
            )
        if reason is not None:
            self.denied += 1
            return f"{domain}: {reason} (from {self.peer(frame)})"
        return None

    def heartbeat_denial(self, frame: zmq.Frame, claimed_role: str) -> str | None:
        """A heartbeat may only claim a role its key has (a subscriber cannot appear as a worker)."""
        roles = self.roles(frame)
        if roles is None:
            return None
        if HEARTBEAT_ROLES.get(claimed_role) in roles:
            return None
        self.denied += 1
        return (
            f"control: a heartbeat claims role {claimed_role[:20]!r} with a key of role(s) "
            f"{','.join(sorted(roles)) or 'none'} (from {self.peer(frame)})"
        )

    def peer(self, frame: zmq.Frame) -> str:
        """The key's name for logs and status: bound to the connection, unlike anything in a message."""
        uid = user_id(frame) if self._auth is not None else None
        return uid.split(":", 1)[0] if uid else "unauthenticated"

    def drop_revoked(self, sock: zmq.Socket[Any], endpoint: str) -> bool:
        """After a revocation, drop every connection of ``sock`` (call on its own thread).

        Messages from a revoked key are refused one by one, but a subscriber already connected would
        go on receiving: unbinding ends every connection made through the endpoint, the honest
        clients reconnect by themselves (a second or two) and the revoked one fails the handshake.
        """
        if self.allowlist is None or not (self.allowlist.revoked or self._rebind):
            return False
        if self.allowlist.revoked:
            self.allowlist.revoked = False
            try:
                sock.unbind(sock.getsockopt_string(zmq.LAST_ENDPOINT))
            except zmq.ZMQError as exc:
                self.allowlist.revoked = True  # nothing was cut: try again on the next call
                log.error("SECURITY: could not unbind %s after a revocation (%s)", endpoint, exc.strerror)
                return False
            self._rebind = True
        try:
            sock.bind(endpoint)  # the old listener closes asynchronously: EADDRINUSE for a moment
        except zmq.ZMQError as exc:
            self._rebind_failures += 1
            if self._rebind_failures % 40 == 0:  # every ~10 s at the broker's tick: say it, keep trying
                log.error(
                    "SECURITY: cannot bind %s again after a revocation (%s); subscribers are cut off",
                    endpoint,
                    exc.strerror,
                )
            return False
        self._rebind, self._rebind_failures = False, 0
        self.cuts += 1
        log.warning(
            "SECURITY: a key lost its rights: dropped every connection on %s (cut %d); clients reconnect",
            endpoint,
            self.cuts,
        )
        return True

    def stats(self) -> dict[str, bool | int]:
        if self.allowlist is None:
            return {"curve": False}
        return {
            "curve": True,
            "keys": len(self.allowlist.current.entries),
            "denied": self.denied,
            "cuts": self.cuts,
            "reloads": self.allowlist.reloads,
            "allowlist_errors": self.allowlist.failures,
        }

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(2 * RELOAD_INTERVAL)
            self._watcher = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def guard(ctx: zmq.Context[Any], bind_host: str, what: str, keys: Keyring | None = None) -> Guard:
    """The Guard of a binding process, with this process's keys unless others are given."""
    return Guard(ctx, keys or _process_keys, bind_host, what)


def host_of(endpoint: str) -> str:
    """The host part of tcp://HOST:PORT (for the plaintext warning)."""
    rest = endpoint.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest
