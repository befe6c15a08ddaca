-- TimescaleDB only (applied by `uxstream db migrate` when the timescaledb extension is available; recorded
-- as skipped on plain PostgreSQL). Turns the anomalies table of V0004 into a hypertable on
-- opened_window_start (part of its key), like T0001 for the sessionize tables. An open alert's row is
-- updated in place, also in a compressed chunk (TimescaleDB supports DML on compressed chunks).

SELECT create_hypertable('anomalies', 'opened_window_start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);

ALTER TABLE anomalies SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'metric',
  timescaledb.compress_orderby = 'opened_window_start DESC, alert_id'
);
