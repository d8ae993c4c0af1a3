"""``@fallback``: answer from somewhere else when the call fails.

The happy path is the call inside ``try``; a cache of last good results (when asked for)
adds one store per success. On failure the sources are tried in order: the cached result
for the same arguments, then each fallback value or callable. The caller learns what
answered through ``resilient.last_fallback()``, the ``FallbackUsed`` event and
``fallbacks_used_total``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

from ._runtime import config as _config
from ._runtime import validate as _validate
from ._runtime.listeners import dispatch, hub
from ._runtime.types import MetricsSink
from ._wrapping.emit import Emitter, emitter_for
from ._wrapping.hooks import add_note_once, describe_failure, hook_failed, safe_predicate
from ._wrapping.layer import AnyCall, AsyncCall, AsyncStreamCall, Decorator, Layer, StreamCall
from ._wrapping.lint import ResilienceWarning
from ._wrapping.streams import substitute_async, substitute_sync
from .exceptions import ConfigError
from .metrics._names import FALLBACKS_USED
from .typing import ExceptionFilter

__all__ = [
    "FallbackCache",
    "FallbackResponses",
    "FallbackUsed",
    "fallback",
    "last_fallback",
]


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A fallback answered instead of the function.

    ``source`` is ``"cache"`` (the last good result for the same arguments, ``age``
    seconds old) or the position of the fallback that answered (``"fallback[0]"``...).
    ``error`` is the exception that triggered it (``None`` when ``when=`` rejected the
    result).
    """

    policy: str
    source: str
    error: BaseException | None
    age: float | None = None


_last: ContextVar[FallbackUsed | None] = ContextVar("resilient_last_fallback", default=None)


def last_fallback() -> FallbackUsed | None:
    """What answered the most recent fallback-guarded call in this context, if a fallback did.

    Reset to ``None`` by every guarded call that the function itself answered.
    """
    return _last.get()


class FallbackResponses:
    """Canned answers for AI features, to pass as fallback values.

    Each is a plain class attribute: assign a new text to change it for the whole process.
    """

    hint: ClassVar[str] = (
        "Hints are taking a break right now. Re-read the question, look back at the "
        "lesson's worked example, or ask your teacher."
    )
    explanation: ClassVar[str] = (
        "The explanation service is unavailable at the moment. Your lesson materials "
        "cover this topic, and you can try again in a few minutes."
    )
    generic: ClassVar[str] = "This feature is temporarily unavailable. Please try again soon."


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackCache:
    """Keep the last good result per arguments: at most ``maxsize``, for ``ttl`` seconds.

    ``max_bytes`` also bounds the total size of the kept results: the least recently used
    are dropped to make room, and a result larger than ``max_bytes`` on its own is not
    kept. A result's size is ``sizeof(result)``, by default ``sys.getsizeof(result)``,
    which counts the object itself but not what it refers to (a ``bytes`` or ``str`` is
    measured in full, a ``dict`` or ``list`` only as its table of references): give
    ``sizeof=`` a function returning a size in bytes for results made of containers.
    """

    maxsize: int = 1024
    ttl: float = 300.0
    max_bytes: int | None = None
    sizeof: Callable[[Any], int] | None = None

    def __post_init__(self) -> None:
        _validate.integer("maxsize", self.maxsize, minimum=1)
        object.__setattr__(
            self, "ttl", _validate.required_duration("ttl", self.ttl, allow_zero=False)
        )
        if self.max_bytes is not None:
            _validate.integer("max_bytes", self.max_bytes, minimum=1)
        _validate.optional_callable("sizeof", self.sizeof)
        if self.sizeof is not None and self.max_bytes is None:
            raise ConfigError("sizeof", self.sizeof, "a size function together with max_bytes=")


class _Source:
    """One fallback: a value, or a callable given the call's arguments (and the error)."""

    __slots__ = ("is_async", "takes_error", "value")

    def __init__(self, value: object) -> None:
        self.value = value
        self.is_async = callable(value) and inspect.iscoroutinefunction(value)
        self.takes_error = callable(value) and _accepts_error(value)

    def call(self, args: Any, kwargs: Any, error: BaseException | None) -> Any:
        if not callable(self.value):
            return self.value
        if self.takes_error:
            return self.value(*args, **kwargs, error=error)
        return self.value(*args, **kwargs)


