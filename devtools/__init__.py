"""Development tools: start the whole stack for `make run`, the tests and the benchmarks."""
