-- TimescaleDB only (applied by `uxstream db migrate` when the timescaledb extension is available; recorded
-- as skipped on plain PostgreSQL). Turns the funnels tables of V0003 into hypertables on their time column
-- and declares how their chunks compress, like T0001 for the sessionize tables. Policies: R__policies.sql.

SELECT create_hypertable('funnel_attempts', 'entered_at', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);
SELECT create_hypertable('funnel_windows', 'window_start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);
SELECT create_hypertable('funnel_window_steps', 'window_start', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE);

ALTER TABLE funnel_attempts SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'funnel',
  timescaledb.compress_orderby = 'entered_at DESC, attempt_id'
);
ALTER TABLE funnel_windows SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'funnel',
  timescaledb.compress_orderby = 'window_start DESC, dimension, dimension_value'
);
ALTER TABLE funnel_window_steps SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'funnel',
  timescaledb.compress_orderby = 'window_start DESC, dimension, dimension_value, step'
);
