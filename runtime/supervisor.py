"""Supervising child processes (`anjeon up`, `anjeon loadtest --spawn`): start them, keep them up, stop them all.

Each service is a child process (`python -m anjeon ROLE ...`) in its own
session, so a Ctrl-C reaches only the supervisor, which then stops the
children once, in reverse order, with a deadline. A child that dies on its
own is restarted with backoff, because a site runs this unattended.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from anjeon.protocol.security import REFUSED_EXIT_STATUS

log = logging.getLogger("anjeon.up")

RESTART_BACKOFF_MAX = 30.0


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]  # arguments after `python -m anjeon`
    foreground: bool = False  # its output goes to the terminal; when it exits, everything stops
    env: dict[str, str] = field(default_factory=dict)  # added to the child's environment (secrets go here)


@dataclass
class Child:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    next_start: float = (
        0.0  # monotonic time a dead child may start again; a minute past it forgets the backoff
    )
    backoff: float = 1.0
    log_path: Path | None = None


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the supervisor dies, so nothing is left orphaned."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Supervisor:
    def __init__(self, specs: list[ServiceSpec], log_dir: Path | None) -> None:
        self.children = [Child(spec) for spec in specs]
        self.log_dir = log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def _spawn(self, child: Child) -> None:
        spec = child.spec
        out = None
        if self.log_dir is not None and not spec.foreground:
            child.log_path = self.log_dir / f"{spec.name}.log"
            out = open(child.log_path, "ab")
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "anjeon", *spec.argv],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **spec.env},
            preexec_fn=_die_with_parent,
        )
        if out is not None:
            out.close()
        log.info(
            "started %s (pid %d)%s",
            spec.name,
            child.proc.pid,
            f", log {child.log_path}" if child.log_path else "",
        )

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)
            if child.spec.name == "broker":
                time.sleep(0.3)  # let it bind before clients connect (they would retry anyway)

    def serve(self, stop: threading.Event) -> int:
        """Start everything, keep it running until ``stop``, then stop it all; the exit code."""
        self.start()
        try:
            while not stop.wait(0.5):
                for child in self.children:
                    if self._check(child):
                        return (child.proc.returncode or 0) if child.proc else 0
            return 0
        finally:
            self.shutdown()

    def _check(self, child: Child) -> bool:
        """Restart a child that died; True when the foreground child ended (so should we)."""
        now = time.monotonic()
        if child.proc is None:
            if now >= child.next_start:
                self._spawn(child)
            return False
        code = child.proc.poll()
        if code is None:
            if now - child.next_start > 60:
                child.backoff = 1.0  # it has run fine for a minute: forget its past failures
            return False
        if child.spec.foreground:
            return True
        log.warning(
            "%s exited with code %s%s; restarting in %.0f s%s",
            child.spec.name,
            code,
            " (the broker refused its key at the handshake; admitted once the key is in the allowlist)"
            if code == REFUSED_EXIT_STATUS
            else "",
            child.backoff,
            f" (see {child.log_path})" if child.log_path else "",
        )
        child.proc = None
        child.next_start = now + child.backoff
        child.backoff = min(child.backoff * 2, RESTART_BACKOFF_MAX)
        return False

    def shutdown(self, timeout: float = 10.0) -> None:
        running = [c.proc for c in reversed(self.children) if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        killed = 0
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed += 1
        log.info("stopped %d service(s)%s", len(running), f"; {killed} had to be killed" if killed else "")
