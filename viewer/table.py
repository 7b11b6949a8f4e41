"""Transitional: moved to anjeon.viewer.watch.table; this name goes once anjeon/cli.py imports the new one."""

from anjeon.viewer.watch.table import TableOptions, render_table

__all__ = ["TableOptions", "render_table"]
