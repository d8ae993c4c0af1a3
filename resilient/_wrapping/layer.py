"""The one place that turns a stack of layers into a wrapper.

A *layer* is one resilience step (a retry, a timeout...). ``apply`` composes layers into
one chain of small closures when the decorator is applied, choosing the sync or async
form once. Applying a layer to a function that is already wrapped does not wrap the
wrapper: the new layer joins the existing stack and the chain is rebuilt around the
original function, so N stacked decorators cost N steps and no extra wrapper.

A generator or async generator function gets the stream form of each layer
(``wrap_stream_sync``/``wrap_stream_async``): a generator function around the
generator, whose work starts with the first item asked for. A layer without a stream
form refuses such functions with ``TypeError``.

Each function gets two chains, the plain one and the observed one (the observation step
of ``observe`` around the plain chain); ``switch`` decides which one a call runs, and
no layer knows about observation.

Plain functions, and the functions inside ``classmethod``/``staticmethod``, get the
composed chain itself as their wrapper (the cheapest callable Python has, and it binds
as a method like any function). Other callables (callable objects, builtins, partials,
custom descriptors) are wrapped with wrapt's ``FunctionWrapper`` (``proxy``, loaded with
the first such callable), which preserves their binding at about 0.4 µs per call.
"""

from __future__ import annotations

import functools
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from inspect import CO_ASYNC_GENERATOR, CO_GENERATOR
from types import CodeType, FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar, cast, overload

from .switch import entry, is_anchor, pick

if TYPE_CHECKING:
    from .emit import Emitter

