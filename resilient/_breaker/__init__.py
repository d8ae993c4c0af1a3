"""The circuit breaker object, its decorator, its registry and its metrics."""
