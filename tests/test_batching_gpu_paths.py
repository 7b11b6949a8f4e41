"""The GPU worker's code paths that run on a CPU: engine choice, the engine cache, GPU-style tensor input.

What needs a GPU (a TensorRT build, nvJPEG, fp16 speed) is measured by benchmarks/gpu.py on a GPU machine;
here the logic around it is checked with the facts written out (Platform) and real files.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from anjeon.inference import engines
from anjeon.inference.decode import JpegDecoder, letterbox_tensors, unletterbox
from anjeon.inference.engines import (
    BuildOptions,
    EngineError,
    Platform,
    cache_key,
    cached_engine,
    choose_engine,
)

CPU_ONLY = Platform()
H200_TRT = Platform(
    cuda=True,
    gpu_name="NVIDIA H200",
    tensorrt=True,
    ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
    versions={"torch": "2.14.1", "tensorrt": "10.9", "cuda": "13.0"},
)
H200_ORT = Platform(cuda=True, gpu_name="NVIDIA H200", ort_providers=("CUDAExecutionProvider",))
GPU_BARE = Platform(cuda=True, gpu_name="NVIDIA H200")


@pytest.mark.parametrize(
    "requested, device, platform, expected",
    [
        ("auto", "cpu", CPU_ONLY, "torch"),  # CPU back ends gave no speed-up here (inference/engines.py)
        ("auto", "cpu", H200_TRT, "torch"),
        ("auto", "cuda:0", H200_TRT, "tensorrt"),
        ("auto", "cuda:0", H200_ORT, "onnxruntime"),
        ("auto", "cuda:0", GPU_BARE, "torch"),
        ("auto", "cuda:0", CPU_ONLY, "torch"),  # torch sees no CUDA: pick_device refuses it elsewhere
        ("torch", "cuda:0", H200_TRT, "torch"),
        ("tensorrt", "cuda:1", H200_TRT, "tensorrt"),
        ("onnxruntime", "cuda:0", H200_ORT, "onnxruntime"),
        ("onnxruntime", "cpu", Platform(ort_providers=("CPUExecutionProvider",)), "onnxruntime"),
    ],
)
def test_engine_choice(requested, device, platform, expected):
    assert choose_engine(requested, device, "model.pt", platform) == expected


@pytest.mark.parametrize(
    "requested, device, platform, says",
    [
        ("tensorrt", "cpu", H200_TRT, "needs a CUDA device"),
        ("tensorrt", "cuda:0", H200_ORT, "tensorrt package is not installed"),
        ("onnxruntime", "cuda:0", GPU_BARE, "onnxruntime-gpu"),
        ("onnxruntime", "cpu", CPU_ONLY, "onnxruntime is not installed"),
        ("openvino", "cpu", CPU_ONLY, "choose one of"),
    ],
)
def test_engine_that_is_not_here_is_refused_with_a_reason(requested, device, platform, says):
    with pytest.raises(EngineError, match=says):
        choose_engine(requested, device, "model.pt", platform)


def test_prebuilt_models_load_as_they_are():
    for name in ("m.engine", "m.onnx", "m_openvino_model/", "m.torchscript"):
        assert choose_engine("auto", "cuda:0", name, H200_TRT) == "torch"
    with pytest.raises(EngineError, match="already is a built model"):
        choose_engine("tensorrt", "cuda:0", "m.engine", H200_TRT)


def weights(tmp_path: Path, content: bytes = b"weights v1") -> Path:
    path = tmp_path / "best.pt"
    path.write_bytes(content)
    return path


def test_cache_key_follows_model_gpu_versions_and_options(tmp_path):
    w = weights(tmp_path)
    trt = BuildOptions("tensorrt", True, 8, 640)
    base = cache_key(w, trt, H200_TRT)
    assert cache_key(w, trt, H200_TRT) == base  # stable
    other_gpu = Platform(**{**H200_TRT.__dict__, "gpu_name": "NVIDIA A4000"})
    newer_trt = Platform(**{**H200_TRT.__dict__, "versions": {**H200_TRT.versions, "tensorrt": "10.10"}})
    changed = {
        cache_key(w, trt, other_gpu),
        cache_key(w, trt, newer_trt),
        cache_key(w, BuildOptions("tensorrt", False, 8, 640), H200_TRT),
        cache_key(w, BuildOptions("tensorrt", True, 32, 640), H200_TRT),
        cache_key(w, BuildOptions("tensorrt", True, 8, 480), H200_TRT),
        cache_key(w, BuildOptions("onnxruntime", True, 8, 640), H200_TRT),
        cache_key(weights(tmp_path / "..", b"weights v2"), trt, H200_TRT),
    }
    assert base not in changed and len(changed) == 7


class CountingBuilder:
    """A builder that writes a real file and counts how often it ran (the real one calls ultralytics' exporter)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, w: Path, options: BuildOptions, work: Path) -> Path:
        with self._lock:
            self.calls += 1
        out = work / f"built{engines.SUFFIX[options.engine]}"
        out.write_bytes(b"engine for " + w.read_bytes())
        return out


def test_engine_is_built_once_and_then_loaded_from_the_cache(tmp_path):
    w, cache, build = weights(tmp_path), tmp_path / "cache", CountingBuilder()
    opts = BuildOptions("tensorrt", True, 8, 640)
    first, fresh = cached_engine(w, opts, H200_TRT, build, cache)
    assert fresh and first.suffix == ".engine" and first.read_bytes() == b"engine for weights v1"
    again, fresh = cached_engine(w, opts, H200_TRT, build, cache)
    assert again == first and not fresh and build.calls == 1
    assert (first.parent / "build.json").exists() and not list(first.parent.glob("*.part"))
    # A new model file (same name) gets its own engine; the old one stays.
    w.write_bytes(b"weights v2")
    second, fresh = cached_engine(w, opts, H200_TRT, build, cache)
    assert fresh and second != first and first.exists() and build.calls == 2


def test_concurrent_workers_build_one_engine(tmp_path):
    w, cache, build = weights(tmp_path), tmp_path / "cache", CountingBuilder()
    opts = BuildOptions("onnxruntime", False, 8, 640)
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(cached_engine(w, opts, H200_ORT, build, cache)[0]))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert build.calls == 1 and len(set(paths)) == 1 and len(paths) == 4


