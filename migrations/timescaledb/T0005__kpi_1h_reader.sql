-- The hourly continuous aggregate is an output for dashboards (V0007__roles.sql).
GRANT SELECT ON kpi_1h TO uxstream_reader;
