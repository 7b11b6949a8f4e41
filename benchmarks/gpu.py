"""The whole GPU benchmark in one script (a few minutes on a GPU; runs on a CPU with tiny sizes to prove it works).

    .venv/bin/python -m benchmarks.gpu                          # on a GPU machine: the real figures
    .venv/bin/python -m benchmarks.gpu --device cpu --tiny      # on a CPU: proves the script, small sizes

It reports, into docs/benchmarks/gpu.json (or --out):
  1. model: frames/s of the model alone at each --batches size (decode excluded), per engine asked;
  2. decode: JPEG decode frames/s, CPU (OpenCV) against GPU (torchvision decode_jpeg on CUDA), when a GPU is there;
  3. pipeline: delivered frames/s through a real broker with N synthetic 10-fps cameras and --workers workers;
  4. capacity: the most 10-fps cameras served at p99 under --slo-ms (ramped in camera counts);
  5. GPU utilisation sampled with NVML (nvidia-ml-py) during the pipeline runs, when a GPU is there.
Every step prints as it goes and the JSON is written after each, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from . import common

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def say(text: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def model_fps(
    model: str,
    device: str,
    threads: int,
    batches: list[int],
    seconds: float,
    width: int,
    height: int,
    engine: str = "auto",
) -> list[dict[str, Any]]:
    """Frames/s of predict alone on decoded frames, per batch size (one warm-up batch each)."""
    from anjeon.inference.models import load_detector

    pool = common.make_pool(width, height)
    images = common.pool_images(pool)
    detector = load_detector(model, device, threads, engine=engine)
    rows = []
    for batch in batches:
        frames = [images[i % len(images)] for i in range(batch)]
        detector.predict(frames)  # warm-up: engines and allocators settle per shape
        n, started = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - started < seconds:
            detector.predict(frames)
            n += batch
        elapsed = time.perf_counter() - started
        rows.append(
            {
                "batch": batch,
                "fps": round(n / elapsed, 2),
                "ms_per_frame": round(1000 * elapsed / n, 1),
                "ms_per_batch": round(1000 * elapsed * batch / n, 1),
            }
        )
        say(
            f"model {model} on {detector.device} ({getattr(detector, 'engine', 'torch')}) batch {batch}: "
            f"{rows[-1]['fps']} fps, {rows[-1]['ms_per_frame']} ms/frame"
        )
    return rows


def decode_fps(width: int, height: int, device: str, seconds: float) -> dict[str, Any]:
    """JPEG decode frames/s: OpenCV on the CPU, and torchvision's decode_jpeg on the GPU when one is there."""
    from anjeon.inference.decode import JpegDecoder

    pool = common.make_pool(width, height)
    out: dict[str, Any] = {}
    for kind in ["cpu", "gpu"] if device.startswith("cuda") else ["cpu"]:
        decoder = JpegDecoder(device if kind == "gpu" else "cpu", gpu=kind == "gpu")
        decoder.decode(pool.jpegs[:8])
        n, started = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - started < seconds:
            decoder.decode(pool.jpegs[:8])
            n += 8
        out[kind] = {"fps": round(n / (time.perf_counter() - started), 1), "backend": decoder.backend}
        say(f"decode {width}x{height} on {kind} ({decoder.backend}): {out[kind]['fps']} fps")
    return out


class GpuSampler:
    """GPU utilisation and memory every 0.5 s through NVML; empty where there is no NVIDIA GPU."""

    def __init__(self, index: int = 0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = index

    def __enter__(self) -> GpuSampler:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self._index)
        except Exception:
            return self  # no NVML here: nothing to sample

        def run() -> None:
            while not self._stop.wait(0.5):
                u = pynvml.nvmlDeviceGetUtilizationRates(handle)
                m = pynvml.nvmlDeviceGetMemoryInfo(handle)
                self.samples.append((float(u.gpu), m.used / 2**20))

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        util = [u for u, _ in self.samples]
        return {
            "util_pct_mean": round(float(np.mean(util)), 1),
            "util_pct_max": round(float(max(util)), 1),
            "memory_mb_max": round(max(m for _, m in self.samples)),
        }


def worker_flags(device: str, engine: str) -> tuple[str, ...]:
    """A GPU worker as a site would run it: the engine asked for, JPEG decode on the GPU, a 2 ms batch wait cap."""
    if not device.startswith("cuda"):
        return ("--engine", engine)
    return ("--engine", engine, "--decode", "gpu", "--batch-wait-ms", "2")


def pipeline(
    model: str,
    device: str,
    workers: int,
    threads: int,
    batch: int,
    cameras: int,
    fps: float,
    seconds: float,
    width: int,
    height: int,
    engine: str = "auto",
) -> dict[str, Any]:
    with common.anjeon_system(
        workers, model, threads=threads, batch=batch, device=device, worker_args=worker_flags(device, engine)
    ) as address:
        with GpuSampler() as gpu:
            s = common.load_run(
                address, cameras=cameras, fps=fps, seconds=seconds, width=width, height=height
            )["summary"]
    row = {
        "cameras": cameras,
        "fps_per_camera": fps,
        "offered_fps": s["offered_fps"],
        "delivered_fps": s["delivered_fps"],
        "p50_ms": s["latency_ms"]["p50"],
        "p99_ms": s["latency_ms"]["p99"],
        "batch_mean": [w["batch_mean"] for w in s["workers"]],
        "gpu": gpu.summary(),
    }
    say(
        f"pipeline {cameras} cameras x {fps} fps: delivered {row['delivered_fps']} fps, p99 {row['p99_ms']} ms, "
        f"batch {row['batch_mean']}, gpu {row['gpu']}"
    )
    return row


