"""Which engine runs a model (PyTorch, TensorRT, ONNX Runtime with CUDA), and the cache of built engines.

A TensorRT engine is built for one GPU model, one TensorRT version and one set
of build options, and building it takes minutes: so the engine is built once
from the model file (ultralytics' exporter) and cached under a key made of the
model file's hash, the GPU's name, the versions of everything that shaped it
and the build options (fp16, batch, image size). Any change of these builds a
new engine beside the old one; a file that is in the cache is never rebuilt.

Choice with ``--engine auto``: on a CPU, PyTorch (ONNX Runtime and OpenVINO
gave no speed-up on the 2-core machine in an early session's measurement,
whose figures are not in the tree; re-measure before changing this); on CUDA,
TensorRT when its Python package is installed, else ONNX Runtime when it has
the CUDA execution provider, else PyTorch (fp16). A model file that already is
an engine (.engine, .onnx, an OpenVINO folder) is loaded as it is.

Only :func:`probe` and :func:`ultralytics_builder` import the model stack; the
choice and the cache are plain functions of the facts, tested on a CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TORCH, TENSORRT, ONNXRUNTIME = "torch", "tensorrt", "onnxruntime"
AUTO = "auto"
ENGINES = (AUTO, TORCH, TENSORRT, ONNXRUNTIME)
SUFFIX = {TENSORRT: ".engine", ONNXRUNTIME: ".onnx"}
PREBUILT_SUFFIXES = (".engine", ".onnx", "_openvino_model", ".torchscript")
CUDA_PROVIDER = "CUDAExecutionProvider"
# Packages whose versions shape a built engine (a change means a rebuild).
VERSIONED = (
    "torch",
    "ultralytics",
    "ultralytics-opencv-headless",
    "tensorrt",
    "onnxruntime-gpu",
    "onnxruntime",
    "onnx",
)


class EngineError(RuntimeError):
    """An engine that was asked for and cannot be had here; the message is one sentence for the user."""


@dataclass(frozen=True)
class Platform:
    """What this machine offers, as plain facts (probe() reads them; tests write them)."""

    cuda: bool = False
    gpu_name: str = (
        ""  # e.g. "NVIDIA H200"; a TensorRT engine is only valid on the GPU model it was built for
    )
    tensorrt: bool = False
    ort_providers: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe(device: str = "cuda:0") -> Platform:
    """Read this machine's facts (imports torch; onnxruntime only if it is installed)."""
    import torch

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    gpu = ""
    if cuda:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        gpu = torch.cuda.get_device_name(index)
    providers: tuple[str, ...] = ()
    if importlib.util.find_spec("onnxruntime") is not None:
        try:
            import onnxruntime

            providers = tuple(onnxruntime.get_available_providers())
        except Exception:  # a broken install must not stop a worker that can use torch
            providers = ()
    versions = {p: v for p in VERSIONED if (v := _version(p))}
    if cuda and torch.version.cuda:
        versions["cuda"] = str(torch.version.cuda)
    return Platform(
        cuda=cuda,
        gpu_name=gpu,
        tensorrt=importlib.util.find_spec("tensorrt") is not None,
        ort_providers=providers,
        versions=versions,
    )


def is_prebuilt(weights: str | Path) -> bool:
    name = str(weights).rstrip("/")
    return name.endswith(PREBUILT_SUFFIXES)


