"""`anjeon viewer`: the operator's web console (viewer/console/server.py does the work)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from anjeon.protocol.endpoints import BrokerAddress

from .cli_observe import metrics_flags, metrics_options
from .cli_options import broker_option, name_option

INSTALL_HINT = (
    "the web console needs the viewer extra: pip install 'anjeon[viewer]' (or `make venv` in the repo)"
)


def _missing_deps() -> list[str]:
    return [m for m in ("fastapi", "uvicorn", "ruamel", "yaml") if importlib.util.find_spec(m) is None]


def viewer_available() -> bool:
    """Whether the viewer extra is installed (`anjeon up` starts the console only then)."""
    return not _missing_deps()


@click.command()
@broker_option(help="Where the broker runs.")
@click.option("--port", default=8080, type=click.IntRange(1, 65535), help="HTTP port of the console.")
@click.option(
    "--bind",
    default="127.0.0.1",
    help="Interface to serve on. Anything but loopback requires --users (a login).",
)
@click.option(
    "--users",
    "users_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Users file (NAME:PBKDF2 hash per line); when given, every page needs a login.",
)
@click.option(
    "--add-user",
    metavar="NAME",
    help="Add NAME (or set a new password) in --users, asking for the password, and exit.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site YAML: zone outlines on the frames, and the zone editor saves into it.",
)
@click.option(
    "--history",
    default="",
    metavar="tcp://HOST:PORT",
    help="The safety service's history API [tcp://BROKERHOST:BASEPORT+5].",
)
@click.option(
    "--acks",
    "acks_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="data/acks.jsonl",
    help="Where acknowledgements (who, when) are recorded, one JSON line each.",
)
@name_option(help="Name shown in status (default: viewer@HOST:PID).")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A host name the console answers to besides IP addresses and this machine's names "
    "(repeatable): the name people type, or a reverse proxy's public name. Other Host or "
    "Origin headers are refused (DNS rebinding, cross-site requests).",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDRESS|NETWORK",
    help="A reverse proxy (IP or CIDR, repeatable) whose X-Forwarded-For names the client for the "
    "login throttle. Default: none (the header is ignored).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Serve https with this certificate (PEM); needs --tls-key. Cookies are then Secure.",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Its private key (PEM)."
)
@click.option(
    "--behind-tls-proxy",
    is_flag=True,
    help="A TLS-terminating proxy serves this console: mark session cookies Secure.",
)
@click.option(
    "--snapshots",
    "snapshots",
    type=click.Path(file_okay=False, path_type=Path),
    help="The safety service's snapshot folder, if readable here [from --config's safety section].",
)
@click.option(
    "--max-cameras",
    default=1024,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Cameras this console keeps state for (ids come off the bus; more are counted and dropped).",
)
@click.option(
    "--max-alarms",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Alarms held and shown (open or unacknowledged); past it the oldest handled ones leave.",
)
@metrics_options
def viewer(
    broker: BrokerAddress,
    port: int,
    bind: str,
    users_path: Path | None,
    add_user: str | None,
    config_path: Path | None,
    history: str,
    acks_path: Path,
    name: str,
    allowed_hosts: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    behind_tls_proxy: bool,
    snapshots: Path | None,
    max_cameras: int,
    max_alarms: int,
) -> None:
    """Serve the web console: live cameras with boxes and zones, health, alarms, history, zone editor."""
    from anjeon.viewer.console.auth import UsersFileError, is_loopback

    if add_user:
        if users_path is None:
            raise click.UsageError("--add-user needs --users FILE")
        from anjeon.viewer.console.auth import add_user as add

        password = click.prompt(f"password for {add_user}", hide_input=True, confirmation_prompt=True)
        try:
            add(users_path, add_user, password)
        except UsersFileError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{users_path}: {add_user} saved")
        return
    missing = _missing_deps()
    if missing:
        raise click.ClickException(f"{INSTALL_HINT} (missing: {', '.join(missing)})")
    users = None
    if users_path is not None:
        from anjeon.viewer.console.auth import load_users

        try:
            users = load_users(users_path)
        except UsersFileError as exc:
            raise click.ClickException(str(exc)) from None
    elif not is_loopback(bind):
        raise click.ClickException(
            f"REFUSING TO START: --bind {bind} would show every camera to the network without a login. "
            "Give --users FILE (create it with `anjeon viewer --users FILE --add-user NAME`), "
            "or keep the default --bind 127.0.0.1."
        )
    if config_path is not None and not config_path.exists():
        raise click.BadParameter(f"{config_path} does not exist", param_hint="--config")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    from anjeon.viewer.console.guard import Proxies
    from anjeon.viewer.console.server import ViewerConfig, serve
    from anjeon.viewer.console.state import Limits

    try:
        Proxies(trusted_proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from None

    scheme = "https" if tls_cert else "http"
    click.echo(
        f"anjeon console: {scheme}://{'127.0.0.1' if bind in ('0.0.0.0', '::') else bind}:{port}/"
        + ("  (login required)" if users else ""),
        err=True,
    )
    from anjeon.runtime import exit_when_refused

    try:
        # uvicorn handles the console's signals, so a key the broker refuses at the handshake reaches it as a
        # SIGTERM and the process then exits with status 75 for its service manager (docs/security.md).
        with exit_when_refused():
            serve(
                ViewerConfig(
                    broker=broker,
                    port=port,
                    bind=bind,
                    history=history,
                    config_path=config_path,
                    users_path=users_path if users else None,
                    acks_path=acks_path,
                    name=name,
                    metrics_port=metrics_flags()[0],
                    metrics_host=metrics_flags()[1],
                    limits=Limits(cameras=max_cameras, alarms=max_alarms),
                    tls_cert=tls_cert,
                    tls_key=tls_key,
                    behind_tls_proxy=behind_tls_proxy,
                    allowed_hosts=allowed_hosts,
                    snapshots=snapshots,
                    trusted_proxies=trusted_proxies,
                )
            )
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
