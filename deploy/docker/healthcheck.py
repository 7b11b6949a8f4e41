"""Container health check: is the anjeon process in this container answering?

The image runs one role as PID 1 (`anjeon [global options] ROLE ...`). The check asks that process itself:
its Prometheus endpoint (GET /metrics on --metrics-port, which the image turns on for every role), or for the
web console its own HTTP port. Exit 0 when it answers, 1 when not (the runtime then marks the container
unhealthy; Kubernetes uses its own probes on the same ports). Standard library only: it runs in the image's
Python without importing anjeon.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

ROLES = ("broker", "edge", "worker", "safety", "viewer", "watch")
GLOBAL_OPTIONS_WITH_VALUE = ("--log-level", "--keys", "--key")


def pid1_argv() -> list[str]:
    with open("/proc/1/cmdline", "rb") as f:
        return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]


def role_and_args(argv: list[str]) -> tuple[str, list[str]]:
    """The role's name and its own arguments, skipping the program and the global options."""
    args = argv[1:]
    while args:
        head = args.pop(0)
        if head in ROLES:
            return head, args
        if head in GLOBAL_OPTIONS_WITH_VALUE and args:
            args.pop(0)
    return "", []


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def url_for(role: str, args: list[str]) -> str | None:
    if role == "viewer":  # the console's own page (a login redirect is an answer too)
        port = option(args, "--port") or os.environ.get("ANJEON_VIEWER_PORT") or "8080"
        return f"http://127.0.0.1:{port}/"
    port = option(args, "--metrics-port") or os.environ.get(f"ANJEON_{role.upper()}_METRICS_PORT") or "0"
    host = (
        option(args, "--metrics-host") or os.environ.get(f"ANJEON_{role.upper()}_METRICS_HOST") or "127.0.0.1"
    )
    if host in ("0.0.0.0", "*", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/metrics" if port != "0" else None


def main() -> int:
    role, args = role_and_args(pid1_argv())
    if not role:
        return 0  # `--help`, `keys`, ...: nothing long-running to check
    url = url_for(role, args)
    if url is None:
        print(f"{role}: metrics are off (--metrics-port 0); nothing to ask", file=sys.stderr)
        return 0
    try:
        with urllib.request.urlopen(url, timeout=4) as answer:
            ok = answer.status < 500
    except urllib.error.HTTPError as exc:  # 401/403/404 from the console still means it serves
        ok = exc.code < 500
    except OSError as exc:
        print(f"{role}: {url} does not answer: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