def capacity(
    model: str,
    device: str,
    workers: int,
    threads: int,
    batch: int,
    start: int,
    factor: float,
    steps: int,
    slo_ms: float,
    seconds: float,
    width: int,
    height: int,
    engine: str = "auto",
) -> dict[str, Any]:
    """Ramp 10-fps cameras until p99 breaks the SLO or fewer than 95 % of frames come back."""
    rows, best, cams = [], None, start
    for _ in range(steps):
        row = pipeline(model, device, workers, threads, batch, cams, 10.0, seconds, width, height, engine)
        row["holds"] = bool(
            row["p99_ms"] is not None
            and row["p99_ms"] < slo_ms
            and row["delivered_fps"] >= 0.95 * row["offered_fps"]
        )
        rows.append(row)
        if not row["holds"]:
            break
        best = cams
        cams = max(cams + 1, int(round(cams * factor)))
    return {"slo_ms": slo_ms, "steps": rows, "max_cameras": best}


@click.command()
@click.option("--device", default="cuda:0", help="cuda:0 on a GPU machine; cpu to prove the script.")
@click.option("--model", default="person", help="Model for every step (the default person detector).")
@click.option("--engine", default="auto", help="auto, torch, tensorrt, onnxruntime (inference/engines.py).")
@click.option("--batches", default="1,8,32", help="Batch sizes of the model step.")
@click.option("--workers", default=2, type=int, help="Workers for the pipeline and capacity steps.")
@click.option("--batch", default=8, type=int, help="Worker --batch for the pipeline and capacity steps.")
@click.option(
    "--threads", default=0, type=int, help="Torch CPU threads per process (0: the cores / workers)."
)
@click.option("--cameras", default=64, type=int, help="Cameras of the pipeline step (10 fps each).")
@click.option("--ramp-start", default=32, type=int, help="Cameras of the first capacity step.")
@click.option("--ramp-factor", default=1.5, type=float)
@click.option("--ramp-steps", default=6, type=int)
@click.option("--slo-ms", default=250.0, type=float, help="p99 target of the capacity step.")
@click.option("--seconds", default=15.0, type=float, help="Length of each measured run.")
@click.option("--resolution", default="1280x720", help="Frame size of the synthetic cameras.")
@click.option("--pipeline-model", default="", help="Model of the pipeline and capacity steps [--model].")
@click.option(
    "--tiny",
    is_flag=True,
    help="CPU smoke run: batches 1,2, 2 cameras, 1-step ramp, 3 s runs, 320x240, "
    "and a null:20 model (20 ms a batch) in the pipeline steps.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=OUT)
def main(
    device,
    model,
    engine,
    batches,
    workers,
    batch,
    threads,
    cameras,
    ramp_start,
    ramp_factor,
    ramp_steps,
    slo_ms,
    seconds,
    resolution,
    pipeline_model,
    tiny,
    out,
) -> None:
    """Run the GPU benchmark end to end and write OUT/gpu.json."""
    width, height = (int(v) for v in resolution.split("x"))
    sizes = [int(b) for b in batches.split(",")]
    if tiny:
        sizes, cameras, ramp_start, ramp_steps, seconds, width, height = [1, 2], 2, 1, 1, 3.0, 320, 240
        workers, batch, pipeline_model = 1, 2, pipeline_model or "null:20"
    pipeline_model = pipeline_model or model
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    result: dict[str, Any] = {
        "device": device,
        "model": model,
        "engine": engine,
        "tiny": tiny,
        "resolution": f"{width}x{height}",
        "workers": workers,
        "batch": batch,
        "pipeline_model": pipeline_model,
    }
    out.mkdir(parents=True, exist_ok=True)
    name = "gpu-tiny.json" if tiny else "gpu.json"

    def save() -> None:
        from .run_all import machine

        result["machine"], result["date"] = machine(), time.strftime("%Y-%m-%d %H:%M")
        (out / name).write_text(json.dumps(result, indent=2) + "\n")

    result["model_fps"] = model_fps(model, device, threads, sizes, seconds, 640, 480, engine)
    save()
    result["decode"] = decode_fps(width, height, device, min(seconds, 5.0))
    save()
    result["pipeline"] = pipeline(
        pipeline_model, device, workers, threads, batch, cameras, 10.0, seconds, width, height, engine
    )
    save()
    result["capacity"] = capacity(
        pipeline_model,
        device,
        workers,
        threads,
        batch,
        ramp_start,
        ramp_factor,
        ramp_steps,
        slo_ms,
        seconds,
        width,
        height,
        engine,
    )
    save()
    say(
        f"wrote {out / name}: most 10-fps cameras at p99 < {slo_ms:.0f} ms: {result['capacity']['max_cameras']}"
    )


if __name__ == "__main__":
    main()
