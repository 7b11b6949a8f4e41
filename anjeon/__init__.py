"""anjeon (안전, "safety"): an AI safety manager for work sites.

The role packages are mapped under this namespace at install time:
anjeon.protocol (protocol/), anjeon.edge (edge/), anjeon.broker (broker/),
anjeon.inference (inference/), anjeon.viewer (viewer/). This package holds
only the command line, the site config and the local supervisor.
"""

__version__ = "0.1.0"
