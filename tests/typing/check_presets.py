"""Static checks that preset names are typed: a misspelled one is a type error.

Checked by ``mypy --strict`` and by pyright in strict mode (``[tool.pyright]`` in
pyproject.toml); nothing here runs. Each wrong call carries mypy's ``# type: ignore[code]``
and pyright's ``# pyright: ignore[rule]``: both checkers report an unused one as an error,
so each line fails the checks should either checker ever accept the misspelling.
"""

from __future__ import annotations

from typing import assert_type

import resilient
from resilient import http
from resilient.presets import BreakerPreset, RequestPreset, RetryPreset, TimeoutPreset


def check_timeout_presets() -> None:
    resilient.timeout("ai_operation")
    chosen: TimeoutPreset = "heavy"
    resilient.timeout(chosen)
    resilient.timeout("ai_operatoin")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    resilient.policy(timeout="quick", total_timeout="standard")
    resilient.policy(timeout="quik")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    resilient.policy(total_timeout="hevy")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    _misspelled: TimeoutPreset = "slow"  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    assert_type(resilient.Timeouts.get("quick"), float)  # a name from elsewhere, checked when run


def check_retry_presets() -> None:
    resilient.retry("patient")
    chosen: RetryPreset = "never"
    resilient.retry(chosen)
    resilient.retry("patiant")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType, reportCallIssue]
    resilient.retrying("quick")
    resilient.retrying("quik")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    resilient.policy(retry="standard")
    resilient.policy(retry="standart")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def check_breaker_presets() -> None:
    resilient.breaker("db", "database")
    chosen: BreakerPreset = "external_api"
    resilient.breaker("api", chosen)
    resilient.breaker("db", "databse")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    resilient.policy(breaker=("ai", "ai_operation"))
    resilient.policy(breaker="any-breaker-name")  # a name, not a preset: any text
    resilient.policy(breaker=("ai", "ai_operations"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def check_request_presets() -> None:
    chosen: RequestPreset = "heavy"
    http.Client(config=chosen, breaker="external_api")
    http.Client(config="heavvy")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    http.AsyncClient(breaker="external")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
