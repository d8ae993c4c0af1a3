"""``@retry`` and the retry budget shared by many processes."""
