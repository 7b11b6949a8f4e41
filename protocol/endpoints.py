"""The broker's five sockets and how clients name the broker.

Only the broker binds. Clients take one address, ``tcp://HOST[:BASEPORT]``,
and derive the five endpoints from it, so moving a whole site to other ports
is one flag (``--base-port`` on the broker, ``:PORT`` on the clients).
"""

from __future__ import annotations

import random
import re
import socket
from dataclasses import dataclass

DEFAULT_BASE_PORT = 5550

# Offset of each socket from the base port. Order is part of the protocol.
FRAMES_IN = "frames-in"  # PULL  <- edges PUSH frames
FRAMES_OUT = "frames-out"  # ROUTER <- workers connect a DEALER (credits, frames)
RESULTS_IN = "results-in"  # XSUB  <- workers (and safety) PUB results
RESULTS_OUT = "results-out"  # XPUB  -> subscribers SUB (results, status)
CONTROL = "control"  # ROUTER <- every process's heartbeat DEALER
OFFSETS = {FRAMES_IN: 0, FRAMES_OUT: 1, RESULTS_IN: 2, RESULTS_OUT: 3, CONTROL: 4}

_ADDRESS = re.compile(r"^(?:tcp://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?/?$")


class AddressError(ValueError):
    """A broker address that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str = "127.0.0.1"
    base_port: int = DEFAULT_BASE_PORT

    def __post_init__(self) -> None:
        check_base_port(self.base_port)

    @classmethod
    def parse(cls, text: str) -> BrokerAddress:
        """Parse ``tcp://HOST[:BASEPORT]`` (the ``tcp://`` may be left out)."""
        match = _ADDRESS.match(text.strip())
        if not match:
            raise AddressError(
                f"'{text}' is not a broker address; expected tcp://HOST or tcp://HOST:BASEPORT, e.g. tcp://10.0.0.5:5550"
            )
        port = int(match["port"]) if match["port"] else DEFAULT_BASE_PORT
        return cls(match["host"], port)

    def endpoint(self, socket_name: str) -> str:
        return f"tcp://{self.host}:{self.base_port + OFFSETS[socket_name]}"

    def __str__(self) -> str:
        return f"tcp://{self.host}:{self.base_port}"


def check_base_port(port: int) -> None:
    if not 1 <= port <= 65535 - (len(OFFSETS) - 1):
        raise AddressError(
            f"base port {port} is out of range: it and the next {len(OFFSETS) - 1} ports must lie in 1..65535"
        )


def bind_endpoint(bind_host: str, base_port: int, socket_name: str) -> str:
    host = "*" if bind_host in ("0.0.0.0", "*", "") else bind_host
    return f"tcp://{host}:{base_port + OFFSETS[socket_name]}"


def free_base_port(host: str = "127.0.0.1", low: int = 20000, high: int = 60000, tries: int = 200) -> int:
    """A base port whose five ports are all free on ``host`` right now (for tests and private brokers)."""
    for _ in range(tries):
        base = random.randint(low, high - len(OFFSETS))
        socks = []
        try:
            for offset in range(len(OFFSETS)):
                s = socket.socket()
                s.bind((host, base + offset))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AddressError(f"found no {len(OFFSETS)} consecutive free ports on {host} between {low} and {high}")
