"""``@rate_limit``: a token bucket per name, local or shared by a fleet through a store."""
