"""``describe``: what a decorated function's stack does, step by step."""

from __future__ import annotations

from datetime import timedelta

from .._wrapping.layer import layers_of, wrapped_form

__all__ = ["Description", "describe"]


class Description(list[dict[str, object]]):
    """A function's steps as plain dicts, outermost first; ``str()`` lays them out."""

    def __str__(self) -> str:
        lines = []
        for index, step in enumerate(self, start=1):
            settings = ", ".join(f"{k}={_short(v)}" for k, v in step.items() if k != "layer")
            lines.append(f"{index}. {step['layer']}: {settings}")
        return "\n".join(lines) if lines else "(no resilient steps)"


def _short(value: object) -> str:
    if isinstance(value, float | int | timedelta):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return repr(value) if isinstance(value, str) else str(value)


def describe(fn: object) -> Description:
    """The resilient steps around ``fn``, outermost first, with every setting that applies
    to it (a stream's timeout has ``per_item`` and no sync ``strategy``)."""
    form = wrapped_form(fn)
    if form is None:
        return Description()
    return Description(layer.describe_for(form) for layer in layers_of(fn))
