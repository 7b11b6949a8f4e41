"""The evidence settings of the `safety:` section: clips, retention, scheduled reports.

Pure data with validation, like config/safety.py, which calls ``parse_evidence``
with its reader (so errors name file, line and field the same way).
Nothing heavy is imported here: `anjeon config validate` stays cheap.

    safety:
      clips: {pre: 10, post: 10, max: 120, fps: 5, buffer_mb: 32}   # or `clips: false`
      cameras:
        gate: {clips: {pre: 5}, zones: ..., rules: ...}             # per camera: false or overrides
      retention: {events_days: 365, snapshots_days: 90, clips_days: 30,
                  max_disk_gb: 50, max_disk_percent: 85, keep_events_days: 90, check_minutes: 5}
      reports:
        daily: "07:00"                 # yesterday's report, every day at this local time
        weekly: "mon 07:00"            # the last 7 days
        lang: ko
        folder: data/reports
        webhook: "http://10.0.0.9/reports"
        email: {host: smtp.example.com, port: 587, starttls: true, user: anjeon, password_env: SMTP_PASSWORD,
                sender: anjeon@example.com, to: [safety@example.com]}
        attempts: 3                    # per channel; the first retry after `backoff` s (5), doubling
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .schema import ConfigPath, ErrorFn, Reader, setting, yaml_fields

if TYPE_CHECKING:
    from .safety import SafetyConfig

DAYS = (0.0, 36500.0)  # 0 = keep forever
HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
URL = re.compile(r"^https?://[^\s/]+")


@dataclass(frozen=True)
class ClipSpec:
    pre: float = setting(10.0, 0.0, 120.0)  # s of pre-roll
    post: float = setting(10.0, 0.0, 600.0)  # s after the event's end
    max: float = setting(120.0, 1.0, 3600.0)  # longest clip, pre-roll included
    fps: float = setting(
        5.0, 0.2, 30.0
    )  # frames per second kept and encoded (at most: a camera sends what it sends)
    buffer_mb: float = setting(32.0, 1.0, 4096.0)  # the per-camera ring buffer's cap
    folder: str = setting("")  # default: a `clips` folder beside the store (global setting only)


@dataclass(frozen=True)
class RetentionSpec:
    events_days: float = setting(0.0, *DAYS)  # event rows older than this are deleted (0: kept forever)
    snapshots_days: float = setting(0.0, *DAYS)
    clips_days: float = setting(0.0, *DAYS)
    max_disk_gb: float = setting(
        0.0, 0.0, 1e6
    )  # evidence (store + snapshots + clips) may use at most this (0: no cap)
    max_disk_percent: float = setting(
        0.0, 0.0, 99.0
    )  # ... or keep the filesystem at most this full (0: no cap)
    keep_events_days: float = setting(30.0, *DAYS)  # the disk cap never deletes event rows younger than this
    check_minutes: float = setting(5.0, 0.1, 1440.0)


def _addresses(value: Any, error: ErrorFn) -> tuple[str, ...]:
    to = [value] if isinstance(value, str) else value
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and EMAIL.match(a) for a in to):
        raise error("must be a list of e-mail addresses")
    return tuple(to)


@dataclass(frozen=True)
class EmailSpec:
    host: str = setting()
    port: int = setting(587, 1, 65535)
    starttls: bool = setting(True)
    user: str = setting("")
    password_env: str = setting("")  # the password comes from this environment variable, never from the file
    sender: str = setting("")  # default: the first of `to`
    to: tuple[str, ...] = setting((), parse=_addresses)
    timeout: float = setting(30.0, 1.0, 600.0)
    ca_file: str = setting(
        ""
    )  # trust this CA for STARTTLS (a site's own mail server); default: the system's CAs


@dataclass(frozen=True)
class ReportSpec:
    daily: str = setting("")  # HH:MM local
    weekly: str = setting("")  # "mon HH:MM"
    lang: str = setting("ko", choices=("ko", "en"))
    folder: str = setting("")  # default: a `reports` folder beside the store
    webhook: str = setting("")  # POST the PDF here (multipart/form-data)
    email: EmailSpec | None = setting(None)
    attempts: int = setting(3, 1, 10)  # deliveries tried per report and channel
    backoff: float = setting(5.0, 0.1, 3600.0)  # seconds before the second attempt; doubles after each


CLIP_KEYS = tuple(k for k in yaml_fields(ClipSpec) if k != "folder")


def _clips(p: Reader, value: Any, path: ConfigPath, base: ClipSpec | None, top: bool) -> ClipSpec | None:
    """`clips: false` -> None; a mapping overrides ``base`` key by key."""
    if value is False:
        return None
    if value is True or value is None:
        return base or ClipSpec()
    out = replace(
        base or ClipSpec(), **p.values(ClipSpec, value, path, CLIP_KEYS + (("folder",) if top else ()))
    )
    if out.max <= out.pre:
        raise p.error(
            path + ("max",), f"max ({out.max:g} s) must be longer than the pre-roll ({out.pre:g} s)"
        )
    return out


def _email(p: Reader, value: Any, path: ConfigPath) -> EmailSpec:
    data = p.mapping(value, path, tuple(yaml_fields(EmailSpec)))
    if "host" not in data:
        raise p.error(path + ("host",), "an e-mail delivery needs the SMTP host")
    if "to" not in data:
        raise p.error(path + ("to",), "must be a list of e-mail addresses")
    values = p.values(EmailSpec, data, path)
    values.setdefault("sender", values["to"][0])
    if not EMAIL.match(values["sender"]):
        raise p.error(path + ("sender",), f"{values['sender']!r} is not an e-mail address")
    return EmailSpec(**values)


def _reports(p: Reader, value: Any, path: ConfigPath) -> ReportSpec:
    data = p.mapping(value, path, tuple(yaml_fields(ReportSpec)))
    values = p.values(ReportSpec, {k: v for k, v in data.items() if k != "email"}, path)
    daily, weekly, webhook = values.get("daily", ""), values.get("weekly", ""), values.get("webhook", "")
    if daily and not HHMM.match(daily):
        raise p.error(path + ("daily",), f"daily is a local time HH:MM, got {daily!r}")
    if weekly:
        day, _, hhmm = weekly.partition(" ")
        if day.lower() not in WEEKDAYS or not HHMM.match(hhmm):
            raise p.error(path + ("weekly",), f"weekly is 'DAY HH:MM' with DAY one of {', '.join(WEEKDAYS)}")
        values["weekly"] = weekly.lower()
    if webhook and not URL.match(webhook):
        raise p.error(path + ("webhook",), f"a webhook needs an http:// or https:// url, got {webhook!r}")
    if data.get("email"):
        values["email"] = _email(p, data["email"], path + ("email",))
    return ReportSpec(**values)


def parse_evidence(p: Reader, data: dict[str, Any], config: SafetyConfig, path: ConfigPath) -> None:
    """Fill ``config.clips``, ``config.camera_clips``, ``config.retention``, ``config.reports``."""
    config.clips = _clips(p, data.get("clips", True), path + ("clips",), None, top=True)
    for cam_id, value in (data.get("cameras") or {}).items():
        if isinstance(value, dict) and "clips" in value:
            base = config.clips or ClipSpec()
            config.camera_clips[cam_id] = _clips(
                p, value["clips"], path + ("cameras", str(cam_id), "clips"), base, top=False
            )
    config.retention = p.section(RetentionSpec, data.get("retention"), path + ("retention",))
    config.reports = _reports(p, data["reports"], path + ("reports",)) if data.get("reports") else None


def camera_clip_specs(config: SafetyConfig) -> dict[str, ClipSpec | None]:
    """Each camera's clip settings: its own, else the global ones (None: no clips)."""
    return {cam: config.camera_clips.get(cam, config.clips) for cam in config.cameras}
