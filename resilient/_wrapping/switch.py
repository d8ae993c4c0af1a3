"""The one place that chooses between a function's plain chain and its observed chain.

Every wrapped function has two chains: the *plain* one (its layers around the target)
and the *observed* one (the observation step of ``observe`` around the plain chain),
which is needed only while ``state.active``: metrics on, ``resilient.testing.disabled()``
or a chaos context manager. No layer checks for observation.

The function callers get (see :func:`entry`) is a copy of the plain chain's outermost
function: same code, same closure, so with observation off a call costs exactly what
the plain chain costs, with no extra frame and no test. When ``state.active`` changes,
``state.refresh()`` runs :func:`_switch`, which gives every such function, in one pass,
either the plain code or a short code that hands the call to its observed chain. A
function object keeps its identity, its binding as a method and its attributes; only
what its call runs changes, between two calls (a call already running finishes in the
code it started with).

The observed chain is owned by the function itself, under an attribute name of its own
(``__resilient_observed_<n>__``), so that ``functools.wraps`` copying another resilient
function's attributes over it cannot drop it; this module refers to it weakly, so a
recursive decorated closure is still freed. Should the chain be gone all the same (the
function's ``__dict__`` cleared), a call runs the plain chain, unobserved.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any

from .._runtime import config as _config

__all__ = ["entry", "is_anchor", "pick"]

AnyCall = Callable[..., Any]

_CO_COROUTINE, _CO_GENERATOR, _CO_ASYNC_GENERATOR = 0x0080, 0x0020, 0x0200
_KINDS = _CO_COROUTINE | _CO_GENERATOR | _CO_ASYNC_GENERATOR
_SLOT = "resilient: the observed chain"
"""The constant of the jump template that each function's own observed chain replaces."""
_SELF = "resilient: the function"
"""The constant of the jump template that a weak reference to the function replaces."""
_LOST = "resilient: the way back to the plain chain"
"""The constant of the jump template that :func:`_lost` replaces."""
_ANCHOR = "__resilient_observed_{}__"


def pick(plain: AnyCall, observed: AnyCall) -> AnyCall:
    """The chain to run now, for chains built for one call (of a bound callable object)."""
    return observed if _config.state.active else plain


class _Codes:
    """A function's two codes: its plain chain's, and the jump to its observed chain."""

    __slots__ = ("function", "jump", "observed", "plain")

    def __init__(self, plain: CodeType, observed: AnyCall, function: FunctionType) -> None:
        self.plain = plain
        # Weak: what the function's chains reach may reach the function again (a recursive
        # closure), and a strong reference from this module would keep it alive forever.
        self.observed = weakref.ref(observed)
        self.function = weakref.ref(function)
        self.jump: CodeType | None = None  # made the first time observation turns on

    def current(self, active: bool) -> CodeType:
        if not active:
            return self.plain
        if self.jump is None:
            template = _template(len(self.plain.co_freevars), self.plain.co_flags & _KINDS)
            mine = {_SLOT: self.observed, _SELF: self.function, _LOST: _lost}
            consts = tuple(mine.get(c, c) if type(c) is str else c for c in template.co_consts)
            self.jump = template.replace(co_consts=consts)
        return self.jump


_codes: weakref.WeakKeyDictionary[FunctionType, _Codes] = weakref.WeakKeyDictionary()
_templates: dict[tuple[int, int], CodeType] = {}
_serials = itertools.count()


def entry(plain: AnyCall, observed: AnyCall) -> AnyCall:
    """The function callers get: runs ``plain`` while observation is off, else ``observed``.

    ``plain`` is the outermost function of the plain chain, ``observed`` the observation
    step around it. The returned function owns ``observed`` (an attribute of its own
    name); this module holds it weakly.
    """
    if type(plain) is not FunctionType:
        plain = _as_function(plain)
    function = FunctionType(
        plain.__code__, plain.__globals__, plain.__name__, plain.__defaults__, plain.__closure__
    )
    function.__dict__[_ANCHOR.format(next(_serials))] = observed
    codes = _Codes(plain.__code__, observed, function)
    with _config.lock:
        _codes[function] = codes
        function.__code__ = codes.current(_config.state.active)
    return function


def is_anchor(name: str) -> bool:
    """Whether ``name`` is the attribute by which a wrapped function owns its observed chain."""
    return name.startswith("__resilient_observed_")


def _switch() -> None:
    """Give every wrapped function the code that ``state.active`` calls for.

    A pass may run a finalizer that switches again (same thread, the lock is re-entrant):
    the pass is repeated until ``state.active`` is the value it gave the functions.
    """
    with _config.lock:
        while True:
            active = _config.state.active
            for function, codes in list(_codes.items()):
                function.__code__ = codes.current(active)
            if _config.state.active == active:
                return


def _lost(function: weakref.ref[FunctionType]) -> AnyCall:
    """The plain chain of a function whose observed chain is gone: run it unobserved."""
    called = function()
    assert called is not None  # it is running
    code = _codes[called].plain
    return FunctionType(code, called.__globals__, called.__name__, None, called.__closure__)


_config.on_switch(_switch)


def _as_function(call: AnyCall) -> FunctionType:
    """A Python function calling ``call``: what a layer returned was some other callable."""
    import inspect

    if inspect.iscoroutinefunction(call):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return await call(*args, **kwargs)

        return run_async  # type: ignore[return-value]

    def run(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    return run  # type: ignore[return-value]


def _template(free: int, kind: int) -> CodeType:
    """The jump code for functions with ``free`` closure cells (a code must use exactly
    as many as its function has): call the observed chain the slot constant refers to.

    ``kind`` is the plain code's coroutine or generator flag: the jump is a function of
    the same kind (a generator delegates to the observed chain's generator), so what
    ``inspect`` says of the function does not change with observation.
    """
    key = (free, kind)
    template = _templates.get(key)
    if template is None:
        cells = [f"_{index}" for index in range(free)]
        define = "def" if kind in (0, _CO_GENERATOR) else "async def"
        lines = ["def make():"]
        if cells:
            lines.append(f"    {' = '.join(cells)} = None")
        lines += [
            f"    {define} jump(*args, **kwargs):",
            f"        step = {_SLOT!r}",
            "        step = step()",
            "        if step is None:  # the function's attributes were cleared",
            f"            lost = {_LOST!r}",
            f"            step = lost({_SELF!r})",
        ]
        if kind == _CO_GENERATOR:
            lines.append("        return (yield from step(*args, **kwargs))")
        elif kind == _CO_ASYNC_GENERATOR:
            lines += [
                "        stream = step(*args, **kwargs)",
                "        try:",
                "            async for item in stream:",
                "                yield item",
                "        finally:",
                "            await stream.aclose()",
            ]
        else:
            wait = "await " if kind else ""
            lines.append(f"        return {wait}step(*args, **kwargs)")
        if cells:
            lines.append(f"        {', '.join(cells)}  # never reached: makes the cells free")
        lines.append("    return jump")
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(lines), "<resilient: observation switch>", "exec"), namespace)
        template = namespace["make"]().__code__
        _templates[key] = template
    return template
