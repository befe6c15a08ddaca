"""uxstream job: anomaly."""
