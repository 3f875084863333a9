"""Helpers for the demo, benchmarks and tests (not used by the daemon)."""
