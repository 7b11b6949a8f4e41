"""Moved to anjeon.config.safety; this re-export goes once its importers have switched."""

from anjeon.config.safety import *  # noqa: F403
