"""The breaker as pure rules: its settings, its state, the transition function and the
events it announces. No I/O and no clock of its own; stores and the breaker share it."""
