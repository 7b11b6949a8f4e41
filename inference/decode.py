"""JPEG decode for the worker: OpenCV on the CPU, or torchvision's decode_jpeg on the GPU (nvJPEG).

Both paths run the size guard (protocol/imaging.py) first, so a decompression
bomb is refused before any decoder sees it. The GPU path decodes a batch in
one call and returns RGB CHW uint8 tensors that stay on the GPU; the detector
letterboxes them there (YoloDetector.predict takes both kinds). When the GPU
path is asked for and cannot run here (no CUDA, no torchvision, or a JPEG that
nvJPEG refuses), it falls back to the CPU, says so once, and counts nothing as
lost: the frame is decoded on the CPU instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from anjeon.protocol import imaging
from anjeon.protocol.wire import ProtocolError

log = logging.getLogger("anjeon.worker")

CPU, GPU = "opencv", "torchvision-cuda"


def gpu_decode_available(device: str) -> str | None:
    """None when torchvision can decode JPEGs on ``device``, else why not (one sentence)."""
    if not device.startswith("cuda"):
        return f"--decode gpu needs a CUDA device, not {device}"
    try:
        import torch
        import torchvision.io  # noqa: F401
    except ImportError:
        return "--decode gpu needs torchvision (pip install torchvision)"
    if not torch.cuda.is_available():
        return "--decode gpu: torch sees no CUDA device"
    return None


class JpegDecoder:
    """decode(list of JPEG buffers) -> list of images (np.ndarray BGR HWC, or torch RGB CHW on the GPU) or errors."""

    def __init__(self, device: str = "cpu", gpu: bool = False, cap: int | None = None) -> None:
        self.device, self.cap = device, imaging.max_pixels() if cap is None else cap
        self.backend = CPU
        if gpu:
            why = gpu_decode_available(device)
            if why is None:
                self.backend = GPU
            else:
                log.warning("%s; decoding JPEGs on the CPU", why)
        self.fallbacks = 0  # GPU batches that had to be decoded on the CPU

    def decode(self, buffers: Sequence[Any]) -> list[Any]:
        """One entry per buffer: the image, or the ProtocolError that refused it (the caller counts it)."""
        out: list[Any] = [None] * len(buffers)
        todo = []
        for i, buf in enumerate(buffers):
            try:
                imaging.check_jpeg(buf, self.cap)
                todo.append(i)
            except ProtocolError as exc:
                out[i] = exc
        if self.backend == GPU and todo:
            try:
                for i, image in zip(todo, self._decode_gpu([buffers[i] for i in todo])):
                    out[i] = image
                return out
            except RuntimeError as exc:  # nvJPEG refuses some JPEGs (e.g. CMYK, arithmetic coding)
                self.fallbacks += 1
                if self.fallbacks == 1:
                    log.warning("GPU JPEG decode failed (%s); decoding that batch on the CPU", exc)
        for i in todo:
            try:
                out[i] = imaging.decode_jpeg(buffers[i], self.cap)
            except ProtocolError as exc:
                out[i] = exc
        return out

    def _decode_gpu(self, buffers: list[Any]) -> list[Any]:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [torch.frombuffer(bytearray(buf), dtype=torch.uint8) for buf in buffers]
        images: list[Any] = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        return images


def letterbox_tensors(
    images: list[Any], size: int, device: str
) -> tuple[Any, list[tuple[float, float, float]]]:
    """RGB CHW uint8 tensors -> a BCHW float batch of size x size (scaled, grey-padded like ultralytics) and,
    per image, (scale, pad_x, pad_y) to map boxes back to the original pixels."""
    import torch
    import torch.nn.functional as F

    batch = torch.full((len(images), 3, size, size), 114 / 255.0, dtype=torch.float32, device=device)
    params = []
    for k, image in enumerate(images):
        _, h, w = image.shape
        scale = min(size / h, size / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = F.interpolate(
            image.to(device).unsqueeze(0).float() / 255.0, size=(nh, nw), mode="bilinear", align_corners=False
        )
        top, left = (size - nh) // 2, (size - nw) // 2
        batch[k, :, top : top + nh, left : left + nw] = resized[0]
        params.append((scale, float(left), float(top)))
    return batch, params


def unletterbox(
    boxes: np.ndarray, scale: float, pad_x: float, pad_y: float, width: int, height: int
) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) in letterboxed pixels -> original pixels, clipped to the image."""
    out: np.ndarray = boxes.astype(np.float64).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - pad_x) / scale
    out[:, [1, 3]] = (out[:, [1, 3]] - pad_y) / scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out
