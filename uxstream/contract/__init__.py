"""Event contract tools: schema evolution check, traffic generator and replay.

Commands: `uxstream schema check`, `uxstream generate`, `uxstream replay`.

The contract itself (catalog, wire format, validity rules) lives in `jobs.common.contract`, which the jobs
ship with; this package holds the tooling around it.
"""
