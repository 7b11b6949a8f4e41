"""systemd units (deploy/systemd): every role has one, `systemd-analyze verify` accepts each with the shared
hardening drop-in applied, `systemd-analyze security --offline` rates each as hardened, and what they pass to
anjeon (flags on ExecStart, variables in the environment file) are options the commands really have, with
nothing secret on a command line.

There is no systemd running on the test machines (PID 1 is not systemd), so the units are checked statically;
the flags they use are checked against the real CLI.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/anjeon/bin/anjeon"
ANJEON = Path(sys.executable).with_name("anjeon")
# unit file -> (instance to check it as, the anjeon command it runs)
ROLES = {
    "anjeon-broker.service": ("anjeon-broker.service", "broker"),
    "anjeon-edge@.service": ("anjeon-edge@east.service", "edge"),
    "anjeon-worker@.service": ("anjeon-worker@cpu.service", "worker"),
    "anjeon-safety.service": ("anjeon-safety.service", "safety"),
    "anjeon-viewer.service": ("anjeon-viewer.service", "viewer"),
}
MAX_EXPOSURE = 2.0  # systemd-analyze's 0 (locked down) .. 10 (exposed); a plain unit rates about 8.6

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package: systemd)",
)


@pytest.fixture(scope="module")
def unit_dir(tmp_path_factory) -> Path:
    """The units as installed, but starting the anjeon of this checkout (verify needs ExecStart to exist)."""
    out = tmp_path_factory.mktemp("units")
    shutil.copytree(UNITS / "anjeon-.service.d", out / "anjeon-.service.d")
    for name, (instance, _cmd) in ROLES.items():
        text = (UNITS / name).read_text()
        assert INSTALLED in text, f"{name} does not start {INSTALLED}"
        (out / instance).write_text(text.replace(INSTALLED, str(ANJEON)))
    return out


def test_every_role_has_a_unit():
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(ROLES)


@needs_systemd_analyze
@pytest.mark.parametrize("instance", [i for i, _ in ROLES.values()])
def test_systemd_analyze_verify_accepts_the_unit(unit_dir, instance):
    result = subprocess.run(
        ["systemd-analyze", "verify", f"./{instance}"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Unknown keys and misplaced sections are only warnings to systemd: count them as failures.
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


@needs_systemd_analyze
def test_verify_fails_for_a_unit_that_starts_nothing(unit_dir, tmp_path):
    """The check above can fail: a unit whose ExecStart does not exist is refused."""
    shutil.copytree(unit_dir / "anjeon-.service.d", tmp_path / "anjeon-.service.d")
    text = (unit_dir / "anjeon-broker.service").read_text().replace(str(ANJEON), "/nonexistent/anjeon")
    (tmp_path / "anjeon-broker.service").write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "./anjeon-broker.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "/nonexistent/anjeon" in result.stdout + result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("instance", [i for i, _ in ROLES.values()])
def test_each_unit_is_hardened(unit_dir, instance):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"./{instance}"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout


def _unit(name: str) -> dict[str, list[str]]:
    """Key -> values of a unit file with the hardening drop-in after it (as systemd merges them)."""
    values: dict[str, list[str]] = {}
    for path in (UNITS / name, UNITS / "anjeon-.service.d" / "hardening.conf"):
        text = re.sub(r"\\\n\s*", " ", path.read_text())
        for line in text.splitlines():
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, _, value = line.partition("=")
                values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name", ROLES)
def test_units_restart_and_run_as_the_anjeon_user(name):
    unit = _unit(name)
    assert unit["Restart"] == ["always"] and unit["StartLimitIntervalSec"] == ["0"]
    assert (
        unit["User"] == ["anjeon"]
        and unit["NoNewPrivileges"] == ["yes"]
        and unit["ProtectSystem"] == ["strict"]
    )
    assert unit["EnvironmentFile"] == ["/etc/anjeon/anjeon.env"]
    assert "anjeon" in (UNITS / "anjeon.sysusers.conf").read_text().split()


def _command(name: str) -> click.Command:
    from anjeon.cli import main

    return main.commands[name]


def _flags(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


@pytest.mark.parametrize("name", ROLES)
def test_exec_start_uses_real_flags_and_no_secrets(name):
    _instance, cmd = ROLES[name]
    (exec_start,) = _unit(name)["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED and argv[1] == cmd
    flags = [a for a in argv[2:] if a.startswith("--")]
    assert set(flags) <= _flags(_command(cmd)), set(flags) - _flags(_command(cmd))
    # ps shows every process's command line to every user of the host.
    assert not re.search(r"://[^/\s]*@|password|secret|--keys", exec_start, re.I), exec_start


def _env_names() -> dict[str, str]:
    """ANJEON_* variable -> where click takes it from (auto_envvar_prefix ANJEON: ANJEON_<CMD>_<OPTION>)."""
    from anjeon.cli import main

    def envvars(param: click.Parameter, prefix: str) -> list[str]:
        if not isinstance(param, click.Option) or not param.name:
            return []
        if param.envvar:  # an explicit name replaces the automatic one
            return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        return [f"{prefix}_{param.name.upper()}"]

    names = {var: "anjeon" for p in main.params for var in envvars(p, "ANJEON")}
    for cmd_name, command in main.commands.items():
        for param in command.params:
            names.update({var: cmd_name for var in envvars(param, f"ANJEON_{cmd_name.upper()}")})
    return names


def test_environment_file_sets_only_variables_anjeon_reads():
    known = _env_names()
    text = (UNITS / "anjeon.env.example").read_text()
    assigned = re.findall(r"^#?(ANJEON_[A-Z0-9_]+)=", text, re.M)
    assert assigned
    unknown = [name for name in assigned if name not in known]
    assert not unknown, f"anjeon reads no such variable: {unknown}"
    for _instance, cmd in ROLES.values():
        assert f"ANJEON_{cmd.upper()}_BROKER" in assigned or cmd == "broker"


def test_units_pick_key_pairs_anjeon_knows():
    known = _env_names()
    for name in ROLES:
        for value in _unit(name).get("Environment", []):
            for assignment in shlex.split(value):
                var = assignment.partition("=")[0]
                if var.startswith("ANJEON_"):
                    assert var in known, (name, var)
