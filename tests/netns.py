"""Network namespaces made by the tests: a veth pair to the host, a link that can be cut and restored.

Needs root and `ip` (iproute2). Where a namespace cannot be made the test is
skipped with the reason. Addresses are 10.213.N.1 (host side) and .2 (inside),
a /30 that exists only between this host and its own namespace.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Process

IP = shutil.which("ip")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=check)


class Netns:
    def __init__(self, tag: str) -> None:
        if IP is None:
            pytest.skip("no `ip` command (iproute2): cannot make a network namespace")
        if os.geteuid() != 0:
            pytest.skip("network namespaces need root")
        n = random.randint(1, 250)
        self.name = f"anj{os.getpid() % 100000}{tag}"
        self.host_if, self.ns_if = f"{self.name}h"[-15:], f"{self.name}n"[-15:]
        self.host_ip, self.ns_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        try:
            _ip("netns", "add", self.name)
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            _ip("-n", self.name, "link", "set", self.ns_if, "up")
        except subprocess.CalledProcessError as exc:
            self.close()
            pytest.skip(
                f"cannot make a network namespace here: {' '.join(exc.cmd[1:])}: {exc.stderr.strip()}"
            )

    def cut(self) -> None:
        """Link down: packets in either direction are lost; TCP connections stay half-open, as on a real cut."""
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def curl(self, url: str) -> str:
        """GET a URL from inside the namespace (its own loopback still works while the link is cut); "" on error."""
        fetch = (
            "import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
        )
        run = subprocess.run(
            [IP, "netns", "exec", self.name, sys.executable, "-c", fetch, url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return run.stdout if run.returncode == 0 else ""

    def close(self) -> None:
        _ip("link", "del", self.host_if, check=False)
        _ip("netns", "del", self.name, check=False)


class NsProcess(Process):
    """`python -m anjeon ARGS` inside a namespace; otherwise a conftest.Process (logs, stop, kill)."""

    def __init__(self, ns: Netns, name: str, args: list[str], log_dir: Path) -> None:
        self.name, self.args = name, args
        self.log = log_dir / f"{name}.log"
        self._log_file = open(self.log, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # `ip netns exec` execs the command: the pid is python's, so signals reach it.
        self.popen = subprocess.Popen(
            [IP, "netns", "exec", ns.name, sys.executable, "-m", "anjeon", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
