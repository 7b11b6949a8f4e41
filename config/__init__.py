"""The typed settings of every thing (camera, broker, workers, safety rules, evidence) and the site-config loader.

One dataclass per thing, used by the YAML site config, the CLI flags and the
processes alike; the loader's errors name file, line and field. This package
imports only `anjeon.protocol` (and PyYAML when a file is read), so any role may
import it.

    from anjeon.config import ConfigError, load_site_config
    site = load_site_config("site.yaml")     # site.cameras["gate"] is a CameraConfig
"""

from .camera import CameraConfig
from .schema import ConfigError
from .site import SiteConfig, load_site_config, parse_site_config

__all__ = ["CameraConfig", "ConfigError", "SiteConfig", "load_site_config", "parse_site_config"]
