"""Runs inside the peer's own venv (.cache/peer-venv): Roboflow's InferencePipeline with anjeon's default model.

    .cache/peer-venv/bin/python benchmarks/peer_pipeline.py --video SAMPLE --cameras 4 --fps 10 --seconds 60 \\
        --weights PATH/best.pt --threads 2 --site-packages MAIN_VENV_SITE_PACKAGES

Not imported by anjeon. The model runs through ultralytics exactly as anjeon's worker runs it (same weights,
confidence, agnostic NMS, torch threads); torch and ultralytics come from anjeon's venv, appended to the end
of sys.path so that the peer's own packages (its OpenCV wheels, numpy) win. Latency is the sink's clock minus
the frame's grab timestamp (VideoFrame.frame_timestamp): capture time stamped when the frame is read from the
source, as anjeon's edge stamps t_capture. Prints one JSON object: latencies of results after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", required=True)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--confidence", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--site-packages", default="")
    args = ap.parse_args()
    if args.site_packages:
        sys.path.append(args.site_packages)  # after the peer's own packages
    os.environ.setdefault("YOLO_OFFLINE", "1")

    import torch
    from inference.core.interfaces.camera.entities import VideoFrame
    from inference.core.interfaces.camera.video_source import BufferConsumptionStrategy, BufferFillingStrategy
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    from inference import InferencePipeline

    torch_utils.NUM_THREADS = args.threads  # as anjeon's worker does, so both use the same cores
    torch.set_num_threads(args.threads)
    model = YOLO(args.weights, task="detect")
    import numpy as np

    model.predict([np.zeros((480, 640, 3), np.uint8)], device="cpu", verbose=False)  # warm-up like the worker
    batches: list[int] = []

    def on_video_frame(frames: list[VideoFrame]) -> list[dict]:
        batches.append(len(frames))
        results = model.predict(
            [f.image for f in frames],
            device="cpu",
            imgsz=640,
            conf=args.confidence,
            agnostic_nms=True,
            verbose=False,
        )
        return [{"people": len(r.boxes)} for r in results]

    rows: list[tuple[float, float]] = []  # (monotonic when the result arrived, latency ms)
    lock = threading.Lock()
    # For a video file VideoFrame.frame_timestamp is a media time (file mtime - length + frame / fps), not when
    # the frame was read: stamp the read ourselves from the source's "frame captured" status update, which it
    # sends right after grabbing, keyed by (source, frame id), as anjeon's edge stamps t_capture when it reads.
    grabbed: dict[tuple[int, int], float] = {}
    unstamped = [0]

    def on_status(update) -> None:
        payload = getattr(update, "payload", None) or {}
        if "frame_id" in payload and "source_id" in payload:
            grabbed[(payload["source_id"], payload["frame_id"])] = time.time()

    def on_prediction(predictions, frames) -> None:
        predictions = predictions if isinstance(predictions, list) else [predictions]
        frames = frames if isinstance(frames, list) else [frames]
        now_wall, now = time.time(), time.monotonic()
        with lock:
            for p, f in zip(predictions, frames):
                if p is None or f is None:
                    continue
                t = grabbed.pop((f.source_id, f.frame_id), None)
                if t is None:
                    unstamped[0] += 1
                    continue
                rows.append((now, (now_wall - t) * 1000.0))

    pipeline = InferencePipeline.init_with_custom_logic(
        video_reference=[args.video] * args.cameras,
        on_video_frame=on_video_frame,
        on_prediction=on_prediction,
        max_fps=args.fps,
        status_update_handlers=[on_status],
        source_buffer_filling_strategy=BufferFillingStrategy.DROP_OLDEST,
        source_buffer_consumption_strategy=BufferConsumptionStrategy.EAGER,
    )
    started = time.monotonic()
    pipeline.start(use_main_thread=False)
    time.sleep(args.warmup)
    t0 = time.monotonic()
    time.sleep(args.seconds)
    t1 = time.monotonic()
    pipeline.terminate()
    with lock:
        window = [lat for when, lat in rows if t0 <= when <= t1]
    print(
        json.dumps(
            {
                "latencies_ms": window,
                "seconds": t1 - t0,
                "batches_mean": sum(batches) / len(batches) if batches else 0,
                "startup_s": t0 - started - args.warmup,
                "unstamped": unstamped[0],
                "stamped": len(rows),
            }
        )
    )
    os._exit(0)  # the pipeline's video threads of a looped file do not always end on terminate


if __name__ == "__main__":
    main()
