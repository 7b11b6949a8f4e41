"""Moved to anjeon.config (config/site.py); this re-export goes once its importers have switched."""

from anjeon.config.site import *  # noqa: F403
from anjeon.config.site import ConfigError, SiteConfig, load_site_config, parse_site_config  # noqa: F401
