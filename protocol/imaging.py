"""JPEG size guard: read a JPEG's declared size from its header and refuse pictures too big to decode.

A JPEG states its size in its frame header (SOF), and a decoder allocates the
whole output buffer from that statement before it reads a single scan line: a
631-byte file that claims 12000x12000 makes libjpeg allocate 432 MB and fill it
with grey. Every process that decodes a picture from the bus (worker, safety
snapshot writer, watch --record) therefore reads the SOF first, without
decoding, and refuses pictures above a pixel cap with the protocol's error
(reason ``oversized_image``), which its drop counter counts like any bad input.

The cap defaults to 40 megapixels (an 8K frame is 33 MP); ``ANJEON_MAX_MEGAPIXELS``
in the environment sets it for every process, and the worker's
``--max-megapixels`` overrides it for that worker.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from .wire import ProtocolError

DEFAULT_MAX_MEGAPIXELS = 40.0
ENV_MAX_MEGAPIXELS = "ANJEON_MAX_MEGAPIXELS"

SOI = 0xD8
SOS = 0xDA
EOI = 0xD9
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic, hierarchical);
# C4 (DHT), C8 (reserved JPG) and CC (DAC) share the range but are not frame headers.
SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Markers with no length field: TEM and the restart markers RST0-7.
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) declared by a JPEG's frame header, or None when it is not a readable JPEG.

    Walks the marker segments from SOI to the first SOF by their lengths; never
    reads past the data, never decodes. A height of 0 (size given later by a DNL
    marker, which libjpeg does not support) counts as unreadable.
    """
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(view)
    if n < 4 or view[0] != 0xFF or view[1] != SOI:
        return None
    i = 2
    while i + 4 <= n:
        if view[i] != 0xFF:
            return None  # segments must follow each other exactly
        marker = view[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in STANDALONE:
            i += 2
            continue
        if marker in (SOS, EOI, SOI):
            return None  # scan data (or the end) before any frame header
        length = (view[i + 2] << 8) | view[i + 3]
        if length < 2:
            return None
        if marker in SOF_MARKERS:
            if length < 8 or i + 9 > n:
                return None
            height = (view[i + 5] << 8) | view[i + 6]
            width = (view[i + 7] << 8) | view[i + 8]
            return (width, height) if width and height else None
        i += 2 + length
    return None


def max_pixels(megapixels: float | None = None) -> int:
    """The pixel cap: the argument, else ``ANJEON_MAX_MEGAPIXELS``, else 40 MP."""
    if megapixels is None:
        raw = os.environ.get(ENV_MAX_MEGAPIXELS, "")
        try:
            megapixels = float(raw) if raw else DEFAULT_MAX_MEGAPIXELS
        except ValueError:
            megapixels = DEFAULT_MAX_MEGAPIXELS  # a typo in the environment must not lift the guard
        if not megapixels > 0:
            megapixels = DEFAULT_MAX_MEGAPIXELS
    return int(megapixels * 1_000_000)


def check_jpeg(data: bytes | bytearray | memoryview, cap: int | None = None) -> tuple[int, int]:
    """The JPEG's (width, height); raises ProtocolError if it is unreadable or over the pixel cap."""
    size = jpeg_size(data)
    if size is None:
        raise ProtocolError("corrupt_jpeg", "not a JPEG with a readable frame header")
    limit = max_pixels() if cap is None else cap
    width, height = size
    if width * height > limit:
        raise ProtocolError(
            "oversized_image",
            f"JPEG declares {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"over the {limit / 1e6:.1f} MP cap",
        )
    return size


def decode_jpeg(data: bytes | bytearray | memoryview, cap: int | None = None) -> np.ndarray:
    """Decode to a BGR image after the size guard; raises ProtocolError instead of returning None."""
    check_jpeg(data, cap)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ProtocolError("corrupt_jpeg", "the JPEG does not decode")
    return image
