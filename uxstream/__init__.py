"""uxstream tooling: command line, local services, event contract tools."""
