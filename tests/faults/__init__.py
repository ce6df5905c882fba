"""Fault-test helpers: a whole stack as real processes, a TCP proxy to cut, and the tally."""
