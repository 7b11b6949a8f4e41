"""Transitional: moved to anjeon.viewer.console.server; this name goes once anjeon/cli_viewer.py imports the new one."""

from anjeon.viewer.console.server import ViewerConfig, serve

__all__ = ["ViewerConfig", "serve"]
