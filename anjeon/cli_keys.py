"""`anjeon keys`: make CURVE key pairs and keep the allowlist that gives each public key its role(s).

A key folder holds NAME.key (public) and NAME.key_secret (public + secret, mode 0600)
certificate files as pyzmq's zmq.auth writes them, and allowlist.txt (see
anjeon.protocol.security). docs/security.md says which files go to which host.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from anjeon.protocol import security

INIT_KEYS = (
    ("edge", ("edge",)),
    ("worker", ("worker",)),
    ("safety", ("safety",)),
    ("subscriber", ("subscriber",)),
)


def _folder(path: Path, create: bool) -> Path:
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.is_dir():
        raise click.ClickException(f"{path} is not a key folder (make one with `anjeon keys init {path}`)")
    return path


def _write_allowlist(folder: Path, lines: list[str]) -> None:
    """Replace the allowlist in one rename, so a running broker never reads half a file."""
    fd, tmp = tempfile.mkstemp(prefix=".allowlist.", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(
            "# anjeon allowlist: PUBLIC_KEY NAME ROLE[,ROLE]  (roles: " + ", ".join(security.ROLES) + ")\n"
        )
        f.write("# Re-read by running servers when it changes. Edit with `anjeon keys add/revoke`.\n")
        f.writelines(line + "\n" for line in lines)
    os.chmod(tmp, 0o644)  # public keys only: nothing secret in here
    os.replace(tmp, folder / security.ALLOWLIST)


def _entry_lines(folder: Path) -> list[str]:
    path = folder / security.ALLOWLIST
    if not path.exists():
        return []
    return [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _make_pair(folder: Path, name: str) -> bytes:
    security.check_name(name)
    if (folder / f"{name}.key_secret").exists() or (folder / f"{name}.key").exists():
        raise click.ClickException(
            f"{folder / name}.key already exists; pick another name or revoke it first"
        )
    # The secret file must never exist with a looser mode, not even for a moment.
    old = os.umask(0o077)
    try:
        public_file, secret_file = security.zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old)
    os.chmod(public_file, 0o644)
    os.chmod(secret_file, 0o600)
    return security.load_pair(folder, name).public


def _add(folder: Path, name: str, roles: tuple[str, ...]) -> str:
    lines = _entry_lines(folder)
    if any(line.split()[1:2] == [name] for line in lines):
        raise click.ClickException(f"{name} is already in the allowlist")
    public = _make_pair(folder, name)
    line = security.format_allowlist_line(public, name, roles)
    _write_allowlist(folder, lines + [line])
    return line


@click.group()
def keys() -> None:
    """CURVE keys and the allowlist of who may do what on the bus (docs/security.md).

    \b
    anjeon keys init /etc/anjeon/keys          # broker + one key per role
    anjeon keys add /etc/anjeon/keys gate-edge --role edge
    anjeon keys revoke /etc/anjeon/keys gate-edge
    anjeon --keys /etc/anjeon/keys broker      # then every process takes --keys
    """


@keys.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def keys_init(folder: Path) -> None:
    """Make a key folder: the broker's pair, one pair per role, and the allowlist."""
    folder = _folder(folder, create=True)
    if (folder / security.ALLOWLIST).exists():
        raise click.ClickException(f"{folder} already has an allowlist; use `anjeon keys add` to add keys")
    _make_pair(folder, security.SERVER_KEY)
    _write_allowlist(folder, [])
    for name, roles in INIT_KEYS:
        _add(folder, name, roles)
    click.echo(f"{folder}: broker key pair and keys for {', '.join(n for n, _ in INIT_KEYS)}")


@keys.command("add")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(security.ROLES),
    help="What this key may do (repeatable).",
)
def keys_add(folder: Path, name: str, roles: tuple[str, ...]) -> None:
    """Make a key pair NAME and allow it with ROLE(s); running servers pick it up within a second."""
    try:
        line = _add(_folder(folder, create=False), name, tuple(dict.fromkeys(roles)))
    except security.SecurityError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(line)


@keys.command("revoke")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.argument("name")
def keys_revoke(folder: Path, name: str) -> None:
    """Remove NAME from the allowlist: its connections and messages are refused from the next reload on."""
    folder = _folder(folder, create=False)
    lines = _entry_lines(folder)
    kept = [line for line in lines if line.split()[1:2] != [name]]
    if len(kept) == len(lines):
        raise click.ClickException(f"{name} is not in {folder / security.ALLOWLIST}")
    _write_allowlist(folder, kept)
    for suffix in (".key_secret", ".key"):
        (folder / f"{name}{suffix}").unlink(missing_ok=True)
    click.echo(f"revoked {name}; also delete {name}.key_secret wherever it was copied")


@keys.command("list")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def keys_list(folder: Path) -> None:
    """Show the allowlist (name, roles, public key) and any line a server would refuse."""
    folder = _folder(folder, create=False)
    path = folder / security.ALLOWLIST
    allowlist = security.parse_allowlist(path.read_text(encoding="utf-8") if path.exists() else "", str(path))
    for key, entry in sorted(allowlist.entries.items(), key=lambda kv: kv[1].name):
        click.echo(f"{entry.name:20} {','.join(sorted(entry.roles)):24} {key}")
    for error in allowlist.errors:
        click.echo(f"refused: {error}", err=True)


def use_process_keys(command: str | None, folder: Path | None, name: str) -> None:
    """Called by the `anjeon` group before any command: load the keys this command uses.

    `anjeon up` loads none itself; it hands the folder to its children through the
    environment (never argv), and each child picks its own pair by its command.
    """
    if command == "up":
        if folder:
            os.environ[security.KEYS_ENV] = str(Path(folder).expanduser().resolve())
        os.environ.pop(security.KEY_NAME_ENV, None)
        return
    if command not in security.COMMAND_KEYS:
        return
    try:
        security.use_keys(folder, name or security.COMMAND_KEYS[command])
    except security.SecurityError as exc:
        raise click.ClickException(str(exc)) from None
    if folder:  # processes this one starts (loadtest's private broker and workers) use the same folder
        os.environ[security.KEYS_ENV] = str(Path(folder).expanduser().resolve())
        os.environ.pop(security.KEY_NAME_ENV, None)


def hand_keys_to_children(site_keys: str, config_path: Path | None) -> None:
    """`anjeon up`: the site config's `security: keys:` (relative to the file) reaches the children by env.

    --keys / ANJEON_KEYS, when given, wins. The folder is checked here, so a typo stops `up` at once
    instead of leaving every child restarting.
    """
    if site_keys and not os.environ.get(security.KEYS_ENV):
        folder = Path(site_keys).expanduser()
        if not folder.is_absolute() and config_path is not None:
            folder = config_path.parent / folder
        os.environ[security.KEYS_ENV] = str(folder.resolve())
    if os.environ.get(security.KEYS_ENV):
        try:
            security.load_pair(Path(os.environ[security.KEYS_ENV]), security.SERVER_KEY)
        except security.SecurityError as exc:
            raise click.ClickException(str(exc)) from None