def choose_engine(requested: str, device: str, weights: str | Path, platform: Platform) -> str:
    """The engine to run ``weights`` with on ``device``; raises EngineError when the asked one is not here."""
    if requested not in ENGINES:
        raise EngineError(f"--engine {requested!r}: choose one of {', '.join(ENGINES)}")
    on_gpu = device.startswith("cuda")
    if is_prebuilt(weights):
        if requested not in (AUTO, TORCH):
            raise EngineError(f"{weights} already is a built model; load it with --engine auto")
        return TORCH  # ultralytics loads the file with the runtime its suffix names
    if requested == AUTO:
        if not on_gpu or not platform.cuda:
            return TORCH
        if platform.tensorrt:
            return TENSORRT
        if CUDA_PROVIDER in platform.ort_providers:
            return ONNXRUNTIME
        return TORCH
    if requested == TENSORRT:
        if not (on_gpu and platform.cuda):
            raise EngineError("--engine tensorrt needs a CUDA device (--device cuda:N) and torch must see it")
        if not platform.tensorrt:
            raise EngineError(
                "--engine tensorrt: the tensorrt package is not installed (pip install tensorrt)"
            )
    if requested == ONNXRUNTIME and on_gpu and CUDA_PROVIDER not in platform.ort_providers:
        raise EngineError(
            "--engine onnxruntime on CUDA needs onnxruntime-gpu with the CUDA execution provider "
            "(pip install onnxruntime-gpu)"
        )
    if requested == ONNXRUNTIME and not platform.ort_providers:
        raise EngineError("--engine onnxruntime: onnxruntime is not installed (pip install onnxruntime)")
    return requested


@dataclass(frozen=True)
class BuildOptions:
    engine: str
    half: bool
    batch: int
    imgsz: int


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(weights: Path, options: BuildOptions, platform: Platform) -> str:
    """Model hash + GPU + versions + build options -> a short hex key (a folder name)."""
    facts = {
        "model": file_hash(weights),
        "gpu": platform.gpu_name,
        "versions": dict(sorted(platform.versions.items())),
        "engine": options.engine,
        "half": options.half,
        "batch": options.batch,
        "imgsz": options.imgsz,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]


def default_cache_dir() -> Path:
    """ANJEON_ENGINE_CACHE, else $XDG_CACHE_HOME/anjeon/engines (~/.cache/anjeon/engines)."""
    explicit = os.environ.get("ANJEON_ENGINE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anjeon" / "engines"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder per key: several workers starting on one GPU host build the engine once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


Builder = Callable[[Path, BuildOptions, Path], Path]  # (weights, options, work dir) -> the built file


def cached_engine(
    weights: Path, options: BuildOptions, platform: Platform, build: Builder, cache_dir: Path | None = None
) -> tuple[Path, bool]:
    """The engine file for these facts: (path, True when it was built now, False when it came from the cache)."""
    key = cache_key(weights, options, platform)
    folder = (cache_dir or default_cache_dir()) / key
    target = folder / f"{weights.stem}{SUFFIX[options.engine]}"
    if target.exists():
        return target, False
    with _locked(folder):
        if target.exists():  # another worker built it while we waited for the lock
            return target, False
        with tempfile.TemporaryDirectory(dir=folder) as work:
            built = build(weights, options, Path(work))
            if not built.exists() or built.stat().st_size == 0:
                raise EngineError(f"building the {options.engine} engine for {weights.name} produced no file")
            tmp = folder / (target.name + ".part")
            shutil.copyfile(built, tmp)
            tmp.replace(target)  # atomic: a half-written engine is never loaded
        (folder / "build.json").write_text(
            json.dumps(
                {
                    "model": str(weights),
                    "gpu": platform.gpu_name,
                    "versions": platform.versions,
                    "engine": options.engine,
                    "half": options.half,
                    "batch": options.batch,
                    "imgsz": options.imgsz,
                },
                indent=2,
            )
            + "\n"
        )
    return target, True


def ultralytics_builder(device: str) -> Builder:
    """Build with ultralytics' exporter: TensorRT (.engine) or ONNX for ONNX Runtime, dynamic batch up to B."""

    def build(weights: Path, options: BuildOptions, work: Path) -> Path:
        from ultralytics import YOLO

        local = work / weights.name
        shutil.copyfile(weights, local)  # the exporter writes next to its input: keep it in the work dir
        fmt = "engine" if options.engine == TENSORRT else "onnx"
        extra = {"quantize": 16} if options.half and options.engine == TENSORRT else {}
        out = YOLO(str(local), task="detect").export(
            format=fmt,
            dynamic=True,
            batch=options.batch,
            imgsz=options.imgsz,
            device=device,
            verbose=False,
            **extra,
        )
        return Path(out)

    return build
