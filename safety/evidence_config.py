"""Moved to anjeon.config.evidence; this re-export goes once its importers have switched."""

from anjeon.config.evidence import *  # noqa: F403
from anjeon.config.evidence import WEEKDAYS  # noqa: F401
