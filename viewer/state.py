"""Transitional: moved to anjeon.viewer.console.state; this name goes once anjeon/cli_viewer.py imports the new one."""

from anjeon.viewer.console.state import Limits

__all__ = ["Limits"]
