"""`anjeon watch`: a live terminal table of cameras and workers, JSON lines, or recorded JPEGs.

``watcher`` subscribes and keeps what it saw per camera; ``table`` turns that into text.
"""

from .table import TableOptions, render_table
from .watcher import CameraView, Watch, WatchConfig

__all__ = ["CameraView", "TableOptions", "Watch", "WatchConfig", "render_table"]