def _accepts_error(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    found = parameters.get("error")
    return found is not None and found.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def fallback(
    *values: object,
    on: ExceptionFilter = Exception,
    when: Callable[[Any], bool] | None = None,
    cache: bool | FallbackCache = False,
    key: Callable[..., Hashable] | None = None,
    metrics: MetricsSink | None = None,
) -> Decorator:
    """Answer with a fallback when the call raises one of ``on`` (or ``when(result)`` is true).

    Each of ``values`` is a static value or a callable receiving the call's arguments
    (plus ``error=`` when it has such a parameter); they are tried in order until one
    answers. ``cache=True`` (or a ``FallbackCache``) answers first with the last good
    result for the same arguments (``key(*args, **kwargs)`` when they are not hashable;
    a key of ``None`` leaves that call out of the cache).
    ``KeyboardInterrupt``, ``SystemExit``, cancellation and ``GeneratorExit`` always pass.

    On a generator or async generator function, a stream that fails before its first
    item is replaced by the fallback's stream: a generator (or, for an async generator,
    an async generator) is iterated, any other answer becomes a one-item stream. A
    failure after the first item reaches the caller; ``when=`` and ``cache=`` have no
    meaning for a stream and are refused.
    """
    if not values and not cache:
        raise ConfigError("values", values, "at least one fallback value, callable or cache=True")
    catch = _catch(on)
    _validate.optional_callable("when", when)
    _validate.optional_callable("key", key)
    if cache is True:
        cache = FallbackCache()
    elif cache is not False and not isinstance(cache, FallbackCache):
        raise ConfigError("cache", cache, "True, False or a FallbackCache")
    layer = _Fallback(tuple(_Source(v) for v in values), catch, when, cache or None, key)
    layer.emitter = emitter_for(metrics)
    return Decorator(layer)


def _catch(on: object) -> tuple[type[Exception], ...] | Callable[[BaseException], bool]:
    """Types stay a tuple (caught by ``except`` at no cost); a predicate is called on errors.

    Interrupts, exits and cancellation always pass through a fallback, so naming one of
    them (alone or among others) is refused rather than silently doing nothing.
    """
    if isinstance(on, type | tuple):
        return _validate.exception_types("on", on, or_predicate=True)
    return _validate.exception_filter("on", on)


class _Cache:
    """The last good results of one function: cachetools' TTL cache behind a lock.

    A call whose key cannot be made (unhashable arguments, a ``key=`` that raises, returns
    ``None`` or returns something unhashable) is neither stored nor looked up; the caller
    still gets the call's own result or error. Why is said once per function, as a
    ``ResilienceWarning`` (or a hook failure, for a ``key=`` that raises).
    """

    __slots__ = ("entries", "key", "lock", "max_entries", "name", "sizeof", "warned")

    def __init__(
        self, name: str, config: FallbackCache, key: Callable[..., Hashable] | None
    ) -> None:
        from cachetools import TTLCache

        def now() -> float:
            return _config.state.now()

        self.name = name
        self.key = key
        self.lock = threading.Lock()
        self.warned: set[str] = set()
        self.entries: TTLCache[Hashable, tuple[Any, float, int]]
        if config.max_bytes is None:
            self.sizeof: Callable[[Any], int] | None = None
            self.max_entries: int | None = None
            self.entries = TTLCache(config.maxsize, config.ttl, timer=now)
        else:
            # cachetools bounds one measure: the bytes; the count is kept in ``put``.
            self.sizeof = config.sizeof or sys.getsizeof
            self.max_entries = config.maxsize
            self.entries = TTLCache(config.max_bytes, config.ttl, timer=now, getsizeof=_size)

    def key_of(self, args: Any, kwargs: Any, error: BaseException | None) -> Hashable | None:
        """The key of this call, or ``None`` when this call cannot use the cache."""
        if self.key is None:
            found: Hashable = (args, tuple(sorted(kwargs.items()))) if kwargs else args
        else:
            try:
                found = self.key(*args, **kwargs)
            except Exception as failure:
                hook_failed("key= function", self.name, failure, error)
                return None
            if found is None:
                return None  # documented: None means "do not cache this call"
        try:
            hash(found)
        except Exception as unhashable:
            if self.key is None:
                why = f"the arguments are not hashable ({describe_failure(unhashable)})"
                fix = "pass key=a function of the arguments returning a hashable key"
            else:
                why = f"the key= function returned an unhashable {type(found).__name__}"
                fix = "make key= return a hashable key"
            self.warn(
                "unhashable",
                f"{why}, so such calls are not cached and the cache is "
                f"not consulted for them; {fix} (or None to skip caching a call)",
                error,
            )
            return None
        return found

    def warn(self, reason: str, text: str, error: BaseException | None) -> None:
        """Say once per function why some of its calls cannot use the cache, and what helps.

        Warnings turned into errors (``-W error``, ``simplefilter("error")``) never replace
        what the call produced: on a failed call the warning becomes a note on the call's
        error; on a successful one the result is returned and the warning is logged
        through the aggregated ``resilient`` log instead.
        """
        if reason in self.warned:
            return
        self.warned.add(reason)
        message = f"fallback(cache=...) on {self.name}: {text}"
        try:
            warnings.warn(message, ResilienceWarning, stacklevel=_outside_level())
        except Exception as raised:
            if error is not None:
                add_note_once(error, f"resilient: {describe_failure(raised)}")
            else:
                from ._runtime.logs import digest

                digest.report("fallback cache warning", self.name, describe_failure(raised))

    def put(self, args: Any, kwargs: Any, result: Any) -> None:
        found = self.key_of(args, kwargs, None)
        if found is None:
            return
        size = 0
        if self.sizeof is not None:
            size = self.measure(result)
            if size < 0 or size > self.entries.maxsize:
                return  # unmeasurable, or larger than the whole bound on its own
        with self.lock:
            self.entries[found] = (result, _config.state.now(), size)
            if self.max_entries is not None:
                while len(self.entries) > self.max_entries:
                    self.entries.popitem()

    def measure(self, result: Any) -> int:
        """``sizeof(result)`` in bytes, or -1 when the size function fails."""
        assert self.sizeof is not None
        try:
            size: object = self.sizeof(result)  # user code: checked, not trusted
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise TypeError(f"returned {size!r}, not a size in bytes (an int >= 0)")
        except Exception as failure:
            hook_failed("sizeof= function", self.name, failure)
            return -1
        return size

    def get(self, args: Any, kwargs: Any, error: BaseException | None) -> tuple[Any, float] | None:
        found = self.key_of(args, kwargs, error)
        if found is None:
            return None
        with self.lock:
            hit = self.entries.get(found)
        return None if hit is None else (hit[0], hit[1])


def _size(entry: tuple[Any, float, int]) -> int:
    return entry[2]


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _outside_level() -> int:
    """The ``stacklevel``, seen from the caller of this function, of the first user frame."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level += 1
        frame = frame.f_back
    return level


class _Fallback(Layer):
    __slots__ = ("caches", "catch", "config", "emitter", "key", "sources", "when")
    kind = "fallback"

    def __init__(
        self,
        sources: tuple[_Source, ...],
        catch: tuple[type[Exception], ...] | Callable[[BaseException], bool],
        when: Callable[[Any], bool] | None,
        cache: FallbackCache | None,
        key: Callable[..., Hashable] | None,
    ) -> None:
        self.sources = sources
        self.catch = catch
        self.when = when
        self.config = cache
        self.key = key
        self.emitter: Emitter | None = None
        self.caches: dict[str, _Cache] = {}

    def describe(self) -> dict[str, object]:
        return {
            "layer": self.kind,
            "fallbacks": [s.value for s in self.sources],
            "on": self.catch if isinstance(self.catch, tuple) else repr(self.catch),
            "when": self.when,
            "cache": self.config,
        }

    def _cache_for(self, name: str) -> _Cache | None:
        """One cache per decorated function (a layer may be applied to several)."""
        if self.config is None:
            return None
        cache = self.caches.get(name)
        if cache is None:
            cache = self.caches[name] = _Cache(name, self.config, self.key)
        return cache

    def _types(self) -> tuple[type[Exception], ...]:
        return self.catch if isinstance(self.catch, tuple) else (Exception,)

    def _wanted(self, name: str, error: Exception) -> bool:
        """Whether ``on=`` asks for a fallback; a predicate that raises says no."""
        catch = self.catch
        if isinstance(catch, tuple):
            return True
        return safe_predicate(catch, error, "on= predicate", name, default=False, error=error)

    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        if any(source.is_async for source in self.sources):
            raise ConfigError("values", [s.value for s in self.sources], "sync callables for a def")
        types, when, layer = self._types(), self.when, self
        cache = self._cache_for(name)

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = call(*args, **kwargs)
            except types as error:
                if not layer._wanted(name, error):
                    raise
                return layer._recover_sync(name, cache, args, kwargs, error)
            # A when= predicate that raises decides as if it said no.
            if when is not None and safe_predicate(
                when, result, "when= predicate", name, default=False
            ):
                return layer._recover_sync(name, cache, args, kwargs, None, result)
            if cache is not None:
                cache.put(args, kwargs, result)
            _last.set(None)
            return result

        return guarded

    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        types, when, layer = self._types(), self.when, self
        cache = self._cache_for(name)

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await call(*args, **kwargs)
            except types as error:
                if not layer._wanted(name, error):
                    raise
                return await layer._recover_async(name, cache, args, kwargs, error)
            # A when= predicate that raises decides as if it said no.
            if when is not None and safe_predicate(
                when, result, "when= predicate", name, default=False
            ):
                return await layer._recover_async(name, cache, args, kwargs, None, result)
            if cache is not None:
                cache.put(args, kwargs, result)
            _last.set(None)
            return result

        return guarded

    def _recover_sync(
        self,
        name: str,
        cache: _Cache | None,
        args: Any,
        kwargs: Any,
        error: Exception | None,
        rejected: Any = None,
    ) -> Any:
        failures: list[tuple[str, Exception]] = []
        for label, answer, age in self._sources(cache, args, kwargs, error):
            try:
                value = answer()
            except Exception as failure:
                failures.append((label, failure))
                continue
            return self._used(name, label, error, value, age)
        return self._give_up(name, error, failures, rejected)

    async def _recover_async(
        self,
        name: str,
        cache: _Cache | None,
        args: Any,
        kwargs: Any,
        error: Exception | None,
        rejected: Any = None,
    ) -> Any:
        failures: list[tuple[str, Exception]] = []
        for label, answer, age in self._sources(cache, args, kwargs, error):
            try:
                value = answer()
                if inspect.isawaitable(value):
                    value = await value
            except Exception as failure:
                failures.append((label, failure))
                continue
            return self._used(name, label, error, value, age)
        return self._give_up(name, error, failures, rejected)

    def _sources(
        self, cache: _Cache | None, args: Any, kwargs: Any, error: Exception | None
    ) -> Iterator[tuple[str, Callable[[], Any], float | None]]:
        """What may answer, in order: the cached result, then each fallback, not yet called."""
        if cache is not None and (hit := cache.get(args, kwargs, error)) is not None:
            value, stored = hit
            yield "cache", lambda: value, _config.state.now() - stored
        for index, source in enumerate(self.sources):
            yield f"fallback[{index}]", functools.partial(source.call, args, kwargs, error), None

    def _used(
        self, name: str, source: str, error: Exception | None, answer: Any, age: float | None = None
    ) -> Any:
        event = FallbackUsed(name, source, error, age)
        _last.set(event)
        emit = self.emitter or _config.state.emit
        if emit is not None:
            emit.increment(FALLBACKS_USED, (("policy", name),))
        if hub.active:
            dispatch((), (event,))  # type: ignore[arg-type]  # listeners take any event
        return answer

    def _give_up(
        self,
        name: str,
        error: Exception | None,
        failures: list[tuple[str, Exception]],
        rejected: Any,
    ) -> Any:
        """No source answered: the call's own error, or the last fallback's, reaches the caller.

        A result rejected by ``when=`` is returned as it is when no fallback was there to
        fail (only a cache without an entry); when fallbacks raised, the last one's error
        is raised, noting the rejected result, so a failing fallback is never silent.
        """
        _last.set(None)
        if error is None:
            if not failures:
                return rejected
            *earlier, (label, error) = failures
            prefix = f"resilient.fallback on {name}: when= rejected the result"
            add_note_once(
                error,
                f"{prefix} (a {type(rejected).__name__}) and no fallback answered; "
                f"{label} raised this",
                replaces=prefix,
            )
            failures = earlier
        for label, failure in failures:
            prefix = f"resilient.fallback on {name}: {label}: "
            add_note_once(error, f"{prefix}{describe_failure(failure)}", replaces=prefix)
        raise error

    # Generator functions: the stream forms live in ``_wrapping.streams``.

    def wrap_stream_sync(self, call: StreamCall, name: str) -> StreamCall:
        self._refuse_stream(name)
        if any(source.is_async for source in self.sources):
            raise ConfigError(
                "values", [s.value for s in self.sources], "sync callables for a generator"
            )

        def recover(args: Any, kwargs: Any, error: Exception) -> Any:
            return self._recover_sync(name, None, args, kwargs, error)

        wanted = functools.partial(self._wanted, name)
        return substitute_sync(call, self._types(), wanted, recover, _answered)

    def wrap_stream_async(self, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
        self._refuse_stream(name)

        async def recover(args: Any, kwargs: Any, error: Exception) -> Any:
            return await self._recover_async(name, None, args, kwargs, error)

        wanted = functools.partial(self._wanted, name)
        return substitute_async(call, self._types(), wanted, recover, _answered)

    def _refuse_stream(self, name: str) -> None:
        """A stream has no result for ``when=`` to judge or for a cache to keep."""
        if self.when is not None:
            raise ConfigError("when", self.when, f"None for the generator function {name}")
        if self.config is not None:
            raise ConfigError("cache", self.config, f"False for the generator function {name}")


_answered = functools.partial(_last.set, None)
"""A stream whose own first item (or end) arrived: no fallback answered it."""
