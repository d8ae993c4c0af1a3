"""Each step of a policy (``timeout=``, ``retry=``, ``breaker=``...) turned into its decorator.

Why the steps come in this order (outermost first):

- ``rate_limit`` inside ``retry``: every attempt takes a token, so retries cannot push
  a fleet past an upstream's quota. Outside ``breaker``: a call the limiter refuses
  never reaches the breaker, so it is not counted as the service failing (the price: a
  call an open circuit then rejects has spent its token).

- ``breaker`` outside ``bulkhead``: an open circuit rejects a call before it takes a
  slot or a place in the queue, and a call refused by a full bulkhead never reached the
  service, so it is not counted against the breaker.
- ``bulkhead`` outside ``hedge``: one slot per logical call, held for as long as the
  call and its hedges run, so the service sees at most ``max_concurrent`` x
  ``(1 + max_hedges)`` attempts. Inside, each hedge would queue for a slot: time spent
  queueing would look like slowness and start hedges exactly when the compartment is
  full, and a hedge refused by the bulkhead would count as a failed attempt.
- ``hedge`` outside the per-attempt ``timeout``: each attempt gets its own budget, so a
  hung attempt ends without ending its sibling; the enclosing ``total_timeout`` and the
  deadline bound the whole race.
- ``retry`` outside all three: a retry is a new logical call, which waits for a slot and
  may hedge again; a ``BulkheadFullError`` is retried only if ``retry.on`` says so.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._wrapping.layer import Decorator
from ..exceptions import ConfigError
from ..presets import Timeouts, closest, lookup

__all__ = ["BUILDERS", "ORDER", "as_written", "build"]

ORDER = (
    "fallback",
    "degradable",
    "total_timeout",
    "retry",
    "rate_limit",
    "breaker",
    "bulkhead",
    "hedge",
    "timeout",
)
"""The canonical order of a policy's steps, outermost first."""


_FORMS = {
    "timeout": "seconds, a Timeouts preset name, a dict of timeout keywords "
    "or a resilient.timeout decorator",
    "retry": "True, a RetryConfig, a preset name, a dict of retry keywords "
    "or a resilient.retry decorator",
    "breaker": "True, a breaker name, (name, config), a BreakerConfig, a dict of breaker "
    "keywords or a resilient.breaker decorator",
    "degradable": "a Feature, a feature name, a dict of degradable keywords "
    "or a resilient.degradable decorator",
    "bulkhead": "max_concurrent (an int), a dict of bulkhead keywords "
    "or a resilient.bulkhead decorator",
    "hedge": "a delay in seconds, 'p95', a dict of hedge keywords or a resilient.hedge decorator",
    "rate_limit": "calls per second, (rate, per), a dict of rate_limit keywords "
    "or a resilient.rate_limit decorator",
}
_FORMS["total_timeout"] = _FORMS["timeout"]


def build(step: str, spec: Any, fn: Any) -> Decorator:
    """The decorator for one step; a ``ConfigError`` names the step (and key) as written."""
    try:
        if isinstance(spec, Mapping):
            _check_keys(step, spec)
        return BUILDERS[step](spec, fn)
    except ConfigError as error:
        raise as_written(step, spec, error) from error


def as_written(step: str, spec: Any, error: ConfigError) -> ConfigError:
    if isinstance(spec, Mapping):  # the key inside the step's dict: ``retry.attempts``
        return ConfigError(f"{step}.{error.parameter}", error.value, error.allowed)
    if error.parameter == step or error.value is spec:
        return ConfigError(step, spec, error.allowed)
    return ConfigError(step, spec, f"{error.parameter}: {error.allowed}")


def _check_keys(step: str, spec: Mapping[Any, Any]) -> None:
    known = _keys(step)
    for key, value in spec.items():
        if key not in known:
            listed = ", ".join(sorted(known))
            raise ConfigError(
                str(key), value, f"a {step} key ({listed}){closest(key, sorted(known))}"
            )


def _keys(step: str) -> frozenset[str]:
    """The keys a step's dict may hold: its decorator's keyword parameters (and more)."""
    if step in ("timeout", "total_timeout"):
        from .._timeout.decorator import timeout

        return _keywords(timeout)
    if step == "retry":
        from .._retry.decorator import retry

        return _keywords(retry)
    if step == "breaker":
        from .._breaker.decorator import breaker

        return _keywords(breaker) | _breaker_fields()
    if step == "rate_limit":
        from .._rate_limit.decorator import rate_limit

        return _keywords(rate_limit)
    if step == "fallback":
        from .._fallback import fallback

        return _keywords(fallback) | {"value", "values"}
    if step == "bulkhead":
        from .._bulkhead.decorator import bulkhead

        return _keywords(bulkhead)
    if step == "hedge":
        from .._hedge.decorator import hedge

        return _keywords(hedge)
    from .._degradation import degradable

    return _keywords(degradable)


