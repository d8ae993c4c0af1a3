"""The breaker as pure rules: its settings, its state, the transition function and the
protocols of the stores that keep it. No I/O and no clock of its own; stores and the
breaker share it."""
