"""``@bulkhead``: at most N calls at once per compartment, a bounded FIFO queue behind them."""
