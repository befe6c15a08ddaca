"""Smoke pipeline: proves Kafka → PyFlink (SQL + a Python UDF) → PostgreSQL and Kafka, exactly-once."""
