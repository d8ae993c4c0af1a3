"""The wrapper core in every binding context a decorator meets, sync and async.

Like wrapt's own suite, each context (plain function, instance method, classmethod and
staticmethod with the decorator above or below them, callable objects, runtime-bound
methods, partials, builtins, closures, ``super()`` calls) is checked for: the arguments it
receives, the metadata it shows, that the resilient layer really runs in it, and how it
behaves when stacked. A context factory builds a fresh target around a ``Flaky`` body and
returns a ``Case`` describing how to call it and what it should look like.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MethodType
from typing import Any

import pytest

import resilient
from resilient._wrapping.layer import Decorator, layers_of
from resilient.testing import FakeClock

pytestmark = pytest.mark.usefixtures("fake_clock")

MISSING = object()
STALL = 5.0  # virtual seconds a stalling attempt sleeps, past the 1 s timeout below


# -- the body every target runs -----------------------------------------------------------


class Flaky:
    """Records each call's arguments and returns them; the next ``fail`` calls go wrong.

    A failing call raises ``ValueError``, or, when ``stall_on`` holds a clock, sleeps
    ``STALL`` seconds on it (so an enclosing ``timeout`` fires) and then returns.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail = 0
        self.stall_on: FakeClock | None = None

    def __call__(self, *args: object) -> tuple[object, ...]:
        self.calls.append(args)
        if self.fail:
            self.fail -= 1
            if self.stall_on is None:
                raise ValueError(f"attempt {len(self.calls)} failed")
            self.stall_on.sleep(STALL)
        return args


def module_function(flaky: Flaky, x: int) -> tuple[object, ...]:
    """A module-level target."""
    return flaky(x)


async def async_module_function(flaky: Flaky, x: int) -> tuple[object, ...]:
    """A module-level async target."""
    return flaky(x)


class Recorder:
    """Applies ``decorators`` innermost (last) first, keeping what it got and each stage."""

    def __init__(self, *decorators: Callable[[Any], Any]) -> None:
        self.decorators = decorators
        self.given: Any = None
        self.stages: list[Any] = []

    def __call__(self, fn: Any) -> Any:
        self.given = fn
        for decorator in reversed(self.decorators):
            fn = decorator(fn)
            self.stages.append(fn)
        return fn

    @property
    def original(self) -> Any:
        """What resilient wraps: the given object, out of any classmethod/staticmethod."""
        given = self.given
        return given.__func__ if isinstance(given, classmethod | staticmethod) else given


# -- the binding contexts -------------------------------------------------------------------


@dataclass
class Call:
    """One way of calling the decorated target, and what the body should see and return."""

    invoke: Callable[[], Any]
    sees: tuple[object, ...]
    returns: object = MISSING

    def __post_init__(self) -> None:
        if self.returns is MISSING:
            self.returns = self.sees


@dataclass
class Case:
    """A decorated target in one binding context."""

    calls: list[Call]
    target: object  # what resilient wrapped (out of any classmethod/staticmethod)
    wrapper: object  # what resilient made of it (likewise)
    views: list[tuple[object, object]]  # (original, decorated) as callers reach them
    handles: list[object] = field(default_factory=list)  # more ways to reach the wrapper


def _unwrap(obj: Any) -> Any:
    return obj.__func__ if isinstance(obj, classmethod | staticmethod) else obj