def _keywords(fn: Callable[..., Any]) -> frozenset[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(
        name for name, p in inspect.signature(fn).parameters.items() if p.kind in kinds
    )


def _breaker_fields() -> frozenset[str]:
    import dataclasses

    from .._circuit.config import BreakerConfig

    return frozenset(f.name for f in dataclasses.fields(BreakerConfig) if f.init)


def _given(spec: Any, step: str) -> Decorator | None:
    if isinstance(spec, Decorator):
        if spec.layer.kind != step.removeprefix("total_"):
            raise ConfigError(step, spec, f"a resilient.{step.removeprefix('total_')} decorator")
        return spec
    return None


def _timeout(spec: Any, fn: Any) -> Decorator:
    from .._timeout.decorator import timeout

    if (given := _given(spec, "timeout")) is not None:
        return given
    if isinstance(spec, Mapping):
        options = dict(spec)
        if isinstance(options.get("seconds"), str):
            options["seconds"] = Timeouts.get(options["seconds"], parameter="seconds")
        return timeout(**options)
    if isinstance(spec, str):
        return timeout(Timeouts.get(spec))
    return timeout(spec)


def _total_timeout(spec: Any, fn: Any) -> Decorator:
    if (given := _given(spec, "total_timeout")) is not None:
        return given
    return _timeout(spec, fn)


def _retry(spec: Any, fn: Any) -> Decorator:
    from .._retry.decorator import RetryConfig, retry

    if (given := _given(spec, "retry")) is not None:
        return given
    if spec is True:
        return retry()
    if isinstance(spec, Mapping):
        options = dict(spec)
        if isinstance(options.get("config"), str):
            options["config"] = _preset(RetryConfig, "config", options["config"])
        return retry(**options)
    if isinstance(spec, str):
        return retry(config=_preset(RetryConfig, "retry", spec))
    if not isinstance(spec, RetryConfig):
        raise ConfigError("retry", spec, _FORMS["retry"])
    return retry(spec)


def _breaker(spec: Any, fn: Any) -> Decorator:
    from .._breaker.decorator import breaker
    from .._circuit.config import BreakerConfig

    if (given := _given(spec, "breaker")) is not None:
        return given
    if spec is True:
        return breaker()
    if isinstance(spec, str):
        return breaker(spec)  # always a name: never a preset, never an import path
    if isinstance(spec, tuple) and len(spec) == 2:
        config = spec[1]
        if isinstance(config, str):
            config = _preset(BreakerConfig, "config", config)
        return breaker(spec[0], config)
    if isinstance(spec, Mapping):
        options = dict(spec)
        fields = {key: options.pop(key) for key in spec if key in _breaker_fields()}
        config = options.get("config")
        if isinstance(config, str):
            config = options["config"] = _preset(BreakerConfig, "config", config)
        if fields:  # ``{name = "db", failure_threshold = 3}``: a preset with changes
            if config is None:
                config = BreakerConfig.standard
            elif not isinstance(config, BreakerConfig):
                raise ConfigError("config", config, "a BreakerConfig, a preset name or None")
            options["config"] = config.replace(**fields)
        return breaker(**options)
    if not isinstance(spec, BreakerConfig):
        raise ConfigError("breaker", spec, _FORMS["breaker"])
    return breaker(None, spec)


def _preset(kind: Any, parameter: str, name: str) -> Any:
    """The preset ``kind.name``; the error suggests the closest preset name."""
    return lookup(kind, name, parameter)


def _fallback(spec: Any, fn: Any) -> Decorator:
    from .._fallback import fallback

    if (given := _given(spec, "fallback")) is not None:
        return given
    if isinstance(spec, Mapping):
        options = dict(spec)
        values = options.pop("values", ())
        if not isinstance(values, list | tuple):
            raise ConfigError("values", values, "a list of fallback values")
        if "value" in options:
            values = (options.pop("value"), *values)
        return fallback(*values, **options)
    return fallback(spec)


def _degradable(spec: Any, fn: Any) -> Decorator:
    from .._degradation import degradable

    if (given := _given(spec, "degradable")) is not None:
        return given
    if isinstance(spec, Mapping):
        return degradable(**spec)
    return degradable(spec)


def _bulkhead(spec: Any, fn: Any) -> Decorator:
    from .._bulkhead.decorator import bulkhead

    if (given := _given(spec, "bulkhead")) is not None:
        return given
    if isinstance(spec, Mapping):
        return bulkhead(**spec)
    if isinstance(spec, bool) or not isinstance(spec, int):
        raise ConfigError("bulkhead", spec, _FORMS["bulkhead"])
    return bulkhead(spec)


def _hedge(spec: Any, fn: Any) -> Decorator:
    from .._hedge.decorator import hedge

    if (given := _given(spec, "hedge")) is not None:
        return given
    if isinstance(spec, Mapping):
        return hedge(**spec)
    return hedge(spec)


def _rate_limit(spec: Any, fn: Any) -> Decorator:
    from .._rate_limit.decorator import rate_limit

    if (given := _given(spec, "rate_limit")) is not None:
        return given
    if isinstance(spec, Mapping):
        return rate_limit(**spec)
    if isinstance(spec, tuple | list) and len(spec) == 2:
        return rate_limit(spec[0], spec[1])
    if isinstance(spec, bool) or not isinstance(spec, int | float):
        raise ConfigError("rate_limit", spec, _FORMS["rate_limit"])
    return rate_limit(spec)


BUILDERS: dict[str, Callable[[Any, Any], Decorator]] = {
    "timeout": _timeout,
    "total_timeout": _total_timeout,
    "retry": _retry,
    "breaker": _breaker,
    "fallback": _fallback,
    "degradable": _degradable,
    "bulkhead": _bulkhead,
    "hedge": _hedge,
    "rate_limit": _rate_limit,
}
