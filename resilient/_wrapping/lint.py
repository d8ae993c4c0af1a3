"""Warnings for hand-stacked decorators that defeat each other, once per function."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Protocol

from .._runtime import config as _config

__all__ = ["ResilienceWarning", "check_stack"]


class ResilienceWarning(UserWarning):
    """A stack of decorators that cannot do what it seems to say."""


class Layer(Protocol):
    """What the checks read of a step: its kind and its settings."""

    @property
    def kind(self) -> str: ...

    def describe(self) -> dict[str, object]: ...


_warned: set[tuple[str, str]] = set()
_config.on_reset(_warned.clear)


def problems(layers: Sequence[Layer], name: str) -> list[str]:
    """What is wrong with ``layers`` (outermost first) around the function ``name``."""
    found: list[str] = []
    kinds = [layer.kind for layer in layers]
    if "retry" in kinds and "fallback" in kinds[kinds.index("retry") :]:
        found.append(
            f"{name}: @fallback is inside @retry, so the retry never sees the failures the "
            "fallback answers; put @fallback outside (above) @retry"
        )
    timeouts = [layer for layer in layers if layer.kind == "timeout"]
    for outer_index, outer in enumerate(timeouts):
        for inner in timeouts[outer_index + 1 :]:
            inner_s, outer_s = inner.describe()["seconds"], outer.describe()["seconds"]
            if isinstance(inner_s, float) and isinstance(outer_s, float) and inner_s > outer_s:
                found.append(
                    f"{name}: the inner timeout of {inner_s:g}s is longer than the total "
                    f"{outer_s:g}s around it, so it can never fire"
                )
    return found


def check_stack(layers: Sequence[Layer], name: str) -> None:
    """Warn about each problem of this function's stack the first time it is seen."""
    for message in problems(layers, name):
        if (name, message) not in _warned:
            _warned.add((name, message))
            warnings.warn(message, ResilienceWarning, stacklevel=4)
