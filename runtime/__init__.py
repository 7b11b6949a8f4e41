"""How an anjeon process runs: its logging, Ctrl-C/SIGTERM handling, its cores; runtime.supervisor runs children.

A service runs until Ctrl-C or SIGTERM: the first asks it to stop, a second forces exit.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType


def setup_logging(level: str, fmt: str = "text", role: str = "") -> None:
    from anjeon.protocol.logs import configure

    configure(level, fmt, role)
    from anjeon.protocol.secrets import install_log_masking

    install_log_masking()  # every process: no password or token in a URL reaches a log line
    # Children of `anjeon up` are new processes: they read the same format from the environment.
    os.environ["ANJEON_LOG_FORMAT"] = fmt


def run_until_signal(serve: Callable[[threading.Event], None]) -> None:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # asked twice: the user means it
        logging.getLogger("anjeon").info("stopping (%s)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    serve(stop)


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
