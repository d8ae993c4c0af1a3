"""``@timeout``: the decorator, the signal alarm and the worker threads."""