__all__ = [
    "ASYNC_STREAM",
    "CALL",
    "COROUTINE",
    "STREAM",
    "AsyncStreamCall",
    "Decorator",
    "Layer",
    "StreamCall",
    "apply",
    "code_flags",
    "form_of",
    "is_async_callable",
    "layers_of",
    "name_of",
    "refuse_generator",
    "wrapped_form",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

AnyCall = Callable[..., Any]
AsyncCall = Callable[..., Awaitable[Any]]
StreamCall = Callable[..., Generator[Any, Any, Any]]
AsyncStreamCall = Callable[..., AsyncGenerator[Any, Any]]

CALL, COROUTINE, STREAM, ASYNC_STREAM = "call", "coroutine", "stream", "async stream"
"""The four forms of a wrapped function, chosen once when it is decorated."""


class Layer(ABC):
    """One resilience step, able to wrap a sync or an async call."""

    __slots__ = ()
    kind: ClassVar[str]
    emitter: Emitter | None = None
    """Where this layer reports, when its decorator was given ``metrics=``."""

    @abstractmethod
    def wrap_sync(self, call: AnyCall, name: str) -> AnyCall:
        """Return a new function, taking ``*args, **kwargs``, that runs ``call`` under this layer.

        ``name`` is the wrapped function's ``module.qualname``. The function only does
        this layer's work: timing the call, testing modes and chaos are the builder's.
        """

    @abstractmethod
    def wrap_async(self, call: AsyncCall, name: str) -> AsyncCall:
        """Return a new ``async def`` function (``*args, **kwargs``) awaiting ``call``."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """This layer's settings as plain data, ``{"layer": kind, ...}``."""

    def describe_for(self, form: str) -> dict[str, object]:
        """``describe()`` for a function of ``form`` (``CALL``, ``COROUTINE``, ``STREAM``,
        ``ASYNC_STREAM``): only the settings that apply to it. A layer whose settings
        apply to every form keeps this, which is ``describe()``."""
        return self.describe()

    def wrap_stream_sync(self, call: StreamCall, name: str) -> StreamCall:
        """Return a generator function (``*args, **kwargs``) that iterates ``call``'s
        generator under this layer; its work starts with the first ``next()``.

        A layer that means nothing for a stream keeps this refusal (``TypeError``).
        """
        raise _refusal(self.kind, name)

    def wrap_stream_async(self, call: AsyncStreamCall, name: str) -> AsyncStreamCall:
        """``wrap_stream_sync`` for async generator functions."""
        raise _refusal(self.kind, name)

    def __repr__(self) -> str:
        settings = self.describe()
        kind = settings.pop("layer")
        body = " ".join(f"{key}={value!r}" for key, value in settings.items())
        return f"<resilient.{kind} {body}>"


class _Stack:
    """What a wrapper remembers: the original callable and its layers, outermost first,
    and its observed chain."""

    __slots__ = ("layers", "observed", "target")

    def __init__(self, target: AnyCall, layers: tuple[Layer, ...], observed: AnyCall) -> None:
        self.target = target
        self.layers = layers
        self.observed = observed


class Decorator:
    """A configured resilient decorator: apply it to a function, method or callable."""

    __slots__ = ("layer",)

    def __init__(self, layer: Layer) -> None:
        self.layer: Layer = layer

    @overload
    def __call__(self, fn: classmethod[T, P, R]) -> classmethod[T, P, R]: ...
    @overload
    def __call__(self, fn: staticmethod[P, R]) -> staticmethod[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Any) -> Any:
        return apply(self.layer, fn)

    def __repr__(self) -> str:
        return repr(self.layer)


_proxy: ModuleType | None = None
"""``resilient._wrapping.proxy`` (and wrapt), imported with the first callable object."""


def _load_proxy() -> ModuleType:
    global _proxy
    if _proxy is None:
        from . import proxy

        _proxy = proxy
    return _proxy


def apply(layer: Layer, target: Any) -> Any:
    """Wrap ``target`` with ``layer`` outermost, merging with an existing resilient stack."""
    if isinstance(target, classmethod | staticmethod):
        return type(target)(apply(layer, target.__func__))
    stack = _stack_of(target)
    if stack is not None:
        layers = (layer, *stack.layers)
        from .lint import check_stack

        check_stack(layers, name_of(stack.target))
        return _build(stack.target, layers, replaces=target)
    if not callable(target):
        raise TypeError(f"resilient.{layer.kind} can only decorate a callable, not {target!r}")
    modules = sys.modules
    if "starlette.routing" in modules or "flask" in modules:  # routes.FRAMEWORK_MODULES
        from .routes import check_route

        check_route(target, layer.kind)
    return _build(target, (layer,))


def _refusal(kind: str, name: str) -> TypeError:
    """The ``TypeError`` of a layer that cannot wrap the generator function ``name``."""
    return TypeError(
        f"resilient.{kind} cannot decorate the generator function {name}: it has no "
        "meaning for a stream of items (retry, timeout, breaker and fallback do); "
        "decorate a function that consumes the stream instead"
    )


def refuse_generator(target: object, refusal: str, use: str) -> None:
    """Raise ``TypeError`` if ``target`` is a generator or async generator function.

    A generator's body runs only as it is iterated, after the guarded call has returned,
    so no retry, timeout or breaker would see its work or its errors. ``refusal`` starts
    the message (``"resilient.retry cannot decorate"``); ``use`` is the verb of the advice.
    """
    import inspect  # here, not at import: ``import resilient`` stays light

    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        raise TypeError(
            f"{refusal} the generator function {name_of(target)}: a generator's work "
            "happens after the call returns, outside any retry, timeout or breaker; "
            f"{use} a function that consumes it"
        )


def layers_of(fn: object) -> tuple[Layer, ...]:
    """The layers wrapped around ``fn``, outermost first (empty if it is not wrapped)."""
    stack = _found(fn)
    return stack.layers if stack is not None else ()


def wrapped_form(fn: object) -> str | None:
    """The form (``CALL``, ``COROUTINE``, ``STREAM``, ``ASYNC_STREAM``) of the function
    wrapped in ``fn``, whose layers run in that form; ``None`` if ``fn`` is not wrapped."""
    stack = _found(fn)
    return form_of(stack.target) if stack is not None else None


def _found(fn: object) -> _Stack | None:
    """The stack of a wrapper, of a bound method of one, or of a class/static method."""
    if isinstance(fn, classmethod | staticmethod):
        fn = fn.__func__
    stack = _stack_of(fn)
    if stack is None:
        # A method bound from a wrapper. Test the exact types: a wrapt proxy forwards
        # ``__func__`` (and ``isinstance``) to what it wraps, e.g. a bound method.
        if type(fn) is MethodType:
            stack = _stack_of(fn.__func__)
        elif _proxy is not None and type(fn) is _proxy.BoundFunctionWrapper:
            stack = _stack_of(getattr(fn, "_self_parent", None))
    return stack


def _stack_of(target: object) -> _Stack | None:
    if _proxy is not None and type(target) is _proxy.CallableWrapper:
        return target._self_resilient_stack  # type: ignore[attr-defined, no-any-return]
    if type(target) is FunctionType:
        stack: _Stack | None = target.__dict__.get("__resilient_stack__")
        # functools.wraps copies __dict__, so another library's wrapper of a resilient
        # function carries the stack too; only the chain built for it wraps its target.
        if stack is not None and target.__dict__.get("__wrapped__") is stack.target:
            return stack
    return None


def code_flags(target: object) -> int:
    """The code flags of the Python function that calling ``target`` runs (0 if none).

    Looks through ``functools.partial`` objects, bound methods and a callable object's
    ``__call__``; builtins and other callables without Python code give 0.
    """
    while True:
        if isinstance(target, functools.partial):
            target = target.func
        elif isinstance(target, MethodType):
            target = target.__func__
        else:
            break
    code = getattr(target, "__code__", None)
    if type(code) is not CodeType and not isinstance(target, type):
        code = getattr(getattr(type(target), "__call__", None), "__code__", None)  # noqa: B004
    return code.co_flags if type(code) is CodeType else 0


def is_async_callable(target: object) -> bool:
    """Whether calling ``target`` gives an awaitable: an ``async def`` or async ``__call__``."""
    import inspect

    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(type(target), "__call__", None)  # noqa: B004 - looking for async __call__
    return not isinstance(target, FunctionType | type) and inspect.iscoroutinefunction(call)


def form_of(target: object) -> str:
    """``CALL``, ``COROUTINE``, ``STREAM`` (a generator function) or ``ASYNC_STREAM``."""
    flags = code_flags(target)
    if flags & CO_GENERATOR:
        return STREAM
    if flags & CO_ASYNC_GENERATOR:
        return ASYNC_STREAM
    return COROUTINE if is_async_callable(target) else CALL


def name_of(target: object) -> str:
    """``module.qualname``: the default policy (and breaker) name of a function."""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if not name:
        return repr(target)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def _chain(layers: tuple[Layer, ...], target: AnyCall, form: str, name: str) -> AnyCall:
    call = target
    for layer in reversed(layers):
        if form is CALL:
            call = layer.wrap_sync(call, name)
        elif form is COROUTINE:
            call = layer.wrap_async(call, name)
        elif form is STREAM:
            call = layer.wrap_stream_sync(call, name)
        else:
            call = layer.wrap_stream_async(call, name)
    return call


def _streams(layer: Layer) -> bool:
    """Whether ``layer`` has a stream form (it does not keep the base class's refusal)."""
    return type(layer).wrap_stream_sync is not Layer.wrap_stream_sync


_context_probe: list[Layer] = []  # resilient.chaos's step for its context managers


def set_context_probe(layer: Layer) -> None:
    """Make ``layer`` the innermost step of every function called under a chaos context
    manager (``resilient.chaos`` sets it when imported: nothing else needs it)."""
    _context_probe[:] = [layer]


def _compose(
    layers: tuple[Layer, ...], target: AnyCall, form: str, name: str
) -> tuple[AnyCall, AnyCall]:
    """The plain chain of layer functions around ``target``, and the observed chain.

    With a per-decorator metrics override the observation step always runs: it is
    then both chains.
    """
    plain = _chain(layers, target, form, name)
    override = next((layer.emitter for layer in layers if layer.emitter is not None), None)
    stream = form is STREAM or form is ASYNC_STREAM
    if stream:
        from .stream_observe import observe_stream_async, observe_stream_sync

        observe = observe_stream_sync if form is STREAM else observe_stream_async
    else:
        from .observe import observe_async, observe_sync

        observe = observe_async if form is COROUTINE else observe_sync

    def chaotic() -> AnyCall:  # built on first use under a chaos context manager
        # A probe without a stream form leaves streams alone.
        probes = [p for p in _context_probe if not stream or _streams(p)]
        return _chain((*layers, *probes), target, form, name)

    observed = observe(plain, target, (("policy", name),), override, chaotic)
    return (observed, observed) if override is not None else (plain, observed)


def _build(target: AnyCall, layers: tuple[Layer, ...], replaces: Any = None) -> Any:
    form = form_of(target)
    name = name_of(target)
    plain, observed = _compose(layers, target, form, name)
    chain = observed if plain is observed else entry(plain, observed)
    stack = _Stack(target, layers, observed)
    if type(target) is FunctionType:
        functools.update_wrapper(chain, target)
        # functools.wraps leaves the defaults out; tools that read them from the function
        # (argument parsers, dependency injection) must see the target's. Layer functions
        # take only ``*args, **kwargs``, so the copies change nothing about the call.
        if target.__defaults__ is not None or target.__kwdefaults__ is not None:
            function = cast(FunctionType, chain)
            function.__defaults__ = target.__defaults__
            function.__kwdefaults__ = target.__kwdefaults__
        if replaces is not None:
            # Keep what was set on the wrapper this one replaces (marks, registrations...),
            # but not the observed chain it owned: nothing will run it any more.
            kept = {k: v for k, v in replaces.__dict__.items() if not is_anchor(k)}
            chain.__dict__.update(kept)
        chain.__dict__["__resilient_stack__"] = stack
        return chain

    def bound_call(wrapped: AnyCall, instance: object, args: Any, kwargs: Any) -> Any:
        # wrapt hands over the bound callable when the target is a descriptor.
        if wrapped is target:
            return chain(*args, **kwargs)
        return pick(*_compose(layers, wrapped, form, name))(*args, **kwargs)

    return _load_proxy().wrap(target, bound_call, stack)