def test_a_build_that_writes_nothing_is_an_error(tmp_path):
    def broken(w, options, work):
        return work / "missing.engine"

    with pytest.raises(EngineError, match="produced no file"):
        cached_engine(
            weights(tmp_path), BuildOptions("tensorrt", True, 8, 640), H200_TRT, broken, tmp_path / "c"
        )


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANJEON_ENGINE_CACHE", str(tmp_path / "engines"))
    assert engines.default_cache_dir() == tmp_path / "engines"


def test_unletterbox_inverts_the_letterbox():
    torch = pytest.importorskip("torch")
    image = torch.zeros((3, 576, 768), dtype=torch.uint8)
    batch, ((scale, px, py),) = letterbox_tensors([image], 640, "cpu")
    assert tuple(batch.shape) == (1, 3, 640, 640) and scale == pytest.approx(640 / 768)
    original = np.array([[100.0, 50.0, 700.0, 570.0]])
    boxed = original.copy()
    boxed[:, [0, 2]] = boxed[:, [0, 2]] * scale + px
    boxed[:, [1, 3]] = boxed[:, [1, 3]] * scale + py
    assert np.allclose(unletterbox(boxed, scale, px, py, 768, 576), original)


def test_tensor_decode_path_finds_what_the_numpy_path_finds(bus_jpg):
    """The GPU path (torchvision decode -> tensors letterboxed on the device) run on the CPU with the real model."""
    pytest.importorskip("torchvision")
    from anjeon.inference.models import load_detector

    jpeg = Path(bus_jpg).read_bytes()
    decoder = JpegDecoder("cpu")
    decoder.backend = "torchvision-cuda"  # force the GPU code path; torchvision decodes on the CPU here
    decoder.device = "cpu"
    (tensor,) = decoder.decode([jpeg])
    assert tuple(tensor.shape) == (3, 1080, 810)
    detector = load_detector("person", "cpu", 2)
    (from_tensor,) = detector.predict([tensor])
    (from_numpy,) = detector.predict([cv2.imread(bus_jpg)])
    assert len(from_numpy) >= 4 and abs(len(from_tensor) - len(from_numpy)) <= 1
    # Every confident person of the numpy path is found by the tensor path, in the same original pixels
    # (the two letterbox differently, square against rectangular, so weak detections may differ).
    confident = [d for d in from_numpy if d.confidence >= 0.5]
    assert len(confident) >= 3
    for det in confident:
        assert max(iou(det.box, other.box) for other in from_tensor) > 0.6, (det, from_tensor)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_gpu_decoder_refuses_the_bomb_before_decoding():
    from test_imaging import bomb

    decoder = JpegDecoder("cpu")
    decoder.backend = "torchvision-cuda"
    decoder.device = "cpu"
    (refused,) = decoder.decode([bomb()])
    assert getattr(refused, "reason", None) == "oversized_image"
