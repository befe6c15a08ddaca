"""Event contract tests: schemas, compatibility, wire format, validity, generator, replay, oracle base."""
