"""The inference workers' settings of the site config, and the batch-size rule the CLI shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import ErrorFn, setting

AUTO = "auto"
MAX_BATCH = 256


def parse_batch(value: Any) -> int | str:
    """``auto`` or an int 1..256; raises ValueError with a sentence for the user."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a batch size (an integer 1..{MAX_BATCH} or 'auto')")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a batch size (an integer 1..{MAX_BATCH} or 'auto')") from None
    if number != value and not isinstance(value, str):
        raise ValueError(f"{value!r} is not a batch size (an integer 1..{MAX_BATCH} or 'auto')")
    if not 1 <= number <= MAX_BATCH:
        raise ValueError(f"{number} is out of range 1..{MAX_BATCH} (or 'auto')")
    return number


def _batch_size(value: Any, error: ErrorFn) -> int | str:
    try:
        return parse_batch(value)
    except ValueError as exc:
        raise error(str(exc)) from None


def _model_names(value: Any, error: ErrorFn) -> tuple[str, ...]:
    """`model: person` or `model: [person, helmet]`: every model runs on every frame."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise error(f"must be a model name or path, or a non-empty list of them, got {value!r}")
    if len(set(names)) != len(names):
        raise error(f"lists a model twice: {value!r}")
    return tuple(names)


def _class_names(value: Any, error: ErrorFn) -> dict[str, tuple[str, ...]]:
    """`classes: {person: [person, Normal, Fall]}`: anjeon class -> the model labels published as it."""
    if not isinstance(value, dict):
        raise error(f"must map an anjeon class to a list of model labels, got {value!r}")
    out: dict[str, tuple[str, ...]] = {}
    for cls, labels in value.items():
        labels = [labels] if isinstance(labels, str) else labels
        if (
            not isinstance(cls, str)
            or "=" in cls
            or not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) and x and "," not in x for x in labels)
        ):
            raise error(f"{cls!r}: must be a class name mapped to a non-empty list of labels (no ',' or '=')")
        out[cls] = tuple(labels)
    return out


@dataclass
class WorkersSection:
    count: int = setting(1, 0, 64, "worker processes to start on this machine")
    model: tuple[str, ...] = setting(
        ("person",), doc="built-in model name or model file path, or a list of them", parse=_model_names
    )
    classes: dict[str, tuple[str, ...]] = setting(
        doc="anjeon class -> model labels, e.g. person: [person, Normal, Fall]",
        parse=_class_names,
        factory=dict,
    )
    device: str = setting("auto", doc="auto, cpu, cuda:0, ...")
    batch: int | str = setting(
        AUTO, doc="largest batch, or auto (the measured default of the device)", parse=_batch_size
    )
    threads: int = setting(0, 0, 256, "torch threads per worker (0: split this machine's cores)")
    max_age: float = setting(1.0, 0.01, 60.0, "drop frames older than this, before decoding")
    render: bool = setting(False, doc="also publish JPEGs with boxes drawn")
