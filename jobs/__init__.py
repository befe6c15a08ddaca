"""uxstream Flink jobs (PyFlink)."""
