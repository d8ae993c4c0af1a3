"""``@hedge``: a second attempt when the first is slow; the first success wins."""
