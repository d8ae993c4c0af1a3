"""wrapt's proxy for callables that are not plain functions (the only user of wrapt).

Imported with the first such callable a decorator is applied to, so that neither
``import resilient`` nor decorating plain functions loads wrapt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wrapt

__all__ = ["BoundFunctionWrapper", "CallableWrapper", "wrap"]

BoundFunctionWrapper = wrapt.BoundFunctionWrapper

if TYPE_CHECKING:
    _FunctionWrapper = wrapt.FunctionWrapper[Any, Any]
else:
    # wrapt's type hints make its classes generic, but only its newest releases allow
    # subscripting them at run time, so the base a running program sees is the plain class.
    _FunctionWrapper = wrapt.FunctionWrapper


class CallableWrapper(_FunctionWrapper):
    """wrapt's proxy for callables that are not plain functions; keeps their binding."""

    _self_resilient_stack: object


def wrap(target: Any, call: Callable[[Any, Any, Any, Any], Any], stack: object) -> CallableWrapper:
    """``target`` behind a proxy whose calls go to ``call(wrapped, instance, args, kwargs)``;
    ``stack`` is what ``layer`` reads back from it."""
    wrapper = CallableWrapper(target, call)
    wrapper._self_resilient_stack = stack
    return wrapper
