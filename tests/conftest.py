"""The suite's fixtures, in one place; resilient's own pytest plugin provides the rest.

From the plugin (``resilient_pytest``, as users get it): fresh global state around every
test, ``fake_clock`` (virtual time for the decorators and the test's event loop),
``resilient_metrics``, ``resilient_store``, ``breakers`` and the markers.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from hypothesis import settings

# The plugin is loaded by its entry point when resilient is installed; from a checkout
# without it, the conftest loads it.
_INSTALLED = any(ep.value == "resilient_pytest" for ep in entry_points(group="pytest11"))
pytest_plugins = ("statsd_daemon",) if _INSTALLED else ("resilient_pytest", "statsd_daemon")

# Under CI, hypothesis loads its own "ci" profile, which is derandomized: the same examples on
# every run. .ci/run also runs the suite with ``--hypothesis-profile=random`` so that each CI
# run explores new examples; a failure prints the blob that reproduces it.
settings.register_profile("random", derandomize=False, database=None, print_blob=True)
