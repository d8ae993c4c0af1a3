"""Sphinx configuration of the resilient documentation.

Build: ``sphinx-build -W --keep-going -n -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the checkout, not whatever is installed

import resilient  # noqa: E402  (needs the path above)

# resilient.metrics and resilient.stores load some names on first use (module
# __getattr__), and autodoc lists a module's members with dir(): load them now.
for _module in (resilient.metrics, resilient.stores):
    for _name in _module.__all__:
        setattr(_module, _name, getattr(_module, _name))

# sphinx-autodoc-typehints 3.6 still calls an API Sphinx 9 deprecates: noise, not a problem.
warnings.filterwarnings("ignore", module="sphinx_autodoc_typehints")

project = "resilient"
author = "resilient contributors"
copyright = "resilient contributors"
release = resilient.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx_autodoc_typehints",
]

html_theme = "furo"
html_title = f"resilient {release}"
exclude_patterns = ["_build"]
nitpicky = True

autodoc_member_order = "bysource"
autodoc_preserve_defaults = True  # show `_UNSET`, not "<object object at 0x...>"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
always_document_param_types = False
typehints_fully_qualified = False

# The build is offline (no intersphinx: CI must not depend on docs.python.org), so names
# of the standard library and of third-party packages in signatures have no page to link
# to. Private names (a dotted path with a part starting with "_") are implementation
# types that annotations mention; the public pages describe them in words.
nitpick_ignore_regex = [
    # the standard library
    (
        r"py:.*",
        r"(builtins|collections|collections\.abc|typing|types|datetime|enum|os|"
        r"logging|asyncio|asyncio\..*|contextvars|concurrent\.futures|threading|pathlib|"
        r"sqlite3|_thread|random|inspect|numbers)\.[\w~.]+",
    ),
    # third-party packages: httpx (the HTTP client's responses), redis (also as the
    # stores import it: redis.asyncio as aredis...), starlette, flask, prometheus_client,
    # opentelemetry, tenacity, wrapt, hypothesis (resilient.testing.strategies)
    (
        r"py:.*",
        r"(httpx|redis|aredis|acluster|rcluster|starlette|flask|werkzeug|prometheus_client|"
        r"opentelemetry|tenacity|wrapt|cachetools|statsd|hypothesis)\..+",
    ),
    # implementation types: a module or a name starting with "_"
    (r"py:.*", r"(.+\.)?_[\w.]*"),
    # type variables of generic signatures (P, R, T, ~P)
    (r"py:.*", r"(.+\.)?~?[PRT]"),
]
# Type aliases that annotations name without their module, and names Python spells
# bare in signatures (ContextVar, Ellipsis).
nitpick_ignore = [
    ("py:class", name)
    for name in (
        "ASGIApp",
        "BreakerPreset",
        "BulkheadSource",
        "Clock",
        "ClockSource",
        "ContextVar",
        "ExceptionFilter",
        "Kind",
        "Listener",
        "OnRetry",
        "OnStoreError",
        "RequestPreset",
        "RetryPreset",
        "Seconds",
        "Store",
        "TimeoutPreset",
        "Trip",
        "WSGIApp",
    )
] + [
    ("py:data", "Ellipsis"),
    # The descriptor behind the deprecated preset names (BreakerConfig.ai_service):
    # documented in words where the presets are.
    ("py:class", "resilient.presets.RenamedPreset"),
]
