"""anjeon (안전, "safety"): an AI safety manager for work sites.

The role packages are mapped under this namespace at install time:
anjeon.protocol (protocol/), anjeon.edge (edge/), anjeon.broker (broker/),
anjeon.inference (inference/), anjeon.safety (safety/), anjeon.viewer (viewer/),
anjeon.loadtest (loadtest/), and the two shared ones any role may use:
anjeon.config (config/: the settings and the site config) and anjeon.runtime
(runtime/: logging, signals, the process supervisor). This package holds only
the command line (`anjeon`) and the process list `anjeon up` runs.
"""

__version__ = "0.1.0"
