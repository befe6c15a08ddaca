"""uxstream job: sessionize."""
