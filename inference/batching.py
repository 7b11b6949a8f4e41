"""How many frames a worker runs together: the per-device default, the --batch value, the batch-size tally.

Batching never waits by default: a worker takes whatever frames are pending
for it, up to its batch size (its credit is the batch size, so the broker
sends frames of other cameras as soon as they are there). At light load every
batch is one frame and latency is that of batch 1; only a backlog makes batches
bigger. A GPU worker may add a short wait cap (``--batch-wait-ms``) to fill
batches when frames trickle in.

Importing this module does not import torch. ``parse_batch`` (``--batch`` and the site config's
``workers.batch``) lives in anjeon.config.workers and is re-exported here.
"""

from __future__ import annotations

from collections import Counter

from anjeon.config.workers import AUTO, parse_batch  # the rule the site config shares

__all__ = [
    "AUTO",
    "DEFAULT_BATCH",
    "BatchTally",
    "default_batch",
    "parse_batch",
    "resolve_batch",
]

# Default batch per device type, chosen from a measurement, not a guess (docs/benchmarks.md sections 8 and 10).
# CPU: 1. On a quiet 2-core machine (2026-12-02, the default model on 2 torch threads, 768x576) the model alone
# cost 297/274/313/253 ms per frame at batch 1/2/4/8 in one pass and 294/278/255/271 in the next: batching saves
# at most ~15 % per frame here, and not in the same place twice. End to end (4 cameras at 10 fps, one worker,
# benchmarks/peer_inference.py) batch 4 gave 3.30 against 3.28 results/s for batch 1 (quiet), 2.8 against 2.5
# (lightly loaded) and 2.58 against 2.98 (loaded), at 3x the latency every time (p99 1750 against 558 ms
# quiet): on a CPU a batch buys too little work for the freshness it costs. Earlier runs on a machine at load
# average 15-40 had put batch 4 first; a quiet machine did not confirm it.
# Batching never waits, so at light load the batch is 1 whatever this says. CUDA: NOT measured (no GPU was
# lent to the sessions that wrote this); 8 is a placeholder for the figure benchmarks/gpu.py reports.
DEFAULT_BATCH = {"cpu": 1, "cuda": 8}


def device_kind(device: str) -> str:
    """'cuda:1' -> 'cuda'; anything that is not CUDA counts as a CPU (mps, xpu: unmeasured)."""
    return "cuda" if device.startswith("cuda") else "cpu"


def default_batch(device: str) -> int:
    return DEFAULT_BATCH[device_kind(device)]


def resolve_batch(value: int | str, device: str) -> int:
    return default_batch(device) if value == AUTO else int(value)


class BatchTally:
    """How many batches of each size ran: the evidence that batching follows the backlog."""

    def __init__(self) -> None:
        self.sizes: Counter[int] = Counter()

    def add(self, size: int) -> None:
        self.sizes[size] += 1

    @property
    def batches(self) -> int:
        return sum(self.sizes.values())

    def mean(self) -> float:
        n = self.batches
        return sum(k * v for k, v in self.sizes.items()) / n if n else 0.0

    def snapshot(self) -> dict[str, int]:
        """{size: count} with string keys (msgpack maps in heartbeats have string keys)."""
        return {str(k): v for k, v in sorted(self.sizes.items())}
