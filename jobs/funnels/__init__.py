"""uxstream job: funnels."""
