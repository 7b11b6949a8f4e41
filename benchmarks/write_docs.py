"""docs/benchmarks.md from the JSON results in docs/benchmarks/."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .broker_hop import render as broker_hop_render  # H2's subsection (4b)
from .soak import render as soak_render  # H5's subsection (12)


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(v, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def freshness(d: dict) -> list[str]:
    st = d["service_ms"]
    lines = [
        "## 1. Freshness under overload",
        "",
        f"One worker (the default model, 2 CPU threads) serves a 720p frame in {st:.0f} ms "
        f"(capacity {1000 / st:.1f} frames/s). Each system is offered 1x, 2x and 4x that for "
        f"{d['seconds']:.0f} s, one after the other on the same machine. Latency = capture to result.",
        "",
        "| load | system | results/s | p50 ms | p99 ms | p99 trend (ms per minute) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in d["runs"]:
        rate = r["completed"] / d["seconds"] if r.get("completed") is not None else None
        lines.append(
            f"| {r['factor']}x | {r['system']} | {_f(rate, 1)} | {_f(r['p50'])} | {_f(r['p99'])} | "
            f"{_f(r['slope_ms_per_min'])} |"
        )
    a4 = next((r for r in d["runs"] if r["system"] == "anjeon" and r["factor"] == 4), None)
    if a4 and a4["p99"] is not None:
        lines += [
            "",
            f"anjeon's p99 at 4x is {a4['p99'] / st:.1f}x one frame's service time "
            f"(goal: within 2x of service time plus transport).",
        ]
    lines += [
        "",
        "How to read it: the three alternatives queue every frame, so once offered load exceeds what "
        "one worker serves, their latency grows for as long as the overload lasts (the trend column: tens of "
        "seconds per minute). anjeon keeps one pending frame per camera and sends a worker a frame only when "
        "it asks for one, so its latency has a bound that does not depend on the run's length: a frame waits "
        "at most for the frame in service, then its own inference, plus its age when picked (up to one "
        "camera frame interval). At 1x with 4 cameras a frame can also wait behind the other cameras' "
        "pending frames (up to one service time each), which is why 1x shows a higher p99 than 2x and 4x, "
        "where newer frames supersede the waiting ones. The excess is dropped at the broker and counted "
        "(`superseded`).",
        "",
        "![p99 latency over time](benchmarks/freshness.png)",
        "",
    ]
    return lines


def overhead(d: dict) -> list[str]:
    return [
        "## 2. Overhead of the pipeline",
        "",
        f"Delivered frames/s of one worker through the whole pipeline (edge emulation, broker, worker, "
        f"subscriber, all on this machine) versus a bare decode + `predict` loop in one process, same model, "
        f"same frames, 2 threads: **{d['pipeline_fps']:.2f} vs {d['bare_fps']:.2f} frames/s = "
        f"{100 * d['ratio']:.0f} %** (goal: at least 90 %). Above 100 % is run-to-run noise (the two "
        "were measured one after the other): the pipeline costs nothing measurable next to inference.",
        "",
    ]


def scaling(d: dict) -> list[str]:
    lines = [
        "## 3. Scaling with workers",
        "",
        "Workers with 1 thread each on this 2-core machine; offered load far above capacity.",
        "",
        "| model | workers | offered/s | delivered/s | ratio to 1 worker | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in d["rows"]:
        lines.append(
            f"| {r['model']} | {r['workers']} | {r['offered_fps']:.0f} | {r['delivered_fps']:.1f} | "
            f"{r['ratio']:.2f} | {_f(r['p99_ms'])} |"
        )
    return lines + [""]


def transport(d: dict) -> list[str]:
    hop = d["hop"]
    return (
        [
            "## 4. Transport ceiling and the cost of the broker hop",
            "",
            "| path (720p JPEGs, all processes on this machine) | frames/s |",
            "| --- | ---: |",
            f"| raw PUSH/PULL, two processes, receiver only counts (the physical ceiling) "
            f"| {d['raw_pushpull_fps']:.0f} |",
            f"| raw PUSH/PULL, receiver decodes each JPEG | {d['raw_pushpull_decode_fps']:.0f} |",
            f"| anjeon broker: 2 load generators -> broker -> 2 workers that do no work "
            f"(benchmarks/drain_worker.py) -> subscriber | {d['broker_drain_fps']:.0f} |",
            f"| anjeon: load generator -> broker -> 2 `--model null` workers (decode) -> subscriber "
            f"| {d['anjeon_null_fps']:.0f} |",
            "",
            f"Through the broker: {100 * d['ratio_broker_to_raw']:.0f} % of raw PUSH/PULL (broker at "
            f"{_f(d.get('broker_cpu'))} % of one core); with decoding workers: "
            f"{100 * d['ratio_to_raw_decode']:.0f} % of raw PUSH/PULL with decoding.",
            "",
            "The goal was 80 % of raw PUSH/PULL through the broker; on this 2-core machine it is not met. "
            "The broker forwards every frame twice (in from the edge, out to a worker) where raw PUSH/PULL "
            "moves it once, and here two load generators, the broker, two workers and a subscriber share two "
            "cores; the broker itself was not saturated (its CPU above). The load generator's frames are noisy "
            "synthetic 720p JPEGs of about 177 KB that take ~5.7 ms to decode here (a typical 72 KB camera "
            "frame takes ~1.8 ms), which is why decoding, not transport, bounds the null-worker row. Either way "
            "the transport ceiling is far above what inference needs (one CPU worker: ~9 frames/s).",
            "",
            "What the broker hop costs one 720p frame (1 camera at 20 fps, null worker):",
            "",
            "| stage | p50 ms | p99 ms |",
            "| --- | ---: | ---: |",
        ]
        + [f"| {k} | {_f(v['p50'], 2)} | {_f(v['p99'], 2)} |" for k, v in hop.items()]
        + [f"| end to end | {_f(d['hop_latency_ms']['p50'], 1)} | {_f(d['hop_latency_ms']['p99'], 1)} |", ""]
    )


def memory(d: dict) -> list[str]:
    lines = [
        "## 6. Memory under 4x overload",
        "",
        f"{d['seconds']:.0f} s at {d['offered_fps']:.0f} frames/s offered ({d['delivered_fps']:.1f} delivered).",
        "",
        "| process | RSS at start (MB) | RSS at end (MB) |",
        "| --- | ---: | ---: |",
    ]
    for name, (a, b) in d["rss_mb_start_end"].items():
        lines.append(f"| {name} | {a:.0f} | {b:.0f} |")
    return lines + [""]


def _verdict(value, goal) -> str:
    return "-" if value is None else ("met" if value <= goal else "**missed**")


def viewer(d: dict) -> list[str]:
    g = d["goals"]
    lines = [
        "## 7. The web console under load",
        "",
        f"Synthetic cameras at {d['fps_per_camera']:.0f} fps each ({d['resolution']} JPEGs of about "
        f"{d['jpeg_kb']:.0f} KB; smaller than 720p so that {d['workers']} `--model null` workers deliver every "
        "frame on two cores), the real `anjeon viewer` process and Debian's headless Chromium (software "
        "rendering, driven by Playwright), all on this machine and its one clock (`benchmarks/viewer.py`). "
        f"**Page load**: navigation start until every tile has painted a frame, in a fresh browser context "
        f"(cold cache), {d['page_loads']} loads. **Frame age**: paint time minus capture time of every frame "
        f"the page painted in {d['seconds']:.0f} s; **pipeline**: the same frames' capture-to-subscriber "
        "latency (a plain subscriber on the bus); **console adds**: the difference, frame by frame. **CPU**: "
        "the viewer process's utime+stime over the same window, per camera (in brackets: with the cameras "
        "streaming and no browser connected).",
        "",
        "| cameras | page load ms, median (each) | painted/s per camera (delivered) | frame age p50 / p95 ms "
        "| pipeline p50 / p95 ms | console adds p50 / p95 ms | viewer CPU % of a core per camera "
        "| Chromium CPU % of a core | machine busy % (all cores) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in d["rows"]:
        each = ", ".join(f"{x['all_tiles_ms']:.0f}" for x in r["page_load_ms"])
        age, pipe, adds = r["frame_age_ms"], r["pipeline_latency_ms"], r["console_adds_ms"]
        lines.append(
            f"| {r['cameras']} | {r['page_load_ms_median']:.0f} ({each}) | "
            f"{r['painted_fps_per_camera']:.1f} ({r['delivered_fps_per_camera']:.1f}) | "
            f"{_f(age['p50'])} / {_f(age['p95'])} | {_f(pipe['p50'])} / {_f(pipe['p95'])} | "
            f"{_f(adds['p50'])} / {_f(adds['p95'])} | {r['viewer_cpu_pct_per_camera']:.2f} "
            f"({r['viewer_cpu_pct_per_camera_no_browser']:.2f}) | {_f(r['chromium_cpu_pct'])} | "
            f"{_f(r['machine_busy_pct'])} |"
        )
    lines += [
        "",
        f"Goals: page load under {g['page_load_ms']} ms, frame age within {g['console_adds_ms']} ms of the "
        f"pipeline's latency (median of the per-frame difference), under {g['viewer_cpu_pct_per_camera']} % "
        "of a core per camera:",
        "",
    ]
    for r in d["rows"]:
        lines.append(
            f"- {r['cameras']} cameras: page load {_verdict(r['page_load_ms_median'], g['page_load_ms'])}, "
            f"frame age {_verdict(r['console_adds_ms']['p50'], g['console_adds_ms'])}, "
            f"CPU {_verdict(r['viewer_cpu_pct_per_camera'], g['viewer_cpu_pct_per_camera'])}"
        )
    return lines + [""] + VIEWER_NOTES


VIEWER_NOTES = [
    "How to read it: what the console adds is the viewer's hop (bus to WebSocket), the browser's JPEG decode "
    "(`createImageBitmap`) and the wait for the next animation frame (up to 16.7 ms at 60 Hz); its tail grows with "
    "the number of cameras because here the browser is headless Chromium rendering in software on the same two "
    "cores as the broker, the workers, the load generator and the viewer (the last column). An operator's browser "
    "runs on its own computer, so on a site neither its CPU nor that contention is on the server. A browser that "
    "cannot keep up gets fewer frames, not older ones (painted/s against delivered/s). The viewer's CPU is mostly "
    "the serving of the browser (WebSocket sends and acknowledgements); receiving alone is the figure in brackets. "
    "Part of it (the camera list every 0.5 s, status once a second) is shared by all cameras, so the per-camera "
    "figure falls as cameras are added. It grows with every browser connected; one was measured.",
    "",
]


BUSY = (
    "The machine was shared with other people's test runs (load average well above its 2 cores) while this "
    "ran: absolute figures are pessimistic and noisy; only figures side by side in one run compare."
)


def machine_state(d: dict) -> str:
    """How loaded the machine was when the run started (run_all records it; older runs did not)."""
    load = d.get("load_before")
    if load is None:
        return f"Measured {d['date']} on a quiet machine (nothing else running)." if d.get("quiet") else BUSY
    cores = os.cpu_count() or 1
    if load < 0.5 * cores:
        return f"Measured {d['date']} on a quiet machine (load average {load:.1f} on {cores} cores before the run)."
    return (
        f"Measured {d['date']} with the machine busy (load average {load:.1f} on {cores} cores before the run): "
        "absolute figures are pessimistic; only figures side by side in one run compare."
    )


NOTES = "notes"  # docs/benchmarks/notes/<benchmark>.md: what a person read off a run, kept when the file is rebuilt


def notes(folder: Path, name: str) -> list[str]:
    path = folder / NOTES / f"{name}.md"
    return [path.read_text().strip(), ""] if path.exists() else []


def batching(d: dict) -> list[str]:
    lines = [
        "## 8. Batch size on the CPU (the default of `--batch auto`)",
        "",
        f"The default model alone on {d['threads']} torch threads, decoded {d['resolution']} frames of the "
        f"synthetic scene, {d['seconds']:.0f} s per batch size, {d['passes']} passes in one run "
        "(`benchmarks/run_all.py batching`). " + machine_state(d),
        "",
        "| pass | batch | ms per frame | frames/s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in d["rows"]:
        lines.append(f"| {r['pass']} | {r['batch']} | {r['ms_per_frame']:.0f} | {r['fps']:.2f} |")
    cheapest = {
        n: min((r for r in d["rows"] if r["pass"] == n), key=lambda r: r["ms_per_frame"])["batch"]
        for n in sorted({r["pass"] for r in d["rows"]})
    }
    lines += [
        "",
        "Cheapest per frame: "
        + ", ".join(f"pass {n}: batch {b}" for n, b in cheapest.items())
        + f". Chosen CPU default: **{d['chosen']}** (inference/batching.py; why: below). A worker never waits "
        "for a batch to fill (only up to 2 ms for the rest of a burst the broker is sending it: its credits go "
        "back together, so the frames come together), so at light load every batch is one frame "
        "(tests/test_batching.py shows batch 1 at light load and full batches under a backlog with real "
        "processes). The CUDA default (8) is not measured: `benchmarks/gpu.py` measures it on a GPU.",
        "",
    ]
    return lines


def scale(d: dict) -> list[str]:
    c, lat = d["camera_fps"], d["latency_ms"]
    lines = [
        "## 9. Many cameras through one broker",
        "",
        f"`benchmarks/scale.py`: {d['cameras']} synthetic cameras at {d['fps_per_camera']:g} fps "
        f"({d['resolution']} JPEGs of {_f(d.get('jpeg_kb'), 1)} KB) from one load generator, one broker, "
        f"{d['workers']} `--model null` workers, the web console (`anjeon viewer`, no browser) and the safety "
        f"service with an intrusion zone on every camera, all on this machine, {d['seconds']:.0f} s. "
        + machine_state(d),
        "",
        "| offered fps | delivered fps | cameras served | per camera fps: slowest / median / fastest (ratio) "
        "| p50 ms | p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {d['offered_fps']:.0f} | {d['delivered_fps']:.0f} | {d['cameras_served']} | {_f(c['min'], 2)} / "
        f"{_f(c['median'], 2)} / {_f(c['max'], 2)} ({_f(c.get('ratio'), 2)}) | {_f(lat['p50'])} | "
        f"{_f(lat['p99'])} |",
        "",
        "| process | CPU % of one core | RSS MB (start -> end) |",
        "| --- | ---: | ---: |",
    ]
    for name, fig in d["processes"].items():
        start = fig.get("rss_mb_start")
        rss = f"{start:.0f} -> {fig['rss_mb']:.0f}" if start is not None else _f(fig.get("rss_mb"))
        lines.append(f"| {name} | {_f(fig.get('cpu'), 1)} | {rss} |")
    st = d.get("stages_ms", {})
    if st:
        lines += [
            "",
            "Median time per stage (ms): "
            + ", ".join(f"{k} {_f(v, 1)}" for k, v in st.items())
            + f"; worker batch mean {d.get('worker_batch_mean')}. Drops: "
            + "; ".join(f"{stage} {r}" for stage, r in d["drops"].items() if r)
            + ".",
        ]
    return lines + ["", *SCALE_NOTES, ""]


SCALE_NOTES = [
    "How to read it: the spread column is the round-robin check (the slowest camera against the fastest; no camera "
    "went unserved). Where delivered is below offered, the broker kept the newest frame per camera and counted the "
    "rest as `superseded`: nothing queues."
]


def peer(d: dict) -> list[str]:
    lines = ["## 10. Side by side with Roboflow's InferencePipeline", ""]
    if d.get("error"):
        return lines + [f"Not measured: {d['error']}", ""]
    lines += [
        d["setup"],
        "",
        "| system | results/s | p50 ms | p99 ms | batch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in d["runs"]:
        lines.append(
            f"| {r['system']} | {r['results_per_s']:.2f} | {_f(r['p50'])} | {_f(r['p99'])} | "
            f"{r.get('batch', '-')} |"
        )
    g = d.get("goal")
    if g:
        lines += [
            "",
            f"Goal: more results/s than InferencePipeline at no more than half its p99: results/s "
            f"{'met' if g['more_results'] else '**missed**'}, p99 {'met' if g['half_p99'] else '**missed**'}.",
        ]
    else:
        silent = [r["system"] for r in d["runs"] if not r["results_per_s"]]
        lines += [
            "",
            "Goal (more results/s than InferencePipeline at no more than half its p99): **not judged** "
            "by this run"
            + (f": {', '.join(silent)} delivered no result within the measured window" if silent else "")
            + ".",
        ]
    return lines + ["", machine_state(d), "", PEER_NOTE, ""]


PEER_NOTE = (
    "The peer installs (`make peer-venv`: `inference-cpu` from PyPI into .cache/peer-venv) and brings its own "
    "torch and three OpenCV wheels, which is why it has a venv of its own. Its `VideoFrame.frame_timestamp` is not "
    "when the frame was read (for a file it is a media time), so the benchmark stamps capture time itself when the "
    "peer's source reports a grabbed frame, as anjeon's edge stamps `t_capture` when it reads one."
)


def sizing(folder: Path) -> list[str]:
    """Cameras x fps -> workers and broker CPU, from the measured worker capacity and broker CPU per frame."""
    from anjeon.loadtest.sizing import Capacity, plan, render

    b, f, sc = _load(folder, "batching"), _load(folder, "freshness"), _load(folder, "scale")
    # A worker's capacity from the newer of section 1 (service time at batch 1, 720p) and section 8 (the
    # default batch size, the better of its passes): machines differ several-fold, so the newest run of the
    # default model is the one to size by, and the date says which it was.
    worker_fps, source = None, ""
    candidates = []
    if f:
        candidates.append(
            (f["date"], 1000.0 / f["service_ms"], f"section 1's service time at batch 1, {f['date']}")
        )
    if b:
        best = min((r for r in b["rows"] if r["batch"] == b["chosen"]), key=lambda r: r["ms_per_frame"])
        candidates.append(
            (
                b["date"],
                1000.0 / best["ms_per_frame"],
                f"batch {b['chosen']}, better pass of section 8, {b['date']}",
            )
        )
    if candidates:
        _, worker_fps, source = max(candidates)
    broker_us = None
    if sc and sc.get("processes", {}).get("broker", {}).get("cpu") is not None and sc["delivered_fps"]:
        broker_us = sc["processes"]["broker"]["cpu"] * 1e4 / sc["delivered_fps"]
    caps = [
        Capacity(worker_fps, broker_us, "CPU worker (2 cores, default model)"),
        Capacity(None, None, "GPU worker"),
    ]
    lines = [
        "## 11. Sizing",
        "",
        "Derived from the measured figures above, not guessed (`loadtest/sizing.py`): workers = frames/s over "
        "80 % of one worker's measured capacity; broker CPU = frames/s times the broker's measured CPU per "
        "frame; brokers = shards at 80 % of a core each (one broker per site or per camera group, workers "
        "connected to each). "
        + (f"CPU worker: {worker_fps:.2f} frames/s ({source}). " if worker_fps else "")
        + (
            f"Broker: {broker_us:.0f} µs of CPU per delivered frame (section 9, {sc['date']}, including its "
            "status and results forwarding for 500 cameras of 4.4 KB frames). "
            if broker_us
            else ""
        )
        + "The two inputs may come from different runs (dates above): re-run both on the site's hardware. "
        + "GPU workers are unmeasured (no GPU was lent): run `benchmarks/gpu.py` on one and read its capacity "
        "step. `anjeon loadtest --spawn --ramp` prints this table for the machine it runs on.",
        "",
    ]
    return lines + render(plan(caps), caps) + [""]


def gpu(d: dict | None, tiny: dict | None) -> list[str]:
    lines = ["## 5. GPU", ""]
    if d:
        lines += [
            f"Measured on {d['machine']} (`benchmarks/gpu.py`): model {d['model']}, engine {d['engine']}.",
            "",
            "| batch | frames/s | ms per frame |",
            "| ---: | ---: | ---: |",
        ]
        lines += [f"| {r['batch']} | {r['fps']:.0f} | {r['ms_per_frame']:.2f} |" for r in d["model_fps"]]
        cap = d.get("capacity", {})
        lines += ["", f"Most 10-fps cameras at p99 < {cap.get('slo_ms')} ms: {cap.get('max_cameras')}.", ""]
        return lines
    lines += [
        "**Not measured**: no GPU machine was lent to the sessions that wrote these benchmarks, so the "
        "TensorRT / ONNX Runtime CUDA engines, fp16, GPU JPEG decode (nvJPEG through torchvision), the "
        "default CUDA batch (8) and every GPU throughput claim are unmeasured. What is built and tested on "
        "the CPU: engine choice and the engine cache (model hash, GPU, versions, options), batching across "
        "cameras with a wait cap, the GPU decode path and its letterbox (run on CPU tensors), and "
        "`benchmarks/gpu.py`, the one script that measures all of it on a GPU in a few minutes: "
        "`.venv/bin/python -m benchmarks.gpu` (model fps at batch 1/8/32, CPU vs GPU decode, pipeline fps "
        "with 64 cameras through the broker, the most 10-fps cameras at p99 < 250 ms, GPU utilisation; `--workers N` "
        "for several workers per GPU). On a lent GPU machine run it once as one command, e.g. `timeout 540 "
        ".venv/bin/python -m benchmarks.gpu --seconds 10 --ramp-steps 4`: it writes docs/benchmarks/gpu.json "
        "after every step, so a run cut short keeps what it measured, and this section then shows it.",
        "",
    ]
    if tiny:
        rows = ", ".join(f"batch {r['batch']}: {r['fps']:.1f} fps" for r in tiny["model_fps"])
        cap = tiny.get("capacity", {})
        lines += [
            f"Its CPU smoke run (`--device cpu --tiny`, {tiny['date']}) completed every step: model {rows}; "
            f"pipeline ({tiny.get('pipeline_model', tiny['model'])}) {tiny['pipeline']['delivered_fps']} fps "
            f"delivered with {tiny['pipeline']['cameras']} cameras; capacity step: {cap.get('max_cameras')} camera(s) at p99 < {cap.get('slo_ms'):.0f} ms.",
            "",
        ]
    return lines


def write(folder: Path, target: Path) -> None:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python -m benchmarks.run_all` (`make bench`) from the JSON files in "
        "docs/benchmarks/. Every comparison was run side by side in one run on the machine named below; "
        "read the ratios, not the absolute times.",
        "",
    ]
    machines = set()

    def section(name: str, render) -> None:
        data = _load(folder, name)
        if data:
            parts.extend(render(data))
            parts.extend(notes(folder, name))
            machines.add(f"{data['machine']} ({name}: {data['date']})")

    # In the order of the section numbers (the GPU is §5, sizing §11, which later docs cite).
    for name, render in (
        ("freshness", freshness),
        ("overhead", overhead),
        ("scaling", scaling),
        ("transport", transport),
        ("broker_hop", broker_hop_render),
    ):
        section(name, render)
    parts += gpu(_load(folder, "gpu"), _load(folder, "gpu-tiny"))
    for name, render in (
        ("memory", memory),
        ("viewer", viewer),
        ("batching", batching),
        ("scale", scale),
        ("peer", peer),
    ):
        section(name, render)
    parts += sizing(folder)
    section("soak", soak_render)
    parts += [
        "## What the benchmarks made faster",
        "",
        "Profiling the broker under the transport benchmark showed `dataclasses.asdict` (used to re-encode "
        "each frame header) as its top per-frame cost. Building the map explicitly made header encoding "
        "10.5x faster (24.2 µs -> 2.3 µs per header, same machine, one run; "
        "`FrameHeader.to_wire`), which the figures above include.",
        "",
        "## Machines",
        "",
    ] + [f"- {m}" for m in sorted(machines)]
    target.write_text("\n".join(parts) + "\n")
