"""A camera's settings: the one definition the site config, `anjeon edge`'s flags and the edge process share."""

from __future__ import annotations

from dataclasses import dataclass

from .schema import setting

STALL_TIMEOUT = 10.0  # default seconds without a frame before a live camera counts as lost (frozen)


@dataclass
class CameraConfig:
    id: str = setting("", doc="the camera's id (its key under cameras:)", yaml=False)
    source: str = setting("", doc="webcam index, /dev/videoN, URL, video/image file, folder or 'synthetic'")
    fps: float = setting(10.0, 0.1, 120.0, "frames sent per second at most")
    width: int = setting(0, 0, 8192, "resize to this width before sending (0: keep)")
    quality: int = setting(80, 10, 100, "JPEG quality")
    loop: bool = setting(False, doc="replay files and folders forever")
    realtime: bool = setting(
        True, doc="pace files and folders at their native rate (false: as fast as they decode)"
    )
    transport: str = setting(
        "tcp", doc="RTSP transport: tcp (robust) or udp (less delay)", choices=("tcp", "udp")
    )
    stall_timeout: float = setting(
        STALL_TIMEOUT, 1.0, 3600.0, "seconds without a frame before a live camera counts as lost"
    )
