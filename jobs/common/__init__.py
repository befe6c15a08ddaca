"""Shared pieces of every uxstream job: settings, environment setup, connectors."""
