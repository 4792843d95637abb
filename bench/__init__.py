"""Benchmarks that print figures (run by `make bench`); results go in docs/benchmarks.md."""
