"""How an anjeon process runs: its logging, Ctrl-C/SIGTERM handling, its cores; runtime.supervisor runs children.

A service runs until Ctrl-C or SIGTERM: the first asks it to stop, a second forces exit. A service the
broker refused at the handshake stops itself and exits with status 75, to be restarted (docs/security.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType


def setup_logging(level: str, fmt: str = "text", role: str = "") -> None:
    from anjeon.protocol.logs import configure

    configure(level, fmt, role)
    from anjeon.protocol.secrets import install_log_masking

    install_log_masking()  # every process: no password or token in a URL reaches a log line
    # Children of `anjeon up` are new processes: they read the same format from the environment.
    os.environ["ANJEON_LOG_FORMAT"] = fmt


def run_until_signal(serve: Callable[[threading.Event], None]) -> None:
    """Run ``serve(stop)`` until a signal sets ``stop``.

    A service whose key the broker refused at the handshake (libzmq never retries that) is stopped the
    same way, then exits with security.REFUSED_EXIT_STATUS so that its service manager starts it again.
    """
    from anjeon.protocol import security

    stop = threading.Event()
    status = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # asked twice: the user means it
        logging.getLogger("anjeon").info("stopping (%s)", signal.Signals(signum).name)
        stop.set()

    def on_refused(code: int) -> None:  # on the watch's thread: only ask the main loop to stop
        nonlocal status
        if not stop.is_set():  # already stopping for another reason: keep that one's exit status
            status = code
            stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    security.on_refusal(on_refused)
    try:
        serve(stop)
    finally:
        security.on_refusal(None)
    if status:
        sys.exit(status)


@contextlib.contextmanager
def exit_when_refused() -> Iterator[None]:
    """For a process that serves without run_until_signal (uvicorn handles the viewer's signals): within,
    a key the broker keeps refusing at the handshake sends this process a SIGTERM, which it handles as
    usual, and leaving exits with security.REFUSED_EXIT_STATUS, for the service manager to restart it."""
    from anjeon.protocol import security

    status = 0

    def on_refused(code: int) -> None:
        nonlocal status
        status = code
        os.kill(os.getpid(), signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        # uvicorn shuts down gracefully on the SIGTERM, then restores this handler and raises the signal
        # again: exit with the refusal's status then; any other SIGTERM ends the process as it did before
        # (a handler the process had installed itself still runs, and leaving the block exits as below).
        if callable(previous):
            previous(signum, frame)
            return
        if status:
            sys.exit(status)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    security.on_refusal(on_refused)
    try:
        yield
    finally:
        security.on_refusal(None)
        signal.signal(signal.SIGTERM, previous)
    if status:
        sys.exit(status)


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
