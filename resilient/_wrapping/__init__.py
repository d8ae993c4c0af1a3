"""Turning layers into wrapped functions (the only user of wrapt), the one observation
step, the metrics emitter and the guard around user hooks."""