def plain_function(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    target = async_module_function if is_async else module_function
    fn = decorate(target)
    return Case([Call(lambda: fn(flaky, 7), (7,))], target, fn, [(target, fn)])


def nested_closure(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    if is_async:

        async def fetch(x: int) -> tuple[object, ...]:
            """A closure over ``flaky``."""
            return flaky(x)
    else:

        def fetch(x: int) -> tuple[object, ...]:
            """A closure over ``flaky``."""
            return flaky(x)

    fn = decorate(fetch)
    return Case([Call(lambda: fn(7), (7,))], fetch, fn, [(fetch, fn)])


def instance_method(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Service:
        if is_async:

            @decorate
            async def fetch(self, x: int) -> tuple[object, ...]:
                """Fetch ``x``."""
                return flaky(self, x)
        else:

            @decorate
            def fetch(self, x: int) -> tuple[object, ...]:
                """Fetch ``x``."""
                return flaky(self, x)

    obj = Service()
    original = decorate.original
    return Case(
        calls=[
            Call(lambda: obj.fetch(7), (obj, 7)),
            Call(lambda: Service.fetch(obj, 8), (obj, 8)),  # via the class, explicit self
        ],
        target=original,
        wrapper=Service.__dict__["fetch"],
        views=[(original, Service.fetch), (MethodType(original, obj), obj.fetch)],
        handles=[Service.fetch, obj.fetch],
    )


def subclass_super(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Base:
        def fetch(self, x: int) -> tuple[object, ...]:
            return flaky(self, x)

        async def afetch(self, x: int) -> tuple[object, ...]:
            return flaky(self, x)

    class Child(Base):
        if is_async:

            @decorate
            async def fetch(self, x: int) -> tuple[object, ...]:
                """Defer to the base class."""
                return await super().afetch(x)
        else:

            @decorate
            def fetch(self, x: int) -> tuple[object, ...]:
                """Defer to the base class."""
                return super().fetch(x)

    obj = Child()
    original = decorate.original
    return Case(
        calls=[Call(lambda: obj.fetch(7), (obj, 7)), Call(lambda: Child.fetch(obj, 8), (obj, 8))],
        target=original,
        wrapper=Child.__dict__["fetch"],
        views=[(original, Child.fetch), (MethodType(original, obj), obj.fetch)],
        handles=[Child.fetch, obj.fetch],
    )


def classmethod_below(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Service:
        if is_async:

            @classmethod
            @decorate
            async def fetch(cls, x: int) -> tuple[object, ...]:
                """Fetch ``x`` for the class."""
                return flaky(cls, x)
        else:

            @classmethod
            @decorate
            def fetch(cls, x: int) -> tuple[object, ...]:
                """Fetch ``x`` for the class."""
                return flaky(cls, x)

    return _classmethod_case(Service, decorate)


def classmethod_above(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Service:
        if is_async:

            @decorate
            @classmethod
            async def fetch(cls, x: int) -> tuple[object, ...]:
                """Fetch ``x`` for the class."""
                return flaky(cls, x)
        else:

            @decorate
            @classmethod
            def fetch(cls, x: int) -> tuple[object, ...]:
                """Fetch ``x`` for the class."""
                return flaky(cls, x)

    return _classmethod_case(Service, decorate)


def _classmethod_case(owner: Any, decorate: Recorder) -> Case:
    obj = owner()
    original = decorate.original
    bound = MethodType(original, owner)
    raw = owner.__dict__["fetch"]
    assert isinstance(raw, classmethod)
    return Case(
        calls=[Call(lambda: owner.fetch(7), (owner, 7)), Call(lambda: obj.fetch(8), (owner, 8))],
        target=original,
        wrapper=raw.__func__,
        views=[(bound, owner.fetch), (bound, obj.fetch)],
        handles=[raw, owner.fetch, obj.fetch],
    )


def staticmethod_below(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Service:
        if is_async:

            @staticmethod
            @decorate
            async def fetch(x: int) -> tuple[object, ...]:
                """Fetch ``x`` statically."""
                return flaky(x)
        else:

            @staticmethod
            @decorate
            def fetch(x: int) -> tuple[object, ...]:
                """Fetch ``x`` statically."""
                return flaky(x)

    return _staticmethod_case(Service, decorate)


def staticmethod_above(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Service:
        if is_async:

            @decorate
            @staticmethod
            async def fetch(x: int) -> tuple[object, ...]:
                """Fetch ``x`` statically."""
                return flaky(x)
        else:

            @decorate
            @staticmethod
            def fetch(x: int) -> tuple[object, ...]:
                """Fetch ``x`` statically."""
                return flaky(x)

    return _staticmethod_case(Service, decorate)


def _staticmethod_case(owner: Any, decorate: Recorder) -> Case:
    obj = owner()
    original = decorate.original
    raw = owner.__dict__["fetch"]
    assert isinstance(raw, staticmethod)
    return Case(
        calls=[Call(lambda: owner.fetch(7), (7,)), Call(lambda: obj.fetch(8), (8,))],
        target=original,
        wrapper=raw.__func__,
        views=[(original, owner.fetch), (original, obj.fetch)],
        handles=[raw, owner.fetch, obj.fetch],
    )


def callable_object(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Fetcher:
        """Fetches when called."""

        if is_async:

            async def __call__(self, x: int) -> tuple[object, ...]:
                return flaky(self, x)
        else:

            def __call__(self, x: int) -> tuple[object, ...]:
                return flaky(self, x)

    obj = Fetcher()
    fn = decorate(obj)
    return Case([Call(lambda: fn(7), (obj, 7))], obj, fn, [(obj, fn)])


def bound_method(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    class Service:
        async def afetch(self, x: int) -> tuple[object, ...]:
            """Fetch ``x``."""
            return flaky(self, x)

        def fetch(self, x: int) -> tuple[object, ...]:
            """Fetch ``x``."""
            return flaky(self, x)

    obj = Service()
    method = obj.afetch if is_async else obj.fetch
    fn = decorate(method)
    return Case([Call(lambda: fn(7), (obj, 7))], method, fn, [(method, fn)])


def partial_object(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    partial = functools.partial(async_module_function if is_async else module_function, flaky)
    fn = decorate(partial)
    return Case([Call(lambda: fn(7), (7,))], partial, fn, [(partial, fn)])


def builtin(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    assert not is_async, "builtins are sync"

    class Sized:
        def __len__(self) -> int:
            return len(flaky(self))

    obj = Sized()
    fn = decorate(len)
    return Case([Call(lambda: fn(obj), (obj,), returns=1)], len, fn, [(len, fn)])


def builtin_method_descriptor(decorate: Recorder, flaky: Flaky, is_async: bool) -> Case:
    assert not is_async, "builtins are sync"

    class Table(dict[int, object]):
        lookup = decorate(dict.__getitem__)  # a C descriptor: wrapt binds it per instance

        def __missing__(self, key: int) -> tuple[object, ...]:
            return flaky(self, key)

    obj = Table()
    target = dict.__getitem__
    return Case(
        calls=[Call(lambda: obj.lookup(7), (obj, 7)), Call(lambda: Table.lookup(obj, 8), (obj, 8))],
        target=target,
        wrapper=Table.__dict__["lookup"],
        views=[
            (target.__get__(None, Table), Table.lookup),
            (target.__get__(obj, Table), obj.lookup),
        ],
        handles=[Table.lookup, obj.lookup],
    )


Context = Callable[[Recorder, Flaky, bool], Case]

# Each context with the modes it supports: False for sync, True for async.
CONTEXTS: list[tuple[Context, tuple[bool, ...]]] = [
    (plain_function, (False, True)),
    (nested_closure, (False, True)),
    (instance_method, (False, True)),
    (subclass_super, (False, True)),
    (classmethod_below, (False, True)),
    (classmethod_above, (False, True)),
    (staticmethod_below, (False, True)),
    (staticmethod_above, (False, True)),
    (callable_object, (False, True)),
    (bound_method, (False, True)),
    (partial_object, (False, True)),
    (builtin, (False,)),
    (builtin_method_descriptor, (False,)),
]

every_context = pytest.mark.parametrize(
    ("context", "is_async"),
    [
        pytest.param(context, is_async, id=f"{context.__name__}-{'async' if is_async else 'sync'}")
        for context, modes in CONTEXTS
        for is_async in modes
    ],
)


def retry_twice() -> Decorator:
    """The retry every context runs under: two attempts, no wait between them."""
    return resilient.retry(attempts=2, initial_delay=0)


def signature_of(fn: Any) -> inspect.Signature | None:
    """``inspect.signature(fn)``, or None for the builtins that have none."""
    try:
        return inspect.signature(fn)
    except ValueError:
        return None


async def outcome(result: Any, is_async: bool) -> Any:
    """The value of a call: awaited when the wrapper is async (and only then a coroutine)."""
    assert inspect.iscoroutine(result) is is_async
    return await result if is_async else result


# -- every context: calls, metadata, behaviour, stacking ------------------------------------


@every_context
async def test_call_receives_bound_arguments(context: Context, is_async: bool) -> None:
    """Each way of calling the wrapper reaches the body once, with self/cls bound correctly."""
    flaky = Flaky()
    case = context(Recorder(retry_twice()), flaky, is_async)
    for call in case.calls:
        flaky.calls.clear()
        assert await outcome(call.invoke(), is_async) == call.returns
        assert flaky.calls == [call.sees]


@every_context
async def test_metadata_matches_the_original(context: Context, is_async: bool) -> None:
    """Name, qualname, doc, module, signature and coroutine-ness equal the original's."""
    case = context(Recorder(retry_twice()), Flaky(), is_async)
    for original, decorated in case.views:
        for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
            assert getattr(decorated, attribute, MISSING) == getattr(original, attribute, MISSING)
        assert signature_of(decorated) == signature_of(original)
        assert inspect.iscoroutinefunction(decorated) is inspect.iscoroutinefunction(original)


@every_context
async def test_wrapped_is_the_original(context: Context, is_async: bool) -> None:
    """``__wrapped__`` is the very object that was decorated, and that object is untouched."""
    case = context(Recorder(retry_twice()), Flaky(), is_async)
    assert case.wrapper.__wrapped__ is case.target
    assert layers_of(case.target) == ()
    assert "__resilient_stack__" not in getattr(case.target, "__dict__", {})


@every_context
async def test_retry_runs_in_context(context: Context, is_async: bool) -> None:
    """A body that fails once with ValueError is called twice and the call returns."""
    flaky = Flaky()
    case = context(Recorder(retry_twice()), flaky, is_async)
    for call in case.calls:
        flaky.calls.clear()
        flaky.fail = 1
        assert await outcome(call.invoke(), is_async) == call.returns
        assert flaky.calls == [call.sees, call.sees]


@every_context
async def test_retry_gives_up_in_context(context: Context, is_async: bool) -> None:
    """A body that keeps failing is called ``attempts`` times and its error propagates."""
    flaky = Flaky()
    case = context(Recorder(retry_twice()), flaky, is_async)
    flaky.fail = 3
    with pytest.raises(ValueError, match="attempt 2 failed") as caught:
        await outcome(case.calls[0].invoke(), is_async)
    assert len(flaky.calls) == 2
    assert "resilient.retry gave up" in "".join(caught.value.__notes__)


@every_context
async def test_layers_reachable_from_every_handle(context: Context, is_async: bool) -> None:
    """``layers_of`` finds the layer from the wrapper, the class attribute and the instance."""
    decorator = retry_twice()
    case = context(Recorder(decorator), Flaky(), is_async)
    for handle in [case.wrapper, *case.handles, *(decorated for _, decorated in case.views)]:
        assert layers_of(handle) == (decorator.layer,), handle


@every_context
async def test_stacked_retry_over_timeout(
    context: Context, is_async: bool, fake_clock: FakeClock
) -> None:
    """Retry over timeout: both layers run, outermost first, around one wrapper of the original."""
    retry, timeout = retry_twice(), resilient.timeout(1)
    flaky = Flaky()
    decorate = Recorder(retry, timeout)
    case = context(decorate, flaky, is_async)

    assert layers_of(case.wrapper) == (retry.layer, timeout.layer)
    assert case.wrapper.__wrapped__ is case.target
    for handle in case.handles:
        assert layers_of(handle) == (retry.layer, timeout.layer)

    flaky.stall_on = fake_clock
    for call in case.calls:
        flaky.calls.clear()
        flaky.fail = 1
        started = fake_clock.monotonic()
        assert await outcome(call.invoke(), is_async) == call.returns
        assert flaky.calls == [call.sees, call.sees]  # timed out once, then retried
        assert fake_clock.monotonic() == started + 1  # the stall was cut at the 1 s deadline


@every_context
async def test_timeout_fires_in_context(
    context: Context, is_async: bool, fake_clock: FakeClock
) -> None:
    """A body that overruns its 1 s timeout is cut at the deadline with TimeoutExceededError."""
    flaky = Flaky()
    case = context(Recorder(resilient.timeout(1)), flaky, is_async)
    flaky.stall_on = fake_clock
    flaky.fail = 1
    with pytest.raises(resilient.TimeoutExceededError, match="did not finish within 1s"):
        await outcome(case.calls[0].invoke(), is_async)
    assert fake_clock.monotonic() == 1


@every_context
async def test_decorating_again_leaves_the_first_unchanged(
    context: Context, is_async: bool
) -> None:
    """Stacking builds a new wrapper; the already-decorated object keeps its own layers."""
    retry, timeout = retry_twice(), resilient.timeout(1)
    decorate = Recorder(retry, timeout)
    case = context(decorate, Flaky(), is_async)
    first, second = (_unwrap(stage) for stage in decorate.stages)

    assert second is case.wrapper
    assert first is not second
    assert layers_of(first) == (timeout.layer,)
    assert first.__wrapped__ is case.target
    assert layers_of(second) == (retry.layer, timeout.layer)


# -- stacking, in detail ------------------------------------------------------------------


def test_stacking_merges_into_one_chain() -> None:
    """Three stacked decorators give one wrapper of the original, with layers outermost first."""
    outer, middle, inner = retry_twice(), resilient.timeout(2), resilient.retry(attempts=3)

    @outer
    @middle
    @inner
    def fetch(x: int) -> int:
        """Fetch."""
        return x

    assert layers_of(fetch) == (outer.layer, middle.layer, inner.layer)
    original = fetch.__wrapped__
    assert not hasattr(original, "__wrapped__")
    assert layers_of(original) == ()
    assert inspect.unwrap(fetch) is original
    assert fetch(3) == 3


def test_first_decorated_function_stays_usable(fake_clock: FakeClock) -> None:
    """After a timeout is stacked on a retried function, the retried one still has no timeout."""
    flaky = Flaky()
    flaky.stall_on = fake_clock
    retry, timeout = retry_twice(), resilient.timeout(1)

    def fetch(x: int) -> tuple[object, ...]:
        return flaky(x)

    first = retry(fetch)
    stack = first.__dict__["__resilient_stack__"]
    second = timeout(first)

    flaky.fail = 1
    assert first(1) == (1,)  # no timeout: the stall runs its full length
    assert fake_clock.monotonic() == STALL
    flaky.fail = 1
    with pytest.raises(resilient.TimeoutExceededError):
        second(2)
    assert first.__dict__["__resilient_stack__"] is stack
    assert layers_of(first) == (retry.layer,)
    assert first.__wrapped__ is fetch is second.__wrapped__


async def test_first_decorated_method_stays_usable() -> None:
    """Stacking on a decorated method in a class body leaves the first method working alone."""
    flaky = Flaky()
    retry, timeout = retry_twice(), resilient.timeout(1)

    class Service:
        @timeout
        async def fetch(self, x: int) -> tuple[object, ...]:
            return flaky(self, x)

        fetch_retried = retry(fetch)

    obj = Service()
    flaky.fail = 1
    with pytest.raises(ValueError):
        await obj.fetch(1)
    flaky.fail = 1
    assert await obj.fetch_retried(2) == (obj, 2)
    assert layers_of(obj.fetch) == (timeout.layer,)
    assert layers_of(obj.fetch_retried) == (retry.layer, timeout.layer)
    assert Service.fetch_retried.__wrapped__ is Service.fetch.__wrapped__


@pytest.mark.parametrize("kind", [classmethod, staticmethod])
def test_stacking_over_a_descriptor_keeps_the_descriptor(kind: type) -> None:
    """retry over classmethod(timeout(f)) stays a classmethod/staticmethod around one chain."""
    retry, timeout = retry_twice(), resilient.timeout(1)

    def fetch(*args: object) -> tuple[object, ...]:
        return args

    first = kind(timeout(fetch))
    second = retry(first)
    assert type(second) is kind
    assert layers_of(second) == (retry.layer, timeout.layer)
    assert layers_of(first) == (timeout.layer,)
    assert second.__func__.__wrapped__ is fetch


def test_wrapping_a_wrapper_from_another_library_keeps_it() -> None:
    """A functools.wraps decorator below is kept: resilient wraps it, not what it wraps."""

    def other(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return ("other", fn(*args, **kwargs))

        return wrapper

    def fetch(x: int) -> int:
        return x

    inner = other(fetch)
    wrapped = retry_twice()(inner)
    assert wrapped.__wrapped__ is inner
    assert inspect.unwrap(wrapped) is fetch
    assert wrapped(4) == ("other", 4)


def test_foreign_wrapper_between_resilient_decorators_is_kept() -> None:
    """A functools.wraps decorator between two resilient ones still runs (it is not merged away)."""
    log: list[str] = []

    def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)  # copies fn.__dict__, resilient's stack included
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            log.append("logged")
            return fn(*args, **kwargs)

        return wrapper

    retry, timeout = retry_twice(), resilient.timeout(1)

    @retry
    @logged
    @timeout
    def fetch(x: int) -> int:
        return x

    assert fetch(5) == 5
    assert log == ["logged"]
    assert layers_of(fetch) == (retry.layer,)
    logged_wrapper = fetch.__wrapped__
    assert layers_of(logged_wrapper) == ()  # a foreign wrapper is not itself resilient
    assert layers_of(logged_wrapper.__wrapped__) == (timeout.layer,)


def test_attributes_set_between_decorators_survive_stacking() -> None:
    """An attribute a decorator sets on a resilient wrapper is kept when another layer joins."""

    def tag(fn: Any) -> Any:
        fn.tagged = "yes"
        return fn

    first = tag(resilient.timeout(1)(module_function))
    second = retry_twice()(first)
    assert second.tagged == "yes"
    assert not hasattr(module_function, "tagged")
    assert second.__wrapped__ is module_function


def test_runtime_decorated_bound_method_is_per_instance() -> None:
    """A bound method wrapped at runtime stays bound to its instance, not to the class."""

    class Service:
        def __init__(self, name: str) -> None:
            self.name = name

        def fetch(self) -> str:
            return self.name

    one, two = Service("one"), Service("two")
    fetch_one = retry_twice()(one.fetch)
    assert fetch_one() == "one"
    assert two.fetch() == "two"
    assert fetch_one.__self__ is one
    assert "fetch" not in vars(one)


# -- rejection -----------------------------------------------------------------------------


def generator(x: int) -> Any:
    yield x


async def async_generator(x: int) -> Any:
    yield x


class Streams:
    def generator(self) -> Any:
        yield 1

    async def async_generator(self) -> Any:
        yield 1


def degradable() -> Decorator:
    """A decorator without a stream form: it has no meaning for a generator."""
    return resilient.degradable(resilient.Feature("no-streams"))


@pytest.mark.parametrize("make", [degradable], ids=["degradable"])
@pytest.mark.parametrize(
    ("target", "name"),
    [
        (generator, "generator"),
        (async_generator, "async_generator"),
        (Streams.generator, "Streams.generator"),
        (Streams.async_generator, "Streams.async_generator"),
        (Streams().generator, "Streams.generator"),
        (staticmethod(generator), "generator"),
        (classmethod(async_generator), "async_generator"),
        (functools.partial(generator, 1), "generator"),
    ],
    ids=[
        "generator",
        "async-generator",
        "generator-method",
        "async-generator-method",
        "bound-generator",
        "staticmethod",
        "classmethod",
        "partial",
    ],
)
def test_generator_functions_are_rejected(
    make: Callable[[], Any], target: object, name: str
) -> None:
    """A decorator without a stream form refuses a generator function with a TypeError naming it."""
    decorator = make()
    with pytest.raises(
        TypeError, match=rf"cannot decorate the generator function .*\b{re.escape(name)}\b"
    ):
        decorator(target)


def test_generator_rejected_in_a_class_body() -> None:
    """The TypeError is raised at decoration time, when the class body runs."""
    with pytest.raises(TypeError, match=r"generator function .*Service\.stream"):

        class Service:
            @degradable()
            def stream(self) -> Any:
                yield 1


@pytest.mark.parametrize(
    "target",
    [42, "fetch", None, object(), classmethod(42)],
    ids=["int", "str", "None", "object", "classmethod-of-int"],
)
def test_non_callables_are_rejected(target: object) -> None:
    """A non-callable raises TypeError at decoration time."""
    with pytest.raises(TypeError, match="can only decorate a callable"):
        retry_twice()(target)


# -- sync or async, chosen once -------------------------------------------------------------


async def test_async_choice_is_made_at_decoration_time() -> None:
    """An async def gets an async wrapper; a sync function returning a coroutine does not."""
    flaky = Flaky()

    async def body() -> tuple[object, ...]:
        return flaky()

    @retry_twice()
    def returns_coroutine() -> Any:
        return body()

    assert not inspect.iscoroutinefunction(returns_coroutine)
    flaky.fail = 1
    pending = returns_coroutine()  # the sync wrapper returned at once: nothing to retry
    with pytest.raises(ValueError):
        await pending
    assert len(flaky.calls) == 1


async def test_async_callable_object_wrapper_returns_coroutines() -> None:
    """A callable object with ``async def __call__`` is wrapped with the async chain."""
    flaky = Flaky()

    class Fetcher:
        async def __call__(self) -> tuple[object, ...]:
            return flaky()

    fn = retry_twice()(Fetcher())
    flaky.fail = 1
    pending = fn()
    assert inspect.iscoroutine(pending)
    assert await pending == ()
    assert len(flaky.calls) == 2


def test_decorator_repr_is_its_layer() -> None:
    """A decorator's repr shows its layer's settings."""
    decorator = resilient.retry(attempts=2, initial_delay=0)
    assert repr(decorator) == repr(decorator.layer)
    assert repr(decorator).startswith("<resilient.retry attempts=2 initial_delay=0.0 ")
    assert repr(resilient.timeout(1)) == "<resilient.timeout seconds=1.0 strategy='thread'>"


# -- defaults ------------------------------------------------------------------------------

DEFAULTS = (2,)
KWDEFAULTS = {"c": 3, "d": None}
CALLED_WITH_DEFAULTS = (1, 2, 3, None)


def one_retry() -> list[Callable[[Any], Any]]:
    """A single resilient decorator."""
    return [retry_twice()]


def full_stack() -> list[Callable[[Any], Any]]:
    """Four resilient decorators stacked, outermost first."""
    return [
        resilient.fallback("fallback"),
        retry_twice(),
        resilient.breaker(),
        resilient.timeout(1),
    ]


def defaults_targets(
    decorators: list[Callable[[Any], Any]], is_async: bool
) -> list[tuple[str, Any, Callable[[Any], Any]]]:
    """``(context, decorated handle, call with only the required argument)`` per context."""
    decorate = Recorder(*decorators)
    if is_async:

        async def function(a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
            return a, b, c, d

        class Service:
            @decorate
            async def method(self, a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
                return a, b, c, d

            @classmethod
            @decorate
            async def below_classmethod(
                cls, a: int, b: int = 2, *, c: int = 3, d: object = None
            ) -> object:
                return a, b, c, d

            @decorate
            @classmethod
            async def above_classmethod(
                cls, a: int, b: int = 2, *, c: int = 3, d: object = None
            ) -> object:
                return a, b, c, d

            @staticmethod
            @decorate
            async def below_staticmethod(
                a: int, b: int = 2, *, c: int = 3, d: object = None
            ) -> object:
                return a, b, c, d

            @decorate
            @staticmethod
            async def above_staticmethod(
                a: int, b: int = 2, *, c: int = 3, d: object = None
            ) -> object:
                return a, b, c, d
    else:

        def function(a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
            return a, b, c, d

        class Service:
            @decorate
            def method(self, a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
                return a, b, c, d

            @classmethod
            @decorate
            def below_classmethod(
                cls, a: int, b: int = 2, *, c: int = 3, d: object = None
            ) -> object:
                return a, b, c, d

            @decorate
            @classmethod
            def above_classmethod(
                cls, a: int, b: int = 2, *, c: int = 3, d: object = None
            ) -> object:
                return a, b, c, d

            @staticmethod
            @decorate
            def below_staticmethod(a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
                return a, b, c, d

            @decorate
            @staticmethod
            def above_staticmethod(a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
                return a, b, c, d

    obj = Service()
    return [
        ("function", decorate(function), lambda fn: fn(1)),
        ("method via the class", Service.method, lambda fn: fn(obj, 1)),
        ("method via an instance", obj.method, lambda fn: fn(1)),
        ("method as stored", Service.__dict__["method"], lambda fn: fn(obj, 1)),
        *(
            (f"{name} via {via}", handle, lambda fn: fn(1))
            for name in (
                "below_classmethod",
                "above_classmethod",
                "below_staticmethod",
                "above_staticmethod",
            )
            for via, handle in (
                ("the class", getattr(Service, name)),
                ("an instance", getattr(obj, name)),
            )
        ),
        *(
            (f"{name} as stored", Service.__dict__[name].__func__, lambda fn: fn(1))
            for name in ("below_staticmethod", "above_staticmethod")
        ),
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("decorators", [one_retry, full_stack], ids=["one", "stacked"])
async def test_wrappers_keep_the_defaults(
    decorators: Callable[[], list[Callable[[Any], Any]]], is_async: bool
) -> None:
    """``__defaults__``/``__kwdefaults__`` are the original's in every binding context."""
    for context, handle, call in defaults_targets(decorators(), is_async):
        assert layers_of(handle), context
        assert handle.__defaults__ == DEFAULTS, context
        assert handle.__kwdefaults__ == KWDEFAULTS, context
        assert await outcome(call(handle), is_async) == CALLED_WITH_DEFAULTS, context


def test_defaults_are_the_very_objects_of_the_original() -> None:
    """The wrapper shows the original's default objects, not copies, and None stays None."""
    shared: list[int] = []

    def fetch(a: int, items: list[int] = shared, *, into: list[int] = shared) -> int:
        return a

    def plain(a: int) -> int:
        return a

    wrapped = retry_twice()(fetch)
    assert wrapped.__defaults__[0] is shared
    assert wrapped.__kwdefaults__["into"] is shared
    bare = retry_twice()(plain)
    assert bare.__defaults__ is None
    assert bare.__kwdefaults__ is None


def test_stacking_over_a_decorated_function_keeps_the_defaults() -> None:
    """Decorating an already-decorated function again shows the original's defaults."""

    def fetch(a: int, b: int = 2, *, c: int = 3, d: object = None) -> object:
        return a, b, c, d

    once = retry_twice()(fetch)
    twice = resilient.breaker()(once)
    thrice = resilient.timeout(1)(twice)
    for fn in (once, twice, thrice):
        assert (fn.__defaults__, fn.__kwdefaults__) == (DEFAULTS, KWDEFAULTS)
        assert fn(1) == CALLED_WITH_DEFAULTS
