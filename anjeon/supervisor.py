"""Moved to anjeon.runtime.supervisor; this re-export goes once its importers have switched."""

from anjeon.runtime.supervisor import ServiceSpec, Supervisor  # noqa: F401
