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

# Default batch per device type, chosen from a measurement, not a guess (docs/benchmarks.md, "Batching").
# CPU: the default model on 2 torch threads, 768x576 frames of the sample, on the shared 2-core machine while
# other people's jobs ran, two passes of 10 s per size in one run: ms per frame at batch 1/2/4/8 =
# 3149/2229/1520/1596 and 13259/899/440/496 (the machine's load swung between and within the passes, so
# only the order is trusted). Batch 4 was the cheapest per frame in both passes and 8 was no better. The
# benchmark (`benchmarks/run_all.py batching`, docs/benchmarks.md section 8) repeated it: 9164/5909/4130/5527
# and 11711/7204/4553/3246, batch 4 cheapest in one pass and 8 in the other. Batches >= 2 always beat 1; of 4
# and 8, 4, because a backlogged batch's latency grows with its size.
# Batching never waits, so at light load the batch is 1 whatever this says. CUDA: NOT measured (no GPU was
# lent to the session that wrote this); 8 is a placeholder for the figure benchmarks/gpu.py reports.
DEFAULT_BATCH = {"cpu": 4, "cuda": 8}


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
