"""What every decorated call needs at run time, and nothing above it: the clock, the
process-wide state, deadlines, validation, rate-limited logs, the events and the hub
that hands them to listeners."""
