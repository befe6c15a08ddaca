"""Benchmark harnesses: measurements behind the design decisions recorded in NOTES.md."""
