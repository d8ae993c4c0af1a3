"""The preset-name types (``resilient.presets.TimeoutPreset``...) list exactly the names
each kind accepts at run time, so a type checker and the runtime check agree."""

from __future__ import annotations

from typing import get_args

import pytest

import resilient
from resilient.http import RequestConfig
from resilient.presets import BreakerPreset, RequestPreset, RetryPreset, TimeoutPreset


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        (TimeoutPreset, resilient.Timeouts),
        (RetryPreset, resilient.RetryConfig),
        (BreakerPreset, resilient.BreakerConfig),
        (RequestPreset, RequestConfig),
    ],
    ids=["Timeouts", "RetryConfig", "BreakerConfig", "RequestConfig"],
)
def test_the_literal_lists_the_names_the_kind_accepts(alias: object, kind: type) -> None:
    """Every name of the type is a preset of its kind, and every preset is in the type."""
    assert set(get_args(alias)) == set(kind.names)
    for name in get_args(alias):
        kind.get(name)


def test_a_name_outside_the_literal_is_still_refused_at_run_time() -> None:
    """The types check nothing at run time: a misspelled name still raises ConfigError."""
    with pytest.raises(resilient.ConfigError, match="did you mean 'ai_operation'"):
        resilient.timeout("ai_operatoin")  # type: ignore[arg-type]
