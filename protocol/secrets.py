"""Secrets never shown: one masking function for URLs in any text, the log filter that applies it, and
the way secrets reach child processes (environment, never argv).

``mask`` hides the user info of every URL in a text (``rtsp://admin:***@cam``) whatever characters the
password holds ('@', '/', spaces...), and the value of every query or fragment parameter whose name
looks like a credential (``password``, ``pwd``, ``token``, ``key``, ``auth``, ``secret``, ``sig``...).
It would rather hide too much (a log line with an e-mail address after a URL) than too little.
``redact_url`` is for URLs that are secrets as a whole, such as webhooks whose path carries a token:
only scheme, host and port stay.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote, urlsplit

_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
# User info runs from '://' to the LAST '@' that is followed by a host, on one line, without crossing
# into another URL: passwords may hold '@', '/', ':' and spaces, so nothing shorter is safe.
_USERINFO = re.compile(rf"(?P<scheme>{_SCHEME})(?P<info>(?:(?!{_SCHEME})[^\r\n])*)@(?=[^\s/?#@]+)")
# Parameter names that carry credentials; matched anywhere in the name (access_token, x-api-key, ...).
SECRET_PARAMS = (
    "pass",
    "pwd",
    "token",
    "key",
    "auth",
    "secret",
    "sig",
    "credential",
    "session",
    "cookie",
    "bearer",
    "jwt",
)
_PARAM = re.compile(
    r"(?P<lead>[?&;#])(?P<name>[^=&;#\s]*(?:"
    + "|".join(SECRET_PARAMS)
    + r")[^=&;#\s]*)=(?P<value>[^&;#\s]*)",
    re.IGNORECASE,
)
HIDDEN = "***"
ENV_PREFIX = "env:"  # a camera source written as env:VAR is read from that variable (kept out of argv)


def _userinfo(match: re.Match[str]) -> str:
    info = match["info"]
    user, sep, _ = info.partition(":")
    # user:password shows the user; a lone token (https://TOKEN@host) is all secret.
    return f"{match['scheme']}{user}:{HIDDEN}@" if sep else f"{match['scheme']}{HIDDEN}@"


def mask(text: str) -> str:
    """``text`` with the credentials of every URL in it hidden (see the module doc)."""
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    if "=" in text:
        text = _PARAM.sub(lambda m: f"{m['lead']}{m['name']}={HIDDEN}" if m["value"] else m[0], text)
    return text


def redact_url(url: str) -> str:
    """scheme://host[:port]/*** : for URLs whose path or query is itself the secret (webhooks)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return HIDDEN
    if not parts.scheme or not host:
        return HIDDEN
    host = f"[{host}]" if ":" in host else host
    rest = f"/{HIDDEN}" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{rest}"


def resolve_source(spec: str, environ: dict[str, str] | None = None) -> str:
    """A camera source given as ``env:VAR`` is the value of VAR; anything else is itself."""
    if not spec.startswith(ENV_PREFIX):
        return spec
    name = spec[len(ENV_PREFIX) :]
    value = (os.environ if environ is None else environ).get(name)
    if not value:
        raise ValueError(f"camera source {spec}: the environment variable {name} is not set")
    return value


class MaskingFilter(logging.Filter):
    """Masks credentials in every log record, so no code path (or library message) can leak one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:  # tracebacks quote exception texts
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_masking() -> None:
    """Attach MaskingFilter to the root handlers (where every record of this process ends up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


def split_userinfo(url: str) -> tuple[str, str, str]:
    """(url without user info, user, password), by the same rule as ``mask`` (last '@' before the host),
    so a password holding '/', '@' or ':' cannot end up in the host or port of a parser's error."""
    scheme, sep, rest = url.partition("://")
    match = _USERINFO.match(url) if sep else None
    if match is None:
        return url, "", ""
    info = match["info"]
    user, _, password = info.partition(":")
    return f"{scheme}://{rest[len(info) + 1 :]}", unquote(user), unquote(password)
