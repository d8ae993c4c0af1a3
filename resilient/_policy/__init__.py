"""Declarative policies: one declaration, the canonical order, one chain per function.

``policy(timeout=..., retry=..., breaker=..., fallback=...)`` builds the same stack as the
hand-written decorators, outermost first: fallback, degradable, total timeout, retry,
breaker, bulkhead, hedge, per-attempt timeout (``steps`` says why). Named policies come
from TOML or a dict (``load_policies``) and are applied with ``@policy("name")``.

Every mistake is a ``ConfigError`` raised when the policy is declared or loaded, naming
what the user wrote: ``retry.attemps`` (with the closest valid key), ``breaker`` for
``breaker=-1``, and the file and policy for a policy loaded from a file.
"""

from .declare import Policy, policy
from .description import Description, describe
from .load import load_policies, reload_policies

__all__ = ["Description", "Policy", "describe", "load_policies", "policy", "reload_policies"]
