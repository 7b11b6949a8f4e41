"""Make the helmet-detector checkpoint run in current ultralytics, once, cached.

The package's YOLOv12m comes from a fork whose area-attention block (``AAttn``)
has two 1x1 convolutions: ``qk`` (2C output channels: all query heads, then all
key heads) and ``v`` (C channels). Stock ultralytics expects one fused ``qkv``
convolution whose output channels are grouped per head as [q_h, k_h, v_h], and
fails on the first predict with "'AAttn' object has no attribute 'qkv'".

Both are 1x1 convolutions followed by a BatchNorm that acts per output channel,
so the fused layer is the same computation with its output channels (conv
weights and every BatchNorm parameter and buffer alike) taken from the two old
layers in the new order. The converted model is saved once under the cache
directory, keyed by the source file's hash, and loads with stock ultralytics.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: importing this module stays cheap
    import torch

log = logging.getLogger("anjeon.worker")

CACHE_ENV = "ANJEON_CACHE"
CONVERTED_NAME = "helmet-{digest}.pt"
# The BatchNorm tensors indexed by output channel (num_batches_tracked is a scalar and is kept).
BN_CHANNEL_TENSORS = ("weight", "bias", "running_mean", "running_var")


def cache_dir() -> Path:
    """$ANJEON_CACHE, else $XDG_CACHE_HOME/anjeon, else ~/.cache/anjeon."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anjeon"


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def qkv_channel_order(dim: int, num_heads: int) -> torch.Tensor:
    """Indices into cat([qk, v]) channels (q: 0..C-1, k: C..2C-1, v: 2C..3C-1) in fused per-head order."""
    import torch

    hd = dim // num_heads
    order = []
    for h in range(num_heads):
        heads = torch.arange(h * hd, (h + 1) * hd)
        order += [heads, heads + dim, heads + 2 * dim]  # q_h, k_h, v_h
    return torch.cat(order)


def fuse_qk_v(attn: Any) -> None:  # the fork's AAttn block (a torch Module), read by attribute name
    """Replace ``attn.qk`` and ``attn.v`` by one ``attn.qkv`` computing the same channels in per-head order."""
    import torch

    qk, v = attn.qk, attn.v
    dim = v.conv.out_channels
    order = qkv_channel_order(dim, attn.num_heads)
    qkv = type(qk)(
        qk.conv.in_channels, 3 * dim, 1, act=False
    )  # the block's own Conv class: conv + bn + Identity
    with torch.no_grad():
        qkv.conv.weight.copy_(torch.cat([qk.conv.weight, v.conv.weight])[order])
        for name in BN_CHANNEL_TENSORS:
            getattr(qkv.bn, name).copy_(torch.cat([getattr(qk.bn, name), getattr(v.bn, name)])[order])
        qkv.bn.num_batches_tracked.copy_(qk.bn.num_batches_tracked)
    qkv.bn.eps, qkv.bn.momentum = qk.bn.eps, qk.bn.momentum
    qkv.to(qk.conv.weight.device, qk.conv.weight.dtype).train(qk.training)
    attn.qkv = qkv
    del attn.qk, attn.v


def convert_model(model: Any) -> int:  # a torch Module
    """Fuse every fork-style attention block of a torch model in place; returns how many were converted."""
    blocks = [
        m for m in model.modules() if type(m).__name__ == "AAttn" and hasattr(m, "qk") and hasattr(m, "v")
    ]
    for attn in blocks:
        fuse_qk_v(attn)
    return len(blocks)


def _save(ckpt: dict[str, Any], model: Any, target: Path) -> None:
    """Write a minimal checkpoint (no optimizer, no EMA) atomically: a crash leaves no half file in the cache."""
    import torch

    keep: dict[str, Any] = {
        k: ckpt[k] for k in ("date", "version", "license", "docs", "train_args") if k in ckpt
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    checkpoint: dict[str, Any] = {**keep, "model": model.half()}
    torch.save(checkpoint, tmp)
    os.replace(tmp, target)


def converted_weights(source: Path, cache: Path | None = None) -> Path:
    """The converted checkpoint for ``source``, converting and caching it on first use."""
    from ultralytics.nn.tasks import load_checkpoint

    target = (cache or cache_dir()) / CONVERTED_NAME.format(digest=file_digest(source))
    if target.exists():
        return target
    model, ckpt = load_checkpoint(str(source))
    n = convert_model(model)
    if n == 0:  # already in stock layout (a newer package release): use the file as shipped
        return source
    _save(ckpt, model, target)
    log.info("converted %d attention blocks of %s for this ultralytics; cached as %s", n, source, target)
    return target
