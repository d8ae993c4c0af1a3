"""What the ``for`` and ``async for`` loops of a retried block share: the attempt, the
loop's layer, name and statistics, the settings, and how an error leaves the loop."""

from __future__ import annotations

import functools
from types import TracebackType
from typing import Any

from .._runtime import config as _config
from ..exceptions import ConfigError
from .decorator import _layer, _Plan, _Retry, _StrategyPlan
from .stats import Tally

__all__ = ["Attempt"]


class Attempt:
    """One attempt of a ``retrying`` block: use it as ``with attempt:``.

    ``number`` counts from 1. ``error`` is what the block raised (``None`` while it has
    not raised): the loop decides from it whether to try again.
    """

    __slots__ = ("error", "number")

    def __init__(self, number: int) -> None:
        self.number: int = number
        self.error: Exception | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if isinstance(error, Exception):  # cancellation and exits are never kept
            self.error = error
            return True
        return False

    def __repr__(self) -> str:
        return f"<resilient.Attempt {self.number} error={self.error!r}>"


class _Loop:
    """What the sync and async loops share: the layer, the name and the statistics."""

    __slots__ = ("layer", "name", "planner", "prefix", "tally")

    def __init__(self, layer: _Retry, name: str) -> None:
        self.layer: _Retry = layer
        self.name: str = name
        self.prefix: str = f"resilient.retrying gave up on {name} "
        self.planner: type[_Plan] = _StrategyPlan if layer.strategies else _Plan
        self.tally: Tally = layer.tally(name)

    def first(self) -> tuple[Attempt, float | None]:
        """The first attempt (``before`` run, the budget told), and when it starts."""
        layer = self.layer
        budget = layer.budget
        if budget is not None:
            budget.record_call()
        start = _config.state.clock.monotonic() if layer.tenacity else None
        if layer.before is not None:
            layer.call_before(1, self.name)
        return Attempt(1), start

    def plan(self, failure: Exception, start: float | None) -> _Plan:
        return self.planner(
            self.layer, self.name, self.prefix, None, (), {}, start, self.tally, failure
        )

    def __repr__(self) -> str:
        settings = self.layer.describe()
        settings.pop("layer")
        body = " ".join(f"{key}={value!r}" for key, value in settings.items())
        return f"<resilient.{type(self).__name__} {self.name!r} {body}>"


def _escaping(error: Exception, ending: type[Exception]) -> Exception:
    """``error`` as the loop raises it. A ``StopIteration`` (``StopAsyncIteration`` for
    ``async for``) raised by the loop's ``__next__`` would end the loop as if the block had
    succeeded: such an error reaches the caller as the cause of a ``RuntimeError``, as
    Python does for one raised inside a generator (PEP 479)."""
    if not isinstance(error, ending):
        return error
    escaped = RuntimeError(f"the retried block raised {type(error).__name__}")
    escaped.__cause__ = error
    return escaped


def _block_layer(config: object, name: object, options: dict[str, Any]) -> _Retry:
    """The layer for these settings: one per distinct set (a ``retrying(...)`` written
    inside a loop or a function is checked once, and its blocks share their statistics)."""
    given = tuple((key, value) for key, value in options.items() if value is not None)
    try:
        return _shared_layer(config, name, given)
    except TypeError:  # a value that cannot be hashed: checked (and refused) below
        return _new_layer(config, name, given)


def _new_layer(config: object, name: object, given: tuple[tuple[str, Any], ...]) -> _Retry:
    if not isinstance(name, str) or not name:
        raise ConfigError("name", name, "a block name (non-empty text)")
    return _layer(config, {key: value for key, value in given if key not in ("config", "name")})


_shared_layer = functools.lru_cache(maxsize=128)(_new_layer)
