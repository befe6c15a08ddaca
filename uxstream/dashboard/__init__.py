"""`uxstream dashboard`: the live dashboard served by the project itself, and the static report."""
